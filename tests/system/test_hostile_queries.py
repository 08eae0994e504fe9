"""Hostile queries: the API and the chat answer each with a result or a clear message, never a 500 or a traceback."""

from __future__ import annotations

import json
import random
from unittest import mock

import orjson
import pytest
from fastapi.testclient import TestClient

from assistant.config import MODES
from assistant.question import MAX_QUESTION_CHARS
from assistant.serve import create_server
from assistant.serve.ui import chat_turn
from tests.helpers import ROOT

SEED = 6
LEAKS = ("Traceback", 'File "', "site-packages", str(ROOT))  # a stack trace or a path of the source
TEMPLATES = ["{}", "Kuwait {} observed", "Who observed the talks{}?", "{} Oman and Qatar {}"]


def hostile_questions() -> dict[str, list[str]]:
    """The generated set, by kind; the same on every run (seeded)."""
    rng = random.Random(SEED)
    controls = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]
    quotes = [
        '"',
        "'",
        "`",
        '"Oman',
        "Oman'",
        "'Kuwait\"",
        "“Oman",
        "Qatar»",
        "«",
        "(",
        ")",
        "((Oman",
        "Oman]]",
        "[",
        "{",
        "}",
        "{{Qatar",
        "<",
        "<<<",
        "</p>",
        '"""',
        "'''",
        "(\"'[{",
        "}]'\")",
        "Oman's \"talks",
    ]
    metas = list(".*+?^$()[]{}|\\") + [
        ".*",
        "(?i)Oman",
        "[a-",
        "a{2,",
        "a{99999999}",
        "(?P<x>",
        "[^]",
        "\\d+\\",
        "((((" * 50,
        "+" * 500,
        "^$",
        "Oman|Qatar",
        "%",
        "_",
        "'; DROP TABLE chunks; --",
        "Oman AND NOT Qatar",
        "NEAR(Oman",
        "*",
        "\\x00",
        "$(rm -rf /)",
        "{{7*7}}",
    ]
    planes = [chr(cp) for plane in range(17) for cp in _plane_sample(rng, plane)]
    specials = [
        "\ufeff",
        "\u200d",
        "\u202e",
        "\u2028",
        "\u2029",
        "\u0301",
        "\ufffd",
        "\U0001f600",
        "\U000e0001",
        "\ue000",
        "\uf8ff",
        "\U000f0000",
        "\U0010fffd",
        "\ufdd0",
        "\U0010ffff",
        "\u0301" * 50,
    ]
    pool = controls + list(".*+?^$()[]{}|\\\"'`<>&;%") + planes + specials + list("OmanQatr ")
    return {
        "control characters": controls + [_template(rng, c) for c in controls],
        "unbalanced quotes and brackets": quotes,
        "regex metacharacters": metas + [_template(rng, m) for m in metas],
        "a character of every Unicode plane": planes + specials + [_template(rng, ch) for ch in planes + specials],
        "long questions": [
            "x" * 1999,
            "Oman " * 400,
            "\U0001f600" * MAX_QUESTION_CHARS,
            "\u0301" * MAX_QUESTION_CHARS,
            "a" * MAX_QUESTION_CHARS,
            "Kuwait" + "\x00" * 1994,
        ],
        "empty and blank": ["", " ", "\t\n\r", "\u3000", "\u200b", "\xa0", "\u2028\u2029", "\x00" * 10, "\ufeff"],
        "random mixtures": ["".join(rng.choice(pool) for _ in range(rng.randint(1, 80))) for _ in range(150)],
    }


def _plane_sample(rng: random.Random, plane: int) -> list[int]:
    """A random code point of the plane (never a surrogate) and its two noncharacters, U+xFFFE and U+xFFFF."""
    base = plane * 0x10000
    pick = rng.randrange(base, base + 0xFFFE)
    while 0xD800 <= pick < 0xE000:
        pick = rng.randrange(base, base + 0xFFFE)
    return [pick, base + 0xFFFE, base + 0xFFFF]


def _template(rng: random.Random, piece: str) -> str:
    return rng.choice(TEMPLATES).replace("{}", piece)


@pytest.fixture
def client(assistant):
    app = create_server(assistant)
    app.state.ready = True
    with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is a response here, to be counted
        yield client


def api_problem(response) -> str | None:
    """What is wrong with the API's reply to a hostile request, or None: 200 or 4xx, JSON, a message, no trace."""
    if response.status_code >= 500:
        return f"status {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if any(leak in response.text for leak in LEAKS):
        return "shows a traceback or a source path"
    if response.status_code >= 400 and not (
        isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]
    ):
        return "no message in detail"
    if response.status_code == 200 and "passages" not in body:
        return "200 without passages"
    return None


