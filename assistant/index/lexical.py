"""BM25 side of hybrid search: bm25s with English stop words and Snowball stemming, saved beside the vectors."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "bm25"  # inside a build folder


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: list[str], return_ids: bool):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=return_ids, show_progress=False)


def terms(texts: list[str]) -> list[list[str]]:
    """The BM25 terms of each text: lowercased words of two or more characters, English stop words dropped,
    Snowball-stemmed. Both stores score these same terms (Milvus gets them joined by spaces)."""
    return _tokenize(texts, return_ids=False)


def write_bm25(folder: Path, texts: list[str]) -> None:
    """Index `texts` (row i is chunk row i) and save the arrays and params under folder/bm25."""
    import bm25s

    retriever = bm25s.BM25()
    if texts:
        retriever.index(_tokenize(texts, return_ids=True), show_progress=False)
        retriever.save(str(folder / FOLDER), show_progress=False)
    else:
        (folder / FOLDER).mkdir()


class LexicalIndex:
    """Scores every chunk of a build for a query; rows match the FAISS rows."""

    def __init__(self, folder: Path, size: int) -> None:
        import bm25s

        self.size = size
        # spelled out, not left to bm25s's defaults: the arrays are never unpickled, and no corpus file is read
        self._bm25 = (
            bm25s.BM25.load(
                str(folder / FOLDER), allow_pickle=False, load_corpus=False, mmap=False, show_progress=False
            )
            if size
            else None
        )

    def scores(self, query: str, mask: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every chunk (0 where no query term occurs, and where `mask`, a flag per chunk, is
        False), as float32. Term statistics are the whole index's, whatever the mask."""
        if self._bm25 is None:
            return np.zeros(self.size, dtype=np.float32)
        known = [t for t in terms([query])[0] if t in self._bm25.vocab_dict]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known, weight_mask=mask), dtype=np.float32)

    def known(self, words: list[str], mask: np.ndarray | None = None) -> set[str]:
        """The terms that some chunk (of those `mask` flags, if given) holds."""
        if self._bm25 is None:
            return set()
        vocabulary, indptr = self._bm25.vocab_dict, self._bm25.scores["indptr"]
        found = set()
        for word in words:
            if (column := vocabulary.get(word)) is None:
                continue
            start, end = int(indptr[column]), int(indptr[column + 1])
            if end > start and (mask is None or mask[self._bm25.scores["indices"][start:end]].any()):
                found.add(word)
        return found
