"""`assistant ask --server URL`: the question asked of a running server's API, loading no model or index here."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from .config import Settings
from .errors import AssistantError, ConfigError, QueryError

TIMEOUT = 120.0  # seconds for one answer: a server that is building an index first may take a while


class Server:
    """A running assistant's API at `settings.server`, with the credentials of ASSISTANT_API_TOKEN (Bearer) or
    ASSISTANT_USER and ASSISTANT_PASSWORD (Basic)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.server.rstrip("/") + "/"
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.api_token:
            self.headers["Authorization"] = f"Bearer {settings.api_token}"
        elif settings.server_user:
            pair = f"{settings.server_user}:{settings.server_password}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def ask(
        self, question: str, k: int, mode: str | None, sources: Sequence[str], history: Sequence[str]
    ) -> dict[str, Any]:
        """What /api/ask returns: the object one line of `assistant ask --json` prints."""
        body: dict[str, Any] = {"question": question, "k": k, "sources": list(sources)}
        if mode:
            body["mode"] = mode
        if history:
            body["history"] = [{"question": turn} for turn in history]
        return self._call("api/ask", body)

    def _call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.url + route, json.dumps(body).encode(), self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise _refusal(self.url, err.code, _detail(err)) from None
        except (urllib.error.URLError, OSError) as err:
            why = getattr(err, "reason", None) or err
            raise AssistantError(
                f"cannot reach the server at {self.url} ({why}) — check the URL (--server or ASSISTANT_URL) and "
                "that `assistant serve` runs there"
            ) from None
        except ValueError:
            raise AssistantError(
                f"the server at {self.url} answered something that is not JSON — is it the assistant's address?"
            ) from None


def _detail(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(err.read())["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        return err.reason or f"HTTP {err.code}"


def _refusal(url: str, status: int, detail: str) -> AssistantError:
    """The server's error as the in-process command would raise it: a question's mistake is a QueryError."""
    if status == 422:
        return QueryError(detail)
    if status in (401, 403):
        return ConfigError(
            f"the server at {url} refused the credentials ({status}: {detail}) — set ASSISTANT_API_TOKEN, or "
            "ASSISTANT_USER and ASSISTANT_PASSWORD"
        )
    if status == 404:
        return AssistantError(f"no assistant API at {url} (404) — give the chat's address, e.g. http://host:7860/qa/")
    return AssistantError(detail)
