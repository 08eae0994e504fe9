"""Evaluation data for the benchmarks: SQuAD v1.1 dev and BEIR SciFact from ../shared/eval, their metrics,
and an Embedder that caches query vectors. Read-only use of the data; nothing is copied into the repository."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.documents import Passage
from assistant.embedding import Embedder
from assistant.question import clean_query

EVAL = Path("/work/shared/eval")
SQUAD_FILE = EVAL / "squad" / "dev-v1.1.json.gz"
SCIFACT_DIR = EVAL / "scifact"
REPO = Path(__file__).resolve().parent.parent
SEED = 20240501
SQUAD_K = 20  # passages per SQuAD question: recall@20 and MRR@20
NDCG_AT = 10


@dataclass
class Task:
    """One dataset ready to search: its documents, its queries and how a query's passages are scored."""

    name: str
    documents: dict[str, str]  # file name -> text
    queries: dict[str, str]  # query id -> text
    k: int  # passages retrieved per query
    score: Callable[[dict[str, list[Passage]]], dict[str, list[float]]]  # per-query values by metric
    corpus: Path = Path()
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # SciFact: split -> query -> doc -> grade
    articles: dict[str, str] = field(default_factory=dict)  # SQuAD: query id -> its article's file prefix


class CachedEmbedder(Embedder):
    """The real Embedder; every vector is computed once and reused (queries, in batches, for every chunk size;
    chunk texts, by benchmarks/stores.py for its second store).

    A query's vector does not depend on the chunking, and one-at-a-time encoding costs ~80 ms a query.
    """

    def __init__(self, precision: str = "auto") -> None:
        super().__init__(precision=precision)
        self.cache: dict[str, np.ndarray] = {}
        self.passages: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # encode_passages()'s, by text and spans

    def remember(self, queries: Sequence[str]) -> None:
        new = [q for q in dict.fromkeys(clean_query(q) for q in queries) if q not in self.cache]
        if new:
            self.cache.update(zip(new, super().encode(new)))

    def encode(self, texts: list[str], progress=None, remember: bool = False) -> np.ndarray:
        """Texts seen before come from the cache, the others from the model (and join the cache)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, super().encode(missing, progress, remember)))
        if not texts:
            return super().encode(texts, progress, remember)
        return np.stack([self.cache[t] for t in texts])

    def encode_passages(self, texts: list[str], spans, progress=None) -> tuple[np.ndarray, list[np.ndarray]]:
        """As encode(): a passage (with the same sentences) seen before comes from the cache."""
        keys = [(text, tuple(found)) for text, found in zip(texts, spans)]
        missing = list(dict.fromkeys(key for key in keys if key not in self.passages))
        if missing:
            vectors, pooled = super().encode_passages([t for t, _ in missing], [list(s) for _, s in missing], progress)
            self.passages.update(zip(missing, zip(vectors, pooled)))
        if not texts:
            return np.zeros((0, self.dimension), np.float32), []
        return np.stack([self.passages[key][0] for key in keys]), [self.passages[key][1] for key in keys]


# ---- SQuAD ---------------------------------------------------------------------------------------


def squad_articles() -> list[dict]:
    """The 48 articles of SQuAD v1.1 dev as the file has them: title, paragraphs (context, qas)."""
    return json.loads(gzip.decompress(SQUAD_FILE.read_bytes()))["data"]


def squad_task(limit_docs: int | None, questions: int) -> Task:
    """Every paragraph as a document; a seeded sample of the questions on the written paragraphs."""
    articles = squad_articles()
    documents: dict[str, str] = {}
    qas: list[tuple[str, list[str], str]] = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article["paragraphs"]):
            if limit_docs is not None and len(documents) >= limit_docs:
                break
            documents[f"{a:02d}_{p:03d}.txt"] = paragraph["context"]
            qas.extend((qa["question"], [x["text"] for x in qa["answers"]], f"{a:02d}_") for qa in paragraph["qas"])
    chosen = random.Random(SEED).sample(range(len(qas)), min(questions, len(qas)))
    queries = {str(i): qas[i][0] for i in chosen}
    answers = {str(i): qas[i][1] for i in chosen}
    articles_of = {str(i): qas[i][2] for i in chosen}
    return Task("squad", documents, queries, SQUAD_K, lambda found: squad_scores(found, answers), articles=articles_of)


def answer_rank(passages: list[Passage], answers: list[str]) -> int | None:
    """1-based rank of the first passage that contains an answer string, or None."""
    for rank, passage in enumerate(passages, start=1):
        if any(answer in passage.text for answer in answers):
            return rank
    return None


def squad_scores(found: dict[str, list[Passage]], answers: dict[str, list[str]]) -> dict[str, list[float]]:
    ranks = [answer_rank(found[q], answers[q]) for q in sorted(found)]
    scores = {f"R@{k}": [float(r is not None and r <= k) for r in ranks] for k in (1, 5, 20)}
    scores["MRR@20"] = [1.0 / r if r else 0.0 for r in ranks]
    return scores


# ---- SciFact -------------------------------------------------------------------------------------


def scifact_task(limit_docs: int | None, k: int) -> Task:
    """Every abstract as a document; the claims of both splits that have a judged document written."""
    documents: dict[str, str] = {}
    with gzip.open(SCIFACT_DIR / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            if limit_docs is not None and len(documents) >= limit_docs:
                break
            row = json.loads(line)
            documents[f"{row['_id']}.txt"] = f"{row['title']}\n\n{row['text']}"
    written = {name.removesuffix(".txt") for name in documents}
    qrels = {split: read_qrels(SCIFACT_DIR / "qrels" / f"{split}.tsv", written) for split in ("train", "test")}
    claims = [json.loads(line) for line in (SCIFACT_DIR / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    judged = set(qrels["train"]) | set(qrels["test"])
    queries = {c["_id"]: c["text"] for c in claims if c["_id"] in judged}
    return Task("scifact", documents, queries, k, lambda found: scifact_scores(found, qrels), qrels=qrels)


def read_qrels(path: Path, documents: set[str]) -> dict[str, dict[str, int]]:
    """query id -> {document id: graded relevance > 0}, keeping only documents in the corpus."""
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        query, doc, score = line.split("\t")
        if int(score) > 0 and doc in documents:
            qrels.setdefault(query, {})[doc] = int(score)
    return qrels


def document_ranking(passages: list[Passage]) -> list[str]:
    """Document ids (file stems) in the order of their best passage."""
    return list(dict.fromkeys(Path(p.source).stem for p in passages))


def ndcg(ranking: list[str], relevant: dict[str, int], at: int = NDCG_AT) -> float:
    """nDCG with linear gains, as trec_eval / pytrec_eval (BEIR) compute it."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:at]))
    ideal = sorted(relevant.values(), reverse=True)[:at]
    best = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / best if best else 0.0


