"""Benchmark: the highlighted sentences, scored by the sentence vectors a build keeps (pooled from the passage's own
word pieces, answers.POOLED_MARGIN) against sentences embedded alone at question time (the way before them,
answers.HIGHLIGHT_MARGIN): on SQuAD v1.1 dev, does a marked sentence hold the answer, and what does it cost?

- Passages: the 48 dev articles, one document each (title, paragraphs), chunked by the product's chunker with
  the default settings; a question's passage is the one that holds its (first) answer whole. Its sentence
  vectors come from the build's own function (embedding.embed_chunks).
- Each question's passage is highlighted both ways by answers.highlight with the floor answers use
  (SENTENCE_FLOOR). Only passages of two sentences or more count (one sentence is never marked).
- "holds the answer": a marked sentence contains the answer's span; "best": the top-scored sentence does.
  The questions are shuffled (seeded) and split in halves: the margin was tuned on the first, the second is held.
- Time: highlight() over the passages of --per-answer questions at a time (as an answer shows 5 passages),
  first showing (nothing remembered), questions embedded beforehand, one thread as at question time.

    PYTHONPATH=. .venv/bin/python benchmarks/highlights.py --questions 3000 --out /tmp/highlights.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from assistant.answers import SENTENCE_FLOOR, highlight
from assistant.chunking import chunk_documents
from assistant.config import Settings
from assistant.documents import Chunk, Document, Passage, SentenceVectors
from assistant.embedding import Embedder, embed_chunks
from assistant.lru import LRU
from assistant.question import clean_query

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import SEED, log, squad_articles  # noqa: E402


def gold_passages(embedder: Embedder, limit: int) -> list[tuple[str, Passage, int, int]]:
    """(question, its passage with the build's sentence vectors, answer start, answer end in the passage)."""
    settings = Settings()
    found: list[tuple[str, Chunk, int, int]] = []
    for a, article in enumerate(squad_articles()):
        texts, asked, at = [], [], 0
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                start = at + answer["answer_start"]
                asked.append((qa["question"], start, start + len(answer["text"])))
            texts.append(paragraph["context"])
            at += len(paragraph["context"]) + 2
        document = Document(f"{a:02d}.txt", article["title"].replace("_", " "), "\n\n".join(texts), "-")
        chunks = chunk_documents(settings, embedder, [document])
        for question, start, end in asked:
            holding = next((c for c in chunks if c.start <= start and end <= c.end), None)
            if holding is not None:
                found.append((question, holding, start - holding.start, end - holding.start))
    random.Random(SEED).shuffle(found)
    found = found[:limit]
    unique = list({c.id: c for _, c, _, _ in found}.values())
    log(f"{len(found)} questions, {len(unique)} passages to embed")
    _, packed = embed_chunks(embedder, unique)
    sentences = {c.id: SentenceVectors.unpack(p) for c, p in zip(unique, packed)}
    return [
        (q, Passage(c.text, c.source, None, 1.0, c.start, c.end, c.id, sentences=sentences[c.id]), s, e)
        for q, c, s, e in found
    ]


def scores(rows: list[tuple[Passage, np.ndarray, int, int]], pooled: bool) -> dict:
    held, best, marks, none = [], [], [], 0
    for passage, vector, start, end in rows:
        shown = replace(passage, highlights=[], sentences=passage.sentences if pooled else None)
        stored = passage.sentences
        assert stored is not None
        if len(stored.spans) < 2:
            continue
        highlight([shown], vector, EMBEDDER, floor=SENTENCE_FLOOR)
        held.append(any(s <= start and end <= e for s, e in shown.highlights))
        marks.append(len(shown.highlights))
        none += not shown.highlights
        sentence_scores = (
            stored.vectors.astype(np.float32) @ vector
            if pooled
            else EMBEDDER.encode([passage.text[s:e] for s, e in stored.spans], remember=True) @ vector
        )
        s, e = stored.spans[int(np.argmax(sentence_scores))]
        best.append(s <= start and end <= e)
    return {
        "passages": len(held),
        "marked_holds_answer": round(float(np.mean(held)), 4),
        "best_holds_answer": round(float(np.mean(best)), 4),
        "marks_per_passage": round(float(np.mean(marks)), 3),
        "none_marked": none,
    }


def timing(rows: list[tuple[Passage, np.ndarray, int, int]], per_answer: int, pooled: bool) -> dict:
    EMBEDDER._remembered = LRU(EMBEDDER._remembered.size)  # a first showing
    times = []
    for at in range(0, len(rows) - per_answer + 1, per_answer):
        group = rows[at : at + per_answer]
        shown = [replace(p, highlights=[], sentences=p.sentences if pooled else None) for p, _, _, _ in group]
        started = time.perf_counter()
        highlight(shown, group[0][1], EMBEDDER, floor=SENTENCE_FLOOR)
        times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=3000)
    parser.add_argument("--per-answer", type=int, default=5, help="passages highlighted together, as in an answer")
    parser.add_argument("--timed", type=int, default=200, help="answers timed per way")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    global EMBEDDER
    EMBEDDER = Embedder(precision=args.precision)
    found = gold_passages(EMBEDDER, args.questions)
    vectors = EMBEDDER.encode([clean_query(q) for q, _, _, _ in found])
    rows = [(p, v, s, e) for (_, p, s, e), v in zip(found, vectors)]
    half = len(rows) // 2
    results: dict = {"settings": vars(args) | {"out": str(args.out)}}
    for name, part in (("tune", rows[:half]), ("held", rows[half:])):
        results[name] = {way: scores(part, way == "pooled") for way in ("embedded", "pooled")}
    timed = rows[: args.timed * args.per_answer]
    results["time"] = {way: timing(timed, args.per_answer, way == "pooled") for way in ("embedded", "pooled")}
    print("| half | sentences scored by | passages | a marked sentence holds the answer | the best one does | "
          "marks per passage | none marked |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("tune", "held"):
        for way, label in (("embedded", "embedded alone (before)"), ("pooled", "the build's vectors")):
            r = results[name][way]
            print(
                f"| {name} | {label} | {r['passages']} | {r['marked_holds_answer']:.3f} | "
                f"{r['best_holds_answer']:.3f} | {r['marks_per_passage']:.2f} | {r['none_marked']} |"
            )
    for way, r in results["time"].items():
        print(f"highlight of {args.per_answer} passages, {way}: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


EMBEDDER: Embedder

if __name__ == "__main__":
    main()
