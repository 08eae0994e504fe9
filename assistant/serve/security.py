"""Security at the server's edge: the headers on every response and the limit on failed logins."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

# Failed logins: an address that failed LOGIN_FAILURES times within LOGIN_WINDOW seconds is refused, without its
# password being checked, until the oldest of those failures is LOGIN_WINDOW seconds old. Counted per client
# address, across user names, so that one client cannot try one password on every name either.
LOGIN_FAILURES = 5
LOGIN_WINDOW = 60.0
TRACKED_ADDRESSES = 10_000  # failures are kept for at most this many addresses (the oldest are dropped first)
clock = time.monotonic  # seconds; tests replace it


class LoginLimiter:
    """Failed logins per client address, in a sliding window of `window` seconds.

    Once an address has failed, its tries in flight count against the limit too, so that it cannot send many
    at once to have them all checked; an address that has not failed is never refused, however many requests
    it sends at once."""

    def __init__(self, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW) -> None:
        self.failures, self.window = failures, window
        self._failed: dict[str, deque[float]] = {}
        self._trying: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, address: str) -> bool:
        """Whether `address` may try to log in now; if so, settle() must follow with the outcome."""
        with self._lock:
            failed = len(self._recent(address))
            if failed >= self.failures or (failed and failed + self._trying[address] >= self.failures):
                return False
            self._trying[address] += 1
            return True

    def settle(self, address: str, failed: bool) -> None:
        """The outcome of an admitted try."""
        with self._lock:
            self._trying[address] -= 1
            if self._trying[address] <= 0:
                del self._trying[address]
            if failed:
                recent = self._recent(address)
                recent.append(clock())
                self._failed[address] = (
                    recent  # last in the dict's order: the addresses that failed longest ago go first
                )
                if len(self._failed) > TRACKED_ADDRESSES:
                    self._failed.pop(next(iter(self._failed)))
        if failed and len(recent) == self.failures:  # the address, never the user name: people type passwords there
            log.warning(
                "%d failed logins from %s within %.0f s: its logins are refused for a while",
                self.failures,
                address,
                self.window,
            )

    def wait(self, address: str) -> int:
        """Seconds until `address` may try again: 0 when it may try now."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self.failures:
                return 0
            return max(1, math.ceil(recent[0] + self.window - clock()))

    def refusal(self, wait: int) -> str:
        return (
            f"too many failed logins from this address ({self.failures} within {self.window:.0f} s) — "
            f"wait {wait} s and try again"
        )

    def _recent(self, address: str) -> deque[float]:
        """The address's failures within the window, oldest first; an address with none left leaves the table."""
        recent = self._failed.pop(address, deque())
        while recent and recent[0] <= clock() - self.window:
            recent.popleft()
        if recent:
            self._failed[address] = recent
        return recent


def client_address(scope: Mapping[str, Any]) -> str:
    """The client's IP address (behind a proxy, uvicorn puts X-Forwarded-For's here when the proxy is trusted)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


# The Content-Security-Policy: a second line of defence behind the escaping of document text (assistant/serve/ui.py),
# as strict as Gradio 6's page allows (tests/system/test_browser.py runs every feature under it). Each allowance
# beyond 'self' is one that Gradio needs:
# - script-src 'unsafe-eval': Gradio compiles the js= event code (SCROLL_TO_QUESTION) into an AsyncFunction, and
#   gr.HTML renders its value and runs js_on_load (SCROLL_TO_PASSAGE) through Function(); without it no chat is drawn;
# - script-src 'sha256-…': the page's own inline scripts, hashed as served (below): Gradio's page writes its config,
#   the address of its root and a few fixed lines inline, and the API's Swagger page its start-up call;
# - style-src 'unsafe-inline': Svelte and Gradio's theme set style attributes and <style> elements at run time;
# - img-src data: the icons inlined in Gradio's stylesheets.
# No 'unsafe-inline' for scripts: an event handler attribute or a javascript: link in a reply would not run.
CONTENT_POLICY = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
_INLINE_SCRIPT = re.compile(rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script", re.DOTALL | re.IGNORECASE)


def content_security_policy(frame_ancestors: str, page: bytes = b"") -> str:
    """CONTENT_POLICY, with the sha256 of each inline script of `page` (an HTML body as served) in its script-src,
    and who may frame the response."""
    hashes = [f"'sha256-{digest}'" for digest in script_hashes(page)]
    policy = {**CONTENT_POLICY, "script-src": " ".join([CONTENT_POLICY["script-src"], *hashes])}
    return "; ".join([*(f"{name} {sources}" for name, sources in policy.items()), f"frame-ancestors {frame_ancestors}"])


def script_hashes(page: bytes) -> list[str]:
    """The base64 sha256 of each distinct inline script's text, as a browser hashes it (the page is UTF-8)."""
    scripts = dict.fromkeys(match.group(1) for match in _INLINE_SCRIPT.finditer(page))
    return [base64.b64encode(hashlib.sha256(script).digest()).decode() for script in scripts]


