"""ASSISTANT_PRECISION=onnx: the real model exported once and run by ONNX Runtime gives torch's vectors, word pieces
and offsets; other pipelines are refused by name; a fresh `ask` then loads no torch model library."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assistant import onnx_model
from assistant.embedding import Embedder, resolve_model
from assistant.errors import ModelLoadError
from assistant.onnx_model import OnnxModel, exported, pipeline_of

TEXTS = [
    "Who spoke at the conference?",
    "x",
    "word " * 400,  # truncated at the model's 256 word pieces, as sentence-transformers truncates
    "Ambassadors from Iran, Oman and the UAE attended the UNODC meeting in Islamabad on Tuesday.",
    "Ünïcödé façade — naïve café, 42ab and 3.14",
    *(f"sentence number {i} about smuggling across the border" for i in range(70)),  # more than one batch
]


@pytest.fixture(scope="module")
def both():
    return Embedder(precision="onnx"), Embedder(precision="fp32")


def test_onnx_vectors_are_torchs_to_within_a_millionth(both):
    onnx, torch = both
    a, b = onnx.encode(TEXTS), torch.encode(TEXTS)
    assert a.dtype == np.float32 and a.shape == b.shape == (len(TEXTS), 384)
    assert np.abs(a - b).max() < 1e-5 and (a * b).sum(axis=1).min() > 0.99999
    one = onnx.encode(TEXTS[:1])  # a batch of one: the exported graph's dimensions are not fixed
    assert np.abs(one - b[:1]).max() < 1e-5


def test_onnx_reads_text_as_the_torch_tokenizer_does(both):
    onnx, torch = both
    assert onnx.max_tokens == torch.max_tokens == 254 and onnx.dimension == torch.dimension
    for text in TEXTS[:5]:
        assert onnx.offsets(text) == torch.offsets(text)
    assert onnx.precision == "fp32" and onnx.runtime == "onnx" and torch.runtime == "torch"


def test_the_export_is_made_once_and_reused(both, monkeypatch):
    onnx, _ = both
    graph = onnx.model.graph
    monkeypatch.setattr(onnx_model, "_export", lambda *args: pytest.fail("exported again"))
    pipeline = pipeline_of(onnx.model.pipeline.folder)
    assert exported(pipeline, graph.parent) == graph
    assert OnnxModel(pipeline, graph.parent).graph == graph


def test_a_pipeline_it_does_not_run_is_refused_naming_the_setting(tmp_path):
    folder = tmp_path / "cls-model"
    (folder / "1_Pooling").mkdir(parents=True)
    source = resolve_model("all-MiniLM-L6-v2")
    for name in ("modules.json", "sentence_bert_config.json", "tokenizer.json"):
        (folder / name).write_text(open(f"{source}/{name}").read())
    pooling = json.loads(open(f"{source}/1_Pooling/config.json").read())
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    with pytest.raises(ModelLoadError, match="mean pooling .* set ASSISTANT_PRECISION=fp32"):
        pipeline_of(folder)
    with pytest.raises(ModelLoadError, match="not a sentence-transformers folder"):
        pipeline_of(tmp_path)


def test_a_fresh_ask_in_onnx_loads_no_torch_model_library(tmp_path, both):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "talks.txt").write_text("Cesar Guedes spoke first at the conference in Islamabad.")
    env = {"ASSISTANT_PRECISION": "onnx", "HF_HUB_OFFLINE": "1"}
    probe = (
        "import sys\nfrom assistant import cli\ncode = cli.main(sys.argv[1:])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\nsys.exit(code)\n"
    )
    for argv in (["build"], ["ask", "--json", "Who spoke first?"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **env},
        )
        assert done.returncode == 0, done.stderr
    modules = set(done.stderr.splitlines()[-1].split())
    assert "onnxruntime" in modules and not modules & {"sentence_transformers", "transformers", "sklearn"}
    assert json.loads(done.stdout)["passages"][0]["source"] == "talks.txt"
