"""Errors whose messages name the problem and the next step to take."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: the message is meant for the user, in one line."""


class ConfigError(AssistantError):
    """A setting has a bad value; the message lists the valid ones."""


class IndexNotFound(AssistantError):
    """There is no built index where one was expected."""


class IndexMismatch(AssistantError):
    """The index was built with another model or other chunking."""


class IndexDamaged(IndexMismatch):
    """A file of the published build cannot be read as what the assistant wrote; a rebuild replaces it."""


class IndexWriteError(AssistantError):
    """The index could not be written (disk full, read-only, no permission); the old one stays published."""


class IndexLocked(AssistantError):
    """Another build holds the index lock."""


class ModelLoadError(AssistantError):
    """The embedding model could not be loaded from disk."""


class QueryError(AssistantError):
    """The question cannot be searched (empty, for example)."""


class Busy(AssistantError):
    """Every worker is answering and the line of waiting questions is full; ask again in a moment."""


class StoreUnavailable(AssistantError):
    """The vector store (a Milvus server, or Milvus Lite's file) cannot be reached or opened."""
