"""`assistant serve` with the real bundled model, users and folder permissions: an admin adds a DOCX through the
chat's "Add documents" and a PDF through POST /api/documents, and each answers within 30 seconds, without a
restart; refused uploads change nothing in the corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.serve.auth import hash_password
from tests.helpers import ROOT, free_port, launch_chromium

ACCESS = 'admins = ["carol"]\n\n[folders]\n"public" = ["*"]\n'
CAROL, BOB = ("carol", "carol-pw"), ("bob", "bob-pw")
DOCX_FACT = "The Quillmoor ferry between Dunhaven and Orsk Island carries exactly 212 bicycles on each crossing."
DOCX_QUESTION = "How many bicycles does the Quillmoor ferry carry?"
PDF_FACT = "The Tarrowby observatory recorded the comet Halvik-7 on the night of 14 March 1996."
PDF_QUESTION = "Which comet did the Tarrowby observatory record?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, corpus, the server process) of `assistant serve` with carol (an admin) and bob, no --watch."""
    folder = tmp_path_factory.mktemp("uploads")
    corpus = folder / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    (corpus / "public").mkdir()
    (folder / "users").write_text("".join(f"{user}:{hash_password(pw)}\n" for user, pw in (CAROL, BOB)))
    (folder / "access.toml").write_text(ACCESS)
    port, log = free_port(), folder / "server.log"
    env = {"ASSISTANT_USERS": str(folder / "users"), "ASSISTANT_ACCESS": str(folder / "access.toml")}
    command = [sys.executable, "-m", "assistant", "serve", "--corpus", str(corpus),
               "--index", str(folder / "index"), "--port", str(port)]  # fmt: skip
    with open(log, "w") as output:
        process = subprocess.Popen(
            command, cwd=folder, env={**_clean_env(), **env}, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # the first build and the warm-up, on a busy 2-core machine
    while not _ready(base):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    yield base, corpus, process
    process.terminate()
    process.wait(timeout=30)
    assert "Traceback" not in log.read_text()


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def tree(corpus: Path) -> list[str]:
    """Every file and folder of the corpus, hidden ones (a temporary file left behind) included."""
    return sorted(path.relative_to(corpus).as_posix() for path in corpus.rglob("*"))


def peak_memory_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def answered_from(base: str, question: str, source: str, since: float, within: float = 30.0) -> dict:
    """The passage from `source` in the answer to `question`, once there is one; fails `within` s after `since`."""
    while True:
        body = httpx.post(base + "/api/ask", json={"question": question, "k": 3}, auth=CAROL, timeout=60).json()
        found = [p for p in body["passages"] if p["source"] == source]
        if found:
            return found[0]
        assert time.monotonic() - since < within, f"no answer from {source} within {within:.0f} s: {body}"
        time.sleep(0.5)


def test_refused_uploads_change_nothing_in_the_corpus(server, tmp_path):
    """First in the module: no build runs, so the server's peak memory is the upload's doing."""
    base, corpus, process = server
    before, peak = tree(corpus), peak_memory_mb(process.pid)
    url = base + "/api/documents"
    text = ("notes.txt", b"Some notes.")
    refusals = [
        (403, "only admins", dict(files=[("files", text)], auth=BOB)),
        (422, "path separator", dict(files=[("files", ("../escape.txt", b"x"))], auth=CAROL)),
        (415, "does not read .exe files", dict(files=[("files", ("setup.exe", b"MZ"))], auth=CAROL)),
        (422, "is not a name", dict(files=[("files", text)], data={"folder": "../outside"}, auth=CAROL)),
    ]
    for status, detail, request in refusals:
        response = httpx.post(url, timeout=60, **request)
        assert response.status_code == status and detail in response.json()["detail"], response.text
    huge = tmp_path / "huge.pdf"
    with open(huge, "wb") as out:
        out.truncate(100 << 20)  # 100 MB, over the 50 MB default of ASSISTANT_MAX_FILE_MB
    with open(huge, "rb") as stream:
        response = httpx.post(url, files=[("files", ("huge.pdf", stream))], auth=CAROL, timeout=120)
    assert response.status_code == 413 and "over the 50 MB limit" in response.json()["detail"]
    assert peak_memory_mb(process.pid) - peak < 40  # streamed and counted, never held whole
    assert httpx.delete(base + "/api/documents/unodc-regional-conference-islamabad.txt", auth=BOB).status_code == 403
    assert tree(corpus) == before and process.poll() is None


def test_a_docx_added_in_the_chat_by_an_admin_answers_within_30_seconds(server, tmp_path):
    import docx
    from playwright.sync_api import sync_playwright

    base, corpus, _ = server
    document = docx.Document()
    document.add_heading("Island ferries", level=1)
    document.add_paragraph(DOCX_FACT)
    document.save(tmp_path / "ferry.docx")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            assert not _panel_shown(browser, base, BOB)
            page = _signed_in(browser, base, CAROL)
            page.get_by_text("Add documents").click()
            page.locator("input[type=file]").set_input_files(str(tmp_path / "ferry.docx"))
            page.get_by_text("ferry.docx").first.wait_for(timeout=30_000)  # Gradio's upload is done
            page.get_by_label("Folder").fill("public")
            page.get_by_role("button", name="Add", exact=True).click()
            added = time.monotonic()
            status = page.locator("#add-status textarea")
            page.wait_for_function(
                "(s) => document.querySelector(s).value.includes('Indexed:')", arg="#add-status textarea",
                timeout=30_000,
            )  # fmt: skip
            assert status.input_value().startswith("Stored: public/ferry.docx.")
        finally:
            browser.close()
    assert "212 bicycles" in answered_from(base, DOCX_QUESTION, "public/ferry.docx", added)["text"]
    assert (corpus / "public/ferry.docx").is_file()


def test_a_pdf_added_through_the_api_answers_within_30_seconds(server, tmp_path):
    from fpdf import FPDF

    base, corpus, _ = server
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, PDF_FACT)
    pdf.output(str(tmp_path / "comet.pdf"))
    with open(tmp_path / "comet.pdf", "rb") as stream:
        response = httpx.post(
            base + "/api/documents", files=[("files", ("comet.pdf", stream))], data={"folder": "public/sky"}, auth=CAROL
        )
    added = time.monotonic()
    assert response.status_code == 201, response.text
    assert response.json() == {"stored": ["public/sky/comet.pdf"], "build": "requested"}
    assert "Halvik-7" in answered_from(base, PDF_QUESTION, "public/sky/comet.pdf", added)["text"]
    deleted = httpx.delete(base + "/api/documents/public/sky/comet.pdf", auth=CAROL)
    assert deleted.status_code == 200 and not (corpus / "public/sky/comet.pdf").exists()


def _signed_in(browser, base: str, user: tuple[str, str]):
    page = browser.new_page()
    page.goto(base + "/")
    page.wait_for_selector("input[type=password]", timeout=30_000)
    page.locator("input").first.fill(user[0])
    page.fill("input[type=password]", user[1])
    page.keyboard.press("Enter")
    page.wait_for_selector("textarea", timeout=30_000)
    return page


def _panel_shown(browser, base: str, user: tuple[str, str]) -> bool:
    """Whether `user` sees "Add documents" once the page has loaded (its load events have run)."""
    page = _signed_in(browser, base, user)
    page.get_by_label("Search within").click()  # filled by a load event: the page's load events have run
    page.wait_for_timeout(2000)
    shown = page.get_by_text("Add documents").is_visible()
    page.close()
    return shown
