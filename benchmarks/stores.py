"""Benchmark: the same retrieval on both stores, FAISS files and Milvus Lite: SciFact (BEIR) test nDCG@10 and
Recall@100 for each mode, and how often the two return the same top 10.

The FAISS index is built (or reused) as benchmarks/quality.py builds it, in --work. The Milvus Lite index is
built from the same corpus with the same settings by the product's own Milvus build; its vectors are the FAISS
index's, looked up by the text embedded, so the model runs once (the vectors of a text are the same either way).
Fusion, the relevance floor and answers are the search stage's, shared by both: only the stores differ.

    PYTHONPATH=. .venv/bin/python benchmarks/stores.py --out /tmp/stores.json
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.build import build_index
from assistant.config import Settings
from assistant.search import FUSION, FUSION_WEIGHT, Retriever
from assistant.stores import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import REPO, CachedEmbedder, document_ranking, log, scifact_task, throttled  # noqa: E402
from quality import open_retriever, scifact_rows, search_all, table  # noqa: E402

MODES = ("dense", "bm25", "hybrid")


def milvus_retriever(faiss: Retriever, task, work: Path, embedder: CachedEmbedder) -> tuple[Retriever, float]:
    """The same corpus built into Milvus Lite (fresh file), with the FAISS index's vectors; and the build's seconds."""
    store = faiss.index
    rows = store.chunks_of(sorted(store.catalog()))
    embedder.cache.update(zip((r["embed_text"] for r in rows), store.stored_vectors([r["row"] for r in rows])))
    folder = work / f"{task.name}-milvus"
    shutil.rmtree(folder, ignore_errors=True)
    settings = Settings(corpus=task.corpus, index=folder, store="milvus", min_score=-1.0)
    started = time.monotonic()
    summary = build_index(settings, embedder, progress=throttled(f"{task.name} milvus"))
    seconds = time.monotonic() - started
    log(f"{task.name} milvus: {summary.line()}")
    return Retriever(open_store(settings), embedder, -1.0), seconds


def agreement(first: Retriever, second: Retriever, task, mode: str, k: int = 10) -> float:
    """Share of the test claims whose top-k documents are the same, in the same order, on both stores."""
    a, b = (search_all(r, task, mode, k, (FUSION, FUSION_WEIGHT)) for r in (first, second))
    test = task.qrels["test"]
    return float(np.mean([document_ranking(a[q])[:k] == document_ranking(b[q])[:k] for q in test]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-bench"))
    parser.add_argument("--limit-docs", type=int, default=None, help="only the first N documents (a quick check)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.work.resolve().is_relative_to(REPO):
        sys.exit("--work must be outside the repository: the evaluation data never goes into it")
    embedder = CachedEmbedder()
    task = scifact_task(args.limit_docs, 50)
    faiss = open_retriever(task, args.work, embedder)
    milvus, seconds = milvus_retriever(faiss, task, args.work, embedder)
    fusion = (FUSION, FUSION_WEIGHT)  # the product's, chosen on SciFact train by quality.py
    rows = []
    for store, retriever in (("faiss", faiss), ("milvus", milvus)):
        rows += [{"store": store, **row} for row in scifact_rows(retriever, task, fusion)]
    for mode in MODES:
        same = agreement(faiss, milvus, task, mode)
        f, m = (next(r for r in rows if r["store"] == s and r["mode"] == mode) for s in ("faiss", "milvus"))
        rows.append({"store": "difference", "mode": mode, "test nDCG@10": round(m["test nDCG@10"] - f["test nDCG@10"], 4),
                     "train nDCG@10": round(m["train nDCG@10"] - f["train nDCG@10"], 4),
                     "test Recall@100": round(m["test Recall@100"] - f["test Recall@100"], 4),
                     "same top 10": round(same, 4)})
    print(f"SciFact (BEIR), 300 test claims, {len(faiss.index)} chunks; Milvus Lite build with cached vectors: {seconds:.0f} s")
    print(table([{**row, "same top 10": row.get("same top 10", "")} for row in rows]))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "milvus_build_seconds": round(seconds, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
