"""Folder permissions at the edges: the API as each way of signing in (password, per-user token, service token, a
trusted proxy's headers), the chat's functions, the server's start and the CLI's `ask --as` and `access check`."""

import base64
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant import cli
from assistant.access import Reader
from assistant.errors import ConfigError
from assistant.serve import create_server
from assistant.serve.auth import hash_password
from assistant.serve.security import LOGIN_FAILURES
from assistant.serve.tokens import TokenFile
from assistant.serve.ui import document_view, index_notice, reply, source_choices
from assistant.service import Assistant

RULES = 'admins = ["carol"]\n\n[groups]\nhr = ["alice"]\n\n[folders]\npublic = ["*"]\nhr = ["group:hr"]\n'
CORPUS = {
    "public/minister.txt": "Minister Ahsan Iqbal opened the border talks. He said patrols will grow.",
    "hr/minister.txt": "Minister Ahsan Iqbal earns a salary of 90,000 rupees. Ahsan Iqbal: the Zanzibar bonus.",
}
HR_WORDS = ["hr/", "Zanzibar", "salary", "rupees"]
QUESTION = {"question": "Who is Ahsan Iqbal?", "k": 5}
PASSWORDS = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol"}
SERVICE_TOKEN = "service-t0ken"
BOB, ALICE = Reader("bob"), Reader("alice")


def hr_words_in(text: str) -> list[str]:
    return [word for word in HR_WORDS if word in text]


@pytest.fixture
def secured(settings, corpus, tmp_path: Path, fake_embedder):
    """Settings with the rules, three users with passwords and a tokens file, over a built hr/ and public/."""
    for name, text in CORPUS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    (tmp_path / "access.toml").write_text(RULES)
    (tmp_path / "users").write_text("".join(f"{user}:{hash_password(pw)}\n" for user, pw in PASSWORDS.items()))
    secured = replace(
        settings,
        access=tmp_path / "access.toml",
        users=str(tmp_path / "users"),
        tokens=str(tmp_path / "tokens"),
        api_token=SERVICE_TOKEN,
    )
    Assistant(secured, fake_embedder).build()
    return secured


@pytest.fixture
def assistant(secured, fake_embedder) -> Assistant:
    return Assistant(secured, fake_embedder)


def client_of(assistant: Assistant, address: str = "testclient") -> TestClient:
    app = create_server(assistant)
    app.state.ready = True
    return TestClient(app, client=(address, 1234))


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the API, as each identity ------------------------------------------------------------------------------


@pytest.fixture
def identities(secured) -> dict[str, dict[str, str]]:
    return {
        "bob by password": basic("bob"),
        "bob by token": bearer(TokenFile(Path(secured.tokens)).create("bob")),
        "alice by password (hr by the file's groups)": basic("alice"),
        "alice by token": bearer(TokenFile(Path(secured.tokens)).create("alice")),
        "carol, an admin": basic("carol"),
        "the service token": bearer(SERVICE_TOKEN),
    }


def test_each_identity_asks_and_reads_status_within_its_rights(assistant, identities):
    client = client_of(assistant)
    for identity, headers in identities.items():
        reads_hr = not identity.startswith("bob")
        body = client.post("/api/ask", json=QUESTION, headers=headers).json()
        sources = {p["source"] for p in body["passages"]}
        assert ("hr/minister.txt" in sources) is reads_hr, identity
        assert "public/minister.txt" in sources, identity
        if not reads_hr:
            assert hr_words_in(json.dumps(body)) == [], identity
        status = client.get("/api/status", headers=headers).json()
        assert status["documents"] == (2 if reads_hr else 1), identity
    assert client.post("/api/ask", json=QUESTION).status_code == 401
    assert client.post("/api/ask", json=QUESTION, headers=bearer("qa_0123456789ab_" + "x" * 20)).status_code == 401


def test_bob_gets_the_same_404_for_an_hr_document_as_for_an_unknown_id(assistant, identities):
    client = client_of(assistant)
    passages = client.post("/api/ask", json=QUESTION, headers=basic("alice")).json()["passages"]
    hr_id = next(p["chunk_id"] for p in passages if p["source"] == "hr/minister.txt")
    assert client.get(f"/api/documents/{hr_id}", headers=basic("alice")).json()["source"] == "hr/minister.txt"
    assert client.get(f"/api/documents/{hr_id}", headers=bearer(SERVICE_TOKEN)).status_code == 200
    unknown_id = "f" * len(hr_id)
    for headers in (identities["bob by password"], identities["bob by token"]):
        forbidden = client.get(f"/api/documents/{hr_id}", headers=headers)
        unknown = client.get(f"/api/documents/{unknown_id}", headers=headers)
        assert forbidden.status_code == unknown.status_code == 404
        assert forbidden.json() == {"detail": unknown.json()["detail"].replace(unknown_id, hr_id)}


