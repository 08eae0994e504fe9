"""Benchmark: the relevance floor behind "Not in the documents", and its false answers and false refusals.

The documents cover a question when the best cosine of any passage in the index reaches the floor. A
question about something else still finds a closest passage, and the best of more unrelated passages
scores higher: so the floor depends on the size of the index.

1. Off-topic questions: SQuAD dev questions asked of N random SciFact passages (biomedical abstracts), for
   N from 3 to all 15,798. The 95th percentile of their best cosine, on the questions of even-numbered
   SQuAD articles, is fitted as FLOOR_BASE + FLOOR_SLOPE * ln(N): a floor that refuses 95% of off-topic
   questions at every size. The odd-numbered articles' questions report the false answers.
2. Answerable questions at each size: the same questions with their own article's paragraphs added to the
   N unrelated passages. A question under the floor is a false "no answer".
3. SQuAD as the issue defines it, at its own size (2,599 passages): each question with its own article
   (answerable) and without it (its article's passages removed: unanswerable, on a nearby topic).
4. The seed corpus with benchmarks/seed_questions.json: questions it answers, and questions it does not.

Indexes come from benchmarks/quality.py's --work folder (built there if missing).

    PYTHONPATH=. .venv/bin/python benchmarks/no_answer.py --out /tmp/no_answer.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from assistant.config import Settings
from assistant.embedding import Embedder
from assistant.index.faiss.store import open_index
from assistant.question import clean_query
from assistant.search import Retriever, relevance_floor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import REPO, CachedEmbedder, bench_args, bench_parser, log, scifact_task, squad_task  # noqa: E402
from quality import open_retriever, table  # noqa: E402

SIZES = [3, 10, 30, 100, 300, 1000, 3000, 10000, 15798]
PERCENTILE = 95  # the floor refuses this share of off-topic questions
REPEATS = 3  # random draws of the N passages
SEED_QUESTIONS = Path(__file__).resolve().parent / "seed_questions.json"


def all_vectors(retriever: Retriever) -> tuple[np.ndarray, list[str]]:
    rows = list(range(len(retriever.index)))
    stored = retriever.index.chunks(rows)
    return retriever.index.stored_vectors(rows), [stored[r]["source"] for r in rows]


def size_curves(questions: np.ndarray, own_best: np.ndarray, unrelated: np.ndarray, rng) -> dict[int, tuple]:
    """Per size N: each question's best cosine over N random unrelated passages (off-topic), and the same with
    its own article added (answerable)."""
    cosines = questions @ unrelated.T
    curves = {}
    for n in SIZES:
        draws = [cosines[:, rng.choice(cosines.shape[1], n, replace=False)].max(1) for _ in range(REPEATS)]
        off_topic = np.concatenate(draws)
        curves[n] = (off_topic, np.maximum(np.tile(own_best, REPEATS), off_topic))
    return curves


def fit_floor(curves: dict[int, tuple], tune: np.ndarray) -> tuple[float, float]:
    """Least squares of the off-topic percentile against ln N, on the tuning questions."""
    mask = np.tile(tune, REPEATS)
    points = [(np.log(n), np.percentile(off[mask], PERCENTILE)) for n, (off, _) in curves.items()]
    slope, base = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return round(float(base), 3), round(float(slope), 4)


def size_rows(curves: dict[int, tuple], report: np.ndarray, base: float, slope: float) -> list[dict]:
    mask = np.tile(report, REPEATS)
    rows = []
    for n, (off_topic, answerable) in curves.items():
        floor = base + slope * np.log(n)
        rows.append(
            {
                "passages": n,
                "floor": round(floor, 3),
                "product floor": relevance_floor(n),
                "false no-answer": round(float(np.mean(answerable[mask] < floor)), 3),
                "false answer (off-topic)": round(float(np.mean(off_topic[mask] >= floor)), 3),
            }
        )
    return rows


def squad_rows(squad_vectors, sources, questions, articles, report) -> list[dict]:
    """At SQuAD's own size: with the own article (answerable) and without it (unanswerable, nearby topic)."""
    cosines = questions @ squad_vectors.T
    prefixes = np.array([s[:3] for s in sources])
    own = np.array([prefixes == a for a in articles])
    floor = relevance_floor(len(sources))
    with_own, without_own = cosines.max(1), np.where(own, -1.0, cosines).max(1)
    return [
        {
            "passages": len(sources),
            "floor": floor,
            "false no-answer (with article)": round(float(np.mean(with_own[report] < floor)), 3),
            "false answer (without article)": round(float(np.mean(without_own[report] >= floor)), 3),
        }
    ]


def seed_rows(work: Path) -> list[dict]:
    """The seed corpus at its product defaults, with our own questions about it and about other things."""
    from assistant.index import build_index

    settings = Settings(corpus=REPO / "corpus", index=work / "seed-index")
    embedder = Embedder()
    build_index(settings, embedder)
    retriever = Retriever(open_index(settings.index, settings.model, settings.chunking()), embedder)
    questions = json.loads(SEED_QUESTIONS.read_text())
    rows = []
    for kind, covered in (("answerable", True), ("off-topic", False)):
        scores = [retriever.relevance(retriever.embed_query(q)) for q in questions[kind]]
        wrong = [q for q, s in zip(questions[kind], scores) if (s >= retriever.floor) != covered]
        rows.append(
            {
                "questions": kind,
                "count": len(scores),
                "floor": retriever.floor,
                "wrong": len(wrong),
                "which": "; ".join(wrong) or "-",
            }
        )
    return rows


def main(argv=None) -> None:
    args = bench_args(bench_parser(__doc__, limit_docs=False), argv)
    embedder = CachedEmbedder()
    squad, scifact = squad_task(None, 10**6), scifact_task(None, 50)
    squad_vectors, squad_sources = all_vectors(open_retriever(squad, args.work, embedder))
    scifact_vectors, _ = all_vectors(open_retriever(scifact, args.work, embedder))
    ids = sorted(squad.queries, key=int)
    questions = embedder.encode([clean_query(squad.queries[q]) for q in ids])  # as cached
    articles = [squad.articles[q] for q in ids]
    tune = np.array([int(a[:2]) % 2 == 0 for a in articles])
    prefixes = np.array([s[:3] for s in squad_sources])
    own_best = np.array([(squad_vectors[prefixes == a] @ q).max() for q, a in zip(questions, articles)])
    log("size curves")
    curves = size_curves(questions, own_best, scifact_vectors, np.random.default_rng(0))
    base, slope = fit_floor(curves, tune)
    results = {
        "fit": {"base": base, "slope": slope, "percentile": PERCENTILE},
        "sizes": size_rows(curves, ~tune, base, slope),
        "squad": squad_rows(squad_vectors, squad_sources, questions, articles, ~tune),
        "seed": seed_rows(args.work),
    }
    print(f"floor fitted on the even-numbered SQuAD articles: {base} + {slope} * ln(passages)")
    print("\nOff-topic and answerable questions by index size (odd-numbered articles)\n" + table(results["sizes"]))
    print("\nSQuAD with and without the question's own article\n" + table(results["squad"]))
    print("\nSeed corpus, benchmarks/seed_questions.json\n" + table(results["seed"]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
