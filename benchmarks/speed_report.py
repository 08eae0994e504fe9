"""The tables of benchmarks/speed.py, and each target of the issue "Fast" marked met or missed."""
from __future__ import annotations

PARAGRAPHS = 2067


def report(results: dict) -> str:
    parts = [_precision(results)]
    if "build" in results:
        parts.append(_builds(results["build"]))
    if "small" in results or "large" in results:
        parts.append(_latency(results))
        parts.append(_server(results))
    parts.append(_targets(results))
    return "\n\n".join(p for p in parts if p)


def _precision(results: dict) -> str:
    found = {name: results[name]["in_process"]["precision"] for name in ("small", "large") if name in results}
    return "Embedding precision (from the manifest): " + (", ".join(f"{k}: {v}" for k, v in found.items()) or "not measured")


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def _builds(build: dict) -> str:
    ours, theirs = _best(build["assistant"]), _best(build["txtai"])
    changed = build["incremental"][0]
    rows = [
        "| build of 2,067 SQuAD paragraphs | wall s (all runs) | paragraphs/s | embedded |",
        "| --- | --- | --- | --- |",
        f"| assistant, full (`build --rebuild`) | **{ours['seconds']:.1f}** ({_all(build['assistant'])}) "
        f"| **{PARAGRAPHS / ours['seconds']:.1f}** | {ours['embedded']:,} chunks |",
        f"| txtai 9 (hybrid, content) | **{theirs['seconds']:.1f}** ({_all(build['txtai'])}) "
        f"| **{PARAGRAPHS / theirs['seconds']:.1f}** | {PARAGRAPHS:,} paragraphs |",
        f"| ratio | | **{theirs['seconds'] / ours['seconds']:.2f}×** | |",
        f"| assistant, incremental: 1 paragraph changed ({build['changed_chunks']} chunks) | **{changed['seconds']:.1f}** "
        f"({100 * changed['seconds'] / ours['seconds']:.0f}% of full) | | {changed['embedded']} chunks |",
        f"| assistant, incremental: the paragraph restored | {build['incremental'][1]['seconds']:.1f} | | "
        f"{build['incremental'][1]['embedded']} chunks |",
    ]
    return "\n".join(rows)


def _all(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in runs)


def _latency(results: dict) -> str:
    rows = ["| chunks | mode | retrieval, in process | full answer, in process | full answer, HTTP | "
            "not in the documents / entity answers |", "| --- | --- | --- | --- | --- | --- |"]
    for name in ("small", "large"):
        if name not in results:
            continue
        inside, http = results[name]["in_process"], results[name]["http"]
        for mode in ("dense", "bm25", "hybrid"):
            m = inside[mode]
            rows.append(f"| {inside['chunks']:,} | {mode} | {_ms(m['retrieval'])} | {_ms(m['answer'])} | {_ms(http[mode])} "
                        f"| {m['no_answer']} / {m['extracted']} |")
        if name == "small" and "build" in results:
            rows.append(f"| {PARAGRAPHS:,} paragraphs | txtai hybrid `search(q, 5)` | {_ms(_best(results['build']['txtai'])['search'])} | | | |")
    counts = next((results[n]["in_process"]["hybrid"] for n in ("small", "large") if n in results))
    return (f"p50 / p99 ms, one question at a time, k = 5; retrieval over {counts['retrieval']['n']:,} distinct SQuAD dev "
            f"questions, full answers over the first {counts['answer']['n']:,} of them:\n\n" + "\n".join(rows))


def _ms(p: dict) -> str:
    return f"{p['p50']} / {p['p99']}"


def _server(results: dict) -> str:
    rows = ["| `assistant serve` on | cold start to first answer, s | peak RSS, MB |", "| --- | --- | --- |"]
    for name in ("small", "large"):
        if name in results:
            http = results[name]["http"]
            rows.append(f"| {results[name]['in_process']['chunks']:,} chunks | {http['cold_start_s']} | {http['peak_rss_mb']:,.0f} |")
    return "\n".join(rows)


def _targets(results: dict) -> str:
    checks: list[tuple[str, bool, str]] = []
    if "build" in results:
        build = results["build"]
        ours, theirs, changed = _best(build["assistant"]), _best(build["txtai"]), build["incremental"][0]
        ratio = theirs["seconds"] / ours["seconds"]
        checks.append(("full build >= 2.0x txtai's paragraphs/s", ratio >= 2.0, f"{ratio:.2f}x"))
        share = changed["seconds"] / ours["seconds"]
        only = changed["embedded"] == build["changed_chunks"]
        checks.append(("incremental: only the changed document re-embedded, <= 15% of the full build", only and share <= 0.15,
                       f"{changed['embedded']} of its {build['changed_chunks']} chunks, {100 * share:.0f}%"))
    if "large" in results:
        large = results["large"]
        hybrid = large["in_process"]["hybrid"]
        retrieval, answer = hybrid["retrieval"], hybrid["answer"]
        checks.append((f"hybrid retrieval at {large['in_process']['chunks']:,} chunks: p50 <= 20 ms, p99 <= 50 ms",
                       retrieval["p50"] <= 20 and retrieval["p99"] <= 50, _ms(retrieval)))
        checks.append((f"hybrid full answer at {large['in_process']['chunks']:,} chunks: p50 <= 150 ms", answer["p50"] <= 150,
                       f"{answer['p50']} ms"))
        checks.append(("peak RSS serving it <= 1.5 GB", large["http"]["peak_rss_mb"] <= 1536, f"{large['http']['peak_rss_mb']:,.0f} MB"))
    if "small" in results:
        cold = results["small"]["http"]["cold_start_s"]
        checks.append(("cold start to first answer <= 10 s", cold <= 10, f"{cold} s"))
    return "\n".join(f"- {'met' if ok else 'MISSED'}: {what} ({value})" for what, ok, value in checks)
