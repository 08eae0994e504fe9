"""REST API: the same answers, status and documents as the CLI and the chat, as JSON."""
from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .config import Mode
from .errors import AssistantError, IndexNotFound, QueryError
from .search import MAX_QUESTION_CHARS
from .service import Assistant

log = logging.getLogger(__name__)

MAX_K = 50


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the question, in any words")
    k: int = Field(5, ge=1, le=MAX_K, description="passages to return (capped at the chunk count)")
    mode: Mode | None = Field(None, description="dense, bm25 or hybrid; default: ASSISTANT_MODE")


def create_app(assistant: Assistant) -> FastAPI:
    """The FastAPI app with the API routes; the server mounts the chat on it (ui.serve)."""
    app = FastAPI(title="Document Q&A", version="1", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.state.ready = False

    @app.exception_handler(AssistantError)
    def assistant_error(request, err: AssistantError) -> JSONResponse:
        status = 422 if isinstance(err, QueryError) else 503
        return JSONResponse({"detail": str(err)}, status_code=status)

    @app.post("/api/ask", summary="Ask a question: the same object as one line of `assistant ask --json`")
    def ask(request: AskRequest) -> dict:
        return assistant.ask(request.question, request.k, request.mode).to_json()

    @app.get("/api/status", summary="What `assistant status --json` prints")
    def status() -> dict:
        return assistant.status()

    @app.get("/api/documents/{chunk_id}", summary="The text of the document that holds a passage, with its offsets")
    def document(chunk_id: str) -> dict:
        found = assistant.document_of(chunk_id)
        if found is None:
            raise HTTPException(404, f"no passage with id {chunk_id!r} in the index — ids come from /api/ask")
        return found

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
