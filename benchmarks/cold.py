"""Where people wait on the command line and for the server: one question from a fresh `assistant ask` process, the
same question asked of a warm server with `ask --server`, and `assistant serve` until it is ready, each against
`python -c "import torch"` timed in the same run (docs/benchmarks.md#a-question-from-a-fresh-process).

Each version is run from its own checkout (the working tree, and --baseline REV through a git worktree) with
this virtualenv, on a copy of the sample corpus with an index it built itself, as a user would run it: processes
and HTTP, nothing imported here. Medians of --runs runs; the ratios are to `import torch`'s median.

    PYTHONPATH=. .venv/bin/python benchmarks/cold.py --baseline 2dbcc59 --precision onnx --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who spoke at the conference?"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def served(env: dict[str, str], cwd: Path, port: int) -> tuple[subprocess.Popen, float]:
    """A server started, and the seconds until its /readyz said ready."""
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return server, time.perf_counter() - start
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("the server stopped before it was ready") from None
            time.sleep(0.05)


def measure(code: Path, work: Path, runs: int, precision: str | None = None) -> dict[str, float | None]:
    """The medians of one version: the code at `code`, its corpus and index in `work`, with ASSISTANT_PRECISION
    set to `precision` if given."""
    shutil.copytree(ROOT / "corpus", work / "corpus")
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    if precision:
        env["ASSISTANT_PRECISION"] = precision
    python = [sys.executable, "-m", "assistant"]
    subprocess.run([*python, "build"], env=env, cwd=work, check=True, capture_output=True)
    has_server_option = (
        "--server"
        in subprocess.run([*python, "ask", "--help"], env=env, cwd=work, capture_output=True, text=True).stdout
    )
    ask = [statistics.median(timed([*python, "ask", QUESTION], env, work) for _ in range(runs))]
    ready, remote = [], []
    for _ in range(runs):
        port = free_port()
        server, seconds = served(env, work, port)
        ready.append(seconds)
        if has_server_option:
            remote.append(timed([*python, "ask", "--server", f"http://127.0.0.1:{port}/", QUESTION], env, work))
        server.terminate()
        server.wait(timeout=30)
    return {
        "ask": ask[0],
        "ask --server": statistics.median(remote) if remote else None,
        "serve to ready": statistics.median(ready),
    }


def checkout(revision: str, folder: Path) -> Path:
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), revision], cwd=ROOT, check=True, capture_output=True
    )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="a git revision to measure beside the working tree (e.g. main's)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precision", action="append", default=[], help="also run the change with this precision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        torch = statistics.median(
            timed([sys.executable, "-c", "import torch"], dict(os.environ), tmp) for _ in range(args.runs)
        )
        versions = {"this change": measure(ROOT, tmp / "change", args.runs)}
        for precision in args.precision:
            versions[f"this change, {precision}"] = measure(ROOT, tmp / f"change-{precision}", args.runs, precision)
        if args.baseline:
            try:
                versions[args.baseline] = measure(checkout(args.baseline, tmp / "base-code"), tmp / "base", args.runs)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "base-code")], cwd=ROOT, check=False)
    print(f'`python -c "import torch"`: {torch:.2f} s (median of {args.runs})\n')
    print("| measure | " + " | ".join(versions) + " |")
    print("| --- |" + " --- |" * len(versions))
    for measure_name in ("ask", "ask --server", "serve to ready"):
        cells = []
        for figures in versions.values():
            seconds = figures[measure_name]
            cells.append("—" if seconds is None else f"{seconds:.2f} s ({seconds / torch:.1f}× torch)")
        print(f"| {measure_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
