"""Logins (scrypt hashes) for the chat and the API, and the bearer token for the API."""

import base64
import io
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from assistant import cli
from assistant.errors import ConfigError
from assistant.index import build_index
from assistant.serve import auth, create_server, exposure_warning, serve
from assistant.serve.auth import check_token, check_user, hash_password, load_users, verify_password
from assistant.service import Assistant


def test_password_hash_verifies_only_the_right_password():
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret", stored) and not verify_password("wrong", stored)
    assert not verify_password("s3cret", "garbage") and hash_password("s3cret") != stored  # salted


def test_users_come_from_a_file_of_hashes_or_one_user_password(tmp_path):
    users_file = tmp_path / "users"
    users_file.write_text(f"# team\nana:{hash_password('pw1')}\n\nbo:{hash_password('pw2')}\n")
    users = load_users(str(users_file))
    assert set(users) == {"ana", "bo"} and verify_password("pw2", users["bo"])
    assert verify_password("pw", load_users("solo:pw")["solo"])
    with pytest.raises(ConfigError, match="neither a file of user:hash lines nor user:password"):
        load_users("/no/such/file")
    users_file.write_text("ana:plaintext\n")
    with pytest.raises(ConfigError, match="assistant hash-password ana"):
        load_users(str(users_file))


def test_an_unknown_user_name_costs_the_same_scrypt_as_a_known_one(monkeypatch):
    """The probe timed a known name with a wrong password at 45 ms and an unknown one at 2 ms: names leaked."""
    users = {"alice": hash_password("right")}
    auth._unknown_user_hash()  # made once per process, like the users' hashes read at start
    costs = []
    real = auth.hashlib.scrypt

    def counted(*args, **kwargs):
        costs.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(auth.hashlib, "scrypt", counted)
    assert check_user(users, "alice", "wrong") is False
    assert check_user(users, "mallory", "wrong") is False
    assert check_user(users, "mallory", "right") is False  # the hash of nothing matches no password
    assert check_user(users, "alice", "right") is True
    assert costs == [2**14] * 4  # one scrypt of the same cost for each, known name or not


def test_token_check_wants_the_bearer_scheme_and_the_exact_token():
    assert check_token("t0k", "Bearer t0k") and check_token("t0k", "bearer t0k")
    assert not check_token("t0k", None) and not check_token("t0k", "Bearer nope") and not check_token("t0k", "t0k")


