"""The chat's "Add documents" panel, shown to admins only, and who may use the Gradio upload route it needs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypedDict

import gradio as gr
from gradio.routes import App
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import Mount

from ..access import Reader
from ..builds import BuildRecord, BuildState, summary_line
from ..ingest import SUPPORTED
from ..service import Assistant
from .identity import chat_reader, signed_in_by_proxy
from .upload_api import builds_of, request_build
from .uploads import UploadError, max_file_bytes, store_files

log = logging.getLogger(__name__)

_TICK = 2.0  # seconds between looks at the build the panel asked for


def chat_app(server: Starlette) -> App | None:
    """The Gradio app that gr.mount_gradio_app mounted on `server` (None before it is mounted)."""
    return next((route.app for route in server.routes if isinstance(route, Mount) and isinstance(route.app, App)), None)


def admin_uploads(assistant: Assistant, server: Starlette) -> Callable[[MutableMapping[str, Any]], bool]:
    """NoGradioUploads' test: whether a request (its ASGI scope) comes from an admin, signed in as the chat signs
    people in: by a trusted proxy's header when ASSISTANT_TRUSTED_USER_HEADER is set, else by Gradio's session
    cookie, mapped to its user by the mounted Gradio app (as its own get_current_user does)."""
    settings = assistant.settings

    def allowed(scope: MutableMapping[str, Any]) -> bool:
        connection = HTTPConnection(scope)
        if settings.trusted_user_header:
            reader = signed_in_by_proxy(settings, connection.headers)
        else:
            reader = _cookie_reader(chat_app(server), connection.cookies)
        return reader is not None and assistant.access.policy().is_admin(reader)

    return allowed


def _cookie_reader(app: App | None, cookies: Mapping[str, str]) -> Reader | None:
    if app is None:
        return None
    token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
    user = app.tokens.get(token) if token else None
    return Reader(user) if user else None


class Asked(TypedDict):
    """What the panel's timer follows: the files stored, and the build that indexes them."""

    stored: list[str]
    before: BuildRecord | None  # the last finished build when they were stored: not the one that indexes them
    running: bool  # a build was running then: it may have read the corpus before them, so the one after it counts


def add_documents_panel(demo: gr.Blocks, assistant: Assistant) -> None:
    """The panel, hidden until the page's load shows it to an admin. Its handler checks again that the reader is
    an admin (the panel's visibility guards nothing), stores through the API's own store_files, asks for a
    build and follows it until it is done."""
    with gr.Accordion("Add documents", open=False, visible=False) as panel:
        files = gr.File(label="Documents", file_count="multiple", file_types=sorted(SUPPORTED), type="filepath")
        with gr.Row():
            folder = gr.Textbox(label="Folder", placeholder="relative to the corpus, like hr/2024; empty: the corpus")
            replace = gr.Checkbox(label="Replace existing", value=False)
        add = gr.Button("Add", variant="primary")
        status = gr.Textbox(label="Added", interactive=False, lines=2, elem_id="add-status")
    follow = gr.Timer(_TICK, active=False)
    asked = gr.State()

    def show(request: gr.Request):
        return gr.Accordion(visible=_is_admin(assistant, chat_reader(assistant.settings, request)))

    def store(paths: list[str] | None, into: str, replacing: bool, request: gr.Request):
        return add_files(assistant, paths or [], into or "", replacing, request)

    def tick(since: Asked | None, request: gr.Request):
        builds = builds_of(_app(request))
        if builds is None or since is None:
            return gr.skip(), gr.Timer(active=False), gr.skip()
        state = builds.state()
        since = _passed(since, state)
        return progress(since, state), gr.Timer(active=not _done(since, state)), since

    demo.load(show, None, panel)
    add.click(store, [files, folder, replace], [status, files, follow, asked], api_visibility="private")
    follow.tick(tick, asked, [status, follow, asked], concurrency_limit=None)


def add_files(assistant: Assistant, paths: list[str], folder: str, replace: bool, request: gr.Request) -> tuple:
    """The Add button: (status, the file input, the timer, what the timer follows)."""
    reader = chat_reader(assistant.settings, request)
    if not _is_admin(assistant, reader):
        log.warning("refused an upload through the chat from %s: not an admin", reader)
        return f"Only admins add documents, and {reader} is not one.", gr.skip(), gr.skip(), gr.skip()
    if not paths:
        return "Choose one or more files first.", gr.skip(), gr.skip(), gr.skip()
    try:
        with contextlib.ExitStack() as stack:
            files = [(Path(path).name, stack.enter_context(open(path, "rb"))) for path in paths]
            stored = store_files(assistant.settings.corpus, folder, files, replace, max_file_bytes(assistant.settings))
    except (UploadError, OSError) as err:  # OSError: Gradio's copy of a file is gone (the page was old)
        return f"Nothing was added: {err}", gr.skip(), gr.skip(), gr.skip()
    finally:
        _remove_copies(paths)
    app = _app(request)
    builds = builds_of(app)
    state = builds.state() if builds else None  # before the request: a build running now is not the one
    started = request_build(app, f"{reader} added {', '.join(stored)} in the chat")
    if builds is None or state is None:
        return f"Stored: {', '.join(stored)}.\nIndexing {started}.", None, gr.skip(), gr.skip()
    since = Asked(stored=stored, before=state["last"], running=state["running"])
    return progress(since, builds.state()), None, gr.Timer(active=True), since


def _remove_copies(paths: list[str]) -> None:
    """Gradio's copies of the uploaded files (each in a folder of its own), which anyone who knows their path
    could fetch from Gradio's file route."""
    for path in map(Path, paths):
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def progress(since: Asked, state: BuildState) -> str:
    """What the panel says: the files stored, then the build that indexes them (its phase, or how it ended)."""
    line = f"Stored: {', '.join(since['stored'])}."
    if _done(since, state) and state["last"] is not None:
        return f"{line}\nIndexed: {summary_line(state['last'])}"
    if state["running"] and state["phase"]:
        return f"{line}\nIndexing: {state['phase']} {state['done']}/{state['total']}…"
    return f"{line}\nIndexing: about to start…"


def _passed(since: Asked, state: BuildState) -> Asked:
    """Once the build that was running when the files were stored has finished, the next one is theirs."""
    if since["running"] and state["last"] != since["before"]:
        return Asked(stored=since["stored"], before=state["last"], running=False)
    return since


def _done(since: Asked, state: BuildState) -> bool:
    return not since["running"] and not state["running"] and state["last"] != since["before"]


def _app(request: gr.Request | None) -> Any:
    """The Gradio app a chat event came through (create_server keeps the builds in its state)."""
    return getattr(getattr(request, "request", None), "app", None)


def _is_admin(assistant: Assistant, reader: Reader) -> bool:
    return assistant.access.policy().is_admin(reader)
