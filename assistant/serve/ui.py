"""The Gradio chat: ask a question, see the passages with their sources and the best sentences highlighted."""

from __future__ import annotations

import html
import logging
from datetime import datetime
from urllib.parse import quote

import gradio as gr  # its analytics are off: assistant/__init__.py sets GRADIO_ANALYTICS_ENABLED before any import

from ..access import EVERYTHING, Reader
from ..answers import Answer
from ..builds import BuildRecord, BuildState, summary_line
from ..config import MODES, Settings
from ..entities import AnswerGroup
from ..errors import AssistantError, IndexNotFound, QueryError
from ..question import MAX_HISTORY, MAX_QUESTION_CHARS, clean_query
from ..service import Assistant, DocumentView
from .examples import load_examples
from .identity import chat_reader
from .upload_ui import add_documents_panel

log = logging.getLogger(__name__)

CSS = """
.passage {border-left: 3px solid #d0d7de; padding: 0.2em 0 0.2em 0.8em; margin: 0 0 0.9em 0;}
.passage .source {font-size: 0.85em; color: #57606a; margin-bottom: 0.2em;}
.passage mark, .document mark {background: #fff3a3; color: inherit;}
.answer {margin: 0 0 1em 0;} .answer ul {margin: 0.2em 0 0 1.2em;}
.document .source {font-size: 0.85em; color: #57606a; margin-bottom: 0.6em;}
.scope {font-size: 0.85em; color: #57606a; margin: 0 0 0.6em 0;}
"""
# Gradio's bundled SemiBold faces of Source Sans Pro and IBM Plex Mono hold a few dozen characters (A, B, some
# Cyrillic), so semi-bold and bold text fell back letter by letter to the system's DejaVu ("Q&A" drew "Q&" in
# DejaVu, "A" in Source Sans). The bundled Bold faces are complete: declared as the only heavy weight, they draw
# both 600 and 700, from the app's own static/fonts/, so no font is fetched from elsewhere.
THEME = gr.themes.Default(
    font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "Consolas", "monospace"],
)
# After an answer the chat shows the start of the new exchange: the question just asked, at the top of the answers.
# Gradio's own autoscroll (off) went to the end of the reply, often a screen below its answer list. Run in the page
# by the chat's change event, once the new question's bubble is drawn; it names no URL, so it works under a proxy.
SCROLL_TO_QUESTION = """
(history) => {
  const asked = (history || []).filter((message) => message.role === 'user').length;
  const show = (frames) => {
    const log = document.querySelector('#answers [role="log"]');
    const bubbles = log ? log.querySelectorAll('[data-testid="user"]') : [];
    if (bubbles.length < asked) return frames > 0 && requestAnimationFrame(() => show(frames - 1));
    const top = (element) => element.getBoundingClientRect().top - log.getBoundingClientRect().top + log.scrollTop;
    // as high as the first question sits unscrolled, below the chat's label and buttons
    log.scrollTop = top(bubbles[asked - 1]) - top(bubbles[0]);
    bubbles[asked - 1].scrollIntoView({block: 'nearest'});
  };
  if (asked) show(120);
}
"""
# The document view is this same page opened as ?doc=<chunk_id>: a relative link, so it stays under the proxy's
# prefix, and inside the Gradio app, so the chat's login guards it too.
DOCUMENT_PARAM = "doc"
SCROLL_TO_PASSAGE = """
const show = () => element.querySelector('mark#cited-passage')?.scrollIntoView({block: 'center'});
show(); watch('value', show);
"""
NO_LONGER_INDEXED = (
    "<p>This passage is no longer in the index: the documents were indexed again since the answer "
    "was given. Ask the question again to get a link to the current text.</p>"
)
# Document text is escaped into HTML entities, Markdown's and LaTeX's special characters included, and
# newlines become <br>, so the whole reply is one HTML block with nothing for Markdown or KaTeX to act on.
_ESCAPES = {ord(ch): f"&#{ord(ch)};" for ch in "&<>\"'`*_[](){}!#|~$\\+-:=^@%"}
_ESCAPES[ord("\n")] = "<br>"
_ESCAPES.update({code: "\ufffd" for code in range(0xD800, 0xE000)})  # lone surrogates: Gradio's JSON cannot carry them


