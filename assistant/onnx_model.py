"""The embedding model run by ONNX Runtime (ASSISTANT_PRECISION=onnx): exported once from its torch weights into a
cache, then loaded and run without torch, transformers or sentence-transformers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # changes whenever the exported graph would: a new one is exported beside the old
_EXPORT_LOCK = threading.Lock()
_RUNTIME = "pip install onnxruntime onnx onnxscript (dependencies of the assistant)"


@dataclass(frozen=True)
class Pipeline:
    """A sentence-transformers model this runtime runs as its own modules do: a transformer, mean pooling over
    the word pieces that are not padding, and L2 normalization."""

    folder: Path
    max_seq_length: int
    dimension: int


def pipeline_of(folder: Path) -> Pipeline:
    """The model folder's pipeline; ModelLoadError naming what this runtime cannot run."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((folder / "modules.json").read_text())]
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        config = json.loads((folder / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{folder} is not a sentence-transformers folder this runtime reads ({err})") from None
    mean = pooling.get("pooling_mode_mean_tokens") and not any(
        value for key, value in pooling.items() if key.startswith("pooling_mode_") and key != "pooling_mode_mean_tokens"
    )
    if modules != ["Transformer", "Pooling", "Normalize"] or not mean or not (folder / "tokenizer.json").is_file():
        raise ModelLoadError(
            f"ASSISTANT_PRECISION=onnx runs models made of a transformer, mean pooling and normalization with a "
            f"tokenizer.json; {folder} is {' + '.join(modules)} — set ASSISTANT_PRECISION=fp32"
        )
    return Pipeline(folder, int(config["max_seq_length"]), int(pooling["word_embedding_dimension"]))


class OnnxModel:
    """The model of `pipeline` in ONNX Runtime: its tokenizer (Hugging Face's tokenizers, the same tokenizer.json
    that transformers' fast tokenizer reads), its graph, and the pooling. Two sessions: one thread for a few
    texts (a question), every core for many (a build), as threads.TORCH does for torch."""

    def __init__(self, pipeline: Pipeline, cache: Path) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelLoadError(f"ASSISTANT_PRECISION=onnx needs ONNX Runtime — run: {_RUNTIME}") from None
        self.pipeline = pipeline
        self.max_seq_length = pipeline.max_seq_length
        self.dimension = pipeline.dimension
        # two tokenizers, not one switched between: a build's chunking asks for offsets while questions encode
        self.tokenizer = Tokenizer.from_file(str(pipeline.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_seq_length)
        self._whole = Tokenizer.from_file(str(pipeline.folder / "tokenizer.json"))  # untruncated, for offsets
        self._whole.no_padding()
        self._whole.no_truncation()
        self.graph = exported(pipeline, cache)
        self._runtime = onnxruntime
        self._sessions: dict[bool, Any] = {}
        self._lock = threading.Lock()

    def session(self, one_thread: bool) -> Any:
        with self._lock:
            if one_thread not in self._sessions:
                options = self._runtime.SessionOptions()
                options.intra_op_num_threads = 1 if one_thread else (os.cpu_count() or 1)
                options.inter_op_num_threads = 1
                self._sessions[one_thread] = self._runtime.InferenceSession(
                    str(self.graph), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[one_thread]

    def lengths(self, texts: list[str]) -> list[int]:
        """Word pieces of each text as the model reads it ([CLS] and [SEP] included, truncated)."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character offsets of the text's word pieces, without the special tokens and untruncated."""
        return [(start, end) for start, end in self._whole.encode(text, add_special_tokens=False).offsets]

    def encode(self, texts: list[str], one_thread: bool) -> np.ndarray:
        """Normalized float32 vectors of `texts`, run as one batch padded to its longest text."""
        _, hidden, mask = self._forward(texts, one_thread)
        return _pooled(hidden, mask)

    def run(self, texts: list[str], one_thread: bool) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """encode()'s vectors, and each text's word-piece vectors with their character offsets ((0, 0) for [CLS]
        and [SEP]), without the padding."""
        encodings, hidden, mask = self._forward(texts, one_thread)
        pieces = [hidden[row, : len(e.ids)] for row, e in enumerate(encodings)]
        return _pooled(hidden, mask), pieces, [np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2) for e in encodings]

    def _forward(self, texts: list[str], one_thread: bool) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """The texts' encodings, and the graph's last hidden state of the padded batch with its mask."""
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return encodings, self.session(one_thread).run(None, inputs)[0], mask


def _pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over the word pieces that are not padding, then L2 normalization, as the model's modules do."""
    pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def exported(pipeline: Pipeline, cache: Path) -> Path:
    """The model's ONNX graph in `cache`, exported from its torch weights the first time (a few seconds, with
    torch, transformers, onnx and onnxscript), then reused by every process; written whole or not at all."""
    path = cache / f"{_key(pipeline)}.onnx"
    if path.is_file():
        return path
    with _EXPORT_LOCK:
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            log.info("exporting %s to ONNX in %s (once)", pipeline.folder, cache)
            fd, temporary = tempfile.mkstemp(dir=cache, prefix=".export-", suffix=".onnx")
            os.close(fd)
            try:
                _export(pipeline, Path(temporary))
                os.replace(temporary, path)
            except (ModelLoadError, OSError):
                raise
            except Exception as err:  # torch.onnx's exporter fails in many ways, all of them "not exportable here"
                raise ModelLoadError(
                    f"exporting {pipeline.folder} to ONNX failed ({type(err).__name__}: {err}) — "
                    "set ASSISTANT_PRECISION=fp32"
                ) from None
            finally:
                Path(temporary).unlink(missing_ok=True)
    return path


def _key(pipeline: Pipeline) -> str:
    """Names the export by what makes it: the model's files (by size and time), the exporter's versions."""
    parts = [str(EXPORT_VERSION), str(pipeline.folder.resolve())]
    for file in sorted(pipeline.folder.glob("*")):
        if file.is_file():
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    for package in ("torch", "transformers", "onnxscript"):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}=none")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _export(pipeline: Pipeline, path: Path) -> None:
    """torch.onnx's exporter (torch.export, dynamic batch and length): its graph gives the last hidden state to
    within 3e-6 of torch's. The TorchScript exporter traced transformers' attention mask wrongly (off by 1.4)."""
    try:
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
        import torch
        from transformers import AutoModel
    except ImportError:
        raise ModelLoadError(f"exporting the model to ONNX needs onnx and onnxscript — run: {_RUNTIME}") from None

    class Hidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = Hidden(AutoModel.from_pretrained(str(pipeline.folder))).eval()
    ids = torch.tensor([[101, 2040, 3764, 2012, 1996, 3034, 1029, 102], [101, 7592, 2088, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()  # padding in the example: a mask of ones alone could be traced away
    axes = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length", max=pipeline.max_seq_length)}
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask, torch.zeros_like(ids)),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_shapes={name: axes for name in names},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
