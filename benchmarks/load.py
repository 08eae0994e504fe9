"""Benchmark: the server under load — --clients concurrent API clients for --seconds, a rebuild in the middle.

`assistant serve` (the real model, default settings) serves a copy of the corpus (default: the seed corpus in
corpus/). Each client is a thread with one kept-alive HTTP connection that asks /api/ask, one question at a
time, as fast as answers come. Half of the questions are the seed questions of benchmarks/seed_questions.json
as written (colleagues asking the same thing: the answer cache serves them after the first time); the other
half are the same questions with one word of the corpus added, each asked once, so that they are answered in
full. At --rebuild-at seconds one document gets a new paragraph and `assistant build` runs in its own
process; the server must pick the new build up with no restart and no failed question.

Reported: questions answered, errors (any status but 200, or a broken connection), latency p50/p99 of each
half, the server's peak RSS, the build's wall time, and whether answers after the build came from it.

    PYTHONPATH=. .venv/bin/python benchmarks/load.py [--clients 50 --seconds 60] [--out load.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_http import _free_port, _memory_mb  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEED = 20261128
PROBE = "Where will the follow-up meeting on maritime patrols be held?"
NEW_PARAGRAPH = (
    "\n\nA follow-up meeting on maritime patrols was announced for Muscat, hosted by the Oman coast guard.\n"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--rebuild-at",
        type=float,
        default=10.0,
        help="seconds into the run when the rebuild starts (it loads the model: leave it time to finish)",
    )
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="assistant-load-") as work:
        results = run(Path(work), args)
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def run(work: Path, args: argparse.Namespace) -> dict:
    corpus = work / "corpus"
    shutil.copytree(args.corpus, corpus)
    env = {**os.environ, "ASSISTANT_CORPUS": str(corpus), "ASSISTANT_INDEX": str(work / "index")}
    subprocess.run([sys.executable, "-m", "assistant", "build"], env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(port, server)
        before = _get(port, "/api/status")["build"]
        outcome = _load(port, corpus, env, args)
        outcome["build_before"], outcome["build_after"] = before, _get(port, "/api/status")["build"]
        outcome["peak_rss_mb"] = _memory_mb(server.pid, "VmHWM")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    outcome["server_exit"] = server.returncode
    outcome["server_tracebacks"] = stderr.count("Traceback")
    return outcome


def _load(port: int, corpus: Path, env: dict, args: argparse.Namespace) -> dict:
    questions = json.loads((REPO / "benchmarks" / "seed_questions.json").read_text())["answerable"]
    words = sorted(set(re.findall(r"[A-Za-z]{5,}", " ".join(p.read_text() for p in corpus.rglob("*.txt")))))
    stop, lock, records = threading.Event(), threading.Lock(), []

    def client(number: int) -> None:
        rng = random.Random(SEED + number)
        web = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while not stop.is_set():
            repeated = rng.random() < 0.5
            question = rng.choice(questions) + ("" if repeated else f" {rng.choice(words)} {rng.randrange(10**6)}")
            begun = time.perf_counter()
            try:
                code, answer = _ask(web, question)
            except (OSError, http.client.HTTPException, ValueError) as err:
                code, answer = -1, {"detail": repr(err)}
                web = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            with lock:
                records.append(
                    {
                        "at": begun,
                        "ms": (time.perf_counter() - begun) * 1000,
                        "code": code,
                        "repeated": repeated,
                        "new_text": "Muscat" in json.dumps(answer),
                        "detail": answer.get("detail") if code != 200 else None,
                    }
                )

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(args.rebuild_at)
    build = _rebuild(corpus, env)
    build["probe"] = "Muscat" in json.dumps(_ask(http.client.HTTPConnection("127.0.0.1", port, timeout=300), PROBE)[1])
    time.sleep(max(0.0, started + args.seconds - time.perf_counter()))
    stop.set()
    for thread in threads:
        thread.join(600)
    return _summarise(records, build, started, args)


def _rebuild(corpus: Path, env: dict) -> dict:
    document = sorted(corpus.rglob("*.txt"))[0]
    document.write_text(document.read_text() + NEW_PARAGRAPH)
    begun = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "build", "--json"], env=env, capture_output=True, text=True
    )
    return {
        "seconds": round(time.perf_counter() - begun, 1),
        "exit": done.returncode,
        "published_at": time.perf_counter(),
        "summary": json.loads(done.stdout) if done.returncode == 0 else done.stderr[-500:],
    }


def _summarise(records: list[dict], build: dict, started: float, args: argparse.Namespace) -> dict:
    def latency(rows: list[dict]) -> dict:
        values = [r["ms"] for r in rows]
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "p50": round(float(np.percentile(values, 50))),
            "p99": round(float(np.percentile(values, 99))),
        }

    ok = [r for r in records if r["code"] == 200]
    after = [r for r in ok if r["at"] > build["published_at"]]
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "questions": len(records),
        "errors": len(records) - len(ok),
        "error_examples": [r["detail"] for r in records if r["code"] != 200][:5],
        "per_second": round(len(records) / args.seconds, 1),
        "all": latency(ok),
        "repeated": latency([r for r in ok if r["repeated"]]),
        "unique": latency([r for r in ok if not r["repeated"]]),
        "rebuild": {k: v for k, v in build.items() if k != "published_at"},
        "asked_after_rebuild": len(after),
        "new_text_seen_after_rebuild": sum(r["new_text"] for r in after),
        "new_text_seen_before_rebuild": sum(
            r["new_text"] for r in ok if r["at"] < build["published_at"] - build["seconds"]
        ),
    }


def _p(latency: dict) -> str:
    """The p50 and p99 cells of a row."""
    return f"{latency.get('p50')} | {latency.get('p99')}"


def report(r: dict) -> str:
    rows = [
        f"| {r['clients']} clients for {r['seconds']:.0f} s | questions | errors | p50 ms | p99 ms |",
        "| --- | --- | --- | --- | --- |",
        f"| all | {r['questions']:,} ({r['per_second']}/s) | {r['errors']} | {_p(r['all'])} |",
        f"| asked before (answer cache) | {r['repeated']['n']:,} | | {_p(r['repeated'])} |",
        f"| asked once (answered in full) | {r['unique']['n']:,} | | {_p(r['unique'])} |",
    ]
    rebuild = r["rebuild"]
    return "\n".join(rows) + (
        f"\n\nrebuild in the middle: `assistant build` exit {rebuild['exit']} in {rebuild['seconds']} s; served build "
        f"{r['build_before']} -> {r['build_after']}; the new paragraph answers {PROBE!r} right after the build: "
        f"{rebuild['probe']}; answers quoting it: {r['new_text_seen_after_rebuild']} of {r['asked_after_rebuild']} "
        f"asked after the build, {r['new_text_seen_before_rebuild']} before it started. "
        f"Server peak RSS {r['peak_rss_mb']} MB; "
        f"after SIGTERM the server exited with {r['server_exit']} (0: stopped gracefully), "
        f"{r['server_tracebacks']} tracebacks in its log." + (f"\nerrors: {r['error_examples']}" if r["errors"] else "")
    )


def _wait_ready(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"assistant serve exited with {server.returncode}: {server.stderr.read()[-1000:]}")
        try:
            web = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            web.request("GET", "/readyz")
            if web.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("assistant serve was not ready within 300 s")


def _ask(web: http.client.HTTPConnection, question: str) -> tuple[int, dict]:
    web.request("POST", "/api/ask", json.dumps({"question": question}), {"Content-Type": "application/json"})
    response = web.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def _get(port: int, path: str) -> dict:
    web = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    web.request("GET", path)
    return json.loads(web.getresponse().read())


if __name__ == "__main__":
    main()
