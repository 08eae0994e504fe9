"""Benchmark: Milvus's own hybrid search against the product's fusion, on Milvus's engine (Milvus Lite 2.5.1).

The product fuses the two sides itself (search.fuse: each side's candidates min-max normalized, dense weight
0.6, chosen on SciFact train), the same code for FAISS and Milvus. Milvus can do it in one request instead:
`hybrid_search` with a dense and a BM25 request, merged by the engine's RRFRanker (reciprocal rank fusion) or
WeightedRanker (a weighted sum of scores the engine normalizes). Both run here on the same SciFact collection
(built afresh by benchmarks/stores.py's second_store, vectors reused), 100 candidates a side and 100 results,
and are scored alike: test and train nDCG@10, test Recall@100, and the p50 milliseconds of one search.

    PYTHONPATH=. .venv/bin/python benchmarks/milvus_hybrid.py --out /tmp/milvus-hybrid.json   # ~5 min
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from assistant.index.lexical import terms
from assistant.search import CANDIDATES, FUSION, FUSION_WEIGHT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import CachedEmbedder, bench_args, bench_parser, log, scifact_task  # noqa: E402
from quality import open_retriever, search_all, table  # noqa: E402
from stores import second_store  # noqa: E402


def engine_search(store, embedder, task, ranker) -> tuple[dict, float]:
    """Every claim through the engine's hybrid_search: the found chunks (as passages with a source) and p50 ms."""
    from pymilvus import AnnSearchRequest

    found, times = {}, []
    for qid, text in task.queries.items():
        vector = np.asarray(embedder.encode([text])[0], dtype=np.float32).tolist()
        words = " ".join(terms([text])[0])
        requests = [AnnSearchRequest(data=[vector], anns_field="dense", param={"metric_type": "IP"}, limit=CANDIDATES)]
        if words:
            requests.append(
                AnnSearchRequest(data=[words], anns_field="sparse", param={"metric_type": "BM25"}, limit=CANDIDATES)
            )
        started = time.perf_counter()
        hits = store.db.client.hybrid_search(
            store.chunk_table, requests, ranker, limit=CANDIDATES, output_fields=["source"]
        )[0]
        times.append((time.perf_counter() - started) * 1000)
        found[qid] = [SimpleNamespace(source=hit["entity"]["source"]) for hit in hits]
    return found, float(np.percentile(times, 50))


def row(name: str, task, found: dict, ms: float) -> dict:
    scores = task.score(found)
    return {"fusion": name, **{m: round(float(np.mean(v)), 4) for m, v in scores.items()}, "p50 ms": round(ms, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    from pymilvus import RRFRanker, WeightedRanker

    args = bench_args(bench_parser(__doc__), argv)
    embedder = CachedEmbedder()
    task = scifact_task(args.limit_docs, 50)
    cached = open_retriever(task, args.work, embedder)
    milvus, _ = second_store(cached, task, args.work, embedder, "milvus")
    embedder.remember(list(task.queries.values()))
    started = time.perf_counter()
    ours = search_all(milvus, task, "hybrid", CANDIDATES, (FUSION, FUSION_WEIGHT))
    rows = [row(f"ours: {FUSION}, dense {FUSION_WEIGHT}", task, ours, 0.0)]
    rows[0]["p50 ms"] = round((time.perf_counter() - started) * 1000 / len(task.queries), 1)  # a mean: one pass
    for name, ranker in (
        ("engine: RRFRanker(60)", RRFRanker(60)),
        (f"engine: WeightedRanker({FUSION_WEIGHT}, {1 - FUSION_WEIGHT:.1f})", WeightedRanker(FUSION_WEIGHT, 0.4)),
        ("engine: WeightedRanker(0.5, 0.5)", WeightedRanker(0.5, 0.5)),
    ):
        found, ms = engine_search(milvus.index, embedder, task, ranker)
        rows.append(row(name, task, found, ms))
        log(str(rows[-1]))
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
