"""The dense side of a build: an exact FAISS index up to ASSISTANT_ANN_THRESHOLD chunks, an IVF index above it."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

NLIST_PER_SQRT = 1.0  # IVF lists per square root of the chunk count; chosen by benchmarks/ann.py (docs/benchmarks.md)
MIN_PER_LIST = 39  # faiss's k-means wants at least this many training points a list
TRAIN_PER_LIST = 64  # k-means trains on a sample of this many vectors a list, not on all of them
REGROW = 2.0  # the lists are retrained when the chunk count has doubled or halved since they were trained
SEED = 20240501


def build_dense(
    vectors: np.ndarray,
    threshold: int,
    nprobe: int,
    previous: Any = None,
    previous_spec: dict | None = None,
    old_rows: np.ndarray | None = None,
) -> tuple[Any, dict]:
    """The FAISS index of a build (id i = chunk row i) and its manifest entry, {"type": "flat"} or the IVF's.

    Scores are inner products of normalized vectors, hence cosines, exact for every row the search visits.
    `previous`, `previous_spec`: the last build's FAISS index and manifest entry; `old_rows[i]` is the row
    that vector i had there, -1 for a new one. An IVF whose lists can still serve is reused (see _ivf).
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) <= threshold:
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        return flat, {"type": "flat"}
    return _ivf(vectors, nprobe, previous if _lists_fit(previous_spec, len(vectors)) else None, previous_spec, old_rows)


def read_dense(path: Path, spec: dict) -> Any:
    """Load vectors.faiss; an IVF searches `nprobe` lists. A manifest without "vectors" (older builds) is flat."""
    import faiss

    index = faiss.read_index(str(path))
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = int(spec["nprobe"])
    return index


def search_within(index: Any, query: np.ndarray, k: int, bitmap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """index.search(query, k) over the rows set in `bitmap` only (bit r % 8 of byte r // 8, as np.packbits(...,
    bitorder="little") makes it: faiss's IDSelectorBitmap), for k no more than the rows set. Flat: scores only
    those rows, exactly. IVF: its nprobe lists first, as an unscoped search; when they hold fewer than k of the
    rows, every list, so that a small scope (one document, whose chunks sit in a few lists) still gives k.
    Both skip the other rows before computing a score: the cost grows with the scope (docs/benchmarks.md)."""
    import faiss

    bitmap = np.ascontiguousarray(bitmap, dtype=np.uint8)  # referenced here until the search returns
    params = faiss.SearchParametersIVF() if isinstance(index, faiss.IndexIVF) else faiss.SearchParameters()
    params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    if isinstance(params, faiss.SearchParametersIVF):
        params.nprobe = index.nprobe
        scores, rows = index.search(query, k, params=params)
        if int((rows[0] >= 0).sum()) >= k:
            return scores, rows
        params.nprobe = index.nlist
    return index.search(query, k, params=params)


def dense_settled(spec: dict, chunks: int, threshold: int, nprobe: int) -> bool:
    """Whether a build's index (manifest entry `spec`, `chunks` vectors) is the kind these settings ask for;
    if not, the next build writes a new one, with no document to embed."""
    if chunks <= threshold:
        return spec["type"] == "flat"
    return spec["type"] == "ivf" and spec["nprobe"] == min(nprobe, spec["nlist"])


def nlist_for(chunks: int) -> int:
    """Lists of an IVF over `chunks` vectors: NLIST_PER_SQRT * sqrt(chunks), with enough points to train each."""
    return max(1, min(round(NLIST_PER_SQRT * math.sqrt(chunks)), chunks // MIN_PER_LIST))


def _lists_fit(spec: dict | None, chunks: int) -> bool:
    """Whether the previous build's IVF lists can take `chunks` vectors: same type, count within REGROW."""
    if not spec or spec.get("type") != "ivf":
        return False
    return spec["trained_chunks"] / REGROW <= chunks <= spec["trained_chunks"] * REGROW


def _ivf(
    vectors: np.ndarray, nprobe: int, previous: Any, previous_spec: dict | None, old_rows: np.ndarray | None
) -> tuple[Any, dict]:
    """IVF over `vectors`, on the lists of `previous` when given, else on lists trained here.

    Reused lists keep their centroids, so a kept vector goes back into its old list without a search, only new
    vectors are assigned, and the vectors of removed or changed documents are simply not carried over: the
    result is what adding every vector to those centroids afresh would give.
    """
    import faiss

    if previous is not None and previous_spec is not None:
        centroids, trained = previous.quantizer.reconstruct_n(0, previous.nlist), previous_spec["trained_chunks"]
    else:
        centroids, trained = _train(vectors, nlist_for(len(vectors))), len(vectors)
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    quantizer.add(centroids)
    ivf = faiss.IndexIVFFlat(quantizer, vectors.shape[1], len(centroids), faiss.METRIC_INNER_PRODUCT)
    ivf.is_trained = True
    assign = _assignments(quantizer, vectors, previous, old_rows)
    ivf.add_core(len(vectors), faiss.swig_ptr(vectors), None, faiss.swig_ptr(assign))
    ivf.make_direct_map()  # exact vectors by row for search.py's cosines: 8 bytes a row, no second copy
    ivf.nprobe = min(nprobe, ivf.nlist)
    return ivf, {"type": "ivf", "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe), "trained_chunks": int(trained)}


def _train(vectors: np.ndarray, nlist: int) -> np.ndarray:
    """Spherical k-means centroids of a seeded sample of TRAIN_PER_LIST vectors a list."""
    import faiss

    sample = min(len(vectors), TRAIN_PER_LIST * nlist)
    chosen = np.sort(np.random.default_rng(SEED).choice(len(vectors), sample, replace=False))
    log.info("training %d IVF lists on %d of %d vectors", nlist, sample, len(vectors))
    kmeans = faiss.Kmeans(vectors.shape[1], nlist, niter=10, spherical=True, seed=SEED)  # 10 rounds, as faiss's IVF
    kmeans.train(vectors[chosen])
    return np.asarray(kmeans.centroids)


def _assignments(quantizer: Any, vectors: np.ndarray, previous: Any, old_rows: np.ndarray | None) -> np.ndarray:
    """The list of each vector: its list in `previous` when it was there, else the nearest centroid's."""
    import faiss

    lists = np.full(len(vectors), -1, dtype=np.int64)
    if previous is not None and old_rows is not None and previous.direct_map.type == faiss.DirectMap.Array:  # type: ignore[attr-defined]
        kept = old_rows >= 0
        lists[kept] = faiss.vector_to_array(previous.direct_map.array)[old_rows[kept]] >> 32  # (list << 32) | offset
    todo = np.flatnonzero(lists < 0)
    if len(todo):
        lists[todo] = quantizer.search(vectors[todo], 1)[1][:, 0]
    return lists