def test_bob_asking_within_hr_gets_the_answer_to_an_unknown_folder(assistant):
    client = client_of(assistant)
    hr = client.post("/api/ask", json={**QUESTION, "sources": ["hr"]}, headers=basic("bob"))
    unknown = client.post("/api/ask", json={**QUESTION, "sources": ["xy"]}, headers=basic("bob"))
    assert hr.status_code == unknown.status_code == 422
    assert hr.json() == {"detail": unknown.json()["detail"].replace("xy", "hr")}
    assert client.post("/api/ask", json={**QUESTION, "sources": ["hr"]}, headers=basic("alice")).status_code == 200


# ---- signed in by a trusted proxy ----------------------------------------------------------------------------


@pytest.fixture
def sso(secured, fake_embedder) -> Assistant:
    headers = replace(secured, trusted_user_header="X-Remote-User", trusted_groups_header="X-Remote-Groups")
    return Assistant(headers, fake_embedder)


def documents_read(client: TestClient, headers: dict[str, str]) -> int:
    response = client.get("/api/status", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["documents"]


def test_a_trusted_proxy_names_the_user_and_their_groups(sso):
    proxy = client_of(sso, "127.0.0.1")
    assert documents_read(proxy, {"X-Remote-User": "bob"}) == 1
    assert documents_read(proxy, {"X-Remote-User": "bob", "X-Remote-Groups": "sales, hr"}) == 2
    assert documents_read(proxy, {"X-Remote-User": "alice"}) == 2  # hr by the file's [groups]
    assert documents_read(proxy, {"X-Remote-User": "bob", **basic("carol")}) == 1  # the proxy's user comes first
    assert documents_read(proxy, {"X-Remote-Groups": "hr", **basic("bob")}) == 1  # groups of nobody the proxy named
    body = proxy.post("/api/ask", json=QUESTION, headers={"X-Remote-User": "bob"}).json()
    assert hr_words_in(json.dumps(body)) == []


def test_an_api_without_the_proxy_check_believes_no_sign_in_header(sso):
    """create_app alone (no TrustedProxies in front): the header names nobody, even from a trusted address."""
    from assistant.serve.api import create_app
    from assistant.serve.auth import load_users

    bare = TestClient(create_app(sso, load_users(sso.settings.users)), client=("127.0.0.1", 1234))
    assert bare.get("/api/status", headers={"X-Remote-User": "carol"}).status_code == 401


def test_a_user_header_from_an_untrusted_address_is_refused_and_logged(sso, caplog):
    stranger = client_of(sso, "10.9.9.9")
    with caplog.at_level(logging.WARNING, logger="assistant.serve.identity"):
        response = stranger.get("/api/status", headers={"X-Remote-User": "carol"})
    assert response.status_code == 401 and "not a trusted proxy" in response.json()["detail"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "assistant.serve.identity"]
    assert len(warnings) == 1 and "10.9.9.9" in warnings[0] and "x-remote-user" in warnings[0]
    assert stranger.get("/api/status", headers={"x-remote-user": "carol", **basic("bob")}).status_code == 401


def test_a_groups_header_from_an_untrusted_address_is_ignored(sso):
    stranger = client_of(sso, "10.9.9.9")
    assert documents_read(stranger, basic("bob")) == 1
    assert documents_read(stranger, {"X-Remote-Groups": "hr", **basic("bob")}) == 1
    assert stranger.get("/api/status", headers={"X-Remote-Groups": "hr"}).status_code == 401


def test_forwarded_addresses_are_believed_only_from_a_trusted_proxy(sso):
    """Failed logins are limited per client address: behind the proxy, each forwarded client has its own budget;
    a stranger who forwards a new address with each try still spends their own."""
    wrong = bearer("wrong")
    proxy = client_of(sso, "127.0.0.1")
    for n in range(LOGIN_FAILURES + 1):
        assert proxy.get("/api/status", headers={**wrong, "X-Forwarded-For": f"203.0.113.{n}"}).status_code == 401
    stranger = client_of(sso, "10.9.9.9")
    codes = [
        stranger.get("/api/status", headers={**wrong, "X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(LOGIN_FAILURES + 1)
    ]
    assert codes == [401] * LOGIN_FAILURES + [429]


# ---- the chat's functions --------------------------------------------------------------------------------------


def test_the_source_picker_offers_bob_no_hr_entry(assistant):
    assert [path for _, path in source_choices(assistant, BOB)] == ["public/", "public/minister.txt"]
    assert {path for _, path in source_choices(assistant, ALICE)} >= {"hr/", "hr/minister.txt"}


def test_the_document_view_of_an_hr_passage_is_bobs_message_for_an_unknown_id(assistant):
    hr_id = next(p.chunk_id for p in assistant.ask("Who is Ahsan Iqbal?", 5).passages if p.source.startswith("hr/"))
    assert "Zanzibar" in document_view(assistant, hr_id, ALICE)
    assert document_view(assistant, hr_id, BOB) == document_view(assistant, "no-such-id", BOB)


def test_a_chat_reply_to_bob_holds_no_hr_text(assistant):
    assert hr_words_in(reply(assistant, "Who is Ahsan Iqbal?", 5, reader=ALICE))
    assert hr_words_in(reply(assistant, "Who is Ahsan Iqbal?", 5, reader=BOB)) == []


def test_the_chat_banner_names_only_changed_files_the_reader_may_read(assistant, corpus):
    (corpus / "hr" / "layoffs-2025.txt").write_text("Names of the people to be laid off.")
    (corpus / "public" / "menu.txt").write_text("Soup on Monday.")
    assert "layoffs" in index_notice(assistant) and "layoffs" in index_notice(assistant, ALICE)
    bob = index_notice(assistant, BOB)
    assert "public/menu.txt" in bob and "layoffs" not in bob and "2 document" not in bob


# ---- starting the server ---------------------------------------------------------------------------------------


def test_a_server_with_permissions_but_no_way_to_sign_in_refuses_to_start(secured, fake_embedder):
    nobody = replace(secured, users="", tokens="", api_token="")
    with pytest.raises(ConfigError, match="ASSISTANT_ACCESS is set but nobody signs in"):
        create_server(Assistant(nobody, fake_embedder))
    assert create_server(Assistant(replace(nobody, users=secured.users), fake_embedder)) is not None
    assert create_server(Assistant(replace(nobody, trusted_user_header="X-Remote-User"), fake_embedder)) is not None


# ---- the CLI -----------------------------------------------------------------------------------------------------


@pytest.fixture
def run(monkeypatch, secured, fake_embedder):
    """`assistant ...` in-process, with the fake embedder and the secured settings."""
    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: fake_embedder)
    for name, value in {
        "ASSISTANT_CORPUS": secured.corpus,
        "ASSISTANT_INDEX": secured.index,
        "ASSISTANT_MODEL": "fake",
        "ASSISTANT_MIN_SCORE": "-1",
        "ASSISTANT_ACCESS": secured.access,
    }.items():
        monkeypatch.setenv(name, str(value))
    return lambda *argv: cli.main(list(argv))


def asked_sources(run, capsys, *options: str) -> set[str]:
    assert run("ask", "--json", "-k", "5", *options, "Who is Ahsan Iqbal?") == 0
    out = capsys.readouterr().out
    if "--as" in options and "hr" not in options and "alice" not in options:
        assert hr_words_in(out) == []
    return {p["source"] for p in json.loads(out)["passages"]}


def test_ask_as_a_user_answers_from_what_they_may_read(run, capsys):
    assert "hr/minister.txt" in asked_sources(run, capsys)  # the machine's own command line reads everything
    assert "hr/minister.txt" in asked_sources(run, capsys, "--as", "alice")
    assert asked_sources(run, capsys, "--as", "bob") == {"public/minister.txt"}
    assert "hr/minister.txt" in asked_sources(run, capsys, "--as", "bob", "--group", "sales", "--group", "hr")
    unknown = run("ask", "--as", "bob", "--source", "xy", "Who is Ahsan Iqbal?"), capsys.readouterr().err
    assert run("ask", "--as", "bob", "--source", "hr", "Who is Ahsan Iqbal?") == unknown[0] != 0
    assert capsys.readouterr().err == unknown[1].replace("xy", "hr")
    assert run("ask", "--group", "hr", "Who is Ahsan Iqbal?") == 2  # whose groups? never ignored in silence
    assert "--group needs --as USER" in capsys.readouterr().err


def test_access_check_exits_0_when_the_user_may_read_and_1_when_not(run, capsys):
    assert run("access", "check", "bob", "hr/minister.txt") == 1
    assert capsys.readouterr().out == 'bob may not read hr/minister.txt: folder "hr" is for group:hr\n'
    assert run("access", "check", "alice", "hr/minister.txt") == 0
    assert capsys.readouterr().out == (
        'alice may read hr/minister.txt: folder "hr" is for group:hr (alice is in group:hr)\n'
    )
    assert run("access", "check", "bob", "hr/minister.txt", "--group", "hr", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "user": "bob",
        "path": "hr/minister.txt",
        "allowed": True,
        "why": 'folder "hr" is for group:hr (bob is in group:hr)',
    }
    assert run("access", "check", "bob", "notes.txt", "--json") == 1
    assert json.loads(capsys.readouterr().out)["why"] == "no listed folder holds it: only admins read it"


def test_access_check_exits_2_on_a_bad_file_or_path(run, capsys, secured):
    assert run("access", "check", "bob", "../outside.txt") == 2
    assert "leads out of the corpus" in capsys.readouterr().err
    secured.access.write_text(RULES + 'private = ["bob", 7]\n')
    assert run("access", "check", "bob", "public/minister.txt") == 2
    err = capsys.readouterr().err
    assert "line 9" in err and "'private' must be a list of names" in err