def escape_text(text: str) -> str:
    """Plain text to inert HTML: no tag, Markdown construct or math delimiter survives."""
    return text.translate(_ESCAPES)


# Unicode's bidirectional controls: an override in a file name ("invoice-\u202efdp.txt") would show it as
# "invoice-txt.pdf" and reverse the line around it. In a name they are shown as what they are.
_BIDI = {code: f"[U+{code:04X}]" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def escape_name(text: str) -> str:
    """A file name, a title or a heading as inert HTML in an isolate of its own (<bdi>), with its bidirectional
    controls shown: its direction never leaks into the line around it, and it reads as it is named."""
    return f"<bdi>{escape_text(text.translate(_BIDI))}</bdi>"


def render_answer(answer: Answer) -> str:
    """The reply: the direct answer and the passages, under the scope the question was asked within."""
    scope = ", ".join(escape_name(source) for source in answer.sources)
    within = f'<div class="scope">Within: {scope}</div>' if answer.sources else ""
    if answer.context:  # a follow-up: what it leaned on, and how to stop it
        about = ", ".join(escape_name(s) for s in answer.context["sources"]) or "the same topic"
        earlier = escape_text(answer.context["question"])
        within += (
            f'<div class="scope">About: {about}, from your previous question “{earlier}” '
            "(press New topic to ask without it)</div>"
        )
    return within + _render_reply(answer)


def _render_reply(answer: Answer) -> str:
    passages = "".join(_render_passage(rank, p) for rank, p in enumerate(answer.passages, start=1))
    if answer.no_answer:
        return (
            f"<p><b>Not in the documents.</b> Nothing relevant was found for this question ({answer.why_none()}). "
            "Try other words, or add documents and rebuild the index.</p>"
            + (f"<details><summary>Closest passages (not an answer)</summary>{passages}</details>" if passages else "")
        )
    unsure = (
        '<p class="low-confidence"><b>Low confidence.</b> The documents may not answer this question: '
        "check the passages.</p>"
        if answer.confidence == "low"
        else ""
    )
    return unsure + _render_entities(answer) + passages


_KINDS = {"person": "People", "place": "Places", "organization": "Organizations", "date": "Dates", "number": "Numbers"}


def _render_entities(answer: Answer) -> str:
    """The direct answer, a list per document that gives one (the best-matching first): one line per entity,
    with its role and links to the passages it comes from."""
    if answer.answer is None:
        return ""
    rank = {p.chunk_id: i for i, p in enumerate(answer.passages, start=1)}
    category = answer.answer.category
    what = category.capitalize() if category and answer.answer.type != "number" else _KINDS[answer.answer.type]
    groups = answer.answer.groups or [AnswerGroup("", "", answer.answer.items)]
    rendered = []
    for number, group in enumerate(groups):
        lines = []
        for item in group.items:
            role = f" — {escape_text(item.role)}" if item.role else ""
            cites = " ".join(f'<a href="#passage-{rank[c]}">[{rank[c]}]</a>' for c in item.passages if c in rank)
            lines.append(f"<li><strong>{escape_text(item.text)}</strong>{role} {cites}</li>")
        where = escape_name(group.title or group.source)
        head = f"Answer &#183; {escape_text(what)} ({len(lines)})" if number == 0 else f"Also in {where} ({len(lines)})"
        source = f" &#183; {where}" if number == 0 and len(groups) > 1 else ""
        rendered.append(f'<div class="answer"><div class="source">{head}{source}</div><ul>{"".join(lines)}</ul></div>')
    return "".join(rendered)


def _render_passage(rank: int, passage) -> str:
    where = escape_name(passage.source) + (f", page {passage.page}" if passage.page is not None else "")
    where += f" &#183; {escape_name(passage.section)}" if passage.section else ""
    where += " &#183; read by OCR" if passage.ocr else ""
    link = (
        f'<a class="document-link" href="?{DOCUMENT_PARAM}={escape_text(quote(passage.chunk_id, safe=""))}" '
        'target="_blank" rel="noopener">view in document</a>'
    )
    return (
        f'<div class="passage" id="passage-{rank}"><div class="source">[{rank}] {where} &#183; '
        f"score {passage.score:.2f} &#183; {link}</div>"
        f'<div class="text" dir="auto">{_marked(passage.text, passage.highlights, passage.entities)}</div></div>'
    )


def _marked(text: str, sentences: list[tuple[int, int]], entities: list[tuple[int, int]]) -> str:
    """Escaped text with <mark> on the best sentences and <strong> on the answer entities (they may nest)."""
    cuts = sorted({0, len(text), *(x for span in sentences + entities for x in span)})
    pieces = []
    for start, end in zip(cuts, cuts[1:]):
        piece = escape_text(text[start:end])
        if any(s <= start and end <= e for s, e in entities):
            piece = f"<strong>{piece}</strong>"
        if any(s <= start and end <= e for s, e in sentences):
            piece = f"<mark>{piece}</mark>"
        pieces.append(piece)
    return "".join(pieces)


_TRACK = gr.Progress()  # Gradio reports a build's progress through the handler's argument of this default


def build_demo(settings: Settings | None = None, assistant: Assistant | None = None) -> gr.Blocks:
    assistant = assistant or Assistant(settings or Settings.from_env())

    def respond(question: str, history: list, k: float, mode: str, sources: list, request: gr.Request, progress=_TRACK):
        reader = chat_reader(assistant.settings, request)
        return chat_turn(assistant, question, history, k, mode, progress, sources, reader)

    def open_document(request: gr.Request):
        chunk_id = dict(request.query_params).get(DOCUMENT_PARAM) if request else None
        if not chunk_id:
            return gr.skip(), gr.skip()
        view = document_view(assistant, chunk_id, chat_reader(assistant.settings, request))
        return gr.HTML(view, visible=True), gr.Column(visible=False)

    def drawn(request: gr.Request):
        return drawn_notice(assistant, chat_reader(assistant.settings, request))

    def refresh(last, request: gr.Request):
        return refresh_notice(assistant, last, chat_reader(assistant.settings, request))

    def choices(request: gr.Request):
        return gr.Dropdown(choices=source_choices(assistant, chat_reader(assistant.settings, request)))

    with gr.Blocks(title="Document Q&A", analytics_enabled=False) as demo:
        document = gr.HTML(visible=False, js_on_load=SCROLL_TO_PASSAGE)
        with gr.Column() as chat_page:
            notice, sources = _chat(assistant, respond)
            add_documents_panel(demo, assistant)  # shown to admins only, when the page loads
        seen = gr.State()  # the build state the banner was last drawn from
        demo.load(drawn, None, [notice, seen])
        # while the page is open: the banner follows the background builds (refresh_notice says when to redraw)
        gr.Timer(5).tick(refresh, seen, [notice, seen], concurrency_limit=None)
        demo.load(choices, None, sources)
        demo.load(open_document, None, [document, chat_page])
    # explicit limits: as many chat questions at once as the assistant has workers, the rest wait in Gradio's
    # line (shown to the user as a position), which holds as many as the assistant's own queue
    demo.queue(default_concurrency_limit=assistant.settings.workers, max_size=assistant.settings.queue)
    return demo


def _chat(assistant: Assistant, respond) -> tuple[gr.HTML, gr.Dropdown]:
    """The chat page: the question box and its settings, the answers, and the banner about a stale index; the
    banner and the picker of sources are filled when the page loads."""
    gr.Markdown(
        "## Document Q&A\nAsk a question about the documents; "
        "the answer is the passages that hold it, with their sources."
    )
    notice = gr.HTML()
    chat = gr.Chatbot(
        label="Answers",
        elem_id="answers",
        height=520,
        latex_delimiters=[],
        sanitize_html=True,
        feedback_options=None,
        buttons=["copy"],
        autoscroll=False,
    )
    chat.change(None, chat, None, js=SCROLL_TO_QUESTION)
    examples = load_examples(assistant.settings, assistant.access.policy().public)  # shown to every user
    with gr.Row():
        question = gr.Textbox(
            placeholder=examples[0] if examples else "Ask a question about the documents",
            show_label=False,
            scale=5,
            max_lines=3,
            max_length=MAX_QUESTION_CHARS,  # the browser stops typing and pasting there; chat_turn checks again
        )
        send = gr.Button("Ask", variant="primary", scale=1)
        new_topic = gr.Button("New topic", variant="secondary", scale=1)
    with gr.Row():
        k = gr.Slider(1, 20, value=5, step=1, label="Passages to show", scale=3)
        mode = gr.Radio(
            list(MODES),
            value=assistant.settings.mode,
            label="Search",
            scale=2,
            info="hybrid: meaning and exact words; dense: meaning; bm25: exact words",
        )
    sources = gr.Dropdown(
        [],
        value=[],
        multiselect=True,
        filterable=True,
        label="Search within",
        info="documents and folders of the index (type to find one); none: all of them",
    )
    if examples:
        gr.Examples(examples, inputs=question)
    send.click(respond, [question, chat, k, mode, sources], [chat, question])
    question.submit(respond, [question, chat, k, mode, sources], [chat, question])
    new_topic.click(lambda: [], None, chat)  # the conversation is the history: a new topic starts from none
    return notice, sources


def source_choices(assistant: Assistant, reader: Reader = EVERYTHING) -> list[tuple[str, str]]:
    """The picker's choices, (label, path): every document of the index that `reader` may read and every folder
    that holds one ("reports/"), in path order, so a folder comes just before its documents; none while there is
    no index. A label shows a name's direction controls as what they are ([U+202E]), as the passages do."""
    try:
        documents = assistant.view(reader).catalog()
    except AssistantError:
        return []
    folders: set[str] = set()
    for path in documents:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[:depth]) + "/" for depth in range(1, len(parts) + 1))
    return [(path.translate(_BIDI), path) for path in sorted(folders | set(documents))]


