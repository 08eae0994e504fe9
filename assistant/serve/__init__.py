"""One server: uvicorn runs the FastAPI app with the REST API, and the Gradio chat mounted on it."""

from __future__ import annotations

import ipaddress
import logging
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path

import gradio as gr
import jinja2
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from ..builds import Builds
from ..errors import ConfigError, IndexMismatch, IndexNotFound
from ..service import Assistant
from .api import create_app
from .auth import check_user, load_users
from .identity import TrustedProxies, check_sign_in, signed_in_by_proxy
from .security import LOGIN_FAILURES, LOGIN_WINDOW, LoginLimiter, LoginRateLimit, NoGradioUploads, SecurityHeaders
from .ui import CSS, THEME, build_demo
from .upload_ui import admin_uploads, chat_app
from .uploads import max_file_bytes

log = logging.getLogger(__name__)

_ROOT_LINK = re.compile(r'\b(href|src)="/(?!/)')  # e.g. Gradio's <link rel="manifest" href="/manifest.json">
# the share-preview tags that name a URL or an account: Gradio's point at gradio.app, GitHub and @Gradio
_SOCIAL_LINKS = re.compile(
    r'<meta\s+(?:property|name)="(?:og:image|og:url|twitter:image|twitter:creator)"\s+content="[^"]*"\s*/?>\s*'
)
_ICON = '<link rel="icon" href="./favicon.ico" />'
LOGIN_MESSAGE = (
    f"Sign in to ask the documents. After {LOGIN_FAILURES} failed attempts, wait {LOGIN_WINDOW:.0f} seconds "
    "before the next one."
)


def create_server(assistant: Assistant, demo: gr.Blocks | None = None, builds: Builds | None = None):
    """The ASGI app: /api/*, /healthz, /readyz, and the chat at / (under the root path behind a proxy).
    `builds`: the process's background builds, as app.state.builds (None: this app starts none)."""
    settings = assistant.settings
    users = load_users(settings.users) if settings.users else {}
    limiter = LoginLimiter()  # one budget of failed logins per address, for the chat's login and the API's
    check_sign_in(settings, users)
    app = create_app(assistant, users, limiter)
    app.state.builds = builds
    login = (lambda user, password: check_user(users, user, password)) if users else None

    # outermost last: the headers go on every response, the 429 of the login limit and CORS preflights included
    app.add_middleware(NoGradioUploads, allowed=admin_uploads(assistant, app))  # admins' "Add documents" only
    app.add_middleware(LoginRateLimit, limiter=limiter)
    # outside every middleware that reads the client's address: it sets it, from a trusted proxy's X-Forwarded-For
    app.add_middleware(TrustedProxies, settings=settings)
    # Gradio's own CORS lets any site read the chat off a host that is not loopback; only the embedding pages may
    app.add_middleware(
        CORSMiddleware,
        allow_origins=embedding_origins(settings.frame_ancestors),
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)  # embedding only where allowed
    app.add_api_route("/gradio.js", _gradio_js, include_in_schema=False)
    _render_pages_through_fix_page()
    # run history off: its page offers to save runs to a Hugging Face bucket, a call out of the intranet
    gr.mount_gradio_app(
        app,
        demo or build_demo(assistant=assistant),
        path="/",
        root_path=settings.root_path or None,
        css=CSS,
        theme=THEME,
        # signed in by the proxy (its header, believed only from a trusted proxy), else by the chat's login
        auth=None if settings.trusted_user_header else login,
        auth_dependency=_proxy_user(settings) if settings.trusted_user_header else None,
        auth_message=LOGIN_MESSAGE if users and not settings.trusted_user_header else None,
        run_history=False,
        max_file_size=max_file_bytes(settings),  # Gradio's upload route (admins only): the build's own limit
    )
    chat = chat_app(app)
    assert chat is not None
    chat.state.builds = builds  # the chat's "Add documents" finds them as the API's routes do: app.state.builds
    return app


def _proxy_user(settings):
    """Gradio's auth_dependency: the user a trusted proxy signed in; None (Gradio answers 401) for none."""

    def user(request) -> str | None:
        reader = signed_in_by_proxy(settings, request.headers)
        return reader.name if reader else None

    return user


def embedding_origins(frame_ancestors: str) -> list[str]:
    """The origins among the frame-ancestors sources: the pages that may also embed the chat as a web component."""
    return [source for source in frame_ancestors.split() if "://" in source]


