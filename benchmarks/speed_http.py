"""The HTTP part of benchmarks/speed.py: start `assistant serve`, time its cold start, ask through /api/ask, read
its peak RSS."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLD_QUESTION = "Who founded the university?"  # a "who" question: the first answer loads spaCy too
START_LIMIT = 300.0  # seconds to wait for the first answer before giving up


def serve_and_ask(env: dict, questions: dict, modes: tuple[str, ...], k: int) -> dict:
    """Cold start, then per mode the warm-up questions and the timed ones; the server's peak RSS at the end."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="speed-serve-", suffix=".log", delete=False)
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        cold = _first_answer(port, started, server, log.name)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        out: dict = {"cold_start_s": round(cold, 2)}
        for mode in modes:
            for question in questions["warm"]:
                _ask(connection, question, k, mode)
            times = []
            for question in questions["timed"]:
                begun = time.perf_counter()
                _ask(connection, question, k, mode)
                times.append((time.perf_counter() - begun) * 1000)
            out[mode] = {
                "p50": round(float(np.percentile(times, 50)), 1),
                "p99": round(float(np.percentile(times, 99)), 1),
                "n": len(times),
            }
        out["peak_rss_mb"] = _memory_mb(server.pid, "VmHWM")
        out["rss_mb"] = _memory_mb(server.pid, "VmRSS")
        return out
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        Path(log.name).unlink(missing_ok=True)


def _first_answer(port: int, started: float, server: subprocess.Popen, log: str) -> float:
    """Seconds from `started` to the first 200 of /api/ask; connection refused means not listening yet."""
    while time.perf_counter() - started < START_LIMIT:
        if server.poll() is not None:
            raise SystemExit(f"assistant serve exited with {server.returncode}:\n{Path(log).read_text()[-2000:]}")
        try:
            _ask(http.client.HTTPConnection("127.0.0.1", port, timeout=120), COLD_QUESTION, 5, None)
            return time.perf_counter() - started
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            time.sleep(0.05)
    raise SystemExit(f"no answer from assistant serve within {START_LIMIT:.0f} s")


def _ask(connection: http.client.HTTPConnection, question: str, k: int, mode: str | None) -> dict:
    body = json.dumps({"question": question, "k": k, **({"mode": mode} if mode else {})})
    connection.request("POST", "/api/ask", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"/api/ask answered {response.status}: {data[:300]!r}")
    return json.loads(data)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb(pid: int, field: str) -> float:
    """VmHWM (peak resident) or VmRSS (resident now) of a process, in MB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return round(int(line.split()[1]) / 1024, 1)
