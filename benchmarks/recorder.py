"""The `reliability` fixture: what a reliability test tried, recorded for the Reliability table.

benchmarks/reliability.py runs the reliability tests with RELIABILITY_LOG set to a file; each test calls this
fixture after its assertions, and each call appends one JSON line to that file. Without RELIABILITY_LOG
nothing is written. tests/conftest.py imports the fixture from here, so that the benchmark's plumbing stays
out of the tests.
"""

from __future__ import annotations

import json
import os

import pytest

_RELIABILITY_LOG = os.environ.get("RELIABILITY_LOG")  # set by benchmarks/reliability.py


@pytest.fixture
def reliability(request):
    """Record what a reliability test tried, for the README's Reliability table.

    Call it after the test's assertions: reliability(area, item, tried=..., survived=..., lost=0, detail="").
    area is one of "load", "faults", "files", "queries", "security". benchmarks/reliability.py runs the suite
    with RELIABILITY_LOG set, joins these records to each test's outcome and prints the table; without
    RELIABILITY_LOG nothing is written."""

    def record(
        area: str, item: str, tried: int = 1, survived: int | None = None, lost: int = 0, detail: str = ""
    ) -> None:
        if not _RELIABILITY_LOG:
            return
        entry = {
            "test": request.node.nodeid,
            "area": area,
            "item": item,
            "tried": tried,
            "survived": tried if survived is None else survived,
            "lost": lost,
            "detail": detail,
        }
        with open(_RELIABILITY_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    return record
