"""The README's Reliability table: run the reliability tests, join what each recorded to its outcome, print.

Each reliability test calls the `reliability` fixture (benchmarks/recorder.py, imported by tests/conftest.py)
after its assertions, with what it tried and what survived. A record whose test did not pass is shown as
failed, whatever it recorded.

    PYTHONPATH=. .venv/bin/python benchmarks/reliability.py [--out results.json] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/system/test_reliability.py",
    "tests/system/test_faults.py",
    "tests/system/hostile_files/",
    "tests/system/test_hostile_queries.py",
    "tests/serve/test_security.py",
    "tests/index/milvus/",
]
AREAS = {
    "load": "load held",
    "faults": "faults survived",
    "files": "bad files tried",
    "queries": "bad queries tried",
    "security": "security checks",
}


def run(extra: list[str]) -> tuple[list[dict], dict[str, str], int]:
    with tempfile.TemporaryDirectory() as folder:
        log, junit = Path(folder) / "records.jsonl", Path(folder) / "junit.xml"
        tests = [t for t in TESTS if (REPO / t).exists()]
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests, *extra],
            cwd=REPO,
            env={**os.environ, "RELIABILITY_LOG": str(log)},
        )
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        outcomes = _outcomes(junit) if junit.exists() else {}
    return records, outcomes, code


def _outcomes(junit: Path) -> dict[str, str]:
    """test node id -> passed | failed | skipped, from pytest's JUnit XML."""
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        name = f"{path}::{case.get('name')}"
        state = (
            "failed"
            if case.find("failure") is not None or case.find("error") is not None
            else "skipped"
            if case.find("skipped") is not None
            else "passed"
        )
        found[name] = state
    return found


def table(records: list[dict], outcomes: dict[str, str]) -> str:
    rows = ["| area | what | tried | survived | data lost | test |", "| --- | --- | --- | --- | --- | --- |"]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in records:
        state = outcomes.get(r["test"].split("[")[0], outcomes.get(r["test"], "passed"))
        survived = r["survived"] if state == "passed" else 0
        for i, value in enumerate((r["tried"], survived, r["lost"])):
            totals[r["area"]][i] += value
        detail = f" ({r['detail']})" if r["detail"] else ""
        rows.append(
            f"| {AREAS.get(r['area'], r['area'])} | {r['item']}{detail} | {r['tried']:,} | {survived:,} | {r['lost']} "
            f"| {state} |"
        )
    rows += ["", "| area | tried | survived | data lost |", "| --- | --- | --- | --- |"]
    rows += [f"| {AREAS.get(a, a)} | {t:,} | {s:,} | {lost} |" for a, (t, s, lost) in totals.items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the records and outcomes as JSON here")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest after --")
    args = parser.parse_args(argv)
    records, outcomes, code = run(args.pytest_args)
    print(table(records, outcomes))
    if args.out:
        args.out.write_text(json.dumps({"records": records, "outcomes": outcomes}, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
