"""How benchmarks/multidoc.py judges one reply (top 5, list items, direct answer, type), sums a set's rows per
half, and prints its tables. The definitions are in the docstring of benchmarks/multidoc.py."""

from __future__ import annotations

import re

import numpy as np
from ingest import norm

SPLITS = ("tune", "held")
_EDGES = re.compile(r"^the\s+|[\s.,;:!?]+$")


def judge(record: dict, turn: dict, top: list[dict], reply: dict | None) -> dict:
    """What one question's top passages (and, for ours, its reply) got right. `reply` is None for txtai."""
    if record["kind"] == "offtopic":
        return {"answered": None if reply is None else not reply["no_answer"]}
    answers = [norm(a) for a in turn["answers"]]
    holds = [any(a in norm(p["text"]) for a in answers) for p in top]
    out: dict = {
        "top5": any(h and p["source"] == turn["source"] for h, p in zip(holds, top)),
        "top5 any source": any(holds),
        "source in top5": any(p["source"] == turn["source"] for p in top),
    }
    if reply is None:
        return out
    extracted = reply.get("answer") or {}
    items = [item["text"] for item in extracted.get("items", [])]
    out["refused"] = reply["no_answer"]
    if "items" in turn:
        out.update(list_scores(items, turn["items"], turn.get("optional", [])))
    if "value" in turn:
        out["value right"] = bool(items) and matches(items[0], turn["value"])
    if turn.get("type"):
        out["type right"] = extracted.get("type") == turn["type"]
    if turn.get("category") and "category" in extracted:
        out["category right"] = extracted["category"] == turn["category"]
    return out


def matches(item: str, spellings: list[str]) -> bool:
    """The item is one of the spellings, or holds one as whole words ("the Russian Federation", "US Ambassador
    Leon Waskin"), compared lower-cased with a leading "the" and trailing punctuation dropped."""
    text = _EDGES.sub("", norm(item))
    return any(
        text == (s := _EDGES.sub("", norm(spelling))) or re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)
        for spelling in spellings
    )


def list_scores(items: list[str], expected: list[list[str]], optional: list[list[str]]) -> dict:
    """Item recall and precision, each expected item matched by at most one listed item."""
    unmatched = list(range(len(expected)))
    right = allowed = 0
    for item in items:
        hit = next((i for i in unmatched if matches(item, expected[i])), None)
        if hit is not None:
            unmatched.remove(hit)
            right += 1
        elif any(matches(item, spellings) for spellings in optional):
            allowed += 1
    counted = len(items) - allowed
    return {
        "recall": right / len(expected),
        "precision": right / counted if counted else None,
        "complete": right == len(expected),
        "missed": [expected[i][0] for i in unmatched],
        "extra": [i for i in items if not any(matches(i, s) for s in expected + optional)],
    }


def summarise(rows: list[dict]) -> dict:
    return {split: _half([r for r in rows if split in (r["split"], "all")]) for split in (*SPLITS, "all")}


def _half(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["kind"] == "answerable"]
    lists = [r for r in answerable if "recall" in r]
    out = {
        "answerable": len(answerable),
        "top5": _count(answerable, "top5"),
        "top5 any source": _count(answerable, "top5 any source"),
        "refused": _count(answerable, "refused"),
        "lists": len(lists),
        "lists complete": _count(lists, "complete"),
        "item recall": _mean([r["recall"] for r in lists]),
        "item precision": _mean([r["precision"] for r in lists if r["precision"] is not None]),
        "value right": _count(answerable, "value right"),
        "type right": _count(answerable, "type right"),
        "category right": _count(answerable, "category right"),
        "first turns top5": _count([r for r in rows if r["kind"] == "conversation" and r["turn"] == 0], "top5"),
        "follow-ups": len(_followups(rows)),
        "follow-ups source in top5": _count(_followups(rows), "source in top5"),
        "follow-ups top5": _count(_followups(rows), "top5"),
        "follow-ups refused": _count(_followups(rows), "refused"),
        "off-topic": sum(r["kind"] == "offtopic" for r in rows),
        "off-topic answered": _count([r for r in rows if r["kind"] == "offtopic"], "answered"),
    }
    ms = [r["ms"] for r in rows]
    out["ms"] = {"p50": _pct(ms, 50), "p99": _pct(ms, 99), "n": len(ms)}
    return out


def _followups(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["kind"] == "conversation" and r["turn"] > 0]


def _count(rows: list[dict], key: str) -> list[int] | None:
    """[how many are true, of how many have the key], or None when none has it (e.g. txtai's refusals)."""
    judged = [r[key] for r in rows if r.get(key) is not None]
    return [sum(bool(x) for x in judged), len(judged)] if judged else None


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def _pct(values: list[float], q: int) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


# ---- the tables ----------------------------------------------------------------------------------


def report(results: dict) -> str:
    head = ["set", "system", "half", "answer in top 5", "lists complete (recall / precision)", "refused"]
    head += ["off-topic answered", "follow-ups alone: source in top 5 / answer in top 5", "p50 / p99 ms"]
    lines = [_line(head), _line(["---"] * len(head))]
    extra = ["set", "half", "direct answer right", "type right", "follow-ups refused"]
    extras = [_line(extra), _line(["---"] * len(extra))]
    for name, result in results["sets"].items():
        for system, halves in result["summary"].items():
            for split in SPLITS:
                s = halves[split]
                lists = f"{_frac(s['lists complete'])} ({_num(s['item recall'])} / {_num(s['item precision'])})"
                follow = f"{_frac(s['follow-ups source in top5'])} / {_frac(s['follow-ups top5'])}"
                if not s["follow-ups"]:
                    follow = "–"
                latency = f"{_num(s['ms']['p50'])} / {_num(s['ms']['p99'])}" + (
                    " (search)" if system == "txtai" else ""
                )
                cells = [name, system, split, _frac(s["top5"]), lists if s["lists"] and system == "ours" else "–"]
                cells += [_frac(s["refused"]), _frac(s["off-topic answered"]), follow, latency]
                lines.append(_line(cells))
                if system == "ours":
                    parts = [_frac(s[p]) for p in ("value right", "type right", "follow-ups refused")]
                    if any(part != "–" for part in parts):
                        extras.append(_line([name, split, *parts]))
    facts = [
        _line(
            ["set", "documents", "chunks (median pieces)", "txtai paragraphs (median pieces)", "answers in text", "s"]
        ),
        _line(["---"] * 6),
    ]
    for name, result in results["sets"].items():
        f = result["facts"]
        chunks = f"{f['chunks']} ({f['median pieces']})"
        paragraphs = f"{f['txtai']['paragraphs']} ({f['txtai']['median pieces']})" if "txtai" in f else "–"
        facts.append(_line([name, f["documents"], chunks, paragraphs, f["in text"], f["seconds"]]))
    return "\n".join(
        [
            *lines,
            "",
            *extras,
            "",
            *facts,
            "",
            f"commit {results['commit']} (assistant/ of {results['assistant/ last changed']}), {results['seconds']} s",
        ]
    )


def _line(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _frac(pair: list[int] | None) -> str:
    return "–" if not pair else f"{pair[0]}/{pair[1]}"


def _num(value) -> str:
    return "–" if value is None else f"{value:g}"
