"""Benchmark of issue 15: right answers when the corpus holds many documents, through the product's own
Assistant.ask (what `assistant ask --json` calls, with the default settings), with txtai beside it on the same
corpora and questions. Not a test: nothing asserts.

Sets, each built into its own index under --work (default /tmp/assistant-multidoc; nothing is committed):
- seed-in-squad: corpus/unodc-regional-conference-islamabad.txt beside the 48 articles of SQuAD v1.1 dev, one
  .txt each (the title, a blank line, the paragraphs separated by blank lines), written from
  /work/shared/eval/squad into <work>/sets/seed-in-squad. A file is rewritten only when its text changed, and
  the build (Assistant.build, incremental) reuses unchanged files, so a rerun mostly asks.
- debian-reference, python-docs, pdfs: the real sets of benchmarks/ingest.py, read in place from
  <ingest>/sets (default /tmp/assistant-ingest, made by `benchmarks/ingest.py --prepare`), with its questions
  (benchmarks/ingest_sets/<set>.jsonl) and 8 off-topic ones each (benchmarks/multidoc_sets/<set>-offtopic.jsonl).
SQuAD dev with its 48 articles in one index, and SciFact, are measured by benchmarks/quality.py, not here.

Question files (benchmarks/multidoc_sets/*.jsonl), one JSON object a line, by `kind`:
- "answerable": `question`; `answers`, strings that occur in the source's text (compared case-folded,
  whitespace collapsed; checked at every run); `source`, the answering document's path in the corpus; `type`,
  the answer.type a user expects (person, place, organization, date, number), or null when no entity answers
  it; `category`, what is asked (speakers, countries, count, date, place, organiser, role, role holder,
  message, participants, statement, topic, objective, definition); for a list question `items`, the complete
  expected list (each item a list of accepted spellings) and `optional`, items that may be listed but are not
  required (the message delivered on someone's behalf, beside the speakers); for a single answer `value`, its
  accepted spellings ("21" for how many countries); `split`.
- "conversation": `turns`, 2-3 records like the above without kind and split, each after the first leaning on
  the ones before ("What did he say about trafficking?"); `split`.
- "offtopic": `question`; `absent`, its key terms, which no document of the set contains (checked at every run,
  as whole words, case-insensitive); `split`.
- An answerable record or turn may carry `sources` (paths in the corpus) to be asked within that scope.
The ingest sets' lines ({question, answers, source, split}) are read as answerable questions without a type.
`split` alternates tune / held in the order written; the halves are reported apart.

Measures, per set and half. Ours: every question through Assistant.ask(question, 5), its reply read as
`answer.to_json()` (the JSON of `assistant ask --json`), one at a time after Assistant.warm_up(). Before each
ask the answer cache is emptied and so are the memories of passages shown (sentence vectors, spaCy parses:
speed.py's forget_passages), so every ask is timed whole, as the first showing of its passages: a question
on a new topic, whatever was asked before it.
- answer in top 5: one of the first 5 `passages` is from the question's source and holds an answer string
  (case-folded, whitespace collapsed); the JSON also has it from any source ("top5 any source");
- lists complete: of the list questions, those whose `answer.items` hold every expected item (item recall 1);
  item recall and precision are means over list questions (precision over those that listed any item, the
  optional items not counted). An item matches an expected one when, lower-cased with a leading "the" and
  trailing punctuation dropped, it equals an accepted spelling or holds it as whole words; each expected item
  is matched once ("Czech Republic UAE" counts for one of the two);
- refused: answerable questions with `no_answer` true; off-topic answered: off-topic ones with `no_answer` false;
- follow-ups: the turns after the first of each conversation. The product has no history yet, so each is asked
  alone (the baseline): its source document among the top 5, the answer in the top 5, refused. When
  Assistant.ask takes `history` (issue 15: [{"question": str}, ...], oldest first), `ask()` below passes the
  earlier turns (`--followups history`, the default once it exists); the JSON records which was used;
- direct answer right (JSON and a second table): the first item of `answer.items` matches `value`; type right:
  `answer.type` is the expected type (null answers count as wrong). "category right" (JSON only): `answer.category`
  equals the question's `category`; the labels were written before answers had categories and partly use other
  words than the product (speakers / people, date / dates), so it is a lead, not a measure;
- latency: milliseconds of the whole ask (search, floor, extraction, highlights, the JSON), p50 / p99 over every
  question of the half, conversation turns and off-topic ones included.
txtai (benchmarks/multidoc_txtai.py): answer in top 5 and follow-ups by the same rules on its top 5, and its
search latency (`Embeddings.search(q, 5)`, no answer drawn). It has no answer extraction (lists: –) and no
calibrated score to refuse with (refused, off-topic answered: –).

    PYTHONPATH=. .venv/bin/python benchmarks/multidoc.py --out /tmp/multidoc.json   # ~40 min first, 80 s after
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multidoc_report  # noqa: E402
import multidoc_txtai  # noqa: E402
from evaldata import REPO, log, squad_articles  # noqa: E402
from ingest import norm  # noqa: E402
from speed import forget_passages  # noqa: E402

K = 5
SETS = ("seed-in-squad", "debian-reference", "python-docs", "pdfs")
HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "multidoc_sets"
INGEST_QUESTIONS = HERE / "ingest_sets"
SEED_ARTICLE = REPO / "corpus" / "unodc-regional-conference-islamabad.txt"


# ---- corpora and questions -----------------------------------------------------------------------


def seed_in_squad(folder: Path) -> Path:
    """The seed article and the 48 SQuAD dev articles as text files; unchanged files are left as they are."""
    files = {SEED_ARTICLE.name: SEED_ARTICLE.read_text(encoding="utf-8")}
    for article in squad_articles():
        body = "\n\n".join(re.sub(r"\s*\n\s*", " ", p["context"].strip()) for p in article["paragraphs"])
        files[f"{article['title']}.txt"] = f"{article['title'].replace('_', ' ')}\n\n{body}\n"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def questions(name: str) -> list[dict]:
    if name == "seed-in-squad":
        return read_jsonl(QUESTIONS / "seed-in-squad.jsonl")
    asked = read_jsonl(INGEST_QUESTIONS / f"{name}.jsonl")
    rows = [{"id": f"q{i + 1:02d}", "kind": "answerable", "type": None, **row} for i, row in enumerate(asked)]
    return rows + read_jsonl(QUESTIONS / f"{name}-offtopic.jsonl")


def answered_turns(records: list[dict]) -> list[dict]:
    return [t for r in records for t in (r["turns"] if r["kind"] == "conversation" else [r]) if "answers" in t]


def check(name: str, records: list[dict], texts: dict[str, str]) -> float:
    """Off-topic key terms must be absent from every document (else exit); the share of answerable questions
    whose answer is in their source's text is returned (for seed-in-squad it must be all of them)."""
    for record in records:
        for term in record.get("absent", []):
            pattern = re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)", re.IGNORECASE)
            if hits := [path for path, text in texts.items() if pattern.search(text)]:
                sys.exit(f"{name}: off-topic {record['id']} {term!r} is in {hits[:3]} — pick another question")
    turns = answered_turns(records)
    missing = [
        t["question"] for t in turns if not any(norm(a) in norm(texts.get(t["source"], "")) for a in t["answers"])
    ]
    if missing and name == "seed-in-squad":
        sys.exit(f"answers not in their source's text: {missing} — fix benchmarks/multidoc_sets/seed-in-squad.jsonl")
    return round(1 - len(missing) / len(turns), 3)


