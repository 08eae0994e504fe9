"""One server: uvicorn runs the FastAPI app with the REST API, and the Gradio chat mounted on it."""
from __future__ import annotations

import logging
import socket
import sys

import gradio as gr

from .api import create_app
from .auth import check_user, load_users
from .errors import ConfigError, IndexMismatch, IndexNotFound
from .service import Assistant
from .ui import CSS, build_demo

log = logging.getLogger(__name__)


def create_server(assistant: Assistant, demo: gr.Blocks | None = None):
    """The ASGI app: /api/*, /healthz, /readyz, and the chat at / (under the root path behind a proxy)."""
    settings = assistant.settings
    users = load_users(settings.users) if settings.users else {}
    app = create_app(assistant, users, settings.api_token)
    login = (lambda user, password: check_user(users, user, password)) if users else None

    @app.middleware("http")
    async def frame_policy(request, call_next):  # embedding only where the operator allows it
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = f"frame-ancestors {settings.frame_ancestors}"
        return response

    return gr.mount_gradio_app(app, demo or build_demo(assistant=assistant), path="/", root_path=settings.root_path or None,
                               css=CSS, auth=login, auth_message="Sign in to ask the documents." if users else None)


def serve(assistant: Assistant, demo: gr.Blocks | None = None) -> None:
    """Build the index if there is none (progress in the terminal), warm up, then serve until stopped."""
    import uvicorn

    settings = assistant.settings
    _check_port(settings.host, settings.port)
    try:
        assistant.index()
    except (IndexNotFound, IndexMismatch) as why:  # build rather than fail: what `assistant build` would do
        print(f"{why}\nbuilding the index from {settings.corpus}/ now", file=sys.stderr)
        print(assistant.build_in_terminal().line(), file=sys.stderr)
    assistant.warm_up()
    app = create_server(assistant, demo)
    app.state.ready = True
    where = f"http://{settings.host}:{settings.port}{settings.root_path}/"
    print(f"serving the chat at {where} and the API at {where}api/docs", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, root_path=settings.root_path, log_level="warning")


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot serve on {host}:{port} ({err.strerror}) — set ASSISTANT_PORT or --port to a free port") from None
