"""The fixture of the Milvus tests; their other helpers are in tests/index/milvus/helpers.py."""

from dataclasses import replace

import pytest

from assistant.index.milvus.collections import close_clients


@pytest.fixture
def milvus(settings):
    """The test's settings on Milvus Lite, in the index folder's milvus.db (the default URI)."""
    yield replace(settings, store="milvus")
    close_clients()
