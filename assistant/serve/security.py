"""Security at the server's edge: the headers on every response and the limit on failed logins."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
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


class SecurityHeaders:
    """ASGI middleware: every HTTP response says `X-Content-Type-Options: nosniff`, who may frame it, and to send
    no Referer from it (a question or a document's path in the address stays here); a page (HTML) is never
    stored by a cache, as it holds the addresses the request's Host named."""

    def __init__(self, app, frame_ancestors: str) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", f"frame-ancestors {frame_ancestors}".encode("latin-1")),
            (b"referrer-policy", b"no-referrer"),
        ]
        self.names = {name for name, _ in self.headers}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                page = any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers)
                names = self.names | ({b"cache-control"} if page else set())
                kept = [(k, v) for k, v in headers if k.lower() not in names]
                message = {
                    **message,
                    "headers": kept + self.headers + ([(b"cache-control", b"no-store")] if page else []),
                }
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
            return await _refuse(send, self.limiter.refusal(wait), wait)
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
    """ASGI middleware: Gradio's own POST /gradio_api/upload is refused (403). The chat has no file input, and
    through that route any signed-in user could write files of any size into the server's temporary folder,
    which others could then read back by path."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _is_gradio_upload(scope["path"]):
            return await _refuse(send, UPLOAD_REFUSED, status=403)
        return await self.app(scope, receive, send)


UPLOAD_REFUSED = "files are not uploaded through the chat's Gradio routes: the chat takes no files"


def _is_gradio_upload(path: str) -> bool:
    return path.rstrip("/").endswith("/gradio_api/upload")


async def _refuse(send, detail: str, wait: int | None = None, status: int = 429) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if wait is not None:
        headers.append((b"retry-after", str(wait).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
