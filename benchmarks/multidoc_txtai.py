"""txtai beside the assistant in benchmarks/multidoc.py: its paragraphs, and a child process that builds (or reuses)
its index and searches it.

Set up as benchmarks/speed.py does: txtai 9 (the `bench` extra), Embeddings(path=<the model folder the
assistant loads>, hybrid=True, content=True), so the same all-MiniLM-L6-v2 and a BM25 side fused with it. Its
chunks are paragraphs: the text of each document as the assistant's reader extracted it (the index's own
document text: txtai has no HTML or PDF reader of its own here), split at blank lines. A paragraph longer than
the model's window (256 word pieces) is cut into consecutive windows that fit it, at line ends, else sentence
ends, else every WINDOW_WORDS words: txtai would embed only its first 256 pieces, and a whole PDF page (the
reader gives no blank lines inside a page) would be a far longer passage than anyone else's. The child runs in a
process of its own so that txtai's torch settings do not touch the assistant's, and searches on one thread,
as the assistant answers a question (on two threads, one small question waits for the slower core whenever
another job holds one); its index is saved under <work>/txtai/<set> with the digest of its paragraphs and
reused while they are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

K = 5
WINDOW_WORDS = 120  # a line that alone exceeds the window is cut into runs of this many words
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WARM = ["What is this document about?", "Who wrote it?", "How do I start?"]


def paragraphs(documents: dict[str, str], pieces, limit: int) -> list[tuple[str, str]]:
    """(source, text) of every paragraph of every document, in path order, long ones cut into windows of at
    most `limit` word pieces (`pieces(text)` counts them with the model's tokenizer)."""
    out = []
    for source in sorted(documents):
        for paragraph in _PARAGRAPH.split(documents[source]):
            if paragraph.strip():
                out += [(source, window) for window in windows(paragraph.strip(), pieces, limit)]
    return out


def windows(paragraph: str, pieces, limit: int) -> list[str]:
    """The paragraph itself when it fits the model's window, else its lines (or sentences, or runs of words)
    packed in order into windows that fit."""
    if pieces(paragraph) <= limit:
        return [paragraph]
    units: list[str] = []
    for line in paragraph.splitlines():
        for sentence in _SENTENCE_END.split(line) if pieces(line) > limit else [line]:
            words = sentence.split()
            units += [" ".join(words[i : i + WINDOW_WORDS]) for i in range(0, len(words), WINDOW_WORDS)]
    packed: list[str] = []
    size = 0
    for unit in units:
        count = pieces(unit)
        if packed and size + count <= limit:
            packed[-1] += "\n" + unit
            size += count
        else:
            packed.append(unit)
            size = count
    return packed


def run(folder: Path, chunks: list[tuple[str, str]], questions: list[str], model: str) -> dict:
    """Build or reuse txtai's index of `chunks` in `folder` and search each question (k = 5) in a child process.
    Returns per question the (source, text) of its top 5, the search latency, and the build seconds (None if
    reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "folder": str(folder),
        "model": model,
        "texts": [text for _, text in chunks],
        "digest": hashlib.sha256(json.dumps([model, chunks]).encode()).hexdigest(),
        "questions": questions,
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    command = [sys.executable, __file__, str(folder / "spec.json")]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["top"] = [[chunks[int(i)] for i in ids] for ids in found.pop("ids")]
    return found


def child(spec_path: Path) -> dict:
    """In the child: load the index when its digest matches, else build and save it; then the questions."""
    from txtai import Embeddings

    spec = json.loads(spec_path.read_text())
    folder = Path(spec["folder"])
    saved, digest = folder / "index", folder / "digest"
    embeddings = Embeddings(path=spec["model"], hybrid=True, content=True)
    build_seconds = None
    if digest.exists() and digest.read_text() == spec["digest"] and saved.exists():
        embeddings.load(str(saved))
    else:
        started = time.perf_counter()
        embeddings.index([{"id": str(i), "text": text} for i, text in enumerate(spec["texts"])])
        build_seconds = round(time.perf_counter() - started, 1)
        shutil.rmtree(saved, ignore_errors=True)
        embeddings.save(str(saved))
        digest.write_text(spec["digest"])
    import torch

    torch.set_num_threads(1)  # a question on one thread, as the assistant asks (docs/benchmarks.md#performance)
    for question in _WARM:
        embeddings.search(question, K)
    ids, ms = [], []
    for question in spec["questions"]:
        started = time.perf_counter()
        found = embeddings.search(question, K)
        ms.append((time.perf_counter() - started) * 1000)
        ids.append([row["id"] for row in found])
    return {"ids": ids, "ms": ms, "build_seconds": build_seconds, "chunks": len(spec["texts"])}


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"p50": None, "p99": None, "n": 0}
    return {"p50": round(float(np.percentile(ms, 50)), 1), "p99": round(float(np.percentile(ms, 99)), 1), "n": len(ms)}


if __name__ == "__main__":
    print(json.dumps(child(Path(sys.argv[1]))))
