"""Watching the corpus: once its changes settle, one build is asked for; hidden and editors' temporary files are
ignored, and a file still being written is waited for."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .builds import Builds
from .config import Settings
from .documents import printable
from .errors import ConfigError

log = logging.getLogger(__name__)

QUIET_SECONDS = 2.0  # a build is asked for once the corpus has had no change for this long
# editors' swap and backup files, and the files of downloads and copies not yet done
_TEMPORARY_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".part", ".crdownload")
_NAMED = 5  # changed files named in a build's reason
_START_SECONDS = 10.0  # at most this long for the watch to be in place (inotify takes a moment per folder)

Look = tuple[int, int] | None  # a file's (size, mtime in ns); None when it is gone


def ignored(path: Path, corpus: Path) -> bool:
    """Whether a change to `path` is none of the corpus's business: a hidden file or folder (a part of its path
    within the corpus starts with "."; the build skips those too), or an editor's or a download's temporary file
    (name~, .name.swp, #name#, name.tmp, name.part, name.crdownload, and ~$name, an Office document's lock)."""
    with contextlib.suppress(ValueError):
        path = path.relative_to(corpus)
    name = path.name
    return (
        any(part.startswith(".") for part in path.parts)
        or name.lower().endswith(_TEMPORARY_SUFFIXES)
        or name.startswith("~$")
        or (len(name) > 1 and name.startswith("#") and name.endswith("#"))
    )


def watch_corpus(
    settings: Settings, builds: Builds, stop: threading.Event, ready: threading.Event | None = None
) -> None:
    """Ask `builds` for a build each time the corpus's changes settle, until `stop` is set. Settled: no change
    for QUIET_SECONDS, and every changed file the same size and age as it was QUIET_SECONDS before (a file being
    copied in is not indexed half-way). Changes made during a build are asked for again: Builds runs one more.
    `ready` is set once the watch is in place: every change from then on is seen."""
    import watchfiles

    corpus = _watchable(settings.corpus)
    index = settings.index.absolute()
    changes = _Changes(corpus)
    tick = max(50, int(QUIET_SECONDS * 250))  # ms: a few looks per quiet period, however often events come
    for batch in watchfiles.watch(
        corpus, watch_filter=None, rust_timeout=tick, yield_on_timeout=True, stop_event=stop, raise_interrupt=False
    ):
        if ready is not None:
            ready.set()
        paths = (Path(path) for _, path in batch)
        changes.add(p for p in paths if not ignored(p, corpus) and not p.is_relative_to(index))
        if changes.settled():
            builds.request(changes.take())


@contextlib.contextmanager
def watching(settings: Settings, builds: Builds) -> Iterator[None]:
    """watch_corpus on a thread of its own while inside, from when its watch is in place; a missing corpus is a
    ConfigError before it starts."""
    _watchable(settings.corpus)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=_watch, args=(settings, builds, stop, ready), name="watch-corpus", daemon=True)
    thread.start()
    ready.wait(_START_SECONDS)
    log.info("watching %s/ for changes", settings.corpus)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _watch(settings: Settings, builds: Builds, stop: threading.Event, ready: threading.Event) -> None:
    try:
        watch_corpus(settings, builds, stop, ready)
    except Exception as err:  # the server goes on serving the index it has; only the watching stops
        log.error("stopped watching %s/: %s — restart the server to watch again", settings.corpus, err, exc_info=err)
    finally:
        ready.set()  # watching() waits no longer


def _watchable(corpus: Path) -> Path:
    if not corpus.is_dir():
        raise ConfigError(
            f"cannot watch the corpus folder {corpus}/: it does not exist — create it, or set ASSISTANT_CORPUS "
            "(--corpus) to the documents folder"
        )
    return corpus.absolute()


class _Changes:
    """The changed paths not yet asked for, each with its look at its last change, and when the last came."""

    def __init__(self, corpus: Path) -> None:
        self.corpus = corpus
        self.looks: dict[Path, Look] = {}
        self.last = time.monotonic()

    def add(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.looks[path] = _look(path)
            self.last = time.monotonic()

    def settled(self) -> bool:
        """Quiet for QUIET_SECONDS and every file as it was; else, when quiet, look again QUIET_SECONDS on."""
        if not self.looks or time.monotonic() - self.last < QUIET_SECONDS:
            return False
        now = {path: _look(path) for path in self.looks}
        if now == self.looks:
            return True
        self.looks, self.last = now, time.monotonic()  # still growing without telling (a network share, say)
        return False

    def take(self) -> str:
        """The reason of the build that covers the changes: how many paths, and the first few; then none pend."""
        names = sorted(printable(_relative(path, self.corpus)) for path in self.looks)
        shown = ", ".join(names[:_NAMED]) + (f" and {len(names) - _NAMED} more" if len(names) > _NAMED else "")
        self.looks = {}
        return f"{len(names)} change{'' if len(names) == 1 else 's'} in the corpus: {shown}"


def _look(path: Path) -> Look:
    try:
        info = path.stat()
    except OSError:  # gone (deleted or moved away): the build drops it
        return None
    return info.st_size, info.st_mtime_ns


def _relative(path: Path, corpus: Path) -> str:
    try:
        return path.relative_to(corpus).as_posix()
    except ValueError:
        return path.as_posix()
