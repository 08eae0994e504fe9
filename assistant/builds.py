"""Builds in the background: one at a time on one thread; requests made during a build become one more build."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .documents import SkippedFile
from .errors import AssistantError
from .index.manifest import BuildRecord, BuildState, BuildSummary

if TYPE_CHECKING:
    from .service import Assistant

log = logging.getLogger(__name__)

_REASON_CHARS = 300  # a record's reason: the coalesced requests' reasons, cut to this length


class Builds:
    """One per server process. request() asks for an incremental build and returns at once; the builds run one
    at a time on one thread, and every request made while a build runs is answered by exactly one build after
    it (a file that changed after the running build read the corpus is not left out). A build that fails is
    logged and recorded; the index it would have replaced keeps serving, and the next request builds again."""

    def __init__(self, assistant: Assistant) -> None:
        self._assistant = assistant
        self._changed = threading.Condition()
        self._pending: list[str] = []  # the reasons of the requests not yet taken by a build
        self._running = False
        self._progress: tuple[str, int, int] = ("", 0, 0)
        self._last: BuildRecord | None = None
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first request: constructing is cheap
        assistant.builds_state = self.state  # status() and the chat's banner show the last build

    def request(self, reason: str) -> None:
        """Ask for an incremental build; `reason` says why (it is logged and recorded with the build)."""
        with self._changed:
            if self._closed:
                log.warning("build not started (%s): the server is stopping", reason)
                return
            self._pending.append(reason)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="builds", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def state(self) -> BuildState:
        with self._changed:
            phase, done, total = self._progress
            last = self._last.copy() if self._last else None
            return {"running": self._running, "phase": phase, "done": done, "total": total, "last": last}

    def wait(self, timeout: float | None = None) -> bool:
        """True once no build runs and none is asked for; False if that is not so within `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._running and not self._pending, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Take no more requests and stop the thread. A build that is running is not interrupted: it is waited for
        up to `timeout` seconds, then left to the end of the process (a build publishes whole or not at all)."""
        with self._changed:
            self._closed = True
            self._pending.clear()
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                reason = "; ".join(dict.fromkeys(self._pending))[:_REASON_CHARS]
                self._pending.clear()
                self._running, self._progress = True, ("", 0, 0)
            record = self._build(reason)
            with self._changed:
                self._running, self._last = False, record
                self._changed.notify_all()

    def _build(self, reason: str) -> BuildRecord:
        started = _now()
        summary: dict[str, Any] | None = None
        error: str | None = None
        log.info("build started: %s", reason)
        try:
            summary = self._assistant.build(progress=self._report).to_json()
        except AssistantError as err:  # the old index keeps serving: a build publishes whole or not at all
            error = " ".join(str(err).split()) or type(err).__name__
            log.warning("build (%s) failed: %s", reason, error)
        except Exception as err:  # unexpected: recorded too, with the traceback in the log; the thread goes on
            error = f"unexpected error ({type(err).__name__}: {' '.join(str(err).split())})"
            log.warning("build (%s) failed: %s", reason, error, exc_info=err)
        return {"started": started, "finished": _now(), "reason": reason, "summary": summary, "error": error}

    def _report(self, phase: str, done: int, total: int) -> None:
        with self._changed:
            self._progress = (phase, done, total)


def summary_line(record: BuildRecord) -> str:
    """The one-line summary of a recorded build, as `assistant build` prints its last line."""
    if record["summary"] is None:
        return f"failed: {record['error']}"
    fields = dict(record["summary"])
    skipped = [SkippedFile(s["path"], s["reason"]) for s in fields.pop("skipped")]
    return BuildSummary(**fields, skipped=skipped).line()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
