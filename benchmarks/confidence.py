"""Benchmark: fits the confidence model of assistant/confidence.py and reports its refusals on held-out questions.

Training questions (labelled answerable or off-topic), each searched through the product's own Retriever with
its signals read by confidence.read_signals:
- squad-1, squad-4, squad-half: the first 1, 4 and all 24 of the even-numbered SQuAD v1.1 dev articles as
  .txt files, each set in one index (corpora of several sizes: the signals behave differently over one
  article and over many); questions drawn from those articles (answerable) and as many from the 24
  odd-numbered ones (off-topic, and often on a nearby subject: another Wikipedia article's question): 100,
  150 and 300 of each. Written to <work>/sets/<set>, built in <work>/index/<set>;
- the "tune" halves of the sets of benchmarks/multidoc.py (seed-in-squad, debian-reference, python-docs, pdfs)
  and of seed-alone (the seed article alone, asked seed-in-squad's questions): their answerable questions and
  first turns of conversations (questions asked within sources are left out), and their off-topic questions.
Fit: logistic regression on the three signals (standardized, L2 1e-2, Newton steps), written back as raw
weights. NONE_UNDER: the highest cut point on a 0.05 grid that refuses at most 2% of the answerable training
questions (the target is 3% on held-out ones: a margin for a new corpus). HIGH_FROM: the lowest that at most
2.5% of the off-topic training questions reach.
Report: per set and half, answerable refused and off-topic answered under the fitted model, beside the
relevance floor alone (the rule before: refused when the best cosine is under the floor). The "held" halves
are never used to fit.

    PYTHONPATH=. .venv/bin/python benchmarks/confidence.py --out /tmp/confidence.json   # ~3 min with builds
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multidoc  # noqa: E402
from evaldata import log, squad_articles  # noqa: E402

SQUAD_SETS = {"squad-1": (1, 100), "squad-4": (4, 150), "squad-half": (24, 300)}  # articles, questions of each label
NAMES = ("margin", "unknown", "passages")
REFUSED_AT_MOST = 0.02
OFF_TOPIC_HIGH_AT_MOST = 0.025
GRID = [round(0.05 * i, 2) for i in range(1, 20)]


def squad_subset(work: Path, name: str) -> tuple[Path, list[dict]]:
    count, questions = SQUAD_SETS[name]
    articles = squad_articles()
    inside, outside = articles[0::2][:count], articles[1::2]
    folder = work / "sets" / name
    folder.mkdir(parents=True, exist_ok=True)
    for article in inside:
        body = "\n\n".join(re.sub(r"\s*\n\s*", " ", p["context"].strip()) for p in article["paragraphs"])
        path, text = folder / f"{article['title']}.txt", f"{article['title'].replace('_', ' ')}\n\n{body}\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    rng = random.Random(7)
    records = []
    for kind, group in (("answerable", inside), ("offtopic", outside)):
        asked = [qa["question"] for a in group for p in a["paragraphs"] for qa in p["qas"]]
        records += [{"kind": kind, "question": q, "split": "train"} for q in rng.sample(asked, questions)]
    return folder, records


def seed_alone(work: Path) -> Path:
    folder = work / "sets" / "seed-alone"
    folder.mkdir(parents=True, exist_ok=True)
    text = multidoc.SEED_ARTICLE.read_text(encoding="utf-8")
    path = folder / multidoc.SEED_ARTICLE.name
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return folder


def first_turns(records: list[dict]) -> list[dict]:
    """The questions of a multidoc set asked of the whole index: each record, or a conversation's first turn
    (with the record's kind and split), leaving out those asked within sources."""
    rows = []
    for record in records:
        turn = record["turns"][0] if record["kind"] == "conversation" else record
        if not turn.get("sources"):
            rows.append({**turn, "kind": record["kind"], "split": record["split"]})
    return rows


def retriever_of(name: str, corpus: Path, index: Path):
    """A Retriever with the default settings (hybrid, auto floor) over the set's index, built if need be."""
    from assistant.config import Settings
    from assistant.search import Retriever
    from assistant.service import Assistant

    assistant = Assistant(Settings(corpus=corpus, index=index))
    log(f"{name}: {assistant.build().line()}")
    return Retriever(assistant.index(), assistant.embedder)


def signals_of(name: str, corpus: Path, index: Path, records: list[dict]) -> list[dict]:
    """Each question's signals, as answer_question reads them."""
    from assistant.confidence import read_signals

    retriever = retriever_of(name, corpus, index)
    rows = []
    for record in records:
        question = retriever.read(record["question"])
        found, relevance = retriever.ranked(question, multidoc.K)
        signals = read_signals(retriever.index, question, found, relevance, retriever.floor)
        asked = {"set": name, "question": record["question"], "split": record["split"], "kind": record["kind"]}
        rows.append({**asked, "answerable": record["kind"] != "offtopic", **signals.to_json()})
    return rows


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method on standardized signals; the weights and bias on raw ones."""
    mean, scale = x.mean(0), x.std(0) + 1e-9
    z = np.c_[(x - mean) / scale, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.r_[np.ones(len(w) - 1), 0.0]
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) / len(y) + penalty * w
        hessian = (z.T * (p * (1 - p))) @ z / len(y) + np.diag(penalty + 1e-9)
        w -= np.linalg.solve(hessian, gradient)
    weights = w[:-1] / scale
    return weights, float(w[-1] - weights @ mean)


def probabilities(rows: list[dict], weights: np.ndarray, bias: float) -> np.ndarray:
    x = np.array([[r[n] for n in NAMES] for r in rows])
    return 1.0 / (1.0 + np.exp(-(x @ weights + bias)))


def cut_points(p: np.ndarray, answerable: np.ndarray) -> tuple[float, float]:
    none_under = max(t for t in GRID if np.mean(p[answerable] < t) <= REFUSED_AT_MOST)
    high_from = min(t for t in GRID if np.mean(p[~answerable] >= t) <= OFF_TOPIC_HIGH_AT_MOST)
    return none_under, high_from


def report(rows: list[dict], p: np.ndarray, none_under: float, high_from: float) -> list[dict]:
    table = []
    for key in dict.fromkeys((r["set"], r["split"]) for r in rows):
        picked = [i for i, r in enumerate(rows) if (r["set"], r["split"]) == key]
        good = [i for i in picked if rows[i]["answerable"]]
        off = [i for i in picked if not rows[i]["answerable"]]
        table.append(
            {
                "set": key[0],
                "half": key[1],
                "answerable": len(good),
                "refused": int(sum(p[i] < none_under for i in good)),
                "high": int(sum(p[i] >= high_from for i in good)),
                "refused by the floor alone": int(sum(rows[i]["margin"] < 0 for i in good)),
                "off-topic": len(off),
                "off-topic answered": int(sum(p[i] >= none_under for i in off)),
                "off-topic high": int(sum(p[i] >= high_from for i in off)),
                "off-topic answered by the floor alone": int(sum(rows[i]["margin"] >= 0 for i in off)),
            }
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-multidoc"), help="corpora and indexes")
    parser.add_argument("--ingest", type=Path, default=Path("/tmp/assistant-ingest"), help="ingest.py's --work")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = []
    for name in SQUAD_SETS:
        folder, records = squad_subset(args.work, name)
        rows += signals_of(name, folder, args.work / "index" / name, records)
    seed = first_turns(multidoc.questions("seed-in-squad"))
    rows += signals_of("seed-alone", seed_alone(args.work), args.work / "index" / "seed-alone", seed)
    for name in multidoc.SETS:
        corpus = multidoc.corpus_of(name, args)
        rows += signals_of(name, corpus, args.work / "index" / name, first_turns(multidoc.questions(name)))
    train = [r for r in rows if r["split"] != "held"]
    x = np.array([[r[n] for n in NAMES] for r in train])
    answerable = np.array([r["answerable"] for r in train])
    weights, bias = fit(x, answerable.astype(float))
    p_train = probabilities(train, weights, bias)
    none_under, high_from = cut_points(p_train, answerable)
    p = probabilities(rows, weights, bias)
    result = {
        "weights": {n: round(float(w), 2) for n, w in zip(NAMES, weights)},
        "bias": round(bias, 2),
        "none under": none_under,
        "high from": high_from,
        "train": {
            "answerable refused": round(float(np.mean(p_train[answerable] < none_under)), 4),
            "off-topic answered": round(float(np.mean(p_train[~answerable] >= none_under)), 4),
        },
        "table": report(rows, p, none_under, high_from),
        "rows": [{**r, "probability": round(float(q), 4)} for r, q in zip(rows, p)],
        **multidoc.commit(),
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows",)}, indent=1))


if __name__ == "__main__":
    main()
