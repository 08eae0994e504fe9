"""Helpers of the FAISS store's tests: a small corpus of three documents, one in a sub-folder."""

from pathlib import Path

PARAGRAPHS = {
    "a.txt": "Alpha conference opened in Islamabad.\n\nDelegates from Spain and Italy attended the talks.",
    "b.md": "# Bravo\n\nThe budget for border control grew this year.",
    "sub/c.txt": "Charlie notes about migrant smuggling routes and victims.",
}


def write_corpus(corpus: Path, files: dict[str, str] = PARAGRAPHS) -> None:
    for name, text in files.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text)
