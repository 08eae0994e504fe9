"""Readers, one per file format: bytes in, (title, text, sections) out, or SkipFile with the one-line reason.
A module per format; `reader_for` picks the reader of a file by its extension."""

from __future__ import annotations

import functools
from pathlib import Path

from ..ocr import OcrOptions
from .base import Deadline, Reader, SkipFile, decode_text
from .html import read_html
from .images import IMAGE_SUFFIXES, read_image
from .pdf import read_pdf
from .text import read_text
from .word import read_docx

__all__ = ["IMAGE_SUFFIXES", "Deadline", "Reader", "SkipFile", "decode_text", "reader_for"]


def reader_for(path: Path, ocr: OcrOptions) -> Reader:
    """The reader of the file's format: PDF, an image, DOCX, HTML, else plain text. The first two are given the
    build's OCR options, for scanned pages and images."""
    suffix = path.suffix.lower()
    if suffix == ".pdf" or suffix in IMAGE_SUFFIXES:
        return functools.partial(read_pdf if suffix == ".pdf" else read_image, ocr=ocr)
    return {".docx": read_docx, ".html": read_html, ".htm": read_html}.get(suffix, read_text)
