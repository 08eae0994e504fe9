"""End to end over the shipped corpus/ with the real bundled model (all-MiniLM-L6-v2), on both stores:
FAISS files and Milvus Lite."""

import json
import shutil
from dataclasses import replace

import pytest

from assistant import cli
from assistant.config import Settings
from assistant.index.milvus.collections import close_clients
from assistant.search import relevance_floor
from assistant.service import Assistant
from tests.helpers import PARTICIPANTS, ROOT


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def seed_assistant(request, tmp_path_factory, real_embedder):
    folder = tmp_path_factory.mktemp(f"seed-{request.param}")
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    settings = Settings(corpus=folder / "corpus", index=folder / "index", store=request.param)
    assistant = Assistant(settings, real_embedder)
    summary = assistant.build()
    assert summary.added == 1 and summary.chunks >= 10  # 13 paragraphs must not collapse into 2 or 3 chunks
    yield assistant
    close_clients()


def test_countries_question_returns_the_country_list_at_rank_1(seed_assistant):
    passages = seed_assistant.ask("Which countries took part?", 5).passages
    assert "Pakistan, Afghanistan, Iran, Turkey" in passages[0].text
    assert passages[0].source == "unodc-regional-conference-islamabad.txt"


def test_ambassador_question_returns_the_passage_naming_leon_waskin_in_top_3(seed_assistant):
    passages = seed_assistant.ask("What did the US ambassador's message say?", 3).passages
    assert any("Leon Waskin" in p.text for p in passages)


def test_he_said_paragraph_is_found_by_asking_about_the_speaker(seed_assistant):
    passages = seed_assistant.ask("What did Ahsan Iqbal say about Pakistan's economy?", 3).passages
    assert any("economy has seriously improved" in p.text and "Ahsan Iqbal" not in p.text for p in passages)


def test_uncovered_questions_are_not_in_the_documents(seed_assistant):
    for question in ["How do I bake sourdough bread?", "What is the capital of France?"]:
        answer = seed_assistant.ask(question, 5)
        assert answer.no_answer and answer.passages


def test_highlighted_sentence_is_the_one_about_the_question(seed_assistant):
    found = seed_assistant.ask("How will law enforcement cooperation in the region be strengthened?", 5).passages
    top = next(p for p in found if p.text.startswith("The objectives of the conference"))  # two sentences
    marked = [top.text[s:e] for s, e in top.highlights]
    assert len(marked) == 1 and marked[0].startswith("It includes strengthening law enforcement cooperation")
    countries = seed_assistant.ask("Which countries took part?", 1).passages[0]
    assert "participant countries" in countries.text and countries.highlights == []  # one sentence: no mark


def test_cli_build_then_ask_json_with_the_real_model(tmp_path, capsys, monkeypatch):
    shutil.copytree(ROOT / "corpus", tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)  # the defaults are corpus/ and index/ in the working directory
    assert cli.main(["build", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    assert cli.main(["ask", "--json", "-k", "3", "Which", "countries", "took", "part?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["question"] == "Which countries took part?"
    assert "Czech Republic UAE" in answer["passages"][0]["text"]
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stale"] == []


def test_unknown_model_fails_fast_with_a_clear_message(tmp_path, capsys, monkeypatch):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("Some text.")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["build", "--model", "no-such-org/no-such-model"]) == 1
    err = capsys.readouterr().err
    assert "cannot load embedding model 'no-such-org/no-such-model'" in err and "ASSISTANT_MODEL" in err


def test_speakers_question_answers_the_three_speakers_and_the_ambassador_whose_message_was_delivered(seed_assistant):
    answer = seed_assistant.ask("Who spoke at the conference?", 5)
    items = {item.text: item for item in answer.answer.items}
    assert answer.answer.type == "person"
    assert set(items) == {"Cesar Guedes", "Ahsan Iqbal", "Mushahid Hussain Syed", "Leon Waskin"}
    assert "message" in items["Leon Waskin"].role and "Federal Minister of Interior" in items["Ahsan Iqbal"].role
    shown = {p.chunk_id: p for p in answer.passages}
    for item in items.values():  # every cited passage is in the reply, with the entity marked in it
        for chunk_id in item.passages:
            passage = shown[chunk_id]
            assert item.text in [passage.text[s:e] for s, e in passage.entities]


def test_countries_question_answers_exactly_the_21_participants(seed_assistant):
    answer = seed_assistant.ask("Which countries took part?", 5)
    names = [item.text for item in answer.answer.items]
    assert names == PARTICIPANTS


def test_france_question_is_not_in_the_documents_and_has_no_answer(seed_assistant):
    answer = seed_assistant.ask("What is the capital of France?", 5).to_json()
    assert answer["no_answer"] is True and answer["answer"] is None
    assert answer["relevance"] < answer["relevance_floor"] == relevance_floor(13)  # the seed article's 13 passages


def test_the_example_questions_clear_the_relevance_floor(seed_assistant):
    for question in ["Who spoke at the conference?", "Which countries took part?", "When was the conference held?"]:
        answer = seed_assistant.ask(question, 5)
        assert not answer.no_answer and answer.relevance >= answer.floor, question


def test_index_built_in_bf16_is_asked_in_fp32_with_the_same_passages(tmp_path, real_embedder):
    from assistant.embedding import Embedder

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in {
        "talks.txt": "Delegates from Spain and Italy attended the talks in Islamabad.",
        "budget.txt": "The budget for border control grew this year.",
        "routes.txt": "Smugglers moved migrants along new sea routes.",
        "speech.txt": "The ambassador's message was delivered by his deputy.",
    }.items():
        (corpus / name).write_text(text)
    settings = Settings(corpus=corpus, index=tmp_path / "index", precision="bf16")
    built = Assistant(settings)
    built.build()
    assert built.status()["precision"] == "bf16"
    asked = Assistant(replace(settings, precision="fp32"), Embedder(precision="fp32"))  # no rebuild, no refusal
    for question in ("Which countries attended?", "Who delivered the ambassador's message?"):
        bf16, fp32 = built.ask(question, 4, "dense").passages, asked.ask(question, 4, "dense").passages
        assert [p.chunk_id for p in fp32] == [p.chunk_id for p in bf16]
        assert max(abs(a.score - b.score) for a, b in zip(fp32, bf16)) < 0.005