def chat_shown(assistant, question: str, k: float = 5, mode: str | None = None) -> tuple[str, object]:
    """What the chat shows for a question, and the history it sends back: the reply's bubble, or for a question
    that cannot be asked, the warning beside the chat (the history is then left as it was: no bubble)."""
    warned: list[str] = []
    with mock.patch("assistant.serve.ui.gr.Warning", side_effect=lambda message, **_: warned.append(message)):
        history, box = chat_turn(assistant, question, [], k, mode)
    if warned:
        assert not isinstance(history, list) and not isinstance(box, str), "a refused question added a bubble"
        return warned[-1], history
    assert box == "", "the question box was not emptied after an answer"
    return history[-1]["content"], history


def chat_problem(assistant, question: str, k: float = 5, mode: str | None = None) -> str | None:
    """What is wrong with the chat's reply to a hostile question, or None: a message, sendable by Gradio, no trace."""
    try:
        shown, history = chat_shown(assistant, question, k, mode)
        orjson.dumps(history)  # how Gradio sends the history to the browser
    except Exception as err:  # noqa: BLE001 - any exception is the failure being counted
        return f"raised {type(err).__name__}: {err}"
    if not shown.strip():
        return "no reply shown"
    if any(leak in shown for leak in LEAKS):
        return "shows a traceback or a source path"
    return None


@pytest.mark.parametrize("kind", list(hostile_questions()))
def test_hostile_questions_get_an_answer_or_a_clear_message_from_the_api_and_the_chat(
    client, assistant, reliability, kind
):
    questions = hostile_questions()[kind]
    failures = []
    for i, question in enumerate(questions):
        mode = MODES[i % len(MODES)]
        if problem := api_problem(client.post("/api/ask", json={"question": question, "k": 3, "mode": mode})):
            failures.append(("api", question[:40], problem))
        if problem := chat_problem(assistant, question, 3, mode):
            failures.append(("chat", question[:40], problem))
    assert failures == []
    reliability(
        "queries",
        kind,
        tried=2 * len(questions),
        survived=2 * len(questions) - len(failures),
        detail="API and chat, seed 6",
    )


