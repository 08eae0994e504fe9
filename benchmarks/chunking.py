"""Benchmark: which chunk size (`chunk_tokens`, in word pieces) retrieves best with the bundled model.

For each chunk size (overlap = size // 5) it builds a real index with `build_index` and the real
all-MiniLM-L6-v2 `Embedder`, searches it with `Retriever`, and measures:

- SQuAD v1.1 dev: every paragraph is one .txt document; a question is answered at k when one of
  the top-k passages contains one of its answer strings. Answer recall@1/5/20 and MRR@20 over a
  seeded sample of questions.
- BEIR SciFact: every abstract is one .txt (title, blank line, text); documents are ranked by
  their best passage; nDCG@10 on the train split (for choosing) and the test split (for reporting).

Each index is searched in every --modes (default: dense, and hybrid, the product's default), so a
row is one (chunk size, mode) configuration. It also counts chunks and chunks per document, and
prints paired 95% intervals of each size's difference from the best size in the same mode, so that
"within noise" can be judged.

The evaluation data is read from /work/shared/eval and the temporary corpora and indexes are
written outside the repository (a temporary folder, or --work). Embedding is the cost: the full
run takes well over an hour on a 2-core machine; use --dataset and --limit-docs for a quick run.

Run from the repository root (add --resume to carry on after an interrupted run with the same --out):

    PYTHONPATH=. .venv/bin/python benchmarks/chunking.py --dataset both --out /tmp/chunking.json
    PYTHONPATH=. .venv/bin/python benchmarks/chunking.py --dataset squad --sizes 64 128 --limit-docs 200
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.index import build_index
from assistant.index.faiss.store import Index, open_index
from assistant.search import Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import (  # noqa: E402  (benchmarks/ is not a package)
    REPO,
    CachedEmbedder,
    Task,
    log,
    scifact_task,
    squad_task,
    throttled,
    write_corpus,
)

SIZES = [64, 96, 128, 192, 254]
MODES = ["dense", "hybrid"]


# ---- running one configuration -------------------------------------------------------------------


def run_size(task: Task, size: int, modes: list[str], work: Path, embedder: CachedEmbedder) -> dict[str, object]:
    """Build a fresh index at this chunk size, search every query in every mode; counts and per-query scores."""
    settings = Settings(
        corpus=task.corpus,
        index=work / f"{task.name}-index-{size}",
        chunk_tokens=size,
        chunk_overlap=size // 5,
        min_score=-1.0,
    )
    summary = build_index(settings, embedder, rebuild=True, progress=throttled(f"{task.name} {size}"))
    log(f"  {task.name} {size}: {summary.line()}")
    index = open_index(settings.index, settings.model, settings.chunking())
    try:
        retriever = Retriever(index, embedder, settings.min_score)
        scores = {
            mode: task.score({q: retriever.search(text, task.k, mode=mode) for q, text in task.queries.items()})
            for mode in modes
        }
        counts = {"chunks": summary.chunks, **chunk_counts(index), "build_s": round(summary.seconds, 1)}
    finally:
        index.close()
        shutil.rmtree(settings.index, ignore_errors=True)
    return {"counts": counts, "per_query": scores}


def chunk_counts(index: Index) -> dict[str, float]:
    counts = [doc["chunks"] for doc in index.manifest["documents"].values()]
    return {"per_doc": round(float(np.mean(counts)), 2), "max_per_doc": int(max(counts))}


# ---- summarising ---------------------------------------------------------------------------------


def summarise(name: str, size: int, mode: str, result: dict[str, object]) -> dict[str, object]:
    """One configuration's flat row for one dataset: counts, then metric means (prefixed by dataset)."""
    row = {f"{name} {key}": value for key, value in result["counts"].items()}
    for metric, values in result["per_query"][mode].items():
        row[f"{name} {metric}"] = round(float(np.mean(values)), 4)
        row[f"{name} {metric} n"] = len(values)
    return {"chunk_tokens": size, "chunk_overlap": size // 5, "mode": mode, **row}


def paired_intervals(per_size: dict[int, dict[str, list[float]]]) -> dict[str, dict[int, tuple[float, float]]]:
    """For each metric: every size's mean difference from the best size and its paired 95% half-width."""
    intervals: dict[str, dict[int, tuple[float, float]]] = {}
    metrics = next(iter(per_size.values())).keys()
    for metric in metrics:
        values = {size: np.asarray(scores[metric]) for size, scores in per_size.items()}
        best = max(values, key=lambda size: values[size].mean())
        intervals[metric] = {}
        for size, v in values.items():
            diff = v - values[best]
            half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            intervals[metric][size] = (round(float(diff.mean()), 4), round(float(half), 4))
    return intervals


def format_table(rows: list[dict[str, object]]) -> str:
    """Plain-text table, one row per configuration; the per-metric `n` columns are left out."""
    columns = [key for key in rows[0] if not key.endswith(" n")]
    cells = [[_cell(c, row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def format_intervals(intervals: dict[str, dict[int, tuple[float, float]]]) -> str:
    sizes = sorted(next(iter(intervals.values())))
    lines = [
        "difference from the best size, mean ± paired 95% half-width (0 marks the best):",
        "metric".ljust(29) + "".join(str(s).rjust(18) for s in sizes),
    ]
    for metric, by_size in intervals.items():
        lines.append(metric.ljust(29) + "".join(f"{by_size[s][0]:+.4f} ±{by_size[s][1]:.4f}".rjust(18) for s in sizes))
    return "\n".join(lines)


def _cell(column: str, value: object) -> str:
    return f"{value:.4f}" if "@" in column and isinstance(value, float) else str(value)


# ---- main ----------------------------------------------------------------------------------------


def run_task(
    task: Task, sizes: list[int], modes: list[str], work: Path, embedder: CachedEmbedder
) -> Iterator[tuple[int, dict[str, dict]]]:
    """All sizes on one dataset, one at a time: yields the size and its result (counts, per-query scores by mode)."""
    task.corpus = work / f"{task.name}-corpus"
    write_corpus(task.corpus, task.documents)
    log(f"{task.name}: {len(task.documents)} documents, {len(task.queries)} queries; embedding the queries")
    embedder.remember(list(task.queries.values()))
    for size in sizes:
        result = run_size(task, size, modes, work, embedder)
        for mode in modes:
            row = summarise(task.name, size, mode, result)
            log(f"  {task.name} {size}: " + ", ".join(f"{k} {v}" for k, v in row.items() if not k.endswith(" n")))
        yield size, result


def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Every dataset and size; with --out, the JSON is rewritten after each chunk size."""
    embedder = CachedEmbedder()
    tasks = {
        "squad": lambda: squad_task(args.limit_docs, args.questions),
        "scifact": lambda: scifact_task(args.limit_docs, args.scifact_k),
    }
    done = previous_results(args)
    for name in datasets(args):
        sizes = [size for size in args.sizes if f"{name} {size}" not in done]
        if sizes:
            for size, result in run_task(tasks[name](), sizes, args.modes, work, embedder):
                done[f"{name} {size}"] = result
                save(report(args, done), args.out)
    return report(args, done)


def report(args: argparse.Namespace, done: dict[str, dict]) -> dict[str, object]:
    """Rows (one per chunk size and mode), paired differences, and the raw results they come from."""
    sizes = sorted(args.sizes)
    rows = {(s, m): {"chunk_tokens": s, "chunk_overlap": s // 5, "mode": m} for m in args.modes for s in sizes}
    intervals: dict[str, dict[int, tuple[float, float]]] = {}
    for name in datasets(args):
        results = {size: done[f"{name} {size}"] for size in sizes if f"{name} {size}" in done}
        for mode in args.modes if results else []:
            for size, result in results.items():
                rows[size, mode].update(summarise(name, size, mode, result))
            paired = paired_intervals({size: result["per_query"][mode] for size, result in results.items()})
            intervals.update({f"{name} {metric} {mode}": v for metric, v in paired.items()})
    # per-query scores are in sorted query-id order, the same for every size
    return {"settings": vars(args), "rows": list(rows.values()), "paired_differences": intervals, "results": done}


def datasets(args: argparse.Namespace) -> list[str]:
    return ["squad", "scifact"] if args.dataset == "both" else [args.dataset]


def previous_results(args: argparse.Namespace) -> dict[str, dict]:
    """With --resume, the chunk sizes already in --out (a run that was stopped), if it measured the same things."""
    if not (args.resume and args.out and args.out.exists()):
        return {}
    previous = json.loads(args.out.read_text())
    same = ("questions", "limit_docs", "scifact_k")
    if any(previous["settings"].get(key) != getattr(args, key) for key in same) or not set(args.modes) <= set(
        previous["settings"]["modes"]
    ):
        sys.exit(f"--resume: {args.out} was written with other --questions, --limit-docs, --scifact-k or --modes")
    log(f"resuming: {', '.join(previous['results'])} already measured in {args.out}")
    return previous["results"]


def save(results: dict[str, object], out: Path | None) -> None:
    if out:
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["squad", "scifact", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="chunk_tokens values (overlap = size // 5)")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["dense", "bm25", "hybrid"],
        default=MODES,
        help="search modes to evaluate each index in (the index is built once)",
    )
    parser.add_argument("--questions", type=int, default=2000, help="SQuAD questions, a seeded sample")
    parser.add_argument("--limit-docs", type=int, default=None, help="write only the first N documents of each dataset")
    parser.add_argument("--scifact-k", type=int, default=100, help="passages per claim, so that 10 documents remain")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for corpora and indexes (default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--resume", action="store_true", help="keep the chunk sizes already measured in --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.work and args.work.resolve().is_relative_to(REPO):
        sys.exit(f"--work {args.work} is inside the repository; the evaluation data must stay outside it")
    with tempfile.TemporaryDirectory(prefix="chunking-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = run(args, work)
    print(format_table(results["rows"]))
    print()
    print(format_intervals(results["paired_differences"]))


if __name__ == "__main__":
    main()
