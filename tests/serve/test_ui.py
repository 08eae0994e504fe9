from dataclasses import replace

import gradio as gr
import pytest
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from assistant.index import build_index
from assistant.question import MAX_QUESTION_CHARS
from assistant.serve.examples import SEED_ARTICLE
from assistant.serve.ui import (
    SCROLL_TO_QUESTION,
    build_demo,
    chat_turn,
    document_view,
    escape_text,
    index_notice,
    reply,
    source_choices,
)
from assistant.service import Assistant

HOSTILE = "Speakers list: <script>alert('x')</script> then ![](http://127.0.0.1:9/track.png) and $x$ end."


@pytest.fixture
def assistant(settings, fake_embedder):
    return Assistant(settings, fake_embedder)


def shown_as(html: str) -> tuple[str, str]:
    """What a Markdown chat makes of the reply: the rendered HTML, and the text a reader sees."""
    rendered = MarkdownIt("commonmark", {"html": True}).render(html)
    return rendered, BeautifulSoup(rendered, "html.parser").get_text()


def test_document_script_markdown_image_and_math_come_back_as_literal_text(assistant, corpus):
    (corpus / "hostile.md").write_text(HOSTILE)
    html = reply(assistant, "Speakers list script track", 3)
    rendered, text = shown_as(html)
    assert "<script" not in rendered and "<img" not in rendered
    links = BeautifulSoup(rendered, "html.parser").find_all("a")
    assert links and all(a["class"] == ["document-link"] for a in links)  # only ours, none from the document
    assert "<script>alert('x')</script>" in text
    assert "![](http://127.0.0.1:9/track.png)" in text
    assert "$x$" in text


def test_escape_leaves_no_markdown_or_html_syntax():
    raw = "# h\n**b** _i_ [l](u) `c` | t | ~s~ $m$ <b>&amp;"
    rendered, text = shown_as(escape_text(raw))
    assert text.replace("\n", "") == raw.replace("\n", "")
    for tag in ("<h1", "<strong", "<em", "<a ", "<code", "<b>", "<table"):
        assert tag not in rendered


def test_reply_shows_source_score_and_highlighted_sentence(assistant, corpus):
    (corpus / "doc.txt").write_text("Delegates arrived early. Kuwait observed the talks.")
    html = reply(assistant, "Kuwait observed", 1)
    assert "doc.txt" in html and "score" in html
    assert "<mark>Kuwait observed the talks.</mark>" in html


