"""Security: index files are never unpickled, secrets are not logged, the headers on every response, and the
limit on failed logins."""

from __future__ import annotations

import _pickle
import base64
import hashlib
import logging
import pickle
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from assistant.config import MODES, Settings
from assistant.errors import ConfigError, IndexDamaged
from assistant.index import build_index
from assistant.index.faiss.folder import current_build
from assistant.index.faiss.store import open_index
from assistant.serve import create_server, security
from assistant.serve.auth import load_users
from assistant.serve.security import LOGIN_FAILURES, LOGIN_WINDOW, LoginLimiter
from assistant.service import Assistant
from tests.helpers import free_port, wait_until

WRONG = {"username": "ana", "password": "nope"}
RIGHT = {"username": "ana", "password": "pw"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(security, "clock", fake)
    return fake


@pytest.fixture
def serve(settings, corpus, fake_embedder):
    """serve(**settings) -> the app; clients of several addresses can share it (and its login limit)."""
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    build_index(settings, fake_embedder)

    def serve(**changes):
        app = create_server(Assistant(replace(settings, **changes), fake_embedder))
        app.state.ready = True
        return app

    return serve


def client(app, address: str = "10.0.0.1", **options) -> TestClient:
    return TestClient(app, client=(address, 50_000), **options)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# ---- headers --------------------------------------------------------------------------------------


def test_every_route_says_nosniff_and_who_may_frame_it_errors_included(serve, reliability):
    ancestors = "'self' https://intranet.example"
    app = serve(users="ana:pw", api_token="t0k", frame_ancestors=ancestors)
    web, token = client(app), {"Authorization": "Bearer t0k"}
    responses = {
        "chat page (login)": web.get("/"),
        "ask": web.post("/api/ask", json={"question": "Oman"}, headers=token),
        "status": web.get("/api/status", headers=token),
        "document 404": web.get("/api/documents/nope", headers=token),
        "ask 401 without token": web.post("/api/ask", json={"question": "Oman"}),
        "ask 401 wrong token": web.post("/api/ask", json={"question": "Oman"}, headers={"Authorization": "Bearer x"}),
        "ask 422": web.post("/api/ask", json={"question": ""}, headers=token),
        "api docs": web.get("/api/docs"),
        "api openapi.json": web.get("/api/openapi.json"),
        "/openapi.json": web.get("/openapi.json"),
        "healthz": web.get("/healthz"),
        "readyz": web.get("/readyz"),
        "gradio.js": web.get("/gradio.js"),
        "unknown route 404": web.get("/no/such/route"),
        "gradio config 401": web.get("/config"),
        "gradio info": web.get("/gradio_api/info"),
        "manifest": web.get("/manifest.json"),
        "favicon": web.get("/favicon.ico"),
        "CORS preflight": web.options(
            "/api/ask", headers={"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
        ),
        "login 400": web.post("/login", data=WRONG),
        "login 200": web.post("/login", data=RIGHT),
        "gradio config after login": web.get("/config"),
    }
    for _ in range(LOGIN_FAILURES):
        client(app, "10.9.9.9").post("/login", data=WRONG)
    responses["login 429"] = client(app, "10.9.9.9").post("/login", data=RIGHT)
    wrong = {
        name: dict(r.headers)
        for name, r in responses.items()
        if r.headers.get_list("x-content-type-options") != ["nosniff"]
        or len(r.headers.get_list("content-security-policy")) != 1
        or policy(r).get("frame-ancestors") != ancestors
        or policy(r).get("default-src") != "'self'"
        or not policy(r).get("script-src", "").startswith("'self' 'unsafe-eval'")
        or r.headers.get_list("referrer-policy") != ["no-referrer"]
        or (r.headers.get("content-type", "").startswith("text/html") and r.headers.get("cache-control") != "no-store")
    }
    assert wrong == {}
    assert responses["chat page (login)"].headers["cache-control"] == "no-store"  # a page: never kept by a cache
    assert responses["gradio.js"].headers.get("cache-control") != "no-store"  # its scripts may be
    assert {200, 400, 401, 404, 422, 429} <= {r.status_code for r in responses.values()}
    reliability(
        "security",
        "nosniff, frame-ancestors and no-referrer on every route, no-store on pages",
        tried=len(responses),
        survived=len(responses) - len(wrong),
        detail="errors, 401, 404, 422, 429 and preflight included",
    )


# the Content-Security-Policy that every response carries, beside frame-ancestors (tests/system/test_browser.py
# runs every feature of the chat under it in Chromium)
POLICY = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'self'",
}


def policy(response) -> dict[str, str]:
    """The response's Content-Security-Policy, directive by directive."""
    return dict(directive.split(" ", 1) for directive in response.headers["content-security-policy"].split("; "))


def inline_script_sources(page: str) -> list[str]:
    """The hash source of each inline script of an HTML page, as a browser computes it."""
    from bs4 import BeautifulSoup

    scripts = [s.string or "" for s in BeautifulSoup(page, "html.parser").find_all("script") if not s.get("src")]
    digests = [hashlib.sha256(script.encode()).digest() for script in dict.fromkeys(scripts)]
    return [f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests]


def test_pages_may_run_the_apps_scripts_and_their_own_inline_ones_and_api_responses_no_inline_one(serve):
    app = serve()
    web, login = client(app), client(serve(users="ana:pw"))
    pages = {"chat": web.get("/"), "document view": web.get("/?doc=x"), "api docs": web.get("/api/docs")}
    pages["login"] = login.get("/")
    for name, page in pages.items():
        inline = inline_script_sources(page.text)
        assert inline and policy(page) == {**POLICY, "script-src": " ".join(["'self' 'unsafe-eval'", *inline])}, name
    assert len(inline_script_sources(pages["chat"].text)) == 5  # Gradio 6.31's page: config, API info, root, 2 fixed
    for name, response in {"api": web.get("/api/status"), "gradio.js": web.get("/gradio.js")}.items():
        assert response.status_code == 200 and policy(response) == POLICY, name


def test_a_page_sent_in_pieces_is_sent_whole_with_the_hash_of_a_script_split_across_them():
    pieces = [b"<html><script>window.shown", b" = 1;</script><script src='app.js'></script></html>"]

    async def page(scope, receive, send) -> None:
        headers = [(b"content-type", b"text/html"), (b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for number, piece in enumerate(pieces, start=1):
            await send({"type": "http.response.body", "body": piece, "more_body": number < len(pieces)})

    response = TestClient(security.SecurityHeaders(page, "'self'")).get("/")
    assert response.content == b"".join(pieces) and response.headers["cache-control"] == "no-store"
    digest = base64.b64encode(hashlib.sha256(b"window.shown = 1;").digest()).decode()
    assert policy(response)["script-src"] == f"'self' 'unsafe-eval' 'sha256-{digest}'"


# ---- failed logins --------------------------------------------------------------------------------


def test_five_wrong_passwords_then_the_right_one_is_refused_unchecked_until_the_window_passes(
    serve, clock, monkeypatch, reliability
):
    import assistant.serve

    checked = []
    real_check = assistant.serve.check_user
    monkeypatch.setattr(assistant.serve, "check_user", lambda *args: checked.append(args[1]) or real_check(*args))
    web = client(serve(users="ana:pw"))
    assert [web.post("/login", data=WRONG).status_code for _ in range(LOGIN_FAILURES)] == [400] * LOGIN_FAILURES
    refused = web.post("/login", data=RIGHT)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == str(int(LOGIN_WINDOW))
    assert (
        refused.json()["detail"] == "too many failed logins from this address (5 within 60 s) — wait 60 s and try again"
    )
    assert len(checked) == LOGIN_FAILURES  # the sixth password was not even checked
    clock.advance(LOGIN_WINDOW - 15)
    assert web.post("/login", data=RIGHT).headers["Retry-After"] == "15"
    clock.advance(15)
    assert web.post("/login", data=RIGHT).status_code == 200
    assert web.get("/config").status_code == 200
    reliability("security", "login limit: 5 failures in 60 s, then refused unchecked until the window passes", tried=3)


def test_another_address_is_not_blocked_and_its_success_frees_no_one(serve, clock):
    app = serve(users="ana:pw")
    blocked, other = client(app, "10.0.0.1"), client(app, "10.0.0.2")
    for _ in range(LOGIN_FAILURES):
        blocked.post("/login", data=WRONG)
    assert other.post("/login", data=WRONG).status_code == 400
    assert other.post("/login", data=RIGHT).status_code == 200
    assert blocked.post("/login", data=RIGHT).status_code == 429


def test_wrong_api_credentials_count_against_the_same_limit_and_anonymous_requests_do_not(serve, clock, reliability):
    app = serve(users="ana:pw")
    web = client(app)
    assert all(
        web.get("/api/status").status_code == 401 for _ in range(2 * LOGIN_FAILURES)
    )  # no credentials: not counted
    assert all(web.get("/api/status", headers=basic("ana", "nope")).status_code == 401 for _ in range(LOGIN_FAILURES))
    refused = web.get("/api/status", headers=basic("ana", "pw"))
    assert (
        refused.status_code == 429
        and refused.headers["Retry-After"] == "60"
        and "wait 60 s" in refused.json()["detail"]
    )
    assert web.post("/login", data=RIGHT).status_code == 429  # one budget per address, whatever the door
    assert client(app, "10.0.0.2").get("/api/status", headers=basic("ana", "pw")).status_code == 200
    tokened = client(serve(api_token="t0k"))
    assert all(
        tokened.get("/api/status", headers={"Authorization": "Bearer x"}).status_code == 401
        for _ in range(LOGIN_FAILURES)
    )
    assert tokened.get("/api/status", headers={"Authorization": "Bearer t0k"}).status_code == 429
    reliability("security", "API logins (HTTP Basic, bearer token) under the same limit", tried=3)


def test_the_limit_holds_under_a_proxy_root_path(serve, clock):
    web = client(serve(users="ana:pw", root_path="/qa"), root_path="/qa")
    assert [web.post("/login", data=WRONG).status_code for _ in range(LOGIN_FAILURES)] == [400] * LOGIN_FAILURES
    assert web.post("/login", data=RIGHT).status_code == 429
    assert web.post("/qa/login/", data=RIGHT).status_code == 429


def test_the_login_page_states_the_limit(serve):
    assert "After 5 failed attempts, wait 60 seconds" in client(serve(users="ana:pw")).get("/").text


def fail(limiter: LoginLimiter, address: str = "a") -> None:
    assert limiter.admit(address)
    limiter.settle(address, failed=True)


def test_the_window_slides_from_the_oldest_failure(clock):
    limiter = LoginLimiter()
    for _ in range(LOGIN_FAILURES):
        fail(limiter)
        clock.advance(10)
    clock.advance(-5)  # 45 s after the first failure
    assert not limiter.admit("a") and limiter.wait("a") == 15
    clock.advance(15.5)  # the first failure has left the window: one more try
    fail(limiter)
    assert limiter.wait("a") == 10  # until the second one leaves it


def test_after_a_failure_tries_in_flight_count_and_before_one_they_do_not(clock):
    limiter = LoginLimiter()
    assert all(limiter.admit("a") for _ in range(3 * LOGIN_FAILURES))  # a busy API client that has not failed
    for _ in range(3 * LOGIN_FAILURES):
        limiter.settle("a", failed=False)
    fail(limiter)
    admitted = [limiter.admit("a") for _ in range(LOGIN_FAILURES)]  # sent at once, none settled yet
    assert admitted == [True] * (LOGIN_FAILURES - 1) + [False]
    limiter.settle("a", failed=False)  # a try that passed is not a failure, and is no longer in flight
    assert limiter.admit("a") and not limiter.admit("a")


def test_the_limiter_keeps_a_bounded_number_of_addresses(clock, monkeypatch):
    monkeypatch.setattr(security, "TRACKED_ADDRESSES", 3)
    limiter = LoginLimiter()
    for n in range(10):
        fail(limiter, f"10.0.0.{n}")
    assert list(limiter._failed) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]


# ---- index files are never unpickled ------------------------------------------------------------


class Planted:
    """Unpickling this opens `marker` for writing, which creates it: the proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> None:
    """A pickle where `path` was: an object array for a .npy file, a plain pickle otherwise."""
    if path.suffix == ".npy":
        with open(path, "wb") as handle:
            np.save(handle, np.array([Planted(marker)], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(pickle.dumps(Planted(marker)))


@pytest.fixture
def indexed(settings, corpus, fake_embedder) -> Assistant:
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    build_index(settings, fake_embedder)
    return Assistant(settings, fake_embedder)


def test_building_opening_and_searching_an_index_never_unpickles(
    indexed, settings, corpus, fake_embedder, monkeypatch, reliability
):
    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, refuse)
    allow_pickle, real_load = [], np.load
    monkeypatch.setattr(
        np,
        "load",
        lambda *args, **kwargs: allow_pickle.append(kwargs.get("allow_pickle")) or real_load(*args, **kwargs),
    )
    (corpus / "more.txt").write_text("Bahrain sent observers to the talks.")
    build_index(settings, fake_embedder)  # an update reads the published build to reuse its vectors
    assistant = Assistant(settings, fake_embedder)
    for mode in MODES:
        passage = assistant.ask("Kuwait observed the talks", 2, mode).passages[0]
        assert assistant.document_of(passage.chunk_id)["source"] == "doc.txt"
    assert assistant.status()["documents"] == 2
    assert allow_pickle and all(value is False for value in allow_pickle)  # bm25s's arrays, each said so explicitly
    reliability(
        "security",
        "index built, opened and searched with pickle disabled",
        tried=1 + len(MODES) + 1,
        detail="an update build, a search in each mode, the status",
    )


def test_a_pickle_planted_beside_the_index_files_is_ignored(indexed, settings, tmp_path):
    marker = tmp_path / "unpickled"
    folder = current_build(settings.index)
    for extra in (
        folder / "index.pkl",
        folder / "bm25" / "retriever.pkl",
        settings.index / "index.pkl",
        folder / "vectors.npy",
        folder / "bm25" / "corpus.jsonl",
    ):
        plant(extra, marker)
    assistant = Assistant(settings, indexed.embedder)
    assert all(assistant.ask("Kuwait observed the talks", 2, mode).passages for mode in MODES)
    assert not marker.exists()


def test_a_pickle_in_place_of_any_index_file_is_refused_as_damaged_never_run(indexed, settings, tmp_path, reliability):
    marker = tmp_path / "unpickled"
    folder = current_build(settings.index)
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    refused = []
    for path in files:
        original = path.read_bytes()
        plant(path, marker)
        try:
            open_index(settings.index).close()
        except IndexDamaged as err:
            refused.append(path.relative_to(folder).as_posix())
            assert "is damaged" in str(err) and str(err).endswith("— run: assistant build --rebuild")
        path.write_bytes(original)
    assert refused == [path.relative_to(folder).as_posix() for path in files]
    assert not marker.exists()
    reliability(
        "security",
        "a pickle in place of each index file",
        tried=len(files),
        survived=len(refused),
        detail="refused as damaged, never unpickled",
    )


def test_the_api_answers_503_for_a_planted_index_and_a_build_replaces_it(indexed, settings, tmp_path):
    marker = tmp_path / "unpickled"
    plant(current_build(settings.index) / "bm25" / "data.csc.index.npy", marker)
    app = create_server(indexed)
    response = TestClient(app).post("/api/ask", json={"question": "Kuwait"})
    assert response.status_code == 503 and response.json()["detail"].endswith("run: assistant build --rebuild")
    assert build_index(settings, indexed.embedder).embedded == 1  # the damaged build is not reused: all re-embedded
    assert TestClient(app).post("/api/ask", json={"question": "Kuwait"}).status_code == 200
    assert not marker.exists()


# ---- tokens and passwords are not logged --------------------------------------------------------

TOKEN, WRONG_TOKEN = "tok-5f3a9c1e7b", "tok-wrong-0c9d"  # distinctive, to be looked for in every log line
PASSWORD, WRONG_PASSWORD = "pw-8d2e6b4a1c", "pw-wrong-7e1f"
SECRETS = (TOKEN, WRONG_TOKEN, PASSWORD, WRONG_PASSWORD)


@pytest.fixture
def secret_app(settings, corpus, fake_embedder, monkeypatch, caplog):
    """The app as `assistant serve` makes it from ASSISTANT_* variables with a token and a user, logging at DEBUG."""
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    for name, value in {
        "CORPUS": corpus,
        "INDEX": settings.index,
        "MODEL": "fake",
        "MIN_SCORE": "-1",
        "API_TOKEN": TOKEN,
        "USERS": f"ana:{PASSWORD}",
        "LOG_QUESTIONS": "1",
    }.items():
        monkeypatch.setenv(f"ASSISTANT_{name}", str(value))
    caplog.set_level(logging.DEBUG)
    served = Settings.from_env()
    build_index(served, fake_embedder)
    app = create_server(Assistant(served, fake_embedder))
    app.state.ready = True
    return app


def logins_and_calls(post, get) -> int:
    """Right and wrong tokens and logins, a password typed as a user name, and the login limit reached."""
    calls = [
        lambda: post("/api/ask", json={"question": "Oman"}, headers={"Authorization": f"Bearer {TOKEN}"}),
        lambda: post("/api/ask", json={"question": "Oman"}, headers={"Authorization": f"Bearer {WRONG_TOKEN}"}),
        lambda: post(
            "/api/ask", json={"question": "Oman", "token": TOKEN}, headers={"Authorization": f"Bearer {TOKEN}"}
        ),
        lambda: get("/api/status", headers=basic("ana", PASSWORD)),
        lambda: post("/login", data={"username": "ana", "password": PASSWORD}),
        lambda: post("/login", data={"username": PASSWORD, "password": PASSWORD}),
        *[lambda: post("/login", data={"username": "ana", "password": WRONG_PASSWORD})] * (LOGIN_FAILURES + 1),
        lambda: post(
            "/api/ask", json={"question": "Oman"}, headers={"Authorization": f"Bearer {TOKEN}"}
        ),  # refused: 429
    ]
    return len([call() for call in calls])


def leaked(caplog, captured) -> list[str]:
    logged = caplog.text + "".join(f"{r.getMessage()} {r.args} {r.exc_text}" for r in caplog.records)
    return [secret for secret in SECRETS if secret in logged + captured.out + captured.err]


def test_tokens_and_passwords_never_reach_the_log_or_stderr(secret_app, caplog, capfd, reliability):
    web = client(secret_app)
    made = logins_and_calls(web.post, web.get)
    assert any("failed logins from 10.0.0.1" in r.getMessage() for r in caplog.records)  # the limit's warning
    assert leaked(caplog, capfd.readouterr()) == []
    reliability("security", "tokens and passwords in no log record or stderr, at DEBUG", tried=made)


def test_a_served_app_logs_no_secret_even_with_uvicorns_access_log_on_at_debug(secret_app, caplog, capfd, reliability):
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(secret_app, host="127.0.0.1", port=port, log_level="debug", access_log=True, log_config=None)
    )  # uvicorn's loggers reach the root logger, and caplog
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as web:
            made = logins_and_calls(web.post, web.get)
    finally:
        server.should_exit = True
        thread.join(10)
    assert any(r.name == "uvicorn.access" for r in caplog.records)  # the access log was on, and said nothing secret
    assert leaked(caplog, capfd.readouterr()) == []
    reliability("security", "no secret in uvicorn's access and debug log", tried=made)


def test_settings_and_a_bad_users_setting_do_not_show_the_secrets(settings):
    shown = repr(replace(settings, users=f"ana:{PASSWORD}", api_token=TOKEN))
    assert PASSWORD not in shown and TOKEN not in shown
    with pytest.raises(ConfigError) as refused:
        load_users(f"ana:{PASSWORD}/x")  # a / makes it a path, and there is no such file
    assert PASSWORD not in str(refused.value) and "ana:…" in str(refused.value)


def test_gradio_s_own_upload_route_is_refused_even_after_login(serve, tmp_path, monkeypatch):
    """A probe wrote 30 MB through /gradio_api/upload as a signed-in user, into a folder others could read."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = serve(users="ana:pw")
    web = client(app)
    assert web.post("/login", data=RIGHT).status_code == 200
    for path in ("/gradio_api/upload", "/gradio_api/upload/", "/gradio_api/upload?upload_id=x"):
        refused = web.post(path, files={"files": ("a.txt", b"x" * 1024, "text/plain")})
        assert refused.status_code == 403, (path, refused.text)
        assert "the chat takes no files" in refused.json()["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"  # refused inside the headers' middleware
    assert not (tmp_path / "gradio").exists() or not any((tmp_path / "gradio").rglob("a.txt"))
    assert web.get("/gradio_api/info").status_code == 200  # the rest of Gradio's API is as before