def scifact_scores(
    found: dict[str, list[Passage]], qrels: dict[str, dict[str, dict[str, int]]]
) -> dict[str, list[float]]:
    rankings = {q: document_ranking(passages) for q, passages in found.items()}
    short = sum(len(r) < NDCG_AT for r in rankings.values())
    if short:
        log(f"  note: {short} claims had fewer than {NDCG_AT} distinct documents in their passages")
    return {
        f"nDCG@10 {split}": [ndcg(rankings[q], qrels[split][q]) for q in sorted(qrels[split])]
        for split in ("train", "test")
    }


# ---- helpers -------------------------------------------------------------------------------------


def write_corpus(folder: Path, documents: dict[str, str]) -> None:
    shutil.rmtree(folder, ignore_errors=True)  # a corpus left by an earlier run with other --limit-docs
    folder.mkdir(parents=True)
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")


def throttled(label: str, every: float = 60.0) -> Callable[[str, int, int], None]:
    """A build progress callback (phase, done, total) that prints at most once a minute, and each phase's end."""
    last = [time.monotonic()]

    def progress(phase: str, done: int, total: int) -> None:
        if time.monotonic() - last[0] >= every or done == total:
            last[0] = time.monotonic()
            log(f"  {label}: {phase} {done}/{total}")

    return progress


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def bench_parser(doc: str, limit_docs: bool = True) -> argparse.ArgumentParser:
    """The options of the retrieval benchmarks: --work (indexes, outside the repository), --limit-docs, --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-bench"))
    if limit_docs:
        parser.add_argument("--limit-docs", type=int, default=None, help="only the first N documents (a quick check)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    return parser


def bench_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; refuse a --work inside the repository, where the evaluation data must never go."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.work.resolve().is_relative_to(REPO):
        sys.exit("--work must be outside the repository: the evaluation data never goes into it")
    return args
