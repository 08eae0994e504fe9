"""Benchmark: the same retrieval on both stores, FAISS files and Milvus Lite: SciFact (BEIR) test nDCG@10 and
Recall@100 for each mode, and how often the two return the same top 10.

Both indexes are built afresh from the same corpus with the same settings by the product's own builds, one
after the other, so they hold the same chunks and the very same vectors: a text is embedded once, and its
vector reused (most come from the index benchmarks/quality.py keeps in --work).
Fusion, the relevance floor and answers are the search stage's, shared by both: only the stores differ.

    PYTHONPATH=. .venv/bin/python benchmarks/stores.py --out /tmp/stores.json
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.index import build_index, open_store
from assistant.search import FUSION, FUSION_WEIGHT, Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import CachedEmbedder, bench_args, bench_parser, document_ranking, log, scifact_task, throttled  # noqa: E402
from quality import open_retriever, scifact_rows, search_all, table  # noqa: E402

MODES = ("dense", "bm25", "hybrid")


def second_store(faiss: Retriever, task, work: Path, embedder: CachedEmbedder, store: str) -> tuple[Retriever, float]:
    """The same corpus built afresh into `store` (a new folder) with the product's build, and its seconds. Vectors of
    texts the FAISS index holds come from it; the model embeds only the others (chunks of an older chunking)."""
    index = faiss.index
    rows = index.chunks_of(sorted(index.catalog()))
    embedder.cache.update(zip((r["embed_text"] for r in rows), index.stored_vectors([r["row"] for r in rows])))
    folder = work / f"{task.name}-{store}-fresh"
    shutil.rmtree(folder, ignore_errors=True)
    settings = Settings(corpus=task.corpus, index=folder, store=store, min_score=-1.0)
    started = time.monotonic()
    summary = build_index(settings, embedder, progress=throttled(f"{task.name} {store}"))
    seconds = time.monotonic() - started
    log(f"{task.name} {store}: {summary.line()}")
    return Retriever(open_store(settings), embedder, -1.0), seconds


def agreement(first: Retriever, second: Retriever, task, mode: str, k: int = 10) -> float:
    """Share of the test claims whose top-k documents are the same, in the same order, on both stores."""
    a, b = (search_all(r, task, mode, k, (FUSION, FUSION_WEIGHT)) for r in (first, second))
    test = task.qrels["test"]
    return float(np.mean([document_ranking(a[q])[:k] == document_ranking(b[q])[:k] for q in test]))


def main(argv: Sequence[str] | None = None) -> None:
    args = bench_args(bench_parser(__doc__), argv)
    embedder = CachedEmbedder()
    task = scifact_task(args.limit_docs, 50)
    cached = open_retriever(task, args.work, embedder)  # quality.py's index, for its vectors
    milvus, seconds = second_store(cached, task, args.work, embedder, "milvus")
    faiss, _ = second_store(cached, task, args.work, embedder, "faiss")  # the very chunks and vectors Milvus has
    fusion = (FUSION, FUSION_WEIGHT)  # the product's, chosen on SciFact train by quality.py
    rows = []
    for store, retriever in (("faiss", faiss), ("milvus", milvus)):
        rows += [{"store": store, **row} for row in scifact_rows(retriever, task, fusion)]
    for mode in MODES:
        same = agreement(faiss, milvus, task, mode)
        f, m = (next(r for r in rows if r["store"] == s and r["mode"] == mode) for s in ("faiss", "milvus"))
        rows.append(
            {
                "store": "difference",
                "mode": mode,
                "test nDCG@10": round(m["test nDCG@10"] - f["test nDCG@10"], 4),
                "train nDCG@10": round(m["train nDCG@10"] - f["train nDCG@10"], 4),
                "test Recall@100": round(m["test Recall@100"] - f["test Recall@100"], 4),
                "same top 10": round(same, 4),
            }
        )
    print(
        f"SciFact (BEIR), 300 test claims, {len(faiss.index)} chunks; "
        f"Milvus Lite build with the vectors known: {seconds:.0f} s"
    )
    print(table([{**row, "same top 10": row.get("same top 10", "")} for row in rows]))
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "milvus_build_seconds": round(seconds, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
