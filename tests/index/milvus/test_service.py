"""Milvus behind the product's edges, on Milvus Lite: its settings, the status, the REST API and the CLI give
what they give on FAISS."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant import cli
from assistant.errors import ConfigError
from assistant.index import build_index
from assistant.index.milvus.collections import close_clients
from assistant.service import Assistant


def test_milvus_settings_are_checked_with_the_valid_values(settings, monkeypatch):
    with pytest.raises(ConfigError, match="valid stores: faiss, milvus"):
        replace(settings, store="qdrant")
    with pytest.raises(ConfigError, match=r"must end in \.db"):
        replace(settings, milvus_uri="/data/milvus")
    with pytest.raises(ConfigError, match="letters, digits and _"):
        replace(settings, milvus_collection="my-index")
    monkeypatch.setenv("ASSISTANT_STORE", "milvus")
    monkeypatch.setenv("ASSISTANT_MILVUS_URI", "http://milvus.internal:19530")
    monkeypatch.setenv("ASSISTANT_MILVUS_TOKEN", "root:Milvus")
    from assistant.config import Settings

    loaded = Settings.from_env()
    assert (loaded.store, loaded.milvus_target()) == ("milvus", "http://milvus.internal:19530")
    assert "root:Milvus" not in repr(loaded)  # a secret, like the API token
    assert Settings().milvus_target() == str(Path("index") / "milvus.db")


def test_status_json_names_the_store_on_both(settings, milvus, corpus, fake_embedder, capsys):
    (corpus / "a.txt").write_text("Delegates from Oman arrived.")
    for chosen in (settings, milvus):
        build_index(chosen, fake_embedder)
        status = Assistant(chosen, fake_embedder).status()
        assert status["store"] == chosen.store and status["documents"] == 1 and status["build"]
    assert np.isfinite(Assistant(milvus, fake_embedder).status()["relevance_floor"])


def test_the_rest_api_answers_from_milvus_as_from_faiss(settings, milvus, corpus, fake_embedder):
    from fastapi.testclient import TestClient

    from assistant.serve import create_server

    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    bodies = {}
    for chosen in (settings, milvus):
        build_index(chosen, fake_embedder)
        app = create_server(Assistant(chosen, fake_embedder))
        app.state.ready = True
        with TestClient(app) as client:
            assert client.get("/readyz").json() == {"status": "ready"}
            answer = client.post("/api/ask", json={"question": "Who observed the talks?", "k": 2}).json()
            document = client.get(f"/api/documents/{answer['passages'][0]['chunk_id']}").json()
            status = client.get("/api/status").json()
        bodies[chosen.store] = answer
        assert document["text"].startswith("Delegates from Oman") and status["store"] == chosen.store
    assert bodies["milvus"] == bodies["faiss"]


def test_cli_build_ask_and_status_on_milvus(corpus, tmp_path, capsys, monkeypatch):
    from tests.helpers import FakeEmbedder

    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: FakeEmbedder())
    (corpus / "doc.txt").write_text("Delegates from Oman and Qatar arrived.\n\nKuwait observed the talks on Tuesday.")
    common = ["--corpus", str(corpus), "--index", str(tmp_path / "index"), "--model", "fake", "--store", "milvus"]
    try:
        assert cli.main(["build", "--json", *common]) == 0
        assert json.loads(capsys.readouterr().out)["added"] == 1
        assert cli.main(["ask", "--json", "-k", "1", "Kuwait", *common]) == 0
        assert "Kuwait" in json.loads(capsys.readouterr().out)["passages"][0]["text"]
        assert cli.main(["status", *common]) == 0
        out = capsys.readouterr().out
        assert f"index:     the Milvus collection assistant at {tmp_path / 'index' / 'milvus.db'}" in out
        assert "up to date with the corpus" in out
    finally:
        close_clients()