def test_hash_password_command_prints_a_line_for_the_users_file(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2\n"))
    assert cli.main(["hash-password", "ana"]) == 0
    line = capsys.readouterr().out.strip()
    (tmp_path / "users").write_text(line + "\n")
    assert verify_password("hunter2", load_users(str(tmp_path / "users"))["ana"])


@pytest.fixture
def served(settings, corpus, fake_embedder):
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.")
    build_index(settings, fake_embedder)

    def serve(**auth):
        app = create_server(Assistant(replace(settings, **auth), fake_embedder))
        app.state.ready = True
        return TestClient(app)

    return serve


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_api_token_missing_or_wrong_is_401_and_right_is_200(served):
    client = served(api_token="t0k")
    ask = {"question": "Oman"}
    assert client.post("/api/ask", json=ask).status_code == 401
    assert client.post("/api/ask", json=ask, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/ask", json=ask, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/api/status", headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_with_users_and_no_token_the_api_takes_http_basic(served):
    client = served(users="ana:pw")
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers=basic("ana", "nope")).status_code == 401
    assert client.get("/api/status", headers=basic("ana", "pw")).status_code == 200


def test_with_users_the_chat_and_gradio_routes_need_a_login(served):
    client = served(users="ana:pw")
    assert client.get("/config").status_code == 401
    assert client.post("/login", data={"username": "ana", "password": "nope"}).status_code == 400
    assert client.post("/login", data={"username": "ana", "password": "pw"}).status_code == 200
    assert client.get("/config").status_code == 200


def test_without_users_or_token_everything_is_open(served):
    client = served()
    assert client.get("/api/status").status_code == 200 and client.get("/config").status_code == 200


def test_frame_ancestors_header_defaults_to_self_and_follows_the_setting(served):
    def frame_ancestors(response) -> list[str]:
        directives = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
        return [d for d in directives if d.startswith("frame-ancestors")]

    assert frame_ancestors(served().get("/")) == ["frame-ancestors 'self'"]
    client = served(frame_ancestors="https://intranet.example")
    assert frame_ancestors(client.get("/")) == ["frame-ancestors https://intranet.example"]
    assert frame_ancestors(client.get("/api/status")) == ["frame-ancestors https://intranet.example"]


def test_only_the_embedding_origins_may_read_the_chat_from_another_site(served):
    # Gradio's own CORS echoed any Origin, with credentials, on a host that is not loopback (here "testserver")
    client = served(frame_ancestors="'self' https://intranet.example")
    for path in ("/config", "/gradio_api/info"):
        allowed = client.get(path, headers={"Origin": "https://intranet.example"}).headers
        assert allowed["access-control-allow-origin"] == "https://intranet.example"
        assert "access-control-allow-origin" not in client.get(path, headers={"Origin": "https://evil.example"}).headers
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    assert client.options("/gradio_api/queue/join", headers=preflight).status_code == 400
    assert (
        "access-control-allow-origin"
        not in served().get("/config", headers={"Origin": "https://intranet.example"}).headers
    )


def test_the_web_component_script_comes_from_the_app_itself(served):
    script = served().get("/gradio.js")
    assert script.status_code == 200 and "import(" in script.text and "./assets/" in script.text


@pytest.mark.parametrize("path", ["/etc/passwd", "{index}/CURRENT", "{corpus}/doc.txt"])
def test_files_outside_the_ui_are_not_served_through_gradio_file_routes(served, settings, path):
    client = served()
    target = path.format(index=settings.index.resolve(), corpus=settings.corpus.resolve())
    for route in (f"/gradio_api/file={target}", f"/file={target}"):
        assert client.get(route).status_code in (403, 404)


@pytest.mark.parametrize(
    "host, users, token, warned",
    [
        ("0.0.0.0", "", "", True),
        ("10.1.2.3", "", "", True),
        ("intranet.example", "", "", True),
        ("127.0.0.1", "", "", False),
        ("::1", "", "", False),
        ("localhost", "", "", False),
        ("0.0.0.0", "ana:secret", "", False),
        ("0.0.0.0", "", "t0ken", False),
    ],
)
def test_serving_beyond_this_machine_without_a_login_warns(settings, host, users, token, warned):
    warning = exposure_warning(replace(settings, host=host, users=users, api_token=token))
    assert (warning is not None) == warned
    if warned:
        assert host in warning and "ASSISTANT_USERS" in warning


def test_serve_prints_the_warning_before_it_starts(settings, fake_embedder, monkeypatch, capsys):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: print("started", options["host"]))
    (settings.corpus / "a.txt").write_text("Oman sent a delegation.")
    serve(Assistant(replace(settings, host="0.0.0.0", port=free_port()), fake_embedder))
    printed = capsys.readouterr()
    assert "warning: serving on 0.0.0.0 without a login" in printed.err and "started 0.0.0.0" in printed.out


def test_serve_leaves_forwarded_headers_to_the_app_which_believes_only_the_trusted_proxies(
    settings, fake_embedder, monkeypatch
):
    """uvicorn's own proxy headers are off: identity.TrustedProxies reads X-Forwarded-For, from the setting's
    proxies only (tests/serve/test_identity.py), and must see the proxy's own address to judge its sign-in header."""
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options, app=app))
    (settings.corpus / "a.txt").write_text("Oman sent a delegation.")
    serve(Assistant(replace(settings, port=free_port(), trusted_proxies="10.1.2.3,192.168.0.0/16"), fake_embedder))
    assert started["proxy_headers"] is False and "forwarded_allow_ips" not in started
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    app = started["app"]
    app.router.routes.insert(0, Route("/whoami", lambda request: PlainTextResponse(request.client.host)))
    for peer, expected in (("10.1.2.3", "203.0.113.9"), ("192.168.4.4", "203.0.113.9"), ("10.1.2.4", "10.1.2.4")):
        seen = TestClient(app, client=(peer, 1234)).get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
        assert seen.text == expected, peer


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