def _gradio_js() -> FileResponse:
    """Gradio's <gradio-app> web component, from the gradio wheel rather than a CDN; it loads the rest from
    ./assets/."""
    return FileResponse(Path(gr.__file__).parent / "templates" / "frontend" / "gradio.js", media_type="text/javascript")


def fix_page(html: str) -> str:
    """Gradio's page made to work under a proxy's sub-path and to name no outside host.

    Its template links /manifest.json from the site's root, which is outside /qa/ behind a proxy; the
    page's <base href="./"> makes "./" links land under the chat's own path. Without an icon link,
    browsers ask the site's root for /favicon.ico. Link previews would fetch the images from GitHub.
    """
    html = _SOCIAL_LINKS.sub("", _ROOT_LINK.sub(r'\1="./', html))
    if 'rel="icon"' not in html:
        html = html.replace("</head>", f"{_ICON}\n</head>", 1)
    return html


class _FixedLoader(jinja2.FunctionLoader):
    """Gradio's own template loader, with every page passed through fix_page."""


def _render_pages_through_fix_page() -> None:
    """Gradio renders its page from a Jinja template that it reads once; pass that source through fix_page."""
    from gradio.routes import templates

    loader = templates.env.loader
    if loader is None or isinstance(loader, _FixedLoader):  # already done in this process
        return

    def source(name: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        text, filename, uptodate = loader.get_source(templates.env, name)
        return fix_page(text), filename, uptodate

    templates.env.loader = _FixedLoader(source)
    if templates.env.cache is not None:
        templates.env.cache.clear()


def serve(assistant: Assistant, demo: gr.Blocks | None = None) -> None:
    """Build the index if there is none (progress in the terminal), warm up, then serve until stopped; with
    settings.watch, the corpus's changes are indexed in the background as they settle (watch.py)."""
    import uvicorn

    settings = assistant.settings
    _check_port(settings.host, settings.port)
    if warning := exposure_warning(settings):
        print(warning, file=sys.stderr)
    demo = demo or build_demo(assistant=assistant)  # before the build: a bad ASSISTANT_EXAMPLES stops at once
    try:
        assistant.index()
    except (IndexNotFound, IndexMismatch) as why:  # build rather than fail: what `assistant build` would do
        print(f"{why}\nbuilding the index from {settings.corpus}/ now", file=sys.stderr)
        print("\n".join(assistant.build_in_terminal().lines()), file=sys.stderr)
    assistant.warm_up()
    builds = Builds(assistant)
    app = create_server(assistant, demo, builds)
    app.state.ready = True
    where = f"http://{settings.host}:{settings.port}{settings.root_path}/"
    print(f"serving the chat at {where} and the API at {where}api/docs", file=sys.stderr)
    with ExitStack() as stack, _sigterm_exits_normally():
        stack.callback(builds.close)
        if settings.watch:
            stack.enter_context(_watching(settings, builds))
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            root_path=settings.root_path,
            log_level="warning",
            proxy_headers=False,  # identity.TrustedProxies takes X-Forwarded-For from trusted proxies only
        )


@contextmanager
def _watching(settings, builds: Builds):
    """Watch the corpus while serving, from one build that catches up with what changed while nobody watched."""
    from ..watch import watching

    with watching(settings, builds):
        builds.request("catching up with the corpus at start-up")
        print(f"watching {settings.corpus}/: its changes are indexed as they settle", file=sys.stderr)
        yield


@contextmanager
def _sigterm_exits_normally():
    """On SIGTERM uvicorn stops taking connections and lets the requests in flight finish, then raises SIGTERM
    again, which would end the process as killed (exit -15). A stop that was asked for is a normal end: exit 0."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can set a handler
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_normally)  # uvicorn's own handler replaces it while it serves
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_normally(signum, frame) -> None:
    raise SystemExit(0)


def exposure_warning(settings) -> str | None:
    """A warning when the server listens beyond this machine and nobody has to sign in."""
    if _is_loopback(settings.host) or settings.users or settings.api_token:
        return None
    return (
        f"warning: serving on {settings.host} without a login — anyone who can reach port {settings.port} can read "
        "the documents; set ASSISTANT_USERS (and ASSISTANT_API_TOKEN), or ASSISTANT_HOST=127.0.0.1"
    )


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to, it is not only this machine
        return False


def _check_port(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(
                f"cannot serve on {host}:{port} ({err.strerror}) — set ASSISTANT_PORT or --port to a free port"
            ) from None
