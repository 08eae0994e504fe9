"""POST and DELETE /api/documents, Gradio's upload route and the chat's "Add documents": admins only."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from assistant.builds import Builds
from assistant.serve import create_server
from assistant.serve.auth import hash_password
from assistant.serve.upload_api import MAX_FILES
from assistant.serve.upload_ui import add_files, progress
from assistant.service import Assistant

ACCESS = 'admins = ["carol"]\n\n[folders]\n"public" = ["*"]\n'
FACT = b"The Varnholt lighthouse on Skerra Island was painted violet in 1987."
TOKEN = "service-t0ken"


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw-{user}".encode()).decode()}


CAROL, BOB = basic("carol"), basic("bob")


@pytest.fixture
def settings_with_users(settings, tmp_path):
    (tmp_path / "users").write_text("".join(f"{u}:{hash_password('pw-' + u)}\n" for u in ("carol", "bob")))
    (tmp_path / "access.toml").write_text(ACCESS)
    return replace(settings, users=str(tmp_path / "users"), access=tmp_path / "access.toml", max_file_mb=1.0)


@pytest.fixture
def served(assistant, settings_with_users, fake_embedder):
    """(client, assistant, builds) of a server with carol (admin) and bob, and background builds."""
    served = Assistant(settings_with_users, fake_embedder)
    builds = Builds(served)
    app = create_server(served, builds=builds)
    app.state.ready = True
    with TestClient(app) as client:
        yield client, served, builds
    builds.close()


def tree(corpus: Path) -> list[str]:
    return sorted(path.relative_to(corpus).as_posix() for path in corpus.rglob("*"))


def upload(client, *names: str, data: bytes = FACT, headers=CAROL, **fields):
    return client.post("/api/documents", files=[("files", (n, data)) for n in names], data=fields, headers=headers)


def test_an_admin_adds_a_document_and_the_background_build_makes_it_answer(served, corpus):
    client, _, builds = served
    response = upload(client, "lighthouse.txt", folder="public/facts")
    assert response.status_code == 201
    assert response.json() == {"stored": ["public/facts/lighthouse.txt"], "build": "requested"}
    assert builds.wait(30)
    answer = client.post("/api/ask", json={"question": "Varnholt lighthouse violet", "k": 1}, headers=BOB).json()
    assert answer["passages"][0]["source"] == "public/facts/lighthouse.txt"


def test_an_admin_replaces_and_deletes_a_document(served, corpus):
    client, _, builds = served
    assert upload(client, "a.txt", folder="public").status_code == 201
    again = upload(client, "a.txt", folder="public", data=b"new")
    assert again.status_code == 409 and "replace=true" in again.json()["detail"]
    assert upload(client, "a.txt", folder="public", data=b"new", replace="true").status_code == 201
    assert (corpus / "public/a.txt").read_bytes() == b"new"
    deleted = client.delete("/api/documents/public/a.txt", headers=CAROL)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": "public/a.txt", "build": "requested"}
    assert not (corpus / "public/a.txt").exists()
    assert client.delete("/api/documents/public/a.txt", headers=CAROL).status_code == 404
    assert builds.wait(30)


def test_a_reader_who_is_not_an_admin_gets_403_and_nothing_changes(served, corpus):
    client, _, _ = served
    before = tree(corpus)
    refused = upload(client, "a.txt", folder="public", headers=BOB)
    assert (
        refused.status_code == 403 and "only admins may add documents, and bob is not one" in refused.json()["detail"]
    )
    gone = client.delete("/api/documents/doc.txt", headers=BOB)
    assert gone.status_code == 403 and "only admins may delete documents" in gone.json()["detail"]
    assert upload(client, "a.txt", headers={}).status_code == 401
    assert tree(corpus) == before


def test_the_service_token_is_an_admin(assistant, settings_with_users, fake_embedder, corpus):
    served = Assistant(replace(settings_with_users, api_token=TOKEN), fake_embedder)
    client = TestClient(create_server(served))
    response = upload(client, "a.txt", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 201
    assert response.json()["build"].startswith("not started")  # an app made without background builds
    assert (corpus / "a.txt").exists()


@pytest.mark.parametrize(
    "names, fields, status, detail",
    [
        (["../a.txt"], {}, 422, "path separator"),
        (["a.txt"], {"folder": "../outside"}, 422, "is not a name"),
        (["a.txt"], {"folder": "/etc"}, 422, "relative to the corpus"),
        (["a.txt", "tool.exe"], {}, 415, "does not read .exe files"),
        (["a.txt"], {"replace": "maybe"}, 422, "replace must be true or false"),
        (["a.txt"], {"colour": "red"}, 422, "unexpected field 'colour'"),
        (["a.txt", "a.txt"], {}, 422, "sent twice"),
        ([f"f{i}.txt" for i in range(MAX_FILES + 1)], {}, 413, f"more than {MAX_FILES} files"),
    ],
)
def test_a_bad_upload_is_refused_with_its_status_as_json_and_writes_nothing(
    served, corpus, names, fields, status, detail
):
    client, _, _ = served
    before = tree(corpus)
    response = upload(client, *names, **fields)
    assert response.status_code == status and detail in response.json()["detail"], response.text
    assert tree(corpus) == before


def test_a_form_without_files_is_422(served):
    client, _, _ = served
    body = b'--x\r\nContent-Disposition: form-data; name="folder"\r\n\r\npublic\r\n--x--\r\n'
    headers = {**CAROL, "Content-Type": "multipart/form-data; boundary=x"}
    response = client.post("/api/documents", content=body, headers=headers)
    assert response.status_code == 422 and "no files" in response.json()["detail"]


def test_a_body_that_is_not_multipart_is_422(served):
    client, _, _ = served
    response = client.post("/api/documents", json={"files": ["a.txt"]}, headers=CAROL)
    assert response.status_code == 422 and "multipart/form-data" in response.json()["detail"]


def test_a_file_over_the_limit_is_413_and_leaves_no_temporary_file_anywhere(served, corpus, tmp_path, monkeypatch):
    client, _, _ = served
    (tmp_path / "spool").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "spool"))  # where the request's files are spooled
    response = upload(client, "big.txt", data=b"x" * (5 << 20), folder="public")
    assert response.status_code == 413 and "over the 1 MB limit" in response.json()["detail"]
    assert tree(corpus) == ["doc.txt"] and list((tmp_path / "spool").iterdir()) == []


def test_the_declared_length_of_a_huge_body_is_refused_before_it_is_read(served):
    client, _, _ = served
    response = client.post(
        "/api/documents",
        content=b"--x--\r\n",
        headers={**CAROL, "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10**12)},
    )
    assert response.status_code == 413


def test_delete_refuses_a_bad_path_with_422(served, corpus):
    client, _, _ = served
    for path in ("..%2Fdoc.txt", "public/..%2F..%2Fx.txt", "a%00.txt"):
        response = client.delete(f"/api/documents/{path}", headers=CAROL)
        assert response.status_code == 422, (path, response.text)
    assert tree(corpus) == ["doc.txt"]


def test_the_upload_route_is_in_the_api_docs(served):
    client, _, _ = served
    operation = client.get("/api/openapi.json").json()["paths"]["/api/documents"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]


# ---- Gradio's upload route, for the chat's "Add documents" -------------------------------------------------


def signed_in(app, user: str) -> TestClient:
    client = TestClient(app)
    assert client.post("/login", data={"username": user, "password": f"pw-{user}"}).status_code == 200
    return client


def test_gradio_s_upload_route_takes_an_admin_s_files_only(served, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    client, _, _ = served
    files = {"files": ("a.txt", b"x" * 1024, "text/plain")}
    for web in (signed_in(client.app, "bob"), TestClient(client.app)):
        refused = web.post("/gradio_api/upload", files=files)
        assert refused.status_code == 403 and "only admins upload files" in refused.json()["detail"]
    carol = signed_in(client.app, "carol")
    assert carol.post("/gradio_api/upload", files=files).status_code == 200
    too_big = carol.post("/gradio_api/upload", files={"files": ("b.txt", b"x" * (2 << 20), "text/plain")})
    assert too_big.status_code == 413  # ASSISTANT_MAX_FILE_MB, as Gradio's max_file_size


def test_behind_a_proxy_the_sign_in_header_decides_who_uploads(assistant, settings_with_users, fake_embedder):
    proxied = replace(settings_with_users, users="", trusted_user_header="X-User")
    app = create_server(Assistant(proxied, fake_embedder))
    web = TestClient(app, client=("127.0.0.1", 50_000))  # a trusted proxy's address
    files = {"files": ("a.txt", b"x", "text/plain")}
    assert web.post("/gradio_api/upload", files=files, headers={"X-User": "bob"}).status_code == 403
    assert web.post("/gradio_api/upload", files=files, headers={"X-User": "carol"}).status_code == 200
    assert web.post("/api/documents", files=files, headers={"X-User": "carol"}).status_code == 201


# ---- the chat's "Add documents" handler --------------------------------------------------------------------


def chat_event(user: str, builds: Builds | None) -> SimpleNamespace:
    """What a gr.Request offers the handler: the user Gradio signed in, and the app the event came through."""
    app = SimpleNamespace(state=SimpleNamespace(builds=builds))
    return SimpleNamespace(username=user, headers={}, request=SimpleNamespace(app=app))


def gradio_copies(tmp_path: Path, *names: str) -> list[str]:
    folder = tmp_path / "gradio-upload"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(FACT)
    return [str(folder / name) for name in names]


def test_the_chat_stores_an_admin_s_files_asks_for_a_build_and_follows_it(served, corpus, tmp_path):
    _, assistant, builds = served
    paths = gradio_copies(tmp_path, "lighthouse.txt")
    status, files, timer, since = add_files(assistant, paths, "public", False, chat_event("carol", builds))
    assert status.startswith("Stored: public/lighthouse.txt.") and files is None
    assert not Path(paths[0]).exists()  # Gradio's copy, which anyone knowing its path could fetch, is gone
    assert builds.wait(30)
    assert progress(since, builds.state()).startswith("Stored: public/lighthouse.txt.\nIndexed: ")


def test_the_chat_refuses_a_reader_who_is_not_an_admin_whatever_the_page_shows(served, corpus, tmp_path):
    _, assistant, builds = served
    status, *_ = add_files(assistant, gradio_copies(tmp_path, "a.txt"), "public", False, chat_event("bob", builds))
    assert status == "Only admins add documents, and bob is not one." and tree(corpus) == ["doc.txt"]


def test_the_chat_shows_a_refused_upload_s_reason(served, corpus, tmp_path):
    _, assistant, builds = served
    status, *_ = add_files(assistant, gradio_copies(tmp_path, "a.exe"), "", False, chat_event("carol", builds))
    assert status.startswith("Nothing was added: 'a.exe': the assistant does not read .exe files")