def document_view(assistant: Assistant, chunk_id: str, reader: Reader = EVERYTHING) -> str:
    """The whole document that holds a passage, as inert HTML, with the passage marked; a message if it is gone
    (or if `reader` may not read it: the same message)."""
    try:
        found = assistant.document_of(chunk_id, reader)
    except AssistantError as err:
        return f"<p>{escape_text(str(err))}</p>"
    if found is None:
        return NO_LONGER_INDEXED
    return render_document(found)


def render_document(found: DocumentView) -> str:
    """A document from `Assistant.document_of`: title and source, then its text with the passage in <mark>."""
    text, start, end = found["text"], found["start"], found["end"]
    where = escape_name(found["source"]) + (f", page {found['page']}" if found["page"] is not None else "")
    title = f"<h2>{escape_name(found['title'])}</h2>" if found["title"] else ""
    return (
        f'<div class="document">{title}<div class="source">{where} &#183; <a href="./">ask another question</a></div>'
        f'<div class="text" dir="auto">{escape_text(text[:start])}'
        f'<mark id="cited-passage">{escape_text(text[start:end])}</mark>{escape_text(text[end:])}</div></div>'
    )


def chat_turn(
    assistant: Assistant,
    question: str,
    history: list | None,
    k: float,
    mode: str | None,
    progress=None,
    sources: list[str] | None = None,
    reader: Reader = EVERYTHING,
) -> tuple[list[dict], str] | tuple[dict, dict]:
    """One exchange of the chat: the history with the question and its reply added, and an empty question box.

    A question that cannot be asked (empty, too long) gets its error in a warning beside the chat, and both
    outputs are skipped: no empty or giant bubble joins the history, and the text stays in the box to mend."""
    try:
        clean_query(question)
    except QueryError as err:
        gr.Warning(escape_text(str(err)), title="Question not asked")
        return gr.skip(), gr.skip()
    history = list(history or [])
    earlier = asked_before(history)
    history.append({"role": "user", "content": escape_text(question or "")})
    answer = reply(assistant, question, int(k), progress, mode, sources, earlier, reader)
    history.append({"role": "assistant", "content": answer})
    return history, ""


