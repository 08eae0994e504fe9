"""The service under folder permissions (Assistant with ASSISTANT_ACCESS): each reader's answers, status,
documents and scopes come only from what they may read, whatever was asked before and by whom."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.access import Reader
from assistant.errors import QueryError
from assistant.search import relevance_floor
from assistant.service import Assistant

ALICE, BOB, CAROL = Reader("alice"), Reader("bob"), Reader("carol")
RULES = '[groups]\nhr = ["alice"]\n\n[folders]\npublic = ["*"]\nhr = ["group:hr"]\n'
# hr's words, which no answer to bob may hold; hr's document holds the question's words more often than public's
HR_WORDS = ["hr/", "Zanzibar", "salary", "rupees"]
CORPUS = {
    "public/minister.txt": "Minister Ahsan Iqbal opened the border talks. He said patrols will grow.",
    "public/canteen.txt": "The canteen serves soup on Monday. The menu changes every week.",
    "hr/minister.txt": "Minister Ahsan Iqbal earns a salary of 90,000 rupees. He said the Zanzibar bonus stays "
    "secret. Ahsan Iqbal, minister: Ahsan Iqbal's salary.",
    "hr/reviews.txt": "Reviews of Ahsan Iqbal: salary review in Zanzibar on Monday.",
}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "access.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
def assistant(settings, corpus, fake_embedder, rules) -> Assistant:
    for name, text in CORPUS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
    (corpus / "hr" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")  # skipped
    (corpus / "public" / "empty.md").write_text("")  # skipped
    built = Assistant(replace(settings, access=rules), fake_embedder)
    built.build()
    return built


def shown(answer) -> str:
    return json.dumps(answer.to_json(), ensure_ascii=False)


def hr_words_in(text: str) -> list[str]:
    return [word for word in HR_WORDS if word in text]


def test_an_answer_to_bob_holds_no_hr_passage_answer_or_citation(assistant):
    alice = assistant.ask("Who is Ahsan Iqbal?", 5, reader=ALICE)
    assert {p.source for p in alice.passages} >= {"hr/minister.txt"}  # hr's document answers best
    for mode in ("dense", "bm25", "hybrid"):
        bob = assistant.ask("Who is Ahsan Iqbal?", 5, mode, reader=BOB)
        assert bob.passages and {p.source for p in bob.passages} <= {"public/minister.txt", "public/canteen.txt"}
        assert hr_words_in(shown(bob)) == [], mode
        if bob.answer:
            assert {group.source for group in bob.answer.groups} <= {"public/minister.txt", "public/canteen.txt"}


def test_bobs_relevance_and_floor_come_from_public_text_only(assistant, settings, rules, fake_embedder):
    unfixed = Assistant(replace(settings, access=rules, min_score=None), fake_embedder)
    public_chunks = len(unfixed.view(BOB))
    assert 0 < public_chunks < len(unfixed.index())
    bob = unfixed.ask("Ahsan Iqbal salary Zanzibar", 5, reader=BOB)
    within_public = unfixed.ask("Ahsan Iqbal salary Zanzibar", 5, sources=["public"])
    everyone = unfixed.ask("Ahsan Iqbal salary Zanzibar", 5)
    assert bob.relevance == pytest.approx(within_public.relevance) and bob.relevance < everyone.relevance
    assert bob.floor == relevance_floor(public_chunks) != everyone.floor
    # a word that only hr's documents hold is a word of no document, to bob
    assert bob.signals is not None and everyone.signals is not None
    assert bob.signals.unknown > 0 == everyone.signals.unknown


def test_the_same_question_asked_by_alice_first_gives_bob_no_hr_text(assistant):
    alice = assistant.ask("Who is Ahsan Iqbal?", 5, reader=ALICE)
    assert hr_words_in(shown(alice))
    bob = assistant.ask("Who is Ahsan Iqbal?", 5, reader=BOB)  # the same question, k and mode: not alice's answer
    assert hr_words_in(shown(bob)) == []
    assert hr_words_in(shown(assistant.ask("Who is Ahsan Iqbal?", 5, reader=ALICE)))  # nor bob's for alice


def test_a_follow_up_from_bob_stays_within_what_he_may_read(assistant):
    alice = assistant.ask("What did he say?", 5, history=["Who is Ahsan Iqbal?"], reader=ALICE)
    assert alice.context is not None and "hr/minister.txt" in alice.context["sources"]
    bob = assistant.ask("What did he say?", 5, history=["Who is Ahsan Iqbal?"], reader=BOB)
    assert bob.context == {"question": "Who is Ahsan Iqbal?", "sources": ["public/minister.txt"]}
    assert bob.passages and hr_words_in(shown(bob)) == []


def test_bobs_status_lists_and_counts_no_hr_document(assistant, corpus):
    (corpus / "hr" / "new.txt").write_text("Zanzibar salary bands for next year.")  # stale: not indexed yet
    (corpus / "public" / "new.txt").write_text("A new menu.")
    everything, bob = assistant.status(), assistant.status(BOB)
    assert everything["stale"] == ["hr/new.txt", "public/new.txt"]
    assert sorted(s["path"] for s in everything["skipped"]) == ["hr/broken.pdf", "public/empty.md"]
    assert bob["stale"] == ["public/new.txt"]
    assert [s["path"] for s in bob["skipped"]] == ["public/empty.md"]
    assert (bob["documents"], everything["documents"]) == (2, 4)
    assert bob["chunks"] == len(assistant.view(BOB)) < everything["chunks"] == len(assistant.index())
    assert not {"hr/new.txt", "hr/broken.pdf", "hr/minister.txt"} & set(json.dumps(bob).split('"'))
    assert assistant.status(ALICE)["stale"] == ["hr/new.txt", "public/new.txt"]


def test_the_last_background_build_shows_bob_no_file_name_or_count(assistant, corpus):
    from assistant.builds import Builds

    (corpus / "hr" / "new.txt").write_text("Zanzibar salary bands for next year.")
    builds = Builds(assistant)
    try:
        builds.request("1 change in the corpus: hr/new.txt")  # as watch.py names what changed
        assert builds.wait(60)
    finally:
        builds.close()
    full = json.dumps(assistant.status()["last_build"])
    assert "hr/broken.pdf" in full and "hr/new.txt" in full
    last = assistant.status(BOB)["last_build"]
    assert last is not None and (last["reason"], last["summary"], last["error"]) == ("", None, None)
    assert "hr/" not in json.dumps(last)


def test_the_document_of_an_hr_passage_is_unknown_to_bob(assistant):
    passage = next(p for p in assistant.ask("Who is Ahsan Iqbal?", 5, reader=ALICE).passages if "hr/" in p.source)
    assert assistant.document_of(passage.chunk_id, ALICE)["source"] == passage.source
    assert assistant.document_of(passage.chunk_id, BOB) is None
    assert assistant.document_of("no-such-id", BOB) is None


def message(call) -> str:
    with pytest.raises(QueryError) as raised:
        call()
    return str(raised.value)


def test_an_hr_scope_is_refused_to_bob_as_an_unknown_folder_is(assistant):
    assert assistant.scope(["hr"], ALICE).folders == ("hr",)
    unknown = message(lambda: assistant.scope(["xy"], BOB))
    assert message(lambda: assistant.scope(["hr"], BOB)) == unknown.replace("xy", "hr")
    assert message(lambda: assistant.scope(["hr/minister.txt"], BOB)) == message(
        lambda: assistant.scope(["hr/nothing.txt"], BOB)
    ).replace("hr/nothing.txt", "hr/minister.txt")
    asked = message(lambda: assistant.ask("Who is Ahsan Iqbal?", 5, sources=["hr"], reader=BOB))
    assert asked == unknown.replace("xy", "hr")


def test_new_rules_are_followed_from_the_next_question_on(assistant, rules):
    assert hr_words_in(shown(assistant.ask("Who is Ahsan Iqbal?", 5, reader=BOB))) == []
    before = rules.stat().st_mtime_ns
    rules.write_text(RULES.replace('hr = ["alice"]', 'hr = ["alice", "bob"]'))
    os.utime(rules, ns=(before + 10**9, before + 10**9))
    assert "hr/minister.txt" in {p.source for p in assistant.ask("Who is Ahsan Iqbal?", 5, reader=BOB).passages}
    assert assistant.status(BOB)["documents"] == 4 and assistant.scope(["hr"], BOB).folders == ("hr",)


def test_an_admin_and_the_service_read_everything(assistant, rules):
    rules.write_text('admins = ["carol"]\n' + RULES)
    admin = Assistant(assistant.settings, assistant.embedder)
    assert admin.status(CAROL)["documents"] == admin.status()["documents"] == 4
    assert admin.view(CAROL) is admin.index()