def asks(record: dict, with_history: bool) -> list[tuple[int, dict, list[dict]]]:
    """(turn number, the turn to ask, the history to pass) for each question of a record."""
    if record["kind"] != "conversation":
        return [(0, record, [])]
    turns = record["turns"]
    return [
        (i, t, [{"question": p["question"]} for p in turns[:i]] if with_history else []) for i, t in enumerate(turns)
    ]


# ---- ours: the product's own ask -----------------------------------------------------------------


def takes(assistant, parameter: str) -> bool:
    """Whether Assistant.ask (of the class or an instance) has this parameter: the hook's switch."""
    return parameter in inspect.signature(assistant.ask).parameters


def ask(assistant, question: str, history: list[dict], sources: list[str] | None = None) -> tuple[dict, float]:
    """One question as `assistant ask --json` asks it: its JSON reply and the milliseconds of the whole ask.
    The hook for issue 15: `history` and a scope (`sources`) are passed only when given, and only to an
    Assistant.ask that takes them (main() checks once, and falls back to asking follow-ups alone)."""
    from assistant.service import AnswerCache

    extra: dict = {}
    if history:
        extra["history"] = [turn["question"] for turn in history]  # Assistant.ask takes the questions' text
    if sources:
        if not takes(assistant, "sources"):
            sys.exit("a question asks within a scope (`sources`), but Assistant.ask takes no scope yet")
        extra["sources"] = sources
    assistant.answers = AnswerCache()  # never answered from the cache: every ask is timed whole,
    forget_passages(assistant.embedder)  # and as the first showing of its passages (no order effects)
    started = time.perf_counter()
    reply = assistant.ask(question, K, **extra).to_json()
    return reply, (time.perf_counter() - started) * 1000


