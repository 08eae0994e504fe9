"""Benchmark: bf16 (or ONNX Runtime, --against onnx) against fp32 embeddings: SciFact test nDCG@10 (dense and
hybrid) and encoding speed, in one run.

- Quality: the SciFact index is built once per precision with the default settings by `build_index` in --work
  (default /tmp/precision-bench, outside the repository); the claims are embedded in each precision and asked
  of both indexes, so the table also shows querying across precisions. The stored vectors of the two indexes
  are compared chunk by chunk (cosine).
- Speed: the same seeded sample of chunk texts is encoded in fp32 and in bf16, alternately, --rounds times;
  the ratio is of the median times, so that both precisions share the machine's load.

A second run reuses the indexes (an unchanged corpus embeds nothing). The first embeds 15,798 chunks per
precision.

    PYTHONPATH=. .venv/bin/python benchmarks/precision.py --out /tmp/precision.json
    PYTHONPATH=. .venv/bin/python benchmarks/precision.py --against onnx --out /tmp/onnx.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.embedding import Embedder, native_bf16
from assistant.index import build_index
from assistant.index.faiss.store import Index, open_index
from assistant.search import Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import REPO, CachedEmbedder, Task, log, scifact_task, throttled, write_corpus  # noqa: E402
from quality import search_all, table  # noqa: E402

PRECISIONS = ["fp32", "bf16"]  # fp32 and the one measured against it (--against)
MODES = ("dense", "hybrid")
BUDGET = 0.005  # the most test nDCG@10 that bf16 (or onnx) may cost
TIME_RATIO = "time / fp32's"


def build(task: Task, work: Path, embedder: CachedEmbedder) -> Index:
    """Build (or reuse) the task's index in the embedder's precision."""
    settings = Settings(
        corpus=task.corpus,
        index=work / f"{task.name}-{embedder.requested}-index",
        min_score=-1.0,
        precision=embedder.requested,
    )
    summary = build_index(settings, embedder, progress=throttled(f"{task.name} {embedder.requested}"))
    log(f"{task.name} {embedder.requested}: {summary.line()}")
    return open_index(settings.index, settings.model, settings.chunking())


def quality_rows(task: Task, indexes: dict[str, Index], embedders: dict[str, CachedEmbedder]) -> list[dict]:
    """Test nDCG@10 for every (index precision, query precision, mode)."""
    rows = []
    for built in PRECISIONS:
        for asked in PRECISIONS:
            retriever = Retriever(indexes[built], embedders[asked], -1.0)
            for mode in MODES:
                scores = task.score(search_all(retriever, task, mode, task.k))
                rows.append(
                    {
                        "index": built,
                        "queries": asked,
                        "mode": mode,
                        "test nDCG@10": round(float(np.mean(scores["nDCG@10 test"])), 4),
                    }
                )
                log(f"  {rows[-1]}")
    return rows


def vector_agreement(indexes: dict[str, Index]) -> dict:
    """Cosine between the fp32 and the other vector of each chunk (the builds hold the same chunks, in order)."""
    other = PRECISIONS[1]
    rows = list(range(len(indexes["fp32"])))
    ids = {p: [r["id"] for r in indexes[p].chunks_of(sorted(indexes[p].manifest["documents"]))] for p in PRECISIONS}
    if ids["fp32"] != ids[other]:
        sys.exit(f"the fp32 and {other} indexes hold different chunks: rebuild both with the same code")
    cosines = np.sum(indexes["fp32"].stored_vectors(rows) * indexes[other].stored_vectors(rows), axis=1)
    return {
        "chunks": len(rows),
        "min": round(float(cosines.min()), 6),
        "mean": round(float(cosines.mean()), 6),
        "0.1th percentile": round(float(np.percentile(cosines, 0.1)), 6),
    }


def speed(index: Index, sample: int, rounds: int) -> dict:
    """Seconds to encode the same chunk texts in each precision, alternating, and the ratio of the medians."""
    texts = [
        r["embed_text"]
        for r in index.chunks(random.Random(0).sample(range(len(index)), min(sample, len(index)))).values()
    ]
    embedders = {p: Embedder(precision=p) for p in PRECISIONS}
    for embedder in embedders.values():  # load the model and warm both paths before timing
        embedder.encode(texts[:32])
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for round_ in range(rounds):
        for p in PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]:
            started = time.perf_counter()
            embedders[p].encode(texts)
            seconds[p].append(round(time.perf_counter() - started, 2))
            log(f"  speed round {round_ + 1}: {p} {seconds[p][-1]} s for {len(texts)} chunks")
    median = {p: statistics.median(seconds[p]) for p in PRECISIONS}
    return {
        "chunks": len(texts),
        "rounds": rounds,
        "seconds": seconds,
        "chunks per second": {p: round(len(texts) / median[p], 1) for p in PRECISIONS},
        TIME_RATIO: round(median[PRECISIONS[1]] / median["fp32"], 3),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/precision-bench"))
    parser.add_argument("--limit-docs", type=int, default=None, help="only the first N documents (a quick check)")
    parser.add_argument("--sample", type=int, default=256, help="chunks encoded per speed round")
    parser.add_argument("--rounds", type=int, default=5, help="speed rounds per precision")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--against", choices=("bf16", "onnx"), default="bf16", help="what is measured against fp32")
    args = parser.parse_args(argv)
    PRECISIONS[1] = args.against
    if args.work.resolve().is_relative_to(REPO):
        sys.exit("--work must be outside the repository: the evaluation data never goes into it")
    task = scifact_task(args.limit_docs, 50)
    task.corpus = args.work / "scifact-corpus"
    write_corpus(task.corpus, task.documents)
    embedders = {p: CachedEmbedder(precision=p) for p in PRECISIONS}
    indexes = {p: build(task, args.work, embedders[p]) for p in PRECISIONS}
    for embedder in embedders.values():
        embedder.remember(list(task.queries.values()))
    results = {
        "native bf16": native_bf16(),
        "quality": quality_rows(task, indexes, embedders),
        "vectors": vector_agreement(indexes),
        "speed": speed(indexes["fp32"], args.sample, args.rounds),
    }
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict) -> None:
    score = {(r["index"], r["queries"], r["mode"]): r["test nDCG@10"] for r in results["quality"]}
    print(f"CPU has native bf16 (AVX512-BF16 or AMX): {results['native bf16']}")
    print("\nSciFact (BEIR), 300 test claims, nDCG@10\n" + table(results["quality"]))
    other = PRECISIONS[1]
    for mode in MODES:
        cost = score[("fp32", "fp32", mode)] - score[(other, other, mode)]
        within = "within" if cost <= BUDGET else "OVER"
        print(f"{mode}: {other} costs {cost:+.4f} nDCG@10 against fp32 ({within} {BUDGET})")
    print(f"\nfp32 and {other} vectors of the same chunks, cosine: {results['vectors']}")
    s = results["speed"]
    print(
        f"\nencoding {s['chunks']} chunks, {s['rounds']} rounds: {s['chunks per second']} chunks/s; "
        f"{other} takes {s[TIME_RATIO]}x the time of fp32"
    )


if __name__ == "__main__":
    main()
