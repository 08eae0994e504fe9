"""Benchmark of the parses kept on disk (assistant/parses.py): what a question costs when its passages are
parsed, against when their parses are read from the index folder's parses.sqlite, as in a second process.

Over the seed-in-squad set of benchmarks/multidoc.py (its index, built there first), every answerable question
and conversation turn is asked four times, each ask with the answer cache and the memories of passages shown
emptied (the sentence vectors and the in-memory parses), so that only the disk differs:
- "parsed": no parse cache (what multidoc.py and speed.py measure);
- "first": a new, empty parses.sqlite, which each ask fills;
- "kept": the same file, now holding the parses of every passage the questions show;
- "parsed again": as the first, to show the noise of the machine between runs.
It reports p50 / p99 of the whole ask, the file's size, and whether every answer is the same in all four.

    PYTHONPATH=. .venv/bin/python benchmarks/parses.py --out /tmp/parses.json   # ~1 min after multidoc.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multidoc  # noqa: E402
from evaldata import log  # noqa: E402
from speed import forget_passages  # noqa: E402


def percentiles(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {"p50": round(ordered[len(ordered) // 2], 1), "p99": round(ordered[int(len(ordered) * 0.99)], 1)}


def run(assistant, turns: list[tuple[str, list[str]]], cache: Path | None) -> tuple[list[float], list]:
    """Ask each question anew (answer cache and memories emptied), with parses kept in `cache` (None: none)."""
    from assistant import entities
    from assistant.service import AnswerCache

    times, answers = [], []
    for question, history in turns:
        assistant.answers = AnswerCache()
        forget_passages(assistant.embedder)  # the disk's parses too: then keep the ones asked for
        entities.keep_parses(cache)
        started = time.perf_counter()
        reply = assistant.ask(question, multidoc.K, history=history).to_json()
        times.append((time.perf_counter() - started) * 1000)
        answers.append((reply["answer"], [p["chunk_id"] for p in reply["passages"]]))
    return times, answers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-multidoc"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from assistant.config import Settings
    from assistant.service import Assistant

    index = args.work / "index" / "seed-in-squad"
    if not index.exists():
        sys.exit(f"no index at {index} — run: benchmarks/multidoc.py --sets seed-in-squad")
    assistant = Assistant(Settings(corpus=args.work / "sets" / "seed-in-squad", index=index))
    assistant.warm_up()
    turns = [
        (turn["question"], history)
        for record in multidoc.questions("seed-in-squad")
        if record["kind"] != "offtopic"
        for _, turn, history in multidoc.asks(record, True)
    ]
    turns = [(question, [turn["question"] for turn in history]) for question, history in turns]
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "parses.sqlite"
        results = {}
        # "parsed" again at the end: the spread between its two runs is the noise of the machine
        for name, kept in (("parsed", None), ("first", cache), ("kept", cache), ("parsed again", None)):
            times, answers = run(assistant, turns, kept)
            results[name] = {**percentiles(times), "n": len(times), "answers": answers}
            log(f"{name}: {percentiles(times)}")
        size = cache.stat().st_size + sum(f.stat().st_size for f in Path(folder).glob("parses.sqlite-*"))
    same = all(r["answers"] == results["parsed"]["answers"] for r in results.values())
    report = {name: {k: v for k, v in r.items() if k != "answers"} for name, r in results.items()}
    report |= {"cache bytes": size, "same answers": same}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
