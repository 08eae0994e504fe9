"""Benchmark: retrieval quality of the dense, bm25 and hybrid modes, through the product's own Retriever.

- SciFact (BEIR): the fusion (min-max weight or reciprocal rank fusion) is chosen on the train split by
  nDCG@10; the test split is reported: nDCG@10 and Recall@100 for each mode.
- SQuAD v1.1 dev: every paragraph is a document; answer recall at 1, 5 and 20 and MRR@20 for each mode.
The relevance floor ("not in the documents") is measured by benchmarks/no_answer.py.

Indexes are built with the default settings by `build_index` in --work (default /tmp/assistant-bench,
outside the repository); a second run reuses them, since an unchanged corpus embeds nothing. The first run
embeds about 25,000 chunks (some 15 minutes on 2 cores).

    PYTHONPATH=. .venv/bin/python benchmarks/quality.py --out /tmp/quality.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.index import build_index
from assistant.index.faiss.store import open_index
from assistant.search import Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import (  # noqa: E402  (benchmarks/ is not a package)
    CachedEmbedder,
    Task,
    bench_args,
    bench_parser,
    document_ranking,
    log,
    scifact_task,
    squad_task,
    throttled,
    write_corpus,
)

WEIGHTS = [round(w * 0.1, 1) for w in range(11)]
RECALL_AT = 100


def open_retriever(task: Task, work: Path, embedder: CachedEmbedder) -> Retriever:
    """Build (or reuse) the task's index with the default settings, and a Retriever with no floor."""
    task.corpus = work / f"{task.name}-corpus"
    write_corpus(task.corpus, task.documents)
    settings = Settings(corpus=task.corpus, index=work / f"{task.name}-index", min_score=-1.0)
    summary = build_index(settings, embedder, progress=throttled(task.name))
    log(f"{task.name}: {summary.line()}")
    embedder.remember(list(task.queries.values()))
    return Retriever(open_index(settings.index, settings.model, settings.chunking()), embedder, -1.0)


def search_all(retriever: Retriever, task: Task, mode: str, k: int, fusion: tuple[str, float] | None = None) -> dict:
    retriever.mode = mode
    if fusion:
        retriever.fusion, retriever.weight = fusion
    return {q: retriever.search(text, k) for q, text in task.queries.items()}


def recall_at(found: dict, qrels: dict[str, dict[str, int]], at: int = RECALL_AT) -> float:
    values = [len(set(document_ranking(found[q])[:at]) & set(rel)) / len(rel) for q, rel in qrels.items()]
    return float(np.mean(values))


def choose_fusion(retriever: Retriever, task: Task) -> tuple[tuple[str, float], list[dict]]:
    """The fusion with the best SciFact train nDCG@10, and the grid that was tried."""
    grid = [("minmax", w) for w in WEIGHTS] + [("rrf", 0.0)]
    tried = []
    for fusion in grid:
        scores = task.score(search_all(retriever, task, "hybrid", 50, fusion))
        tried.append(
            {
                "fusion": fusion[0],
                "weight": fusion[1],
                "train nDCG@10": round(float(np.mean(scores["nDCG@10 train"])), 4),
            }
        )
        log(f"  fusion {fusion}: train nDCG@10 {tried[-1]['train nDCG@10']}")
    best = max(tried, key=lambda row: row["train nDCG@10"])
    return (best["fusion"], best["weight"]), tried


def scifact_rows(retriever: Retriever, task: Task, fusion: tuple[str, float]) -> list[dict]:
    rows = []
    test = task.qrels["test"]
    for mode in ("dense", "bm25", "hybrid"):
        scores = task.score(search_all(retriever, task, mode, 50, fusion))
        deep = search_all(retriever, task, mode, 6 * RECALL_AT, fusion)
        rows.append(
            {
                "mode": mode,
                "test nDCG@10": round(float(np.mean(scores["nDCG@10 test"])), 4),
                "train nDCG@10": round(float(np.mean(scores["nDCG@10 train"])), 4),
                f"test Recall@{RECALL_AT}": round(recall_at(deep, test), 4),
            }
        )
        log(f"  scifact {rows[-1]}")
    return rows


def squad_rows(retriever: Retriever, task: Task, fusion: tuple[str, float]) -> list[dict]:
    rows = []
    for mode in ("dense", "bm25", "hybrid"):
        scores = task.score(search_all(retriever, task, mode, 20, fusion))
        rows.append({"mode": mode, **{m: round(float(np.mean(v)), 4) for m, v in scores.items()}})
        log(f"  squad {rows[-1]}")
    return rows


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    cells = [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in [columns, *cells])


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--questions", type=int, default=None, help="SQuAD questions, a seeded sample (default: all)")
    args = bench_args(parser, argv)
    embedder = CachedEmbedder()
    scifact = scifact_task(args.limit_docs, 50)
    retriever = open_retriever(scifact, args.work, embedder)
    fusion, tried = choose_fusion(retriever, scifact)
    results = {
        "fusion": {"method": fusion[0], "weight": fusion[1], "grid": tried},
        "scifact": scifact_rows(retriever, scifact, fusion),
    }
    squad = squad_task(args.limit_docs, args.questions or 10**6)
    squad_retriever = open_retriever(squad, args.work, embedder)
    squad_retriever.fusion, squad_retriever.weight = fusion
    results["squad"] = squad_rows(squad_retriever, squad, fusion)
    print(
        f"fusion chosen on SciFact train: {fusion[0]}"
        + (f", dense weight {fusion[1]}" if fusion[0] == "minmax" else "")
    )
    print("\nSciFact (BEIR), 300 test claims\n" + table(results["scifact"]))
    print("\nSQuAD v1.1 dev, answer recall\n" + table(results["squad"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
