"""The REST API and the chat mounted on one FastAPI app, in-process."""

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from assistant.serve import create_server
from assistant.service import Assistant


@pytest.fixture
def client(assistant):
    app = create_server(assistant)
    app.state.ready = True
    with TestClient(app) as client:
        yield client


def test_ask_returns_the_same_object_as_the_cli_json(client, assistant):
    response = client.post("/api/ask", json={"question": "Kuwait observed", "k": 2, "mode": "bm25"})
    assert response.status_code == 200
    assert response.json() == assistant.ask("Kuwait observed", 2, "bm25").to_json()
    assert response.json()["mode"] == "bm25"


def test_ask_defaults_k_and_mode(client):
    body = client.post("/api/ask", json={"question": "Oman"}).json()
    assert body["mode"] == "hybrid" and 1 <= len(body["passages"]) <= 5


def test_status_is_what_the_cli_prints(client, assistant):
    assert client.get("/api/status").json() == assistant.status()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"question": ""}, "at least 1 character"),
        ({"question": "   "}, "the question is empty"),
        ({"question": "x" * 2001}, "at most 2000 characters"),
        ({"question": "Oman", "k": 0}, "greater than or equal to 1"),
        ({"question": "Oman", "k": 51}, "less than or equal to 50"),
        ({"question": "Oman", "mode": "fuzzy"}, "'dense', 'bm25' or 'hybrid'"),
        ({"question": 5}, "valid string"),
        ({"k": 3}, "Field required"),
        ({"question": "Oman", "sources": "doc.txt"}, "sources: Input should be a valid list"),
        ({"question": "Oman", "sources": None}, "sources: Input should be a valid list"),
        ({"question": "Oman", "sources": [5]}, "sources.0: Input should be a valid string"),
        ({"question": "Oman", "sources": [""]}, "sources.0: String should have at least 1 character"),
        ({"question": "Oman", "sources": ["x" * 4097]}, "sources.0: String should have at most 4096 characters"),
        ({"question": "Oman", "sources": [f"d{i}" for i in range(101)]}, "sources: List should have at most 100"),
        ({"question": "Oman", "sources": ["  "]}, "a source is empty"),
        ({"question": "Oman", "sources": ["/etc/passwd"]}, "the source /etc/passwd is an absolute path"),
        ({"question": "Oman", "sources": ["../corpus/doc.txt"]}, "leads out of the corpus (..)"),
        ({"question": "Oman", "sources": ["doc.txt", "nope.txt"]}, "no document or folder nope.txt in the index"),
        ({"question": "Oman", "source": ["doc.txt"]}, "source: Extra inputs are not permitted"),
    ],
)
def test_bad_requests_get_422_with_a_clear_message(client, payload, message):
    response = client.post("/api/ask", json=payload)
    assert response.status_code == 422
    assert message in response.text


def test_ask_within_sources_searches_only_them_and_echoes_them(client, assistant, corpus):
    (corpus / "sub").mkdir()
    (corpus / "sub" / "other.txt").write_text("Oman and Kuwait, Oman again, and Kuwait observed Oman.")
    assistant.build()
    assert client.post("/api/ask", json={"question": "Oman Kuwait", "k": 1}).json()["passages"][0]["source"] == (
        "sub/other.txt"
    )
    body = client.post("/api/ask", json={"question": "Oman Kuwait", "k": 2, "sources": ["doc.txt"]}).json()
    assert body["sources"] == ["doc.txt"] and [p["source"] for p in body["passages"]] == ["doc.txt"]  # its 1 chunk
    assert client.post("/api/ask", json={"question": "Oman", "sources": ["sub/"]}).json()["sources"] == ["sub"]
    assert client.post("/api/ask", json={"question": "Oman"}).json()["sources"] == []


def test_document_route_returns_the_text_that_holds_a_passage(client):
    passage = client.post("/api/ask", json={"question": "Kuwait", "k": 1}).json()["passages"][0]
    document = client.get(f"/api/documents/{passage['chunk_id']}").json()
    assert document["source"] == "doc.txt"
    assert document["text"][document["start"] : document["end"]] == passage["text"]
    assert client.get("/api/documents/nope").status_code == 404


