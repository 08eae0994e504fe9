"""Who a request comes from: a proxy's sign-in headers (from trusted proxies only), a token, or a password."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..access import ANONYMOUS, Reader
from ..config import Settings
from ..errors import ConfigError
from .security import client_address, refuse

log = logging.getLogger(__name__)


def trusted_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """ASSISTANT_TRUSTED_PROXIES as networks (an address is a network of one)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


class TrustedProxies:
    """ASGI middleware, outside every other that reads the client's address. A request from a trusted proxy (its
    own address in ASSISTANT_TRUSTED_PROXIES) has its client's address and scheme taken from X-Forwarded-For and
    -Proto, and its sign-in headers believed. From anywhere else, a request that names a user in the sign-in
    header is refused (401, and logged: someone is trying to pass for a proxy), and a groups header is dropped."""

    def __init__(self, app, settings: Settings) -> None:
        self.networks = trusted_networks(settings.trusted_proxies)
        self.app = app
        proxies = [proxy.strip() for proxy in settings.trusted_proxies.split(",")]
        self.forwarded = ProxyHeadersMiddleware(app, trusted_hosts=proxies)
        self.user_header = settings.trusted_user_header.lower().encode("latin-1")
        self.groups_header = settings.trusted_groups_header.lower().encode("latin-1")

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:  # "testclient", a Unix socket
            return False
        return any(ip in network for network in self.networks)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        peer = client_address(scope)
        scope.setdefault("state", {})[CHECKED] = True  # its sign-in headers are a trusted proxy's, or gone
        if self.trusts(peer):
            return await self.forwarded(scope, receive, send)
        names = {self.user_header, self.groups_header} - {b""}
        named = self.user_header and any(name.lower() == self.user_header for name, _ in scope["headers"])
        if named and scope["type"] == "http":
            log.warning(
                "refused a request from %s: it names a user in %s but comes from no trusted proxy",
                peer,
                self.user_header.decode(),
            )
            return await refuse(send, UNTRUSTED_SIGN_IN, status=401)
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in names]}
        return await self.app(scope, receive, send)


CHECKED = "assistant.sign_in_headers_checked"  # in a request's state: TrustedProxies has seen it
UNTRUSTED_SIGN_IN = (
    "a sign-in header came from an address that is not a trusted proxy — send requests through the proxy "
    "(ASSISTANT_TRUSTED_PROXIES lists the proxies whose sign-in headers are believed)"
)


def signed_in_by_proxy(
    settings: Settings, headers: Mapping[str, str], scope: Mapping[str, Any] | None = None
) -> Reader | None:
    """The reader a proxy named in the request's headers, or None. Only trusted proxies' headers reach here:
    TrustedProxies refuses or strips them from anyone else; given the request's ASGI `scope`, a request that did
    not pass through it (an app without the middleware) is believed by no header. Groups are comma-separated."""
    if not settings.trusted_user_header or (scope is not None and not scope.get("state", {}).get(CHECKED)):
        return None
    name = (headers.get(settings.trusted_user_header) or "").strip()
    if not name:
        return None
    groups = headers.get(settings.trusted_groups_header) or "" if settings.trusted_groups_header else ""
    return Reader(name, frozenset(group.strip() for group in groups.split(",") if group.strip()))


def check_sign_in(settings: Settings, users: Mapping[str, Any]) -> None:
    """Folder permissions need people to sign in, to the chat too (tokens sign in to the API only): refuse to serve
    the chat to anonymous users who could read nothing."""
    if settings.access and not (users or settings.trusted_user_header):
        raise ConfigError(
            "ASSISTANT_ACCESS is set but nobody signs in to the chat, so it could show nothing — set ASSISTANT_USERS "
            "or ASSISTANT_TRUSTED_USER_HEADER (docs/permissions.md)"
        )


def chat_reader(settings: Settings, request: Any) -> Reader:
    """The reader of a chat event (a gr.Request): signed in by a trusted proxy, else by the chat's login; without
    a login, anonymous (who reads everything unless ASSISTANT_ACCESS is set, and then nothing)."""
    if request is None:
        return ANONYMOUS
    proxied = signed_in_by_proxy(settings, request.headers)
    if proxied is not None:
        return proxied
    name = getattr(request, "username", None)
    return Reader(name) if name else ANONYMOUS
