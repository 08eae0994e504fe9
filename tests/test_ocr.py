"""Tesseract, the OCR engine: which OCR a build gets from its settings and the machine, and reading one image with
the real Tesseract (Debian's tesseract-ocr, English), on one thread and within a time limit."""

from __future__ import annotations

import os
import time
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.ocr import OCR_OFF, OcrError, OcrOptions, ocr_options, recognize
from tests.helpers import scan_pages


def line_of_text(text: str):
    return scan_pages(text, page=(7.0, 0.8), margin=0.2)[0]


def fake_tesseract(folder: Path, script: str) -> None:
    """Puts a `tesseract` on PATH that answers --list-langs with eng and runs `script` for an image."""
    folder.mkdir(exist_ok=True)
    program = folder / "tesseract"
    program.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--list-langs" ]; then echo \'List of available languages in "/x/" (1):\'; echo eng; exit 0; fi\n'
        f"cat > /dev/null\n{script}\n"
    )
    program.chmod(0o755)


def test_off_gives_no_ocr_and_a_reason_that_names_the_setting():
    options = ocr_options("off", "eng")
    assert options == OCR_OFF and not options.enabled
    assert "ASSISTANT_OCR=off" in options.why_not


def test_auto_without_tesseract_gives_no_ocr_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    options = ocr_options("auto", "eng")
    assert not options.enabled
    assert options.why_not == "install Tesseract to read it: apt-get install tesseract-ocr"


def test_on_without_tesseract_stops_the_build_naming_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="ASSISTANT_OCR=on, but Tesseract is not installed — install it: apt-get"):
        ocr_options("on", "eng")


def test_auto_and_on_use_the_installed_tesseract():
    for mode in ("auto", "on"):
        options = ocr_options(mode, "eng")
        assert options.enabled and Path(options.tesseract or "").name == "tesseract"


def test_a_language_that_is_not_installed_stops_the_build_listing_the_installed_ones():
    message = (
        r"ASSISTANT_OCR_LANGS=eng\+deu\+chi_sim: Tesseract has no deu, chi_sim — installed: eng, osd; "
        r"install with: apt-get install tesseract-ocr-deu tesseract-ocr-chi-sim"
    )
    with pytest.raises(ConfigError, match=message):
        ocr_options("auto", "eng+deu+chi_sim")


def test_options_are_frozen_and_hashable():
    options = ocr_options("auto", "eng")
    assert hash(options) == hash(OcrOptions(options.tesseract, "eng"))
    with pytest.raises(FrozenInstanceError):
        options.langs = "deu"  # type: ignore[misc]


def test_recognize_reads_a_line_of_text():
    text = recognize(line_of_text("Delegates from Oman and Qatar attended."), ocr_options("on", "eng"), 20)
    assert text.strip() == "Delegates from Oman and Qatar attended."


def test_recognize_stops_at_the_time_limit():
    page = scan_pages("Smugglers moved migrants along new sea routes. " * 200)[0]  # a page of text: over a second
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        recognize(page, ocr_options("on", "eng"), 0.2)
    assert time.monotonic() - started < 2  # killed, not waited for


def test_tesseract_runs_on_one_thread_without_changing_this_process(tmp_path, monkeypatch):
    fake_tesseract(tmp_path / "bin", 'echo "threads: $OMP_THREAD_LIMIT"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert recognize(line_of_text("x"), ocr_options("on", "eng"), 10) == "threads: 1\n"
    assert "OMP_THREAD_LIMIT" not in os.environ


def test_a_tesseract_failure_is_an_ocr_error_with_its_last_line(tmp_path, monkeypatch):
    fake_tesseract(tmp_path / "bin", "echo 'Warning: odd' >&2; echo 'Error: cannot read the image' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with pytest.raises(OcrError, match="^Error: cannot read the image$"):
        recognize(line_of_text("x"), ocr_options("on", "eng"), 10)