def test_health_and_readiness(assistant, settings):
    app = create_server(assistant)
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 503  # not warmed up yet
        app.state.ready = True
        assert client.get("/readyz").status_code == 200
        (settings.index / "CURRENT").unlink()
        assert client.get("/readyz").status_code == 503


def test_missing_index_is_503_with_the_command(client, settings):
    (settings.index / "CURRENT").unlink()
    response = client.post("/api/ask", json={"question": "Oman"})
    assert response.status_code == 503 and "run: assistant build" in response.json()["detail"]


def test_openapi_docs_and_the_chat_are_served(client):
    assert client.get("/api/docs").status_code == 200
    assert "/api/ask" in client.get("/api/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "Document Q&A" in page.text.replace("&amp;", "&")


def test_the_chat_page_links_below_its_own_path_and_names_no_outside_host(client):
    from bs4 import BeautifulSoup

    page = BeautifulSoup(client.get("/").text, "html.parser")
    links = [tag.get(attr) for tag in page.find_all(True) for attr in ("href", "src", "content") if tag.get(attr)]
    assert "./manifest.json" in links and "./favicon.ico" in links  # not /manifest.json, /favicon.ico: outside /qa/
    assert [
        link for link in links if link.startswith("/") or "://" in link or "@" in link
    ] == []  # Gradio's og:image was on GitHub
    assert client.get("/manifest.json").json()["start_url"] == "./"


def test_run_history_is_off_so_no_page_offers_to_save_runs_to_the_hub(client):
    assert client.post("/gradio_api/run-history/connect", json={}).status_code == 404
    assert client.get("/gradio_api/runs").status_code == 404


def test_the_api_docs_page_loads_swagger_ui_from_the_app_not_a_cdn(client):
    from bs4 import BeautifulSoup

    page = BeautifulSoup(client.get("/api/docs").text, "html.parser")
    links = [tag.get(attr) for tag in page.find_all(True) for attr in ("href", "src") if tag.get(attr)]
    assert links and [link for link in links if not link.startswith("/api/docs-assets/")] == []
    assert all(client.get(link).status_code == 200 for link in links)


@pytest.mark.parametrize("log_questions", [False, True])
def test_questions_reach_the_log_only_when_switched_on(assistant, caplog, log_questions):
    import logging

    served = Assistant(replace(assistant.settings, log_questions=log_questions), assistant.embedder)
    client = TestClient(create_server(served))
    with caplog.at_level(logging.DEBUG):
        assert client.post("/api/ask", json={"question": "Which delegation sailed from Muscat?"}).status_code == 200
        served.ask("Who watched the border talks in Oman?")
    logged = caplog.text
    assert ("Which delegation sailed from Muscat?" in logged) == log_questions
    assert ("Who watched the border talks in Oman?" in logged) == log_questions


def test_history_makes_a_follow_up_lean_on_the_question_before(client, assistant, corpus):
    (corpus / "minister.txt").write_text("Minister Ahsan Iqbal opened the border talks. He said patrols will grow.")
    assistant.build()
    earlier = [{"question": "Who is Ahsan Iqbal?"}]
    body = client.post("/api/ask", json={"question": "What did he say?", "history": earlier})
    assert body.status_code == 200
    assert body.json()["context"] == {"question": "Who is Ahsan Iqbal?", "sources": ["minister.txt"]}
    assert client.post("/api/ask", json={"question": "Kuwait observed"}).json()["context"] is None


@pytest.mark.parametrize(
    "history",
    [
        "Who is Ahsan Iqbal?",  # not a list
        [{"question": ""}],
        [{"question": "x" * 2001}],
        [{"text": "Who is Ahsan Iqbal?"}],  # a misspelt field
        [{"question": "Who?", "answer": "him"}],  # an unknown one
        ["Who is Ahsan Iqbal?"],  # a turn is an object
        [{"question": 5}],
        [{"question": "Who?"}] * 21,  # over the limit of 20 turns
        None,
    ],
)
def test_a_history_of_the_wrong_shape_is_a_422(client, history):
    response = client.post("/api/ask", json={"question": "What did he say?", "history": history})
    assert response.status_code == 422 and "history" in response.text
