"""One assistant per process: settings, the embedder and the loaded index, shared by the CLI, the UI and the API."""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypedDict

from . import entities
from .access import EVERYTHING, Reader, access_from
from .answers import Answer, answer_question
from .config import Settings
from .embedding import Embedder
from .errors import Busy, IndexDamaged, IndexNotFound
from .index import build_index, open_store, published
from .index.manifest import (
    BuildProgress,
    BuildRecord,
    BuildState,
    BuildSummary,
    CatalogEntry,
    SkippedEntry,
    dense_spec,
)
from .index.readable import readable
from .index.store import Scope, Store
from .ingest import stale_documents
from .lru import LRU
from .question import MAX_HISTORY, Question, read_sources
from .search import Retriever

log = logging.getLogger(__name__)

CACHED_ANSWERS = 256
CACHED_VIEWS = 64  # the readers' views of the index: each holds its reader's catalog
PARSES = "parses.sqlite"  # in the index folder: the passages' spaCy parses, kept from one process to the next
_OPEN_ATTEMPTS = 3


class DocumentView(TypedDict):
    """A whole document, as the chat's document view and GET /api/documents/{chunk_id} show it."""

    chunk_id: str
    source: str
    title: str
    page: int | None
    start: int  # the cited chunk's offsets in `text`
    end: int
    text: str


class Status(TypedDict):
    """What the index holds and what changed since: `assistant status --json` and GET /api/status."""

    index: str
    store: str
    where: str
    documents: int
    chunks: int
    model: str
    precision: str
    built_at: str
    build: str
    stale: list[str]
    corpus: str
    chunking: dict[str, int]
    skipped: list[dict[str, str]]
    relevance_floor: float
    vectors: dict[str, Any]
    last_build: BuildRecord | None  # the server's last background build (builds.py); None outside a server


class AnswerCache:
    """The latest answers (an LRU). Keys start with the build the answer came from, so a newly published
    index is never answered from an older one. Answers go in and come out as copies: a caller that edits its
    answer does not edit the cache."""

    def __init__(self, size: int = CACHED_ANSWERS) -> None:
        self._answers: LRU[Answer] = LRU(size)

    def get(self, key: tuple) -> Answer | None:
        return copy.deepcopy(self._answers.get(key))

    def put(self, key: tuple, answer: Answer) -> None:
        self._answers.put(key, copy.deepcopy(answer))


class Slots:
    """At most `workers` questions worked on at once, at most `queue` more waiting; beyond that, Busy.
    Explicit, so that concurrency does not depend on the size of a web server's thread pool."""

    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.queue = workers, queue
        self._free = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self.waiting = 0

    @contextlib.contextmanager
    def taken(self):
        with self._lock:
            if self.waiting >= self.queue + self.workers:
                raise Busy(
                    f"busy: {self.workers} questions are being answered and {self.queue} are waiting — "
                    "ask again in a moment (the limits are ASSISTANT_WORKERS and ASSISTANT_QUEUE)"
                )
            self.waiting += 1
        try:
            with self._free:
                yield
        finally:
            with self._lock:
                self.waiting -= 1


