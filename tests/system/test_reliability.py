"""A running server under rebuilds and load: a new index is served without a restart, a question in flight
finishes on the index it started with, a build never blocks the server, and the concurrency limits hold."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant.index import build_index
from assistant.service import Assistant
from tests.helpers import free_port, wait_until

OLD_A = "Alpha conference opened in Islamabad.\n\nDelegates from Spain and Italy attended the talks."
NEW_A = "Zanzibar hosted the follow-up meeting.\n\nDelegates from Oman and Qatar signed the Zanzibar accord."
OTHERS = {
    "b.md": "# Bravo\n\nThe budget for border control grew this year.",
    "c.txt": "Charlie notes about migrant smuggling routes and victims.",
    "d.txt": "Officials from Pakistan and Iran spoke about maritime patrols in the Arabian Sea.",
}
QUESTIONS = [
    "Who attended the talks?",
    "What grew this year?",
    "smuggling routes",
    "maritime patrols",
    "Which countries took part?",
    "Where did the conference open?",
    "Zanzibar accord",
    "border budget",
]


class Gate:
    """Makes the fake embedder wait inside encode() for texts that contain a word, until opened."""

    def __init__(self, embedder, word: str) -> None:
        self.word, self.entered, self.opened = word, threading.Event(), threading.Event()
        self._encode = embedder.encode
        embedder.encode = self.encode

    def encode(self, texts, progress=None, remember=False):
        if any(self.word in t for t in texts):
            self.entered.set()
            assert self.opened.wait(30), "the gate was never opened"
        return self._encode(texts, progress, remember)


class Served:
    """The product's server (REST API and chat) in a thread of this process, on a free port."""

    def __init__(self, assistant: Assistant) -> None:
        import uvicorn

        from assistant.serve import create_server

        self.assistant = assistant
        if assistant.has_index():
            assistant.warm_up()  # as serve() does before it listens
        self.port = free_port()
        app = create_server(assistant)
        app.state.ready = True
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started)

    def ask(self, question: str, k: int = 5, connection: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
        web = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        web.request(
            "POST", "/api/ask", json.dumps({"question": question, "k": k}), {"Content-Type": "application/json"}
        )
        response = web.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def get(self, path: str) -> tuple[int, dict]:
        web = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        web.request("GET", path)
        response = web.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def served(settings, corpus, fake_embedder):
    _write(corpus, {"a.txt": OLD_A, **OTHERS})
    build_index(settings, fake_embedder)
    server = Served(Assistant(settings, fake_embedder))
    yield server
    server.stop()


def test_a_new_build_is_served_from_the_next_question_without_a_restart(served, settings, corpus, reliability):
    from tests.helpers import FakeEmbedder

    status, before = served.get("/api/status")
    code, answer = served.ask("Zanzibar accord")
    assert status == code == 200 and not _mentions(answer, "Zanzibar")
    _write(corpus, {"a.txt": NEW_A})
    build_index(settings, FakeEmbedder())  # as `assistant build` in another process would
    code, answer = served.ask("Zanzibar accord")
    _, after = served.get("/api/status")
    assert code == 200 and "Zanzibar" in answer["passages"][0]["text"]
    assert after["build"] != before["build"] and after["built_at"] >= before["built_at"]
    reliability("load", "a rebuild picked up by the running server, no restart")


def test_a_question_in_flight_finishes_on_its_index_after_a_build_removes_it(
    served, settings, corpus, fake_embedder, reliability
):
    from tests.helpers import FakeEmbedder

    gate = Gate(fake_embedder, "Delegates attended")
    result: dict = {}
    asking = threading.Thread(target=lambda: result.update(zip(("code", "answer"), served.ask("Delegates attended"))))
    asking.start()
    assert gate.entered.wait(10)  # the question has its index and is embedding
    old_build = settings.index / "builds" / served.get("/api/status")[1]["build"]
    _write(corpus, {"a.txt": NEW_A})
    build_index(settings, FakeEmbedder())
    assert not old_build.exists()  # the build removed the folder the question is reading
    gate.opened.set()
    asking.join(30)
    assert result["code"] == 200
    texts = " ".join(p["text"] for p in result["answer"]["passages"])
    assert "Spain and Italy" in texts and "Zanzibar" not in texts  # the old index, whole
    code, answer = served.ask("Delegates attended the talks")
    assert code == 200 and _mentions(answer, "Zanzibar") and not _mentions(answer, "Spain and Italy")
    reliability("load", "a question in flight while a build replaces its index", detail="finished on the old index")


def test_ten_clients_for_ten_seconds_with_a_rebuild_in_the_middle_get_no_error(served, settings, corpus, reliability):
    from tests.helpers import FakeEmbedder

    stop, results, lock = threading.Event(), [], threading.Lock()

    def client(seed: int) -> None:
        rng, web = random.Random(seed), http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        while not stop.is_set():
            question = f"{rng.choice(QUESTIONS)} {rng.randrange(50)}"  # some repeat (the cache), most do not
            begun = time.perf_counter()
            try:
                code, answer = served.ask(question, 5, web)
            except (OSError, http.client.HTTPException, ValueError) as err:
                code, answer = -1, {"detail": repr(err)}
            with lock:
                results.append((begun, time.perf_counter() - begun, code, answer))

    clients = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in clients:
        thread.start()
    time.sleep(5)
    _write(corpus, {"a.txt": NEW_A})
    summary = build_index(settings, FakeEmbedder())
    published = time.perf_counter()
    time.sleep(5)
    stop.set()
    for thread in clients:
        thread.join(30)
    errors = [(code, answer.get("detail")) for _, _, code, answer in results if code != 200]
    assert summary.published and len(results) > 50 and errors == []
    for _, _, _, answer in results:  # every answer from one whole index: never the old and the new a.txt together
        assert not (_mentions(answer, "Spain and Italy") and _mentions(answer, "Zanzibar"))
    late = [answer for begun, _, _, answer in results if begun > published]
    assert late and not any(_mentions(answer, "Spain and Italy") for answer in late)
    p50, p99 = np.percentile([seconds * 1000 for _, seconds, _, _ in results], [50, 99])
    reliability(
        "load",
        "10 API clients for 10 s, a rebuild in the middle (fake embedder)",
        tried=len(results),
        survived=len(results) - len(errors),
        detail=f"p50 {p50:.0f} ms, p99 {p99:.0f} ms",
    )


def test_a_build_started_by_the_chat_never_blocks_the_server(settings, corpus, fake_embedder, reliability):
    from gradio_client import Client

    _write(corpus, {"a.txt": OLD_A, **OTHERS})  # no index yet: the first chat question builds it
    gate = Gate(fake_embedder, "Bravo")
    served = Served(Assistant(settings, fake_embedder))
    try:
        chat = Client(f"http://127.0.0.1:{served.port}/", verbose=False)
        job = chat.submit("Who attended the talks?", [], 5, "hybrid", api_name="/respond")
        assert gate.entered.wait(30)  # the build is embedding, inside the server process
        assert served.get("/healthz") == (200, {"status": "ok"})
        code, status = served.get("/api/status")
        assert code == 503 and "no index" in status["detail"]
        gate.opened.set()
        history, box = job.result(timeout=60)
        assert "Spain and Italy" in json.dumps(history) and box == ""
        assert served.get("/api/status")[0] == 200
    finally:
        gate.opened.set()
        served.stop()
    reliability("load", "the server answers while the chat builds the index")


def test_beyond_the_workers_and_the_queue_a_question_is_refused_as_busy(settings, corpus, fake_embedder, reliability):
    _write(corpus, {"a.txt": OLD_A, **OTHERS})
    build_index(settings, fake_embedder)
    gate = Gate(fake_embedder, "hold")
    served = Served(Assistant(replace(settings, workers=1, queue=0), fake_embedder))
    try:
        holding = threading.Thread(target=served.ask, args=("hold the only worker",))
        holding.start()
        assert gate.entered.wait(10)
        web = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        web.request(
            "POST", "/api/ask", json.dumps({"question": "smuggling routes"}), {"Content-Type": "application/json"}
        )
        response = web.getresponse()
        refused = json.loads(response.read())
        assert response.status == 503 and response.getheader("Retry-After") == "1"
        assert refused["detail"].startswith("busy:") and "ASSISTANT_WORKERS" in refused["detail"]
        gate.opened.set()
        holding.join(30)
        assert served.ask("smuggling routes")[0] == 200  # the worker is free again
    finally:
        gate.opened.set()
        served.stop()
    reliability("load", "a question beyond the workers and the queue: 503 busy with Retry-After")


def _write(corpus: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (corpus / name).write_text(text)


def _mentions(answer: dict, words: str) -> bool:
    return any(words in p["text"] for p in answer.get("passages", []))
