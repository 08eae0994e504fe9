"""The filtered search's cost: a reader who may read 1%, 10% or 100% of a 100,000-chunk index, against the search
of the whole index (docs/benchmarks.md#permissions).

Reads the large FAISS index and the questions that benchmarks/speed.py leaves in its work folder (run it first:
`benchmarks/speed.py --work /tmp/speed-bench ...`). A reader's documents are drawn at random (seeded) until their
chunks reach the share, and given to the store as the scope a policy makes of them: the files named one by one,
the costliest form (a policy of whole folders gives a few ranges instead). The searches are the product's own
(Retriever.ranked through the reader's view, index.readable), hybrid, k = 5. Reported: the first question of a
reader (their view of the catalog is made then, and their scope's rows found, both kept for the next ones), then
p50/p99 of the rest, as ratios of the whole index's search in the same run, and whether every question got k
passages.

    PYTHONPATH=. .venv/bin/python benchmarks/permissions.py --work /tmp/speed-bench --questions 200
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.index.faiss.store import open_index
from assistant.index.readable import readable
from assistant.index.store import Scope
from assistant.question import Question
from assistant.search import Retriever

SHARES = (0.01, 0.10, 1.0)
K = 5


def reader_scope(catalog: dict, share: float, seed: int = 7) -> Scope:
    """Documents drawn at random until their chunks reach `share` of the index's."""
    paths = sorted(catalog)
    random.Random(seed).shuffle(paths)
    total, wanted, held = sum(e["chunks"] for e in catalog.values()), [], 0
    for path in paths:
        if held >= share * total:
            break
        wanted.append(path)
        held += catalog[path]["chunks"]
    return Scope(tuple(sorted(wanted)))


def timed(retriever: Retriever, questions: list[str]) -> tuple[float, list[float], int]:
    """(first question's ms, the others' ms, questions answered with fewer than K passages)."""
    times, short = [], 0
    for question in questions:
        start = time.perf_counter()
        passages, _ = retriever.ranked(question, K)
        times.append((time.perf_counter() - start) * 1000)
        short += len(passages) < K
    return times[0], times[1:], short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/speed-bench"))
    parser.add_argument("--questions", type=int, default=200)
    args = parser.parse_args()
    questions = json.loads((args.work / "questions.json").read_text())["timed"][: args.questions]
    index = open_index(args.work / "large-index")
    embedder = Embedder(Settings().model)
    # embedded once, before: the embedding is not what is measured
    asked = [Question.read(q).with_vector(v) for q, v in zip(questions, embedder.encode(questions))]
    whole = Retriever(index, embedder)
    timed(whole, asked[:20])  # warm: the BM25 arrays and the vectors in memory
    first, base, _ = timed(whole, asked)
    rows = [("whole index (no filter)", 1.0, first, base, 0)]
    for share in SHARES:
        scope = reader_scope(index.catalog(), share)
        start = time.perf_counter()
        view = readable(index, scope, scope.allows)  # once per reader and build (service.Assistant._view)
        built = (time.perf_counter() - start) * 1000
        first, times, short = timed(Retriever(view, embedder), asked)
        first += built
        name = f"{share:.0%} readable ({len(scope.paths):,} documents named)"
        rows.append((name, len(view) / len(index), first, times, short))
    p50, p99 = statistics.median(base), statistics.quantiles(base, n=100)[98]
    print(f"{len(index):,} chunks, {len(asked)} questions, hybrid, k={K}; ratios against the whole index's search\n")
    print("| reader | chunks readable | first question ms | p50 ms | p99 ms | p50 × | p99 × | fewer than k |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, part, first, times, short in rows:
        q50, q99 = statistics.median(times), statistics.quantiles(times, n=100)[98]
        ratios = f"{q50 / p50:.2f} | {q99 / p99:.2f}"
        print(f"| {name} | {part:.1%} | {first:.0f} | {q50:.1f} | {q99:.1f} | {ratios} | {short} |")


if __name__ == "__main__":
    main()
