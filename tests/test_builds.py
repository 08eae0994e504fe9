"""Builds in the background: one at a time, requests during a build coalesced into one more, failures recorded;
and what the status and the chat's banner show of them."""

from __future__ import annotations

import json
import logging
import threading
import time

import gradio as gr
import pytest

from assistant.builds import Builds
from assistant.errors import IndexLocked
from assistant.serve.ui import index_notice, refresh_notice


class Gate:
    """Stands in for Assistant.build: each build runs the real one, reports some progress, then waits for the gate
    to open; it counts the builds, notes when each started and how many ran at once."""

    def __init__(self, assistant, outcomes=()) -> None:
        self.real = assistant.build
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.started: list[float] = []
        self.running = self.most = 0
        self.outcomes = list(outcomes)  # an exception to raise, or None to build, for the first builds
        self._lock = threading.Lock()
        assistant.build = self

    def __call__(self, rebuild: bool = False, progress=None):
        with self._lock:
            self.started.append(time.monotonic())
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            outcome = self.outcomes.pop(0) if self.outcomes else None
            if outcome is not None:
                raise outcome
            summary = self.real(rebuild, progress)
            progress("embedding", 3, 10)
            self.entered.release()
            assert self.open.wait(10), "the test never opened the gate"
            return summary
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def builds(assistant):
    running = Builds(assistant)
    yield running
    running.close()


def test_requests_during_a_build_make_exactly_one_more_build(assistant, builds):
    gate = Gate(assistant)
    builds.request("first")
    assert gate.entered.acquire(timeout=10)
    for n in range(3):
        builds.request(f"change {n}")
    assert not builds.wait(0.2)  # a build runs and one more is asked for
    gate.open.set()
    assert builds.wait(10)
    assert len(gate.started) == 2
    assert builds.state()["last"]["reason"] == "change 0; change 1; change 2"
    time.sleep(0.2)
    assert len(gate.started) == 2  # and no third


def test_builds_run_one_at_a_time_and_every_request_is_followed_by_a_build(assistant, builds):
    gate = Gate(assistant)
    gate.open.set()
    asked: list[float] = []

    def ask(n: int) -> None:
        for round in range(5):
            asked.append(time.monotonic())
            builds.request(f"thread {n}, round {round}")
            time.sleep(0.01)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds.wait(20)
    assert gate.most == 1
    assert 1 <= len(gate.started) <= 20 and gate.started[-1] > max(asked)  # none lost, most coalesced


def test_a_failing_build_is_recorded_and_logged_and_the_next_one_runs(assistant, builds, caplog):
    gate = Gate(assistant, [IndexLocked("another build is running on index/ — wait for it"), RuntimeError("boom")])
    gate.open.set()
    caplog.set_level(logging.WARNING, logger="assistant.builds")
    builds.request("first")
    assert builds.wait(10)
    last = builds.state()["last"]
    assert last["error"] == "another build is running on index/ — wait for it" and last["summary"] is None
    assert "build (first) failed: another build is running" in caplog.text
    builds.request("second")
    assert builds.wait(10)
    assert builds.state()["last"]["error"] == "unexpected error (RuntimeError: boom)"
    builds.request("third")
    assert builds.wait(10)
    last = builds.state()["last"]
    assert last["error"] is None and last["summary"]["unchanged"] == 1 and last["reason"] == "third"
    assert last["started"] <= last["finished"]
    assert assistant.ask("Kuwait", 1).passages  # the index served throughout


def test_state_shows_the_running_builds_progress(assistant, builds):
    gate = Gate(assistant)
    assert builds.state() == {"running": False, "phase": "", "done": 0, "total": 0, "last": None}
    builds.request("first")
    assert gate.entered.acquire(timeout=10)
    state = builds.state()
    assert state["running"] and (state["phase"], state["done"], state["total"]) == ("embedding", 3, 10)
    gate.open.set()
    assert builds.wait(10)
    assert not builds.state()["running"]


def test_after_close_requests_build_nothing(assistant, builds):
    gate = Gate(assistant)
    gate.open.set()
    builds.close()
    builds.request("too late")
    assert builds.wait(1) and gate.started == []


def test_status_has_the_last_build_only_where_builds_run(assistant, settings, fake_embedder):
    from assistant.service import Assistant

    assert Assistant(settings, fake_embedder).status()["last_build"] is None
    builds = Builds(assistant)
    try:
        assert assistant.status()["last_build"] is None  # none finished yet
        builds.request("a reason")
        assert builds.wait(20)
        status = json.loads(json.dumps(assistant.status()))
        assert status["last_build"] == builds.state()["last"] and status["last_build"]["reason"] == "a reason"
    finally:
        builds.close()


def test_the_server_keeps_its_builds_on_the_app(assistant, builds):
    from assistant.serve import create_server

    assert create_server(assistant, builds=builds).state.builds is builds
    assert create_server(assistant).state.builds is None


# ---- the chat's banner ---------------------------------------------------------------------------------


def test_banner_shows_the_running_build_then_the_last_one(assistant, builds):
    gate = Gate(assistant)
    assert index_notice(assistant) == ""
    builds.request("first")
    assert gate.entered.acquire(timeout=10)
    assert index_notice(assistant) == "<p>Indexing changes&#58; embedding 3/10…</p>"
    gate.open.set()
    assert builds.wait(10)
    notice = index_notice(assistant)
    assert notice.startswith("<p>Last indexed ") and "0 added, 0 changed, 0 removed, 1 unchanged" in notice


def test_banner_says_when_the_last_build_failed_and_escapes_its_reason(assistant, builds):
    Gate(assistant, [IndexLocked("locked by <b>someone</b>")]).open.set()
    builds.request("first")
    assert builds.wait(10)
    notice = index_notice(assistant)
    assert "Indexing failed at" in notice and "<b>" not in notice and "someone" in notice


def test_banner_is_redrawn_by_the_timer_only_when_the_builds_changed(assistant, builds, corpus):
    (corpus / "new.txt").write_text("Bahrain came too.")
    seen = builds.state()
    assert refresh_notice(assistant, seen) == (gr.skip(), gr.skip())
    builds.request("new.txt")
    assert builds.wait(20)
    notice, state = refresh_notice(assistant, seen)
    assert "Last indexed" in notice and "1 added" in notice and state == builds.state()
    assert refresh_notice(assistant, state) == (gr.skip(), gr.skip())
