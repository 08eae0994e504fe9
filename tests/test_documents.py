"""The records the stages exchange (assistant/documents.py): a passage's sentence vectors as the stores keep them."""

import numpy as np
import pytest

from assistant.documents import SentenceVectors


def test_sentence_vectors_come_back_from_their_bytes_as_they_were_packed():
    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float16)
    packed = SentenceVectors(((0, 12), (13, 40), (41, 52)), vectors).pack()
    read = SentenceVectors.unpack(packed)
    assert read is not None and read.spans == ((0, 12), (13, 40), (41, 52))
    assert read.vectors.dtype == np.float16 and np.array_equal(read.vectors, vectors)
    empty = SentenceVectors.unpack(SentenceVectors((), np.zeros((0, 8), np.float16)).pack())
    assert empty is not None and empty.spans == () and empty.vectors.shape == (0, 8)


@pytest.mark.parametrize("data", [None, b"", b"SV1", b"not ours at all", b"SV1" + bytes(8) + b"x"])
def test_bytes_that_are_not_packed_sentence_vectors_read_as_none(data):
    assert SentenceVectors.unpack(data) is None


def test_truncated_sentence_vectors_read_as_none():
    packed = SentenceVectors(((0, 5), (6, 9)), np.ones((2, 4), np.float16)).pack()
    assert SentenceVectors.unpack(packed[:-1]) is None
