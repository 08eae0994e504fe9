"""Plain text and Markdown: Markdown's # headings bound sections; a plain-text file may be titled by its first line."""

from __future__ import annotations

import re
from pathlib import Path

from ..documents import Section
from ..structure import markdown_sections
from .base import Deadline, decode_text


def read_text(data: bytes, path: Path, deadline: Deadline) -> tuple[str, str, list[Section]]:
    text = decode_text(data)
    title = ""
    if path.suffix.lower() in {".md", ".markdown"}:
        heading = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
        return heading.group(1) if heading else "", text, markdown_sections(text)
    # a plain-text file whose first line stands alone, short and unpunctuated, is titled by it
    first = re.match(r"\s*([^\n]{1,150})\n[ \t]*\n", text)
    if first and not first.group(1).rstrip().endswith(tuple('.!?…,;"”’')):
        title = first.group(1).strip()
    return title, text, []
