"""REST API: the same answers, status and documents as the CLI and the chat, as JSON."""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from ..access import ANONYMOUS, EVERYTHING, Reader
from ..config import Mode, Settings
from ..errors import AssistantError, Busy, IndexNotFound, QueryError
from ..question import MAX_HISTORY, MAX_QUESTION_CHARS, MAX_SOURCE_CHARS, MAX_SOURCES
from ..service import Assistant
from .auth import check_token, check_user
from .identity import signed_in_by_proxy
from .security import LoginLimiter, client_address
from .tokens import TokenFile
from .upload_api import documents_router

log = logging.getLogger(__name__)

MAX_K = 50


class Turn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="an earlier question")


class AskRequest(BaseModel):
    # strict: k is a JSON integer, not "5", 5.0 or true; forbid: a misspelt field is an error, not a default
    model_config = ConfigDict(strict=True, extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question, in any words")
    k: int = Field(5, ge=1, le=MAX_K, description="passages to return (capped at the chunk count)")
    mode: Mode | None = Field(None, description="dense, bm25 or hybrid; default: ASSISTANT_MODE")
    sources: list[Annotated[str, Field(min_length=1, max_length=MAX_SOURCE_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_SOURCES,
        description="search only these documents and folders, relative to the corpus ('reports/2024.pdf', "
        "'reports'); default: all",
    )
    history: list[Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="the conversation's earlier questions, oldest first: a follow-up ('What did he say?') is "
        "searched with the topic of the last one",
    )


class Credentials:
    """What the API takes as a sign-in: the service token (ASSISTANT_API_TOKEN, which reads everything and acts as
    an admin), per-user tokens (ASSISTANT_TOKENS), HTTP Basic with ASSISTANT_USERS, and a trusted proxy's
    sign-in header. None of them set: the API is open."""

    def __init__(self, settings: Settings, users: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.users = users or {}
        self.service = settings.api_token
        self.tokens = TokenFile(Path(settings.tokens).expanduser()) if settings.tokens else None

    @property
    def open(self) -> bool:
        return not (self.users or self.service or self.tokens or self.settings.trusted_user_header)

    def check(self, authorization: str) -> Reader | None:
        """The reader the Authorization header names, or None for wrong credentials."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            if self.service and check_token(self.service, authorization):
                return EVERYTHING
            user = self.tokens.user_of(value.strip()) if self.tokens else None
            return Reader(user) if user else None
        user = _basic_user(self.users, authorization) if self.users else None
        return Reader(user) if user else None

    def refusal(self) -> HTTPException:
        if self.service or self.tokens:
            return HTTPException(
                401,
                "missing or wrong API token — send: Authorization: Bearer <token> (ASSISTANT_API_TOKEN, or one "
                "made by: assistant token create USER)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.users:
            return HTTPException(
                401,
                "login required — send HTTP Basic credentials of an ASSISTANT_USERS user",
                headers={"WWW-Authenticate": 'Basic realm="assistant"'},
            )
        return HTTPException(401, f"sign in through the proxy: it sends {self.settings.trusted_user_header}")


def api_guard(credentials: Credentials, limiter: LoginLimiter):
    """The reader of an /api/* request. A trusted proxy's sign-in header names them (only a trusted proxy's reaches
    here: identity.TrustedProxies), else the Authorization header; an open API reads as an anonymous user, who
    reads everything unless ASSISTANT_ACCESS is set. Wrong credentials are failed logins of the client's address,
    limited as the chat's are (security.py)."""

    def guard(request: Request, authorization: str | None = Header(None, include_in_schema=False)) -> Reader:
        proxied = signed_in_by_proxy(credentials.settings, request.headers, request.scope)
        if proxied is not None:
            return proxied
        if credentials.open:
            return ANONYMOUS
        if authorization:  # a request without credentials is anonymous, not a failed login
            address = client_address(request.scope)
            if not limiter.admit(address):
                wait = limiter.wait(address) or 1
                raise HTTPException(429, limiter.refusal(wait), headers={"Retry-After": str(wait)})
            reader = None
            try:
                reader = credentials.check(authorization)
            finally:
                limiter.settle(address, failed=reader is None)
            if reader is not None:
                return reader
        raise credentials.refusal()

    return guard


def _basic_user(users: dict[str, str], authorization: str) -> str | None:
    """The user of HTTP Basic credentials, None when they are wrong."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if check_user(users, user, password) else None


def create_app(
    assistant: Assistant, users: dict[str, str] | None = None, limiter: LoginLimiter | None = None
) -> FastAPI:
    """The FastAPI app with the API routes; server.py mounts the chat on it."""
    # FastAPI's own /api/docs page would load Swagger UI from a CDN; FastAPIOffline serves the copy in its package
    app = FastAPIOffline(
        title="Document Q&A",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        static_url="/api/docs-assets",
    )
    app.state.ready = False
    guard = api_guard(Credentials(assistant.settings, users), limiter or LoginLimiter())
    api = APIRouter(prefix="/api")
    signed = Depends(guard)  # the reader of the request: the routes' answers are theirs
    _add_error_handlers(app)

    @api.post("/ask", summary="Ask a question: the same object as one line of `assistant ask --json`")
    def ask(request: AskRequest, reader: Reader = signed) -> dict:
        history = [turn.question for turn in request.history]
        return assistant.ask(request.question, request.k, request.mode, request.sources, history, reader).to_json()

    @api.get("/status", summary="What `assistant status --json` prints")
    def status(reader: Reader = signed) -> dict:
        return dict(assistant.status(reader))

    @api.get("/documents/{chunk_id}", summary="The text of the document that holds a passage, with its offsets")
    def document(chunk_id: str, reader: Reader = signed) -> dict:
        found = assistant.document_of(chunk_id, reader)
        if found is None:
            raise HTTPException(404, f"no passage with id {chunk_id!r} in the index — ids come from /api/ask")
        return dict(found)

    api.include_router(documents_router(assistant, signed))  # POST and DELETE /api/documents: admins only
    app.include_router(api)

    @app.get("/healthz", summary="Liveness")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="200 once the index and the model are loaded")
    def readyz() -> JSONResponse:
        if not app.state.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            assistant.index()
        except IndexNotFound as err:
            return JSONResponse({"status": "no index", "detail": str(err)}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON with a one-line "detail" that says what is wrong; none carries a traceback."""

    @app.exception_handler(AssistantError)
    def assistant_error(request, err: AssistantError) -> JSONResponse:
        status = 422 if isinstance(err, QueryError) else 503
        headers = {"Retry-After": "1"} if isinstance(err, Busy) else None
        return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def bad_request(request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input: a NaN or a lone surrogate there made the reply itself fail (500)
        errors = [_error(e) for e in err.errors()]
        return JSONResponse({"detail": validation_message(errors), "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    def server_error(request, err: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        return JSONResponse({"detail": "the server failed on this request; its log has the details"}, status_code=500)


def _error(error: dict) -> dict:
    """One of pydantic's errors without its input, and in plain words where it concerns the body as a whole."""
    if error["type"] == "json_invalid":  # its loc ends with a character position
        return {
            "loc": ["body"],
            "msg": f"not valid JSON ({error.get('ctx', {}).get('error', 'cannot parse it')})",
            "type": error["type"],
        }
    if error["type"] == "model_attributes_type" and len(error["loc"]) <= 1:  # the body, not an object inside it
        return {
            "loc": ["body"],
            "msg": "expected a JSON object, sent with Content-Type: application/json",
            "type": error["type"],
        }
    return {"loc": [str(part) for part in error["loc"]], "msg": error["msg"], "type": error["type"]}


def validation_message(errors: list[dict]) -> str:
    """FastAPI's validation errors as one line: `question: String should have at most 2000 characters`."""
    return (
        "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors) + " — see /api/docs for the shape of each request"
    )


def _field(loc: list[str]) -> str:
    """("body", "question") -> "question"; ("body",) -> "body" (the body as a whole)."""
    return ".".join(loc[1:] if len(loc) > 1 and loc[0] == "body" else loc)
