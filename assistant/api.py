"""REST API: the same answers, status and documents as the CLI and the chat, as JSON."""
from __future__ import annotations

import logging

import base64
import binascii

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from .auth import check_token, check_user
from .config import Mode
from .errors import AssistantError, Busy, IndexNotFound, QueryError
from .search import MAX_QUESTION_CHARS
from .service import Assistant

log = logging.getLogger(__name__)

MAX_K = 50


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question, in any words")
    k: int = Field(5, ge=1, le=MAX_K, description="passages to return (capped at the chunk count)")
    mode: Mode | None = Field(None, description="dense, bm25 or hybrid; default: ASSISTANT_MODE")


def api_guard(users: dict[str, str], token: str):
    """/api/* needs the bearer token when one is set, else HTTP Basic with the users when there are some."""

    def guard(authorization: str | None = Header(None, include_in_schema=False)) -> None:
        if token:
            if not check_token(token, authorization):
                raise HTTPException(401, "missing or wrong API token — send: Authorization: Bearer <ASSISTANT_API_TOKEN>",
                                    headers={"WWW-Authenticate": "Bearer"})
        elif users and not _basic_ok(users, authorization):
            raise HTTPException(401, "login required — send HTTP Basic credentials of an ASSISTANT_USERS user",
                                headers={"WWW-Authenticate": 'Basic realm="assistant"'})

    return guard


def _basic_ok(users: dict[str, str], authorization: str | None) -> bool:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return check_user(users, user, password)


def create_app(assistant: Assistant, users: dict[str, str] | None = None, token: str = "") -> FastAPI:
    """The FastAPI app with the API routes; server.py mounts the chat on it."""
    # FastAPI's own /api/docs page would load Swagger UI from a CDN; FastAPIOffline serves the copy in its package
    app = FastAPIOffline(title="Document Q&A", version="1", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json",
                         swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect", static_url="/api/docs-assets")
    app.state.ready = False
    api = APIRouter(prefix="/api", dependencies=[Depends(api_guard(users or {}, token))])

    @app.exception_handler(AssistantError)
    def assistant_error(request, err: AssistantError) -> JSONResponse:
        status = 422 if isinstance(err, QueryError) else 503
        headers = {"Retry-After": "1"} if isinstance(err, Busy) else None
        return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)

    @api.post("/ask", summary="Ask a question: the same object as one line of `assistant ask --json`")
    def ask(request: AskRequest) -> dict:
        return assistant.ask(request.question, request.k, request.mode).to_json()

    @api.get("/status", summary="What `assistant status --json` prints")
    def status() -> dict:
        return assistant.status()

    @api.get("/documents/{chunk_id}", summary="The text of the document that holds a passage, with its offsets")
    def document(chunk_id: str) -> dict:
        found = assistant.document_of(chunk_id)
        if found is None:
            raise HTTPException(404, f"no passage with id {chunk_id!r} in the index — ids come from /api/ask")
        return found

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
