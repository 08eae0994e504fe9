"""The tables of benchmarks/speed.py, and each target of the issue "Fast" marked met or missed. Milvus Lite's
rows sit beside FAISS's with their ratio to FAISS from the same run (absolute timings drift between runs)."""

from __future__ import annotations

PARAGRAPHS = 2067
SIZES = ("small", "small_milvus", "large", "large_plain")  # the latency results, in the order of the table
STORE_OF = {
    "small": "FAISS",
    "small_milvus": "Milvus Lite",
    "large": "FAISS",
    "large_plain": "FAISS, no sentence vectors (as built before them)",
}


def report(results: dict) -> str:
    parts = [_precision(results)]
    if "build" in results:
        parts.append(_builds(results["build"]))
    if any(name in results for name in SIZES):
        parts.append(_latency(results))
        parts.append(_server(results))
    parts.append(_targets(results))
    return "\n\n".join(p for p in parts if p)


def _precision(results: dict) -> str:
    found = {name: results[name]["in_process"]["precision"] for name in SIZES if name in results}
    return "Embedding precision (from the manifest): " + (
        ", ".join(f"{k}: {v}" for k, v in found.items()) or "not measured"
    )


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def _builds(build: dict) -> str:
    rows = [
        "| build of 2,067 SQuAD paragraphs | wall s (all runs) | paragraphs/s | embedded |",
        "| --- | --- | --- | --- |",
    ]
    ours = _best(build["assistant"]) if build.get("assistant") else None
    if ours:
        rows.append(
            f"| assistant, full (`build --rebuild`) | **{ours['seconds']:.1f}** ({_all(build['assistant'])}) "
            f"| **{PARAGRAPHS / ours['seconds']:.1f}** | {ours['embedded']:,} chunks |"
        )
    if build.get("txtai"):
        theirs = _best(build["txtai"])
        rows.append(
            f"| txtai 9 (hybrid, content) | **{theirs['seconds']:.1f}** ({_all(build['txtai'])}) "
            f"| **{PARAGRAPHS / theirs['seconds']:.1f}** | {PARAGRAPHS:,} paragraphs |"
        )
        if ours:
            rows.append(f"| ratio | | **{theirs['seconds'] / ours['seconds']:.2f}×** | |")
    if build.get("milvus"):
        rows.extend(_milvus_full(build, ours))
    if ours:
        rows.extend(_incremental_rows(build, "assistant", "incremental", "changed_chunks"))
    if build.get("milvus"):
        rows.extend(
            _incremental_rows(
                build,
                "assistant on Milvus Lite",
                "milvus_incremental",
                "milvus_changed_chunks",
                full=_best(build["milvus"]),
                faiss=build.get("incremental"),
            )
        )
    return "\n".join(rows)


def _milvus_full(build: dict, faiss: dict | None) -> list[str]:
    """Milvus Lite's full build, and its paragraphs/s as a share of FAISS's (below 1: slower)."""
    milvus = _best(build["milvus"])
    rows = [
        f"| assistant on Milvus Lite, full (`build --rebuild`, a new .db) | **{milvus['seconds']:.1f}** "
        f"({_all(build['milvus'])}) | **{PARAGRAPHS / milvus['seconds']:.1f}** | {milvus['embedded']:,} chunks |"
    ]
    if faiss:
        rows.append(f"| ratio Milvus Lite / FAISS | | **{faiss['seconds'] / milvus['seconds']:.2f}×** | |")
    return rows


def _incremental_rows(
    build: dict, name: str, key: str, chunks_key: str, full: dict | None = None, faiss: list[dict] | None = None
) -> list[str]:
    """The incremental builds of one store: the share of its own full build and, given FAISS's, the ratio to them."""
    changed, restored = build[key]
    full = full or _best(build["assistant"])
    changed_vs = f", {_times(changed, faiss[0])} FAISS's" if faiss else ""
    restored_vs = f" ({_times(restored, faiss[1])} FAISS's)" if faiss else ""
    return [
        f"| {name}, incremental: 1 paragraph changed ({build[chunks_key]} chunks) | **{changed['seconds']:.1f}** "
        f"({100 * changed['seconds'] / full['seconds']:.0f}% of full{changed_vs}) | | {changed['embedded']} chunks |",
        f"| {name}, incremental: the paragraph restored | {restored['seconds']:.1f}{restored_vs} | | "
        f"{restored['embedded']} chunks |",
    ]


def _times(ours: dict, theirs: dict) -> str:
    """One build's wall time as a multiple of another's (above 1: slower)."""
    return f"{ours['seconds'] / theirs['seconds']:.2f}×"


def _all(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in runs)


