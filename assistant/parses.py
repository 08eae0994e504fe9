"""Parses kept on disk: spaCy's analysis of a passage (entities after our repairs, the dependency parse) is
computed the first time the passage is shown and read back after, in this process and the next ones."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

log = logging.getLogger(__name__)

# Raise it when what a stored parse holds changes in a way the key does not see: older parses are then unused.
# The key sees the text, the model's name and version, spaCy's version and the code of the repairs (`parser`).
PARSE_VERSION = 1
MAX_PARSES = 200_000  # about 1.4 kB each: some 280 MB at most; the least recently stored go first beyond it
PRUNE_EVERY = 1_000  # stores between two checks of the size


class ParseCache:
    """Parsed passages by their text, in one SQLite file (WAL: several processes may share it). A cache that
    cannot be read or written (a read-only folder, a damaged file) is logged once and left aside: answers go on,
    parsing what they need."""

    def __init__(self, path: Path, parser: str = "") -> None:
        self.path = path
        self.parser = parser  # what else makes a parse: entities' repairs, as a digest of their code
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._stored = 0

    def key(self, text: str, nlp: Language) -> str:
        """The text's key for this parser: the same text parsed by another model, spaCy or repair code is another
        entry."""
        return self._keys([text], nlp)[0]

    def _keys(self, texts: list[str], nlp: Language) -> list[str]:
        from spacy import about

        made = f"{nlp.meta.get('name')}-{nlp.meta.get('version')}\0{about.__version__}\0{self.parser}\0{PARSE_VERSION}"
        return [hashlib.sha256(f"{made}\0{text}".encode()).hexdigest()[:32] for text in texts]

    def get(self, texts: list[str], nlp: Language) -> dict[str, Doc]:
        """The stored parses of `texts` (those found), by text."""
        from spacy.tokens import DocBin

        keys = dict(zip(self._keys(texts, nlp), texts))
        if not keys:
            return {}
        rows = self._run(
            lambda db: db.execute(
                f"SELECT key, doc FROM parses WHERE key IN ({','.join('?' * len(keys))})", list(keys)
            ).fetchall(),
            create=False,
        )
        found = {}
        for key, blob in rows or []:
            try:
                found[keys[key]] = next(iter(DocBin().from_bytes(blob).get_docs(nlp.vocab)))
            except Exception as error:  # noqa: BLE001 (a damaged row is parsed again, never an error)
                log.debug("stored parse %s unreadable (%s): parsed again", key, error)
        return found

    def put(self, docs: list[Doc], nlp: Language) -> None:
        """Store these parses (a passage's text is its key)."""
        from spacy.tokens import DocBin

        rows = []
        for key, doc in zip(self._keys([doc.text for doc in docs], nlp), docs):
            stored = DocBin(store_user_data=False)
            stored.add(doc)
            rows.append((key, stored.to_bytes()))

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.executemany("INSERT OR REPLACE INTO parses (key, doc) VALUES (?, ?)", rows)
            self._stored += len(rows)
            if self._stored >= PRUNE_EVERY:
                self._stored = 0
                self._prune(db)

        if rows:
            self._run(write, create=True)

    def _prune(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM parses").fetchone()
        if count > MAX_PARSES:
            with db:  # rowids grow with each store: the lowest are the least recently stored
                db.execute(
                    "DELETE FROM parses WHERE rowid IN (SELECT rowid FROM parses ORDER BY rowid LIMIT ?)",
                    (count - MAX_PARSES + MAX_PARSES // 10,),
                )

    def _run(self, work, create: bool):
        with self._lock:
            if self._broken or (self._db is None and not create and not self.path.exists()):
                return None
            try:
                return work(self._db or self._open())
            except (sqlite3.Error, OSError) as error:
                self._broken = True
                log.warning("the parse cache %s is left aside (%s): passages are parsed each time", self.path, error)
                return None

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5, check_same_thread=False)  # used under self._lock only
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS parses (key TEXT PRIMARY KEY, doc BLOB NOT NULL)")
        self._db = db
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
