"""Benchmark: exact (flat) against approximate (IVF) dense search, 10,000 to 1,000,000 chunks.

Chunks: the real chunk embeddings of the SciFact and SQuAD indexes that benchmarks/quality.py builds in --work
(18,397 vectors, read-only), then noisy copies of them up to the size: a copy is a real vector plus Gaussian
noise shaped like the real vectors' own covariance, renormalized, scaled so that the median cosine of a copy
with its source equals the median cosine of a real chunk with its nearest neighbour (0.845). Random vectors
would mislead: they have no clusters, and IVF works on clusters. Sizes up to 18,397 are real vectors only.

Queries: real questions, embedded by the product's Embedder: half SQuAD dev questions, half SciFact claims
(a seeded sample; their vectors are cached in --cache, outside the repository).

Each size runs in its own process, so that its peak memory is its own. Per size: the exact top 100 of every
query (the truth), the latency of one query at a time as the product searches (k = 100 candidates, one
thread per query), the IVF's build time (k-means on a sample, then adding every vector), its recall@10,
recall@100 and top-1 agreement with exact search for each nprobe, and memory: the bytes of each index file
(what a loaded index holds in RAM), the resident memory that loading the IVF adds, the process's peak.

Latency is measured on one thread. The product searches with faiss's default of one OpenMP thread per core,
but faiss splits even a single flat query across them, and on a machine busy with other work a thread that
waits for its descheduled partner made one flat query at 10,000 chunks take 16 ms instead of 1 ms.

    PYTHONPATH=. .venv/bin/python benchmarks/ann.py --out /tmp/ann.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaldata import REPO, SEED, log  # noqa: E402

from assistant.config import Settings  # noqa: E402

SIZES = [10_000, 30_000, 100_000, 300_000, 1_000_000]
NPROBES = [8, 16, 32, 64]
INDEXES = ("scifact-index", "squad-index")
COPY_COSINE = 0.845  # median cosine of a real chunk with its nearest other chunk, in these two indexes
DEPTH = 100  # the dense side's candidates per question (search.CANDIDATES)


def real_vectors(work: Path) -> np.ndarray:
    """Every stored chunk vector of the benchmark indexes, opened read-only."""
    from assistant.index.faiss.store import open_index

    parts = []
    for name in INDEXES:
        index = open_index(work / name)
        parts.append(index.stored_vectors(list(range(len(index)))))
        index.close()
    return np.vstack(parts).astype(np.float32)


def query_vectors(count: int, cache: Path) -> np.ndarray:
    """`count` real questions embedded by the product's Embedder: half SQuAD dev, half SciFact claims."""
    path = cache / f"queries-{count}.npy"
    if path.exists():
        return np.load(path)
    from evaldata import scifact_task, squad_task

    from assistant.embedding import Embedder

    claims = list(scifact_task(None, 10).queries.values())
    picked = [claims[i] for i in np.random.default_rng(SEED).choice(len(claims), count // 2, replace=False)]
    questions = list(squad_task(None, count - len(picked)).queries.values()) + picked
    log(f"embedding {len(questions)} questions")
    vectors = Embedder().encode(questions)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def chunk_vectors(real: np.ndarray, size: int) -> np.ndarray:
    """`size` unit vectors: the real ones (a sample if fewer are asked), then noisy copies of them."""
    rng = np.random.default_rng(SEED)
    if size <= len(real):
        return real[np.sort(rng.choice(len(real), size, replace=False))]
    noise = noise_shape(real)
    out = np.empty((size, real.shape[1]), np.float32)
    out[: len(real)] = real
    for start in range(len(real), size, 100_000):
        stop = min(size, start + 100_000)
        out[start:stop] = noisy_copies(real, rng.integers(len(real), size=stop - start), noise, rng)
    return out


def noise_shape(real: np.ndarray) -> tuple[np.ndarray, float]:
    """The linear map that turns standard normal draws into noise shaped like the real vectors' covariance,
    and the scale that puts a copy at a median cosine of COPY_COSINE to its source."""
    centered = real - real.mean(axis=0)
    variances, axes = np.linalg.eigh(centered.T @ centered / len(real))
    shape = axes * np.sqrt(np.clip(variances, 0, None))  # noise ~ N(0, covariance of the real vectors)
    scale = np.sqrt((1 / COPY_COSINE**2 - 1) / variances.sum())  # cos(copy, source) ~ 1 / sqrt(1 + |noise|^2)
    return shape, float(scale)


def noisy_copies(real: np.ndarray, sources: np.ndarray, noise: tuple[np.ndarray, float], rng) -> np.ndarray:
    """Unit vectors: real[sources] plus shaped noise (noise_shape), renormalized."""
    shape, scale = noise
    copies = real[sources] + scale * rng.standard_normal((len(sources), real.shape[1])) @ shape.T
    return (copies / np.linalg.norm(copies, axis=1, keepdims=True)).astype(np.float32)


def latency_ms(index, queries: np.ndarray) -> dict[str, float]:
    """p50 and p99 of one query at a time, k = DEPTH, on one thread (see the module's docstring)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    times = []
    for query in queries:
        started = time.perf_counter()
        index.search(query.reshape(1, -1), DEPTH)
        times.append((time.perf_counter() - started) * 1000)
    faiss.omp_set_num_threads(threads)
    return {"p50_ms": round(float(np.percentile(times, 50)), 2), "p99_ms": round(float(np.percentile(times, 99)), 2)}


def recall(found: np.ndarray, truth: np.ndarray, at: int) -> float:
    return round(float(np.mean([len(set(f[:at]) & set(t[:at])) / at for f, t in zip(found, truth)])), 4)


def memory_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak) of this process: unlike ru_maxrss, the peak restarts at exec."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return round(int(line.split()[1]) / 1024, 1)


def measure(size: int, args: argparse.Namespace) -> dict:
    """Everything for one size; runs in a child process (see main)."""
    from assistant.index.faiss import vectors as dense

    dense.NLIST_PER_SQRT = args.nlist_per_sqrt or dense.NLIST_PER_SQRT
    chunks = chunk_vectors(np.load(args.cache / "real.npy"), size)
    queries = np.load(args.cache / f"queries-{args.queries}.npy")
    timed = queries[: args.timed]
    flat, _ = dense.build_dense(chunks, threshold=size, nprobe=1)
    truth = flat.search(queries, DEPTH)[1]
    row = {"chunks": size, "flat": latency_ms(flat, timed), "flat_mb": round(size * chunks.shape[1] * 4 / 2**20, 1)}
    del flat
    started = time.perf_counter()
    ivf, spec = dense.build_dense(chunks, threshold=0, nprobe=1)
    row.update(nlist=spec["nlist"], ivf_build_s=round(time.perf_counter() - started, 1), nprobe={})
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        found = ivf.search(queries, DEPTH)[1]
        row["nprobe"][nprobe] = {
            "recall@10": recall(found, truth, 10),
            "recall@100": recall(found, truth, DEPTH),
            "top1": round(float(np.mean(found[:, 0] == truth[:, 0])), 4),
            **latency_ms(ivf, timed),
        }
    row["ivf_update_s"] = _update_seconds(dense, ivf, spec, chunks, queries, args.chosen)
    row["peak_rss_mb"] = memory_mb("VmHWM")  # the vectors, the flat index (freed before the IVF's build) and the IVF
    row.update(_ivf_memory(ivf))
    return row


def _update_seconds(dense, ivf, spec: dict, chunks: np.ndarray, queries: np.ndarray, nprobe: int) -> float:
    """Time of an incremental build's IVF that keeps 99% of the rows and re-adds 1% as new: it reuses the
    lists, so it must find exactly what the first IVF finds."""
    old_rows = np.arange(len(chunks))
    old_rows[np.random.default_rng(SEED).choice(len(chunks), len(chunks) // 100, replace=False)] = -1
    started = time.perf_counter()
    updated, _ = dense.build_dense(
        chunks, threshold=0, nprobe=nprobe, previous=ivf, previous_spec=spec, old_rows=old_rows
    )
    seconds = round(time.perf_counter() - started, 1)
    ivf.nprobe = nprobe
    assert (updated.search(queries, DEPTH)[1] == ivf.search(queries, DEPTH)[1]).all()
    return seconds


def _ivf_memory(ivf) -> dict:
    """Bytes of the IVF file, and the resident memory that loading it adds to a fresh process."""
    import faiss

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vectors.faiss"
        faiss.write_index(ivf, str(path))
        load = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import faiss, ann; "
            f"before = ann.memory_mb('VmRSS'); index = faiss.read_index({str(path)!r}); "
            "print(ann.memory_mb('VmRSS') - before)"
        )
        added = float(
            subprocess.run([sys.executable, "-c", load], check=True, stdout=subprocess.PIPE, text=True).stdout
        )
        return {"ivf_mb": round(path.stat().st_size / 2**20, 1), "ivf_loaded_mb": round(added, 1)}


def markdown(rows: list[dict], nprobe: int) -> str:
    """The README's table: flat against IVF at `nprobe`."""
    lines = [
        "| chunks | flat p50 / p99 ms | IVF p50 / p99 ms | nlist | recall@10 | recall@100 | top-1 same "
        "| IVF build / update s | flat MB | IVF MB (loaded) | peak RSS MB |",
        "|" + " --- |" * 11,
    ]
    for r in rows:
        p = r["nprobe"][str(nprobe)]
        lines.append(
            f"| {r['chunks']:,} | {r['flat']['p50_ms']} / {r['flat']['p99_ms']} | {p['p50_ms']} / {p['p99_ms']} "
            f"| {r['nlist']} | {p['recall@10']} | {p['recall@100']} | {p['top1']} "
            f"| {r['ivf_build_s']} / {r['ivf_update_s']} "
            f"| {r['flat_mb']} | {r['ivf_mb']} ({r['ivf_loaded_mb']}) | {r['peak_rss_mb']} |"
        )
    return "\n".join(lines)


def sweep(rows: list[dict]) -> str:
    """recall@10 / recall@100 / IVF p50 ms of every nprobe at every size."""
    probes = list(rows[0]["nprobe"])
    lines = ["| chunks | " + " | ".join(f"nprobe {p}" for p in probes) + " |", "|" + " --- |" * (len(probes) + 1)]
    for r in rows:
        cells = [f"{v['recall@10']} / {v['recall@100']} / {v['p50_ms']}" for v in r["nprobe"].values()]
        lines.append(f"| {r['chunks']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/assistant-bench"), help="quality.py's indexes (read only)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path("/tmp/assistant-bench-ann"), help="vectors of this benchmark"
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    parser.add_argument("--nprobe", type=lambda s: [int(x) for x in s.split(",")], default=NPROBES)
    parser.add_argument("--queries", type=int, default=1000, help="questions for recall (half SQuAD, half SciFact)")
    parser.add_argument("--timed", type=int, default=300, help="of which, searched one at a time for latency")
    parser.add_argument("--chosen", type=int, default=Settings().ann_nprobe, help="the nprobe of the main table")
    parser.add_argument(
        "--nlist-per-sqrt", type=float, default=None, help="IVF lists per sqrt(chunks) (default: the product's)"
    )
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child: measure this size
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args)))
        return
    if args.cache.resolve().is_relative_to(REPO):
        sys.exit("--cache must be outside the repository: the evaluation data never goes into it")
    args.cache.mkdir(parents=True, exist_ok=True)
    np.save(args.cache / "real.npy", real_vectors(args.work))
    query_vectors(args.queries, args.cache)
    rows = []
    for size in args.sizes:
        log(f"{size:,} chunks")
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--one", str(size)]
        rows.append(json.loads(subprocess.run(child, check=True, stdout=subprocess.PIPE, text=True).stdout))
        log(json.dumps(rows[-1]))
    print(markdown(rows, args.chosen))
    print()
    print(sweep(rows))
    if args.out:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