def ours(name: str, corpus: Path, index: Path, records: list[dict], with_history: bool) -> tuple[list[dict], dict]:
    """Build (incrementally) and ask every question of the set; one row per question asked, and the set's facts."""
    from assistant.config import Settings
    from assistant.service import Assistant

    assistant = Assistant(Settings(corpus=corpus, index=index))
    started = time.perf_counter()
    summary = assistant.build()
    log(f"{name}: {summary.line()}")
    built = time.perf_counter() - started
    store = assistant.index()
    texts = {path: row["text"] for path, row in store.documents().items()}
    pieces = sorted(len(assistant.embedder.offsets(c["text"])) for c in store.chunks_of(sorted(texts)))
    facts = {"documents": len(texts), "chunks": len(store), "median pieces": pieces[len(pieces) // 2]}
    facts |= {"build s": round(built, 1), "in text": check(name, records, texts)}
    assistant.warm_up()
    rows = []
    for record in records:
        for turn_number, turn, history in asks(record, with_history):
            reply, ms = ask(assistant, turn["question"], history, turn.get("sources"))
            rows.append(row(record, turn_number, turn, reply, ms, bool(history)))
    facts["ask s"] = round(sum(r["ms"] for r in rows) / 1000, 1)
    return rows, {**facts, "texts": texts, "embedder": assistant.embedder}


def row(record: dict, turn_number: int, turn: dict, reply: dict, ms: float, with_history: bool) -> dict:
    extracted = reply.get("answer") or {}
    return {
        "id": record["id"],
        "kind": record["kind"],
        "turn": turn_number,
        "split": record["split"],
        "question": turn["question"],
        "with history": with_history,
        "ms": round(ms, 1),
        "no_answer": reply["no_answer"],
        "relevance": reply.get("relevance"),
        "floor": reply.get("relevance_floor"),
        "confidence": reply.get("confidence"),
        "type": extracted.get("type"),
        "category": extracted.get("category"),
        "items": [item["text"] for item in extracted.get("items", [])],
        "top": [
            {"source": p["source"], "chunk_id": p["chunk_id"], "text": p["text"][:160]} for p in reply["passages"][:K]
        ],
        **multidoc_report.judge(record, turn, reply["passages"][:K], reply),
    }


# ---- txtai beside us -----------------------------------------------------------------------------


def txtai(name: str, work: Path, records: list[dict], facts: dict) -> tuple[list[dict], dict]:
    """txtai over the paragraphs of the same documents, asked the same questions (each turn alone)."""
    from assistant.config import Settings
    from assistant.embedding import resolve_model

    embedder = facts["embedder"]
    chunks = multidoc_txtai.paragraphs(facts["texts"], lambda t: len(embedder.offsets(t)), embedder.max_tokens)
    turns = [(record, i, turn) for record in records for i, turn, _ in asks(record, with_history=False)]
    model = resolve_model(Settings().model)
    found = multidoc_txtai.run(work / "txtai" / name, chunks, [t["question"] for _, _, t in turns], model)
    log(f"{name}: txtai {found['chunks']} paragraphs, build {found['build_seconds']} s (None: reused)")
    rows = []
    for (record, i, turn), top, ms in zip(turns, found["top"], found["ms"]):
        passages = [{"source": source, "text": text} for source, text in top]
        judged = multidoc_report.judge(record, turn, passages, None)
        rows.append(
            {"id": record["id"], "kind": record["kind"], "turn": i, "split": record["split"], "ms": ms, **judged}
        )
    pieces = sorted(len(embedder.offsets(text)) for _, text in chunks)
    return rows, {
        "paragraphs": len(chunks),
        "median pieces": pieces[len(pieces) // 2],
        "build s": found["build_seconds"],
    }


# ---- the run -------------------------------------------------------------------------------------


def corpus_of(name: str, args: argparse.Namespace) -> Path:
    if name == "seed-in-squad":
        return seed_in_squad(args.work / "sets" / name)
    folder = args.ingest / "sets" / name
    if not folder.is_dir():
        sys.exit(f"{folder} does not exist — run: PYTHONPATH=. .venv/bin/python benchmarks/ingest.py --prepare")
    return folder


def measure(name: str, args: argparse.Namespace, with_history: bool) -> dict:
    records = questions(name)
    started = time.perf_counter()
    rows, facts = ours(name, corpus_of(name, args), args.work / "index" / name, records, with_history)
    result = {"facts": {k: v for k, v in facts.items() if k not in ("texts", "embedder")}, "ours": rows}
    if "txtai" not in args.skip:
        result["txtai"], result["facts"]["txtai"] = txtai(name, args.work, records, facts)
    result["facts"]["seconds"] = round(time.perf_counter() - started, 1)
    result["summary"] = {
        system: multidoc_report.summarise(result[system]) for system in ("ours", "txtai") if system in result
    }
    log(f"{name}: {json.dumps(result['summary'])}")
    return result


def commit() -> dict:
    def git(*words: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *words], capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "assistant/ last changed": git("log", "-1", "--format=%h", "--", "assistant"),  # the product measured
        "assistant/ uncommitted changes": bool(git("status", "--short", "assistant")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-multidoc"), help="corpora and indexes")
    parser.add_argument("--ingest", type=Path, default=Path("/tmp/assistant-ingest"), help="ingest.py's --work")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--skip", nargs="*", default=[], choices=["txtai"])
    parser.add_argument(
        "--followups",
        choices=["history", "alone"],
        default="history",
        help="a conversation's later turns: with the earlier ones as history (when Assistant.ask takes it), or alone",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if args.work.is_relative_to(REPO):
        sys.exit("--work must be outside the repository: the evaluation data never goes into it")
    from assistant.service import Assistant

    with_history = args.followups == "history" and takes(Assistant, "history")
    if args.followups == "history" and not with_history:
        log("Assistant.ask takes no history yet: follow-ups are asked alone (the baseline)")
    started = time.perf_counter()
    results: dict = {**commit(), "date": time.strftime("%Y-%m-%d"), "followups": "history" if with_history else "alone"}
    results["sets"] = {name: measure(name, args, with_history) for name in args.sets}
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(multidoc_report.report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
