"""Experiment for issue 15 item 2: would reranking the first 30 fused candidates by a few fitted features put the
answer passage in the top 5 more often? Not a test, and nothing of it is in the product (see
docs/benchmarks.md#reranking-the-candidates).

Questions with their answer strings: 600 drawn from the 24 even-numbered SQuAD dev articles, asked of the
squad-half index of benchmarks/confidence.py (split "train"), and the answerable questions and first turns of
the sets of benchmarks/multidoc.py (their tune and held halves; questions asked within sources left out).
Each is searched through the product's Retriever (hybrid, 30 deep); a candidate is right when it holds an
answer string (and, for the multidoc sets, comes from the question's source). Features per candidate:
- rank: log(1 + its fused rank); cos: its cosine;
- cover: the rarity-weighed share of the question's terms it holds (confidence.rarity);
- title: the same share held by its document's title;
- typed: it holds an entity of the asked type (spaCy, as answers read them);
- pairs: the share of the question's pairs of consecutive terms that it holds side by side (a phrase);
- struct: for "who spoke" questions someone the text has speaking, for "which countries took part" two
  countries a sentence says took part (entities' own tests).
A logistic model is fitted on the right/wrong candidates of --fit (train: SQuAD's; tune: the multidoc tune
halves), and every set is reranked by it: answer in the top 5, before and after.

    PYTHONPATH=. .venv/bin/python benchmarks/rerank.py --fit train    # ~1 min; the rows are cached in --work
    PYTHONPATH=. .venv/bin/python benchmarks/rerank.py --fit train --features rank cos cover pairs
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import confidence as fitting  # noqa: E402
import multidoc  # noqa: E402
from evaldata import squad_articles  # noqa: E402
from ingest import norm  # noqa: E402

DEPTH = 30
FEATURES = ("rank", "cos", "cover", "title", "typed", "struct", "pairs")


def candidates(question, found) -> list[dict]:
    from assistant import entities
    from assistant.confidence import rarity, share
    from assistant.index.lexical import terms

    weights = rarity(question.text)
    asked = terms([question.text])[0]
    pairs = set(zip(asked, asked[1:]))
    docs = entities._parse([p.text for p in found]) if question.type else [None] * len(found)
    rows = []
    for rank, (passage, doc) in enumerate(zip(found, docs)):
        sequence = terms([passage.text])[0]
        typed = struct = 0.0
        if doc is not None and question.type:
            typed = float(any(e.label_ in entities.LABELS[question.type] for e in doc.ents))
            if question.type == "person" and question.intent == "speakers":
                struct = float(bool(entities._people([doc], speakers=True)))
            elif question.type == "place" and question.intent == "participants":
                mentions, matched = entities._countries([doc], participants=True)
                struct = float(matched and len({m.key for m in mentions}) >= 2)
        rows.append(
            {
                "rank": math.log(1 + rank),
                "cos": passage.score,
                "cover": share(weights, passage.text),
                "title": share(weights, passage.title or passage.source),
                "typed": typed,
                "struct": struct,
                "pairs": len(pairs & set(zip(sequence, sequence[1:]))) / len(pairs) if pairs else 0.0,
                "source": passage.source,
                "text": passage.text,
            }
        )
    return rows


def asked(name: str, corpus: Path, index: Path, records: list[dict]) -> list[dict]:
    from assistant.question import Question

    retriever = fitting.retriever_of(name, corpus, index)
    out = []
    for record in records:
        question = retriever.read(Question.read(record["question"]))
        found, _ = retriever.ranked(question, DEPTH)
        rows = candidates(question, found)
        answers = [norm(a) for a in record["answers"]]
        for row in rows:
            text = norm(row.pop("text"))
            row["right"] = int(record.get("source") in (None, row["source"]) and any(a in text for a in answers))
        out.append({"set": name, "split": record["split"], "question": record["question"], "candidates": rows})
    return out


def collect(work: Path, ingest: Path) -> list[dict]:
    folder, _ = fitting.squad_subset(work, "squad-half")
    articles = squad_articles()[0::2]
    questions = [
        {"question": qa["question"], "answers": [a["text"] for a in qa["answers"]], "split": "train"}
        for article in articles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    rows = asked("squad-half", folder, work / "index" / "squad-half", random.Random(11).sample(questions, 600))
    names = argparse.Namespace(work=work, ingest=ingest)
    for name in multidoc.SETS:
        records = [r for r in fitting.first_turns(multidoc.questions(name)) if r["kind"] != "offtopic"]
        rows += asked(name, multidoc.corpus_of(name, names), work / "index" / name, records)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-multidoc"))
    parser.add_argument("--ingest", type=Path, default=Path("/tmp/assistant-ingest"))
    parser.add_argument("--fit", choices=["train", "tune"], default="train")
    parser.add_argument("--features", nargs="+", choices=FEATURES, default=list(FEATURES))
    args = parser.parse_args(argv)
    cache = args.work / "rerank-rows.json"
    if not cache.exists():
        cache.write_text(json.dumps(collect(args.work, args.ingest)))
    rows = json.loads(cache.read_text())
    fitted = [r for r in rows if r["split"] == args.fit]
    x = np.array([[c[f] for f in args.features] for r in fitted for c in r["candidates"]])
    y = np.array([c["right"] for r in fitted for c in r["candidates"]], dtype=float)
    weights, _ = fitting.fit(x, y)
    print(json.dumps({"fitted on": args.fit, "weights": dict(zip(args.features, np.round(weights, 2).tolist()))}))
    print("| set | half | questions | answer in top 5 | reranked |")
    print("| --- | --- | --- | --- | --- |")
    for key in dict.fromkeys((r["set"], r["split"]) for r in rows):
        group = [r for r in rows if (r["set"], r["split"]) == key]
        before = sum(any(c["right"] for c in r["candidates"][:5]) for r in group)
        after = 0
        for r in group:
            scores = np.array([[c[f] for f in args.features] for c in r["candidates"]]) @ weights
            order = np.argsort(-scores, kind="stable")[:5]
            after += any(r["candidates"][i]["right"] for i in order)
        print(f"| {key[0]} | {key[1]} | {len(group)} | {before} | {after} |")


if __name__ == "__main__":
    main()