class SecurityHeaders:
    """ASGI middleware: every HTTP response says `X-Content-Type-Options: nosniff`, which scripts, styles and
    sources it may use and who may frame it (CONTENT_POLICY), and to send no Referer from it (a question or a
    document's path in the address stays here); a page (HTML) is never stored by a cache, as it holds the
    addresses the request's Host named.

    A page's start is held until its body is complete, so that its policy allows the inline scripts the server
    wrote into it, by their hashes, and no other: these hold the per-request config, so they cannot be hashed
    once at start-up. No value reaches them unescaped (Jinja escapes, Gradio's JSON filter escapes <)."""

    def __init__(self, app, frame_ancestors: str) -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors
        self.headers = self.headers_for()

    def headers_for(self, page: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """The headers set on a response; `page`: the body of an HTML one."""
        policy = content_security_policy(self.frame_ancestors, page or b"")
        return [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", policy.encode("latin-1")),
            (b"referrer-policy", b"no-referrer"),
            *([(b"cache-control", b"no-store")] if page is not None else []),
        ]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict | None = None  # a page's start, until its body is complete
        body: list[bytes] = []

        async def send_with_headers(message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_page(message):
                held = message
            elif message["type"] == "http.response.start":
                await send(_with_headers(message, self.headers))
            elif held is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(_with_headers(held, self.headers_for(b"".join(body))))
                    await send({**message, "body": b"".join(body)})
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_headers(start: dict, headers: list[tuple[bytes, bytes]]) -> dict:
    """A response's start with `headers` in place of any it had of the same names."""
    names = {name for name, _ in headers}
    return {**start, "headers": [(k, v) for k, v in start.get("headers", []) if k.lower() not in names] + headers}


def _is_page(start: Mapping[str, Any]) -> bool:
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in start.get("headers", []))


class LoginRateLimit:
    """ASGI middleware in front of Gradio's POST /login: refuses with 429 and Retry-After while the client's
    address is over the limit, and counts the logins Gradio turns down (400 "Incorrect credentials")."""

    def __init__(self, app, limiter: LoginLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_login(scope["path"]):
            return await self.app(scope, receive, send)
        address = client_address(scope)
        if not self.limiter.admit(address):
            wait = self.limiter.wait(address) or 1  # or 1: the window may have passed since admit()
            return await refuse(send, self.limiter.refusal(wait), wait)
        failed = True  # until the response says otherwise

        async def watch(message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                failed = message["status"] in (400, 401, 403)
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.limiter.settle(address, failed)


def _is_login(path: str) -> bool:
    """Gradio's login route, which calls the auth= callable: /login, under whatever root path (/qa/login)."""
    return path.rstrip("/").endswith("/login")


class NoGradioUploads:
    """ASGI middleware: Gradio's own POST /gradio_api/upload is refused (403) unless `allowed(scope)` says the
    request comes from an admin (upload_ui.admin_uploads), for the chat's "Add documents" panel. Through that
    route anyone signed in could write files into the server's temporary folder, which others could then read
    back by path; Gradio caps each file at ASSISTANT_MAX_FILE_MB (max_file_size, set by create_server)."""

    def __init__(self, app, allowed: Callable[[MutableMapping[str, Any]], bool] | None = None) -> None:
        self.app = app
        self.allowed = allowed or (lambda scope: False)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _is_gradio_upload(scope["path"]):
            if not self.allowed(scope):
                return await refuse(send, UPLOAD_REFUSED, status=403)
        return await self.app(scope, receive, send)


UPLOAD_REFUSED = (
    "only admins upload files through the chat — sign in as an admin (the admins of the ASSISTANT_ACCESS file); "
    "the chat takes no files from anyone else"
)


def _is_gradio_upload(path: str) -> bool:
    return path.rstrip("/").endswith("/gradio_api/upload")


async def refuse(send, detail: str, wait: int | None = None, status: int = 429) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if wait is not None:
        headers.append((b"retry-after", str(wait).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
