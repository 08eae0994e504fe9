"""Benchmark: what asking within a scope costs, on both stores. Not a test: nothing asserts.

The 2,067 SQuAD v1.1 dev paragraphs, one document each, written as <article>/<paragraph>.txt (48 folders of
about 43 documents, ~2,600 chunks), built into a FAISS index and a Milvus Lite one by the product's builds (each
text embedded once). Then --questions seeded SQuAD dev questions are asked, each in every mode and within every
scope below, in turn (so that the caches are equally warm for all), after one untimed round:

- none: the whole index;
- document: one document, the first paragraph of the question's article (a scope smaller than k);
- article: the folder of the question's article (~50 chunks); a new folder for most questions, so the FAISS
  store's cache of scopes seldom has it;
- half: 24 of the 48 folders (~1,300 chunks), the same for every question;
- 100 documents: a seeded sample of 100 documents (the most a question may name), the same for every question.

Timed per question: retrieval, Retriever.ranked(question, 5) (search, fusion, relevance within the scope, reading
the passages, and resolving the scope against the catalog), and the full answer, answers.answer_question. The
question vectors and sentence vectors come from a cache, so the model's time (the same with or without a scope)
is left out and the ratios show the search's own cost. The report gives medians and each scope's ratio to none
in the same store, mode and run: on two shared cores absolute timings drift between runs, ratios much less.
"answer in top 5" counts the questions whose answer string is in a passage of the top 5.

--synthetic N (repeatable) adds the FAISS dense side alone at N chunks: N clustered random unit vectors (384
dimensions, 2,000 topics) in the index a build would write (flat up to ASSISTANT_ANN_THRESHOLD's default
100,000, IVF above), searched for 100 candidates within a contiguous range of rows (a folder's rows are
contiguous: a build orders them by path) of 50, 1,000, 10,000 and N/2 rows, against the same search unscoped.

    PYTHONPATH=. .venv/bin/python benchmarks/scope.py --out /tmp/scope.json     # ~15 min
    PYTHONPATH=. .venv/bin/python benchmarks/scope.py --stores --synthetic 100000 --synthetic 1000000  # ~10 min, 4 GB
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from assistant import threads
from assistant.answers import answer_question
from assistant.config import Settings
from assistant.index import build_index, open_store
from assistant.index.faiss.vectors import build_dense, search_within
from assistant.question import Question
from assistant.search import Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import SEED, SQUAD_FILE, CachedEmbedder, answer_rank, bench_args, bench_parser, log, squad_task  # noqa: E402

K = 5
MODES = ("dense", "bm25", "hybrid")
SCOPES = ("none", "document", "article", "half", "100 documents")


def write_by_article(folder: Path, documents: dict[str, str]) -> list[str]:
    """ "AA_PPP.txt" written as AA/PPP.txt; the paths written."""
    shutil.rmtree(folder, ignore_errors=True)
    paths = []
    for name, text in documents.items():
        path = folder / name[:2] / name[3:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path.relative_to(folder).as_posix())
    return paths


def squad_answers() -> dict[str, list[str]]:
    """The answer strings of each SQuAD dev question, by its text."""
    articles = json.loads(gzip.decompress(SQUAD_FILE.read_bytes()))["data"]
    return {
        qa["question"]: [answer["text"] for answer in qa["answers"]]
        for article in articles
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def scopes_of(article: str, paths: list[str]) -> dict[str, list[str]]:
    folders = sorted({path.split("/")[0] for path in paths})
    sample = sorted(random.Random(SEED).sample(paths, 100))
    return {
        "none": [],
        "document": [f"{article}/000.txt"],
        "article": [article],
        "half": folders[: len(folders) // 2],
        "100 documents": sample,
    }


def ask_all(retriever: Retriever, questions: list[tuple[str, list[str], str]], paths: list[str]) -> dict:
    """{(mode, scope): {"retrieval": [s], "answer": [s], "hits": n}} over every question, scopes in turn."""
    found: dict = {}
    for timed in (False, True):
        for text, answers, article in questions:
            for mode in MODES:
                retriever.mode = mode
                for scope, sources in scopes_of(article, paths).items():
                    question = retriever.read(Question.read(text, sources))
                    started = time.perf_counter()
                    passages, _ = retriever.ranked(question, K)
                    middle = time.perf_counter()
                    answer_question(retriever, question, K)
                    done = time.perf_counter()
                    if timed:
                        row = found.setdefault((mode, scope), {"retrieval": [], "answer": [], "hits": 0})
                        row["retrieval"].append(middle - started)
                        row["answer"].append(done - middle)
                        row["hits"] += answer_rank(passages, answers) is not None
    return found


def rows_of(store: str, found: dict, questions: int) -> list[dict]:
    rows = []
    for mode in MODES:
        base = {part: statistics.median(found[(mode, "none")][part]) for part in ("retrieval", "answer")}
        for scope in SCOPES:
            row = found[(mode, scope)]
            retrieval, answer = statistics.median(row["retrieval"]), statistics.median(row["answer"])
            rows.append(
                {
                    "store": store,
                    "mode": mode,
                    "scope": scope,
                    "retrieval ms p50": round(retrieval * 1000, 2),
                    "retrieval / none": round(retrieval / base["retrieval"], 2),
                    "answer ms p50": round(answer * 1000, 2),
                    "answer / none": round(answer / base["answer"], 2),
                    "answer in top 5": f"{row['hits']}/{questions}",
                }
            )
    return rows


def synthetic_rows(chunks: int) -> list[dict]:
    """The dense side alone at `chunks` synthetic vectors, within row ranges of several sizes (see the top)."""
    rng = np.random.default_rng(SEED)
    topics = rng.standard_normal((2000, 384)).astype(np.float32)
    vectors = topics[rng.integers(0, len(topics), chunks)] + 0.7 * rng.standard_normal((chunks, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, spec = build_dense(vectors, Settings().ann_threshold, Settings().ann_nprobe)
    query = vectors[:1] + 0.1 * rng.standard_normal((1, 384)).astype(np.float32)
    row = {"store": f"faiss {spec['type']}", "chunks": chunks}
    with threads.FAISS.held():
        whole = median_ms(partial(index.search, query, 100))
        rows = [{**row, "scope rows": "none", "dense ms p50": round(whole, 2), "dense / none": 1.0}]
        for size in (50, 1_000, 10_000, chunks // 2):
            mask = np.zeros(chunks, dtype=bool)
            start = int(rng.integers(0, chunks - size))
            mask[start : start + size] = True
            ms = median_ms(partial(search_within, index, query, min(100, size), np.packbits(mask, bitorder="little")))
            rows.append({**row, "scope rows": size, "dense ms p50": round(ms, 2), "dense / none": round(ms / whole, 2)})
    return rows


def median_ms(search: Callable[[], object], repeat: int = 20) -> float:
    search()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        search()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def table(rows: list[dict]) -> None:
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = bench_parser(__doc__, limit_docs=False)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--stores", nargs="*", default=["faiss", "milvus"], help="none: the synthetic part alone")
    parser.add_argument("--synthetic", type=int, action="append", default=[], metavar="N")
    args = bench_args(parser, argv)
    synthetic = [row for chunks in args.synthetic for row in synthetic_rows(chunks)]
    if synthetic:
        table(synthetic)
    rows = ask_stores(args) if args.stores else []
    if rows:
        table(rows)
    if args.out:
        args.out.write_text(json.dumps({"stores": rows, "synthetic": synthetic}, indent=1))


def ask_stores(args) -> list[dict]:
    task = squad_task(None, args.questions)
    corpus = args.work / "scope-corpus"
    paths = write_by_article(corpus, task.documents)
    answers = squad_answers()
    questions = [(text, answers[text], task.articles[qid][:2]) for qid, text in task.queries.items()]
    embedder = CachedEmbedder()
    embedder.remember([text for text, _, _ in questions])
    rows = []
    for store in args.stores:
        settings = Settings(corpus=corpus, index=args.work / f"scope-{store}", store=store)
        shutil.rmtree(settings.index, ignore_errors=True)
        log(f"{store}: {build_index(settings, embedder).line()}")
        retriever = Retriever(open_store(settings), embedder)
        log(f"{store}: {len(retriever.index)} chunks; asking")
        rows += rows_of(store, ask_all(retriever, questions, paths), len(questions))
    return rows


if __name__ == "__main__":
    main()