def asked_before(history: list) -> list[str]:
    """The questions of the conversation so far, oldest first, as they were typed (the chat holds them escaped),
    the last MAX_HISTORY of them: a follow-up is read with them."""
    asked = [_text(turn.get("content")) for turn in history if isinstance(turn, dict) and turn.get("role") == "user"]
    return [html.unescape(text) for text in asked if text.strip()][-MAX_HISTORY:]


def _text(content) -> str:
    """A chat message's text: a string as chat_turn writes it, or the text parts Gradio sends it back as."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type", "text") == "text")


def reply(
    assistant: Assistant,
    question: str,
    k: int,
    progress=None,
    mode: str | None = None,
    sources: list[str] | None = None,
    history: list[str] | None = None,
    reader: Reader = EVERYTHING,
) -> str:
    """The HTML reply to one question; user mistakes and a missing index become messages, not errors."""
    try:
        if not assistant.has_index():
            _build_with_progress(assistant, progress)
        return render_answer(assistant.ask(question, k, mode, sources or (), history or (), reader))
    except AssistantError as err:
        return f"<p>{escape_text(str(err))}</p>"


def index_notice(assistant: Assistant, reader: Reader = EVERYTHING) -> str:
    """A banner: the background build running, with its progress, or the last one; and when the corpus changed
    since the index was built, what changed (of what `reader` may read), with the command that fixes it."""
    state = _build_state(assistant)
    if state and state["running"]:
        everything = assistant.access.policy().reads_all(reader)  # counts of all files: not for all
        progress = f": {state['phase']} {state['done']}/{state['total']}" if state["phase"] and everything else ""
        return f"<p>Indexing changes{escape_text(progress)}…</p>"
    try:
        status = assistant.status(reader)
        stale, record = status["stale"], status["last_build"]
    except IndexNotFound:
        return "<p>There is no index yet: the first question builds it from the corpus.</p>"
    except AssistantError as err:
        return f"<p>{escape_text(str(err))}</p>"
    last = _last_build(record) if record else ""
    if not stale:
        return last
    names = escape_text(", ".join(stale[:10]) + (" …" if len(stale) > 10 else ""))
    if assistant.settings.watch:
        return last + f"<p>{len(stale)} document(s) changed since the index was built: {names}; indexing them soon.</p>"
    return last + (
        f"<p>&#9888; {len(stale)} document(s) changed since the index was built: {names}. "
        "Answers may be out of date — run <code>.venv/bin/assistant build</code> in the assistant's folder "
        "(or <code>assistant build</code> with its virtualenv active).</p>"
    )


def drawn_notice(assistant: Assistant, reader: Reader = EVERYTHING) -> tuple[str, BuildState | None]:
    """The banner and the build state it was drawn from (taken first: a build that changes after is redrawn)."""
    state = _build_state(assistant)
    return index_notice(assistant, reader), state


def refresh_notice(assistant: Assistant, seen: BuildState | None, reader: Reader = EVERYTHING) -> tuple:
    """The timer's tick: the banner again, and the build state it comes from, when a background build started,
    went on or ended since `seen`; else nothing, so that the corpus is not hashed again every few seconds."""
    state = _build_state(assistant)
    if state is None or state == seen:
        return gr.skip(), gr.skip()
    return index_notice(assistant, reader), state


def _build_state(assistant: Assistant) -> BuildState | None:
    return assistant.builds_state() if assistant.builds_state else None


def _last_build(record: BuildRecord) -> str:
    when = datetime.fromisoformat(record["finished"]).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    if record["summary"] is None and record["error"] in (None, "failed"):  # as a reader who may not read all sees it
        return f"<p>Last indexed {escape_text(when)}{' (it failed)' if record['error'] else ''}.</p>"
    if record["error"]:
        return (
            f"<p>&#9888; Indexing failed at {escape_text(when)}: {escape_text(record['error'])} "
            "The index from before it answers the questions.</p>"
        )
    return f"<p>Last indexed {escape_text(when)}: {escape_text(summary_line(record))}</p>"


def _build_with_progress(assistant: Assistant, progress) -> None:
    def report(phase: str, done: int, total: int) -> None:
        if progress is not None:
            unit = {"reading": "files", "chunking": "documents"}.get(phase, "chunks")
            progress((done, total), desc=f"Building the index: {phase}", unit=unit)

    assistant.build(progress=report)