def test_missing_index_is_built_on_the_first_question_with_progress(assistant, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    steps = []
    html = reply(assistant, "Oman", 1, progress=lambda value, **kw: steps.append(value))
    assert "doc.txt" in html and assistant.has_index() and steps


def test_empty_question_gets_a_message_not_an_error(assistant, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    assert "the question is empty" in reply(assistant, "   ", 3)


def test_no_relevant_passage_gets_a_clear_message(settings, fake_embedder, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    strict = Assistant(replace(settings, min_score=0.999), fake_embedder)
    html = reply(strict, "zebra", 3)
    assert "Not in the documents" in html and "<details><summary>Closest passages (not an answer)" in html


def test_notice_names_changed_documents_and_the_command(assistant, settings, corpus, fake_embedder):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    assert "no index yet" in index_notice(assistant)
    build_index(settings, fake_embedder)
    assert index_notice(assistant) == ""
    (corpus / "<b>new<b>.txt").write_text("Added later.")
    notice = index_notice(assistant)
    assert "1 document(s) changed" in notice and "assistant build" in notice and "<b>new" not in notice


def blocks_of(demo: gr.Blocks, kind: type) -> list:
    return [block for block in demo.blocks.values() if isinstance(block, kind)]


def question_box(demo: gr.Blocks) -> gr.Textbox:
    """The one unlabelled Textbox: the question (the "Add documents" panel's boxes have labels)."""
    (box,) = [box for box in blocks_of(demo, gr.Textbox) if box.label is None]
    return box


def test_demo_has_chat_examples_and_passage_count_control(assistant, corpus):
    (corpus / SEED_ARTICLE).write_text("The seed article.")
    demo = build_demo(assistant=assistant)
    kinds = {type(block).__name__ for block in demo.blocks.values()}
    assert {"Chatbot", "Slider", "Textbox", "Dataset"} <= kinds
    assert "Who spoke at the conference?" in str(demo.config)


def test_empty_or_over_long_question_is_a_warning_and_leaves_history_and_box_alone(assistant, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    history = [{"role": "user", "content": "Oman"}, {"role": "assistant", "content": "<p>…</p>"}]
    for question, message in [
        ("   ", "the question is empty"),
        ("x" * (MAX_QUESTION_CHARS + 1), f"the limit is {MAX_QUESTION_CHARS}"),
    ]:
        with pytest.warns(UserWarning, match=message):  # gr.Warning outside a request; a toast in the page
            assert chat_turn(assistant, question, history, 3, None) == (gr.skip(), gr.skip())
    assert not assistant.has_index()  # refused before anything was searched or built


def test_a_question_joins_the_history_with_its_reply_and_empties_the_box(assistant, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    history, box = chat_turn(assistant, "Oman?", [], 1, None)
    assert [m["role"] for m in history] == ["user", "assistant"] and "doc.txt" in history[1]["content"]
    assert box == ""


def test_question_box_is_limited_to_the_question_limit(assistant):
    box = question_box(build_demo(assistant=assistant))
    assert box.max_length == MAX_QUESTION_CHARS


def test_chat_scrolls_to_the_new_question_in_the_page_not_to_the_end(assistant):
    demo = build_demo(assistant=assistant)
    (chat,) = blocks_of(demo, gr.Chatbot)
    assert chat.autoscroll is False and chat.elem_id == "answers"  # the script finds the chat by its id
    scroll = [d for d in demo.config["dependencies"] if d["js"] == SCROLL_TO_QUESTION]
    assert len(scroll) == 1 and scroll[0]["backend_fn"] is False  # in the page only: no call to the server


def test_the_first_example_is_the_placeholder_and_an_empty_examples_file_shows_none(settings, tmp_path, fake_embedder):
    listed = tmp_path / "examples.txt"
    listed.write_text("How do I upgrade?\nWhere are the logs?\n")
    chosen = replace(settings, examples=listed)
    demo = build_demo(assistant=Assistant(chosen, fake_embedder))
    box = question_box(demo)
    assert box.placeholder == "How do I upgrade?" and "Where are the logs?" in str(demo.config)
    listed.write_text("# none yet\n")
    demo = build_demo(assistant=Assistant(chosen, fake_embedder))
    assert blocks_of(demo, gr.Dataset) == [] and question_box(demo).placeholder.startswith("Ask a")


def test_the_picker_offers_the_documents_and_folders_and_narrows_the_answer(assistant, settings, corpus, fake_embedder):
    assert source_choices(assistant) == []  # no index yet
    for name in ["a.txt", "b/c.txt", "b/d/e.txt"]:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(f"Oman and Qatar attended ({name}).")
    build_index(settings, fake_embedder)
    paths = ["a.txt", "b/", "b/c.txt", "b/d/", "b/d/e.txt"]
    assert source_choices(assistant) == [(path, path) for path in paths]  # (label, value)
    html = reply(assistant, "Oman and Qatar", 5, sources=["b/d/"])
    assert "Within: <bdi>b/d</bdi>" in html and "b/d/e.txt" in html and "a.txt" not in html and "b/c.txt" not in html
    assert "no document or folder zz in the index" in reply(assistant, "Oman", 5, sources=["zz"])
    (picker,) = blocks_of(build_demo(assistant=assistant), gr.Dropdown)
    assert picker.multiselect and picker.filterable and picker.label == "Search within"


def test_answer_list_comes_first_with_roles_and_links_to_its_passages(assistant, corpus):
    (corpus / "talks.txt").write_text(
        "Federal Minister of Interior, Ahsan Iqbal in his remarks said hospitals need more nurses.\n\n"
        "The weather was fine all week."
    )
    html = reply(assistant, "Who spoke about hospitals?", 2)
    assert html.index('class="answer"') < html.index('class="passage"')
    assert "<strong>Ahsan Iqbal</strong> — Federal Minister of Interior" in html
    assert '<a href="#passage-1">[1]</a>' in html and 'id="passage-1"' in html
    assert "<mark>" in html and "<strong>Ahsan Iqbal</strong> in his" in html.replace("<mark>", "").replace(
        "</mark>", ""
    )


def test_each_document_that_answers_gets_its_own_list_titled_by_what_was_asked(assistant, corpus):
    (corpus / "patrols.txt").write_text("Delegates from Oman, Qatar and Kuwait took part in the patrol meeting.")
    (corpus / "fishery.txt").write_text("Delegations from France and Spain took part in the fishery talks.")
    html = reply(assistant, "Which countries took part in the patrol meeting?", 2)
    _, text = shown_as(html)
    assert "Answer · Countries (3) · patrols" in text and "Also in fishery (2)" in text
    assert text.index("Kuwait") < text.index("Also in fishery") < text.index("France")


def test_each_passage_links_to_its_document_view_with_a_relative_link_in_a_new_tab(assistant, corpus):
    (corpus / "doc.txt").write_text("Oman and Qatar attended.\n\nThe weather was fine.")
    html = reply(assistant, "Oman", 2)
    answer = assistant.ask("Oman", 2)
    links = BeautifulSoup(html, "html.parser").select(".passage a.document-link")
    assert [a["href"] for a in links] == [f"?doc={p.chunk_id}" for p in answer.passages]
    assert all(a["target"] == "_blank" and a["rel"] == ["noopener"] for a in links)
    assert 'href="/' not in html  # absolute paths would escape the proxy's /qa/ prefix


def test_document_view_shows_the_whole_text_as_text_with_exactly_the_passage_marked(
    assistant, corpus, settings, fake_embedder
):
    intro = "Delegates from twenty countries met in Islamabad for two days of talks on border control and trafficking."
    # a section each: under a heading, paragraphs join into one passage, and the hostile one must be in the middle
    text = (
        f"# Speakers\n\n{intro}\n\n## The list\n\n{HOSTILE}\n\n"
        "## Closing\n\nClosing words & thanks to the hosts for a week of hard work."
    )
    (corpus / "hostile.md").write_text(text)
    build_index(settings, fake_embedder)
    passage = next(p for p in assistant.ask("Speakers list script track", 5).passages if "<script>" in p.text)
    assert 0 < passage.start and passage.end < len(text)
    html = document_view(assistant, passage.chunk_id)
    assert "<script" not in html and "<img" not in html
    page = BeautifulSoup(html, "html.parser")
    marks = page.select("mark")
    assert len(marks) == 1 and marks[0]["id"] == "cited-passage"
    assert text[passage.start : passage.end] == passage.text
    assert marks[0].get_text() == passage.text.replace("\n", "")  # newlines became <br>
    before, after = (piece.replace("\n", "") for piece in (text[: passage.start], text[passage.end :]))
    assert page.select_one(".text").get_text() == before + passage.text.replace("\n", "") + after
    assert "hostile.md" in page.select_one(".source").get_text()


def test_document_view_of_an_unknown_or_outdated_passage_says_to_ask_again(assistant, corpus, settings, fake_embedder):
    assert "no index at" in document_view(assistant, "0123456789abcdef")
    (corpus / "doc.txt").write_text("Oman and Qatar attended.")
    build_index(settings, fake_embedder)
    old = assistant.ask("Oman", 1).passages[0].chunk_id
    (corpus / "doc.txt").write_text("Oman, Qatar and Kuwait attended.")
    build_index(settings, fake_embedder)
    for chunk_id in (old, "0123456789abcdef", "<b>x</b>"):
        assert "no longer in the index" in document_view(assistant, chunk_id)


def test_a_follow_up_in_the_chat_leans_on_the_question_before_and_says_so(assistant, corpus):
    import gradio as gr

    from assistant.serve.ui import asked_before, chat_turn

    (corpus / "minister.txt").write_text("Minister Ahsan Iqbal opened the border talks. He said patrols will grow.")
    (corpus / "weather.txt").write_text("What did he say? He would say the weather in Madrid was sunny.")
    assistant.build()
    history, _ = chat_turn(assistant, "Who is Ahsan Iqbal?", [], 1, None)
    sent_back = gr.Chatbot().preprocess(gr.Chatbot().postprocess(history))  # as the browser returns it
    assert asked_before(sent_back) == ["Who is Ahsan Iqbal?"]
    history, _ = chat_turn(assistant, "What did he say?", sent_back, 1, None)
    _, text = shown_as(history[-1]["content"])
    assert "About: minister.txt, from your previous question “Who is Ahsan Iqbal?”" in text
    alone, _ = chat_turn(assistant, "What did he say?", [], 1, None)  # after New topic: no history
    assert "About:" not in shown_as(alone[-1]["content"])[1] and "weather.txt" in alone[-1]["content"]


def test_the_chat_has_a_new_topic_button(assistant):
    demo = build_demo(assistant=assistant)
    assert any(getattr(block, "value", None) == "New topic" for block in demo.blocks.values())


def test_a_file_name_s_bidi_override_is_shown_and_isolated_never_reversing_the_line(assistant, corpus):
    """A probe named a file "quetzal-invoice-\\u202efdp.txt": it read as a PDF, and reversed the app's own link."""
    name = "quetzal-invoice-\u202efdp.txt"
    (corpus / name).write_text("Kuwait observed the maritime talks.")
    html = reply(assistant, "Kuwait observed the maritime talks", 1)
    assert "\u202e" not in html
    assert "<bdi>quetzal&#45;invoice&#45;&#91;U&#43;202E&#93;fdp.txt</bdi>" in html
    _, seen = shown_as(html)
    assert "quetzal-invoice-[U+202E]fdp.txt" in seen and "view in document" in seen
    assert '<div class="text" dir="auto">' in html  # a passage's own text takes the direction of its script
    assert source_choices(assistant) == [("quetzal-invoice-[U+202E]fdp.txt", name)]  # the picker's label too
    chunk = assistant.index().chunks_of([name])[0]["id"]
    view = document_view(assistant, chunk)
    assert "\u202e" not in view and "<bdi>quetzal&#45;invoice&#45;&#91;U&#43;202E&#93;fdp.txt</bdi>" in view