class Assistant:
    """Loads the published index on first use and again whenever a build publishes a new one."""

    builds_state: Callable[[], BuildState] | None = None  # set by the server's Builds (builds.py)

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder(settings.model, settings.batch_size, settings.precision)
        self._index: Store[Any] | None = None
        self._lock = threading.Lock()
        self.answers = AnswerCache()
        self.slots = Slots(settings.workers, settings.queue)
        self.access = access_from(settings.access)  # a malformed file stops here, naming its line
        # the views of the store being served, by rules and reader; dropped with it (a view holds its store)
        self._views: tuple[Store[Any] | None, LRU[tuple[Store[Any], Scope | None]]] = (None, LRU(CACHED_VIEWS))
        entities.keep_parses(settings.index / PARSES)

    def index(self) -> Store[Any]:
        """The published index. Its version is read on every call (FAISS: the CURRENT pointer, one small file;
        Milvus: one row of the side collection), so a build that publishes a new index is served from the next
        question on, with no restart; a question already running keeps the store it started with, whose open
        files stay readable after the build removes them."""
        with self._lock:
            for _ in range(_OPEN_ATTEMPTS):
                version = published(self.settings)
                if self._index is not None and version == self._index.version and not self._index.stale():
                    return self._index
                try:
                    self._index = open_store(self.settings)
                    return self._index
                except (IndexDamaged, IndexNotFound):
                    if published(self.settings) != version:
                        continue  # a newer build was published (and this one removed) while it was being opened
                    raise
            raise IndexDamaged(
                f"the index at {self.settings.index}/ changed {_OPEN_ATTEMPTS} times while it was being "
                "opened — ask again when the builds are done"
            )

    def has_index(self) -> bool:
        return published(self.settings) is not None

    def view(self, reader: Reader = EVERYTHING) -> Store[Any]:
        """The published index as `reader` sees it (policy of ASSISTANT_ACCESS, read again when it changes): its
        searches keep to what they may read, and its reads return nothing else (index.readable)."""
        return self._view(reader)[0]

    def _view(self, reader: Reader) -> tuple[Store[Any], Scope | None]:
        """The view and its scope (None: everything), kept per store, rules and reader."""
        index, policy = self.index(), self.access.policy()
        with self._lock:
            if self._views[0] is not index:
                self._views = (index, LRU(CACHED_VIEWS))
            views = self._views[1]
        key = (policy.digest, reader)
        found = views.get(key)
        if found is None:
            scope = policy.readable(reader, index.catalog())
            found = (readable(index, scope, lambda path: policy.may_read(reader, path)), scope)
            views.put(key, found)
        return found

    def ask(
        self,
        question: str,
        k: int = 5,
        mode: str | None = None,
        sources: Sequence[str] = (),
        history: Sequence[str] = (),
        reader: Reader = EVERYTHING,
    ) -> Answer:
        """The answer, from the cache when the same question was asked of the same build with the same k, mode,
        scope and context. `sources`: the documents and folders (relative to the corpus) to search within; none:
        all. `history`: the earlier questions of the conversation, oldest first; a question that leans on the last
        one (leans_on_previous) is searched with its topic, in the documents that answered it first. `reader`: who
        asks; the answer comes only from what they may read, and is cached for those with the same rights."""
        index, rights = self._view(reader)
        retriever = Retriever(index, self.embedder, self.settings.min_score, mode or self.settings.mode)
        read = Question.read(question, sources)  # once: search, ranking and answers take this record
        history = [Question.read(turn).text for turn in history][-MAX_HISTORY:]
        # the earlier question is answered (from the cache, mostly) only for a question that leans on it
        leans = bool(history) and entities.leans_on_previous(read)
        earlier = self.ask(history[-1], k, mode, sources, history[:-1], reader) if leans else None
        if earlier is not None and earlier.no_answer:
            earlier = None
        topic = _topic(earlier) if earlier else ()
        searched = replace(read, text=f"{read.text} {' '.join(topic)}") if topic else read
        key = (index.version, rights, searched.text, k, retriever.mode, read.sources, topic)
        answer = self.answers.get(key)  # a copy
        if answer is None:
            with self.slots.taken():
                answer = _follow_up(retriever, searched, earlier, k) if earlier else answer_question(retriever, read, k)
            self.answers.put(key, answer)
        answer.question = question  # as asked: the same up to spaces and control characters
        if self.settings.log_questions:  # off by default: what colleagues ask stays out of the log
            log.info(
                "%s asked %r (k=%d, %s): %d passages%s",
                reader,
                question,
                k,
                retriever.mode,
                len(answer.passages),
                ", not in the documents" if answer.no_answer else "",
            )
        return answer

    def scope(self, sources: Sequence[str], reader: Reader = EVERYTHING) -> Scope:
        """What `sources` name in the published index; QueryError for one that is malformed or not in it (or not
        readable by `reader`: the same message). ask() checks the same: this is for an edge that wants to refuse a
        scope before the first question."""
        return Scope.of(read_sources(sources), self.view(reader).catalog())

    def build(self, rebuild: bool = False, progress: BuildProgress | None = None) -> BuildSummary:
        summary = build_index(self.settings, self.embedder, rebuild=rebuild, progress=progress)
        log.info("build: %s", summary.line())
        return summary

    def document_of(self, chunk_id: str, reader: Reader = EVERYTHING) -> DocumentView | None:
        """The whole text of the document that holds a chunk, with the chunk's offsets; None if unknown, or if
        `reader` may not read it (the same answer: whether a forbidden id exists does not show)."""
        index = self.view(reader)
        chunk = index.chunk_by_id(chunk_id)
        if chunk is None:
            return None
        document = index.documents([chunk["source"]])[chunk["source"]]
        return {
            "chunk_id": chunk_id,
            "source": chunk["source"],
            "title": document["title"],
            "page": chunk["page"],
            "start": chunk["start"],
            "end": chunk["end"],
            "text": document["text"],
        }

    def warm_up(self) -> None:
        """Load the index, the embedding model and spaCy, and run one query, so that the first real question is fast."""
        index = self.index()
        if len(index):
            self.ask("warm up", 1)
        entities.warm_up()

    def build_in_terminal(self, rebuild: bool = False) -> BuildSummary:
        """A build with a progress bar on stderr for each of its phases: reading files, chunking documents,
        embedding chunks (a phase with nothing to do shows no bar)."""
        from tqdm import tqdm

        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                for bar in bars.values():
                    bar.close()
                unit = {"reading": "file", "chunking": "document"}.get(phase, "chunk")
                bars[phase] = tqdm(total=total, desc=f"{phase:9}", unit=unit, file=sys.stderr, dynamic_ncols=True)
            bars[phase].update(done - bars[phase].n)

        try:
            return self.build(rebuild=rebuild, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()

    def status(self, reader: Reader = EVERYTHING) -> Status:
        """What the index holds and what changed since, of the documents `reader` may read: counts and lists
        alike."""
        index = self.view(reader)
        manifest = index.manifest
        catalog = index.catalog()
        return {
            "index": str(self.settings.index),
            "store": self.settings.store,
            "where": index.where,
            "documents": len(catalog),
            "chunks": len(index),
            "model": manifest["model"],
            "precision": manifest.get("precision", "fp32"),  # indexes built before the field were all fp32
            "built_at": manifest["built_at"],
            "build": index.version,  # what is being served: it changes when a build publishes
            "stale": self._stale(catalog, manifest.get("skipped", []), reader),
            "corpus": str(self.settings.corpus),
            "chunking": manifest["chunking"],
            "skipped": [{"path": s["path"], "reason": s["reason"]} for s in manifest.get("skipped", [])],
            "relevance_floor": Retriever(index, self.embedder, self.settings.min_score).floor,
            "vectors": dense_spec(manifest),  # flat (exact) or ivf, with its parameters
            "last_build": self._last_build(reader),
        }

    def _last_build(self, reader: Reader) -> BuildRecord | None:
        """The server's last background build; to a reader who may not read everything, only when it ran and
        whether it failed: its summary, reason and error name files and counts of the whole corpus."""
        last = self.builds_state()["last"] if self.builds_state else None
        if last is None or self.access.policy().reads_all(reader):
            return last
        return {**last, "reason": "", "summary": None, "error": "failed" if last["error"] else None}

    def _stale(self, catalog: dict[str, CatalogEntry], skipped: list[SkippedEntry], reader: Reader) -> list[str]:
        """What changed in the corpus since the build, of what `reader` may read: files added, changed or removed,
        skipped ones included."""
        indexed = {path: entry["sha256"] for path, entry in catalog.items()}
        stale = stale_documents(
            self.settings.corpus, indexed, {s["path"]: s.get("sha256") for s in skipped}, self.settings.max_file_mb
        )
        policy = self.access.policy()
        return [path for path in stale if policy.may_read(reader, path)]


def _topic(earlier: Answer) -> tuple[str, ...]:
    """The content words of what an earlier question searched: the topic a follow-up leans on."""
    return Question.read(earlier.searched or earlier.question).words


def _follow_up(retriever: Retriever, searched: Question, earlier: Answer, k: int) -> Answer:
    """A follow-up's answer: searched with the earlier question's topic within the documents that answered it,
    which the earlier answer showed relevant (so the relevance floor is not asked of them again), else, when
    there are none, in the whole scope."""
    answered = earlier.answer.groups if earlier.answer else []
    documents = list(dict.fromkeys([g.source for g in answered] or [p.source for p in earlier.passages[:2]]))
    if documents:
        within = Retriever(retriever.index, retriever.embedder, -1.0, retriever.mode)
        # about the document that answered first: its passages are not held to the spread over documents
        answer = answer_question(within, replace(searched, sources=tuple(documents), about=tuple(documents[:1])), k)
        answer.floor = retriever.floor
    else:
        answer = answer_question(retriever, searched, k)
    answer.sources = searched.sources
    answer.context = {"question": earlier.question, "sources": documents}
    return answer