def _latency(results: dict) -> str:
    rows = [
        "| chunks | store | mode | retrieval, in process | full answer, in process | full answer, HTTP | "
        "not in the documents / entity answers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in SIZES:
        if name not in results:
            continue
        inside, http = results[name]["in_process"], results[name].get("http")
        faiss = results["small"]["in_process"] if name == "small_milvus" and "small" in results else None
        for mode in ("dense", "bm25", "hybrid"):
            m = inside[mode]
            rows.append(
                f"| {inside['chunks']:,} | {STORE_OF[name]} | {mode} | {_vs(m['retrieval'], faiss, mode, 'retrieval')} "
                f"| {_vs(m['answer'], faiss, mode, 'answer')} | {_ms(http[mode]) if http else 'not measured'} "
                f"| {m['no_answer']} / {m['extracted']} |"
            )
        last_small = name == "small_milvus" or (name == "small" and "small_milvus" not in results)
        if last_small and results.get("build", {}).get("txtai"):  # txtai's search, below the stores at its size
            rows.append(
                f"| {PARAGRAPHS:,} paragraphs | txtai | hybrid `search(q, 5)` | "
                f"{_ms(_best(results['build']['txtai'])['search'])} | | | |"
            )
    counts = next(results[n]["in_process"]["hybrid"] for n in SIZES if n in results)
    note = (
        "; Milvus Lite's cells add (×p50 / ×p99) its times as multiples of FAISS's in the same run (above 1: slower)"
        if "small_milvus" in results and "small" in results
        else ""
    )
    return (
        f"p50 / p99 ms, one question at a time, k = 5; retrieval over {counts['retrieval']['n']:,} distinct SQuAD dev "
        f"questions, full answers over the first {counts['answer']['n']:,} of them{note}:\n\n" + "\n".join(rows)
    )


def _ms(p: dict) -> str:
    return f"{p['p50']} / {p['p99']}"


def _vs(p: dict, faiss: dict | None, mode: str, kind: str) -> str:
    """p50 / p99, and with FAISS's figures of the same run, both as multiples of them."""
    if faiss is None:
        return _ms(p)
    theirs = faiss[mode][kind]
    return f"{_ms(p)} (×{p['p50'] / theirs['p50']:.2f} / ×{p['p99'] / theirs['p99']:.2f})"


def _server(results: dict) -> str:
    rows = ["| `assistant serve` on | cold start to first answer, s | peak RSS, MB |", "| --- | --- | --- |"]
    for name in ("small", "large"):  # FAISS's only: Milvus is not served in this benchmark
        if name in results and "http" in results[name]:
            http = results[name]["http"]
            rows.append(
                f"| {results[name]['in_process']['chunks']:,} chunks | {http['cold_start_s']} "
                f"| {http['peak_rss_mb']:,.0f} |"
            )
    return "\n".join(rows) if len(rows) > 2 else ""


def _targets(results: dict) -> str:
    checks: list[tuple[str, bool, str]] = []
    if results.get("build", {}).get("assistant"):  # the targets are FAISS's, the default store
        build = results["build"]
        ours, changed = _best(build["assistant"]), build["incremental"][0]
        if build.get("txtai"):
            ratio = _best(build["txtai"])["seconds"] / ours["seconds"]
            checks.append(("full build >= 2.0x txtai's paragraphs/s", ratio >= 2.0, f"{ratio:.2f}x"))
        share = changed["seconds"] / ours["seconds"]
        only = changed["embedded"] == build["changed_chunks"]
        checks.append(
            (
                "incremental: only the changed document re-embedded, <= 15% of the full build",
                only and share <= 0.15,
                f"{changed['embedded']} of its {build['changed_chunks']} chunks, {100 * share:.0f}%",
            )
        )
    if "large" in results:
        large = results["large"]
        hybrid = large["in_process"]["hybrid"]
        retrieval, answer = hybrid["retrieval"], hybrid["answer"]
        checks.append(
            (
                f"hybrid retrieval at {large['in_process']['chunks']:,} chunks: p50 <= 20 ms, p99 <= 50 ms",
                retrieval["p50"] <= 20 and retrieval["p99"] <= 50,
                _ms(retrieval),
            )
        )
        checks.append(
            (
                f"hybrid full answer at {large['in_process']['chunks']:,} chunks: p50 <= 150 ms, p99 <= 400 ms",
                answer["p50"] <= 150 and answer["p99"] <= 400,
                _ms(answer),
            )
        )
        checks.append(
            (
                "peak RSS serving it <= 1,000 MB",
                large["http"]["peak_rss_mb"] <= 1000,
                f"{large['http']['peak_rss_mb']:,.0f} MB",
            )
        )
    if "http" in results.get("small", {}):
        cold = results["small"]["http"]["cold_start_s"]
        checks.append(("cold start to first answer <= 10 s", cold <= 10, f"{cold} s"))
    return "\n".join(f"- {'met' if ok else 'MISSED'}: {what} ({value})" for what, ok, value in checks)