def test_a_question_at_the_limit_is_answered_and_one_over_it_gets_422_naming_the_limit(client, assistant, reliability):
    at_limit = "Oman " * (MAX_QUESTION_CHARS // 5)
    assert client.post("/api/ask", json={"question": at_limit}).status_code == 200
    for length in (MAX_QUESTION_CHARS + 1, 5_000, 100_000):
        response = client.post("/api/ask", json={"question": "x" * length})
        assert response.status_code == 422
        assert response.json()["detail"].startswith("question: String should have at most 2000 characters")
        assert len(response.content) < 1_000  # the question is not echoed back
        assert "the limit is 2000" in chat_shown(assistant, "x" * length)[0]
    reliability("queries", "questions over the 2,000-character limit", tried=7, survived=7)


@pytest.mark.parametrize(
    "question, message",
    [
        ("", "at least 1 character"),
        ("   ", "the question is empty"),
        ("\x00\x01\x7f", "only control or invisible characters"),
        ("\u200b\ufeff", "only control or invisible characters"),
        ("\uffff\U0010ffff", "only control or invisible characters"),
    ],
)
def test_empty_and_invisible_questions_get_422_and_say_why(client, question, message):
    response = client.post("/api/ask", json={"question": question})
    assert response.status_code == 422 and message in response.json()["detail"]


def test_a_lone_surrogate_gets_422_from_the_api_and_a_message_in_the_chat(client, assistant, reliability):
    bodies = [b'{"question": "\\ud800"}', b'{"question": "Oman \\udc80 Qatar"}', b'{"question": "\\ude00\\ud83d"}']
    for body in bodies:
        response = client.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and "question" in response.json()["detail"]
    shown, history = chat_shown(assistant, "Oman \udc80 Qatar")
    assert "U&#43;DC80, half of a character" in shown
    assert "\udc80" not in orjson.dumps([shown, history]).decode()
    reliability("queries", "lone UTF-16 surrogates", tried=4, survived=4)


WRONG_BODIES = {
    "question a number": {"json": {"question": 5}},
    "question a list": {"json": {"question": ["Oman"]}},
    "question an object": {"json": {"question": {"text": "Oman"}}},
    "question null": {"json": {"question": None}},
    "question a boolean": {"json": {"question": True}},
    "question missing": {"json": {"k": 3}},
    "k a string": {"json": {"question": "Oman", "k": "3"}},
    "k negative": {"json": {"question": "Oman", "k": -1}},
    "k zero": {"json": {"question": "Oman", "k": 0}},
    "k huge": {"json": {"question": "Oman", "k": 10**40}},
    "k a float": {"json": {"question": "Oman", "k": 2.5}},
    "k a whole float": {"json": {"question": "Oman", "k": 3.0}},
    "k a boolean": {"json": {"question": "Oman", "k": True}},
    "k null": {"json": {"question": "Oman", "k": None}},
    "k NaN": {"content": b'{"question": "Oman", "k": NaN}'},
    "k Infinity": {"content": b'{"question": "Oman", "k": Infinity}'},
    "k a list": {"json": {"question": "Oman", "k": [3]}},
    "mode bogus": {"json": {"question": "Oman", "mode": "fuzzy"}},
    "mode a number": {"json": {"question": "Oman", "mode": 1}},
    "mode in capitals": {"json": {"question": "Oman", "mode": "HYBRID"}},
    "an extra field": {"json": {"question": "Oman", "mdoe": "bm25"}},
    "body a JSON array": {"json": ["Oman"]},
    "body a JSON string": {"json": "Oman"},
    "body a JSON number": {"json": 5},
    "body JSON null": {"content": b"null"},
    "body empty": {"content": b""},
    "body not JSON": {"content": b"question=Oman"},
    "body cut short": {"content": b'{"question": "Om'},
    "body not UTF-8": {"content": b'{"question": "\xff\xfe Oman"}'},
    "body nested 100,000 deep": {"content": b"[" * 100_000 + b"]" * 100_000},
    "a form instead of JSON": {"data": {"question": "Oman"}, "headers": {}},
    "JSON sent as text/plain": {"content": b'{"question": "Oman"}', "headers": {"Content-Type": "text/plain"}},
    "JSON sent as XML": {"content": b'{"question": "Oman"}', "headers": {"Content-Type": "application/xml"}},
    "duplicate keys, the last one bad": {"content": b'{"question": "Oman", "question": 7}'},
}


def test_wrong_json_for_ask_gets_a_4xx_with_a_message_never_a_500(client, reliability):
    failures = {}
    for name, request in WRONG_BODIES.items():
        request = {"headers": {"Content-Type": "application/json"}, **request}
        response = client.post("/api/ask", **request)
        if problem := api_problem(response) or (
            None if 400 <= response.status_code < 500 else f"status {response.status_code}"
        ):
            failures[name] = problem
    assert failures == {}
    reliability(
        "queries", "wrong JSON for /api/ask", tried=len(WRONG_BODIES), survived=len(WRONG_BODIES) - len(failures)
    )


def test_validation_errors_name_the_field_and_do_not_echo_the_input(client):
    body = client.post("/api/ask", json={"question": "Oman", "k": "three", "mode": "fuzzy"}).json()
    assert body["detail"].startswith(
        "k: Input should be a valid integer; mode: Input should be 'dense', 'bm25' or 'hybrid'"
    )
    assert "three" not in json.dumps(body) and "fuzzy" not in json.dumps(body)
    assert [e["loc"] for e in body["errors"]] == [["body", "k"], ["body", "mode"]]


def test_hostile_passage_ids_in_the_document_route_get_404_not_500(client, reliability):
    ids = ["%00", "..%2F..%2Fetc%2Fpasswd", "x" * 5_000, "%F0%9F%98%80", "%ED%A0%80", "' OR 1=1 --", "%2A", "%25"]
    statuses = [client.get(f"/api/documents/{chunk_id}").status_code for chunk_id in ids]
    assert all(status in (404, 422) for status in statuses), statuses
    reliability("queries", "hostile passage ids", tried=len(ids), survived=len(ids))


def test_an_unexpected_error_is_a_json_500_without_a_traceback(client, assistant, monkeypatch):
    monkeypatch.setattr(assistant, "ask", lambda *args: 1 / 0)
    response = client.post("/api/ask", json={"question": "Oman"})
    assert response.status_code == 500
    assert response.json() == {"detail": "the server failed on this request; its log has the details"}


def test_a_bm25_question_with_no_word_in_the_documents_is_not_in_the_documents(client, assistant):
    # it was a 200 with no passage and no_answer false, and an empty bubble in the chat
    body = client.post("/api/ask", json={"question": "'", "mode": "bm25"}).json()
    assert body["passages"] == [] and body["no_answer"] is True
    shown = chat_shown(assistant, "(((", 5, "bm25")[0]
    assert "Not in the documents" in shown and "no passage holds a word of the question" in shown


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"content": b"question=Oman"}, "body: not valid JSON (Expecting value)"),
        ({"content": b'["Oman"]'}, "body: expected a JSON object, sent with Content-Type: application/json"),
        (
            {"content": b'{"question": "Oman"}', "headers": {"Content-Type": "text/plain"}},
            "body: expected a JSON object",
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_gets_422_saying_what_to_send(client, request_, message):
    response = client.post("/api/ask", **{"headers": {"Content-Type": "application/json"}, **request_})
    assert response.status_code == 422 and response.json()["detail"].startswith(message)
