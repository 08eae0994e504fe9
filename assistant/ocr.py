"""Tesseract, the OCR engine: whether a build can use it (OcrOptions, checked once per build) and one image's text."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Ocr
from .errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

INSTALL = "apt-get install tesseract-ocr"
_LANGUAGE = re.compile(r"[\w/]+")  # a line of `tesseract --list-langs` that names a language (not its header)


class OcrError(Exception):
    """Tesseract failed on an image; the message is its own last line of complaint."""


@dataclass(frozen=True)
class OcrOptions:
    """How the readers treat scanned pages and images: Tesseract's path and languages, or why there is no OCR."""

    tesseract: str | None  # the executable; None: scanned pages and images are skipped
    langs: str = "eng"
    why_not: str = ""  # with no OCR: how a skip reason ends, naming the fix

    @property
    def enabled(self) -> bool:
        return self.tesseract is not None


OCR_OFF = OcrOptions(None, why_not="OCR is off (ASSISTANT_OCR=off; auto reads them when Tesseract is installed)")


def ocr_options(mode: Ocr, langs: str) -> OcrOptions:
    """The OCR a build uses: Tesseract if installed (auto) or required (on), once its languages are checked."""
    if mode == "off":
        return OCR_OFF
    tesseract = shutil.which("tesseract")
    if tesseract is None and mode == "on":
        raise ConfigError(
            f"ASSISTANT_OCR=on, but Tesseract is not installed — install it: {INSTALL} "
            "(or set ASSISTANT_OCR=auto to skip scans and images without it)"
        )
    if tesseract is None:
        return OcrOptions(None, langs, f"install Tesseract to read it: {INSTALL}")
    _check_languages(tesseract, langs)
    return OcrOptions(tesseract, langs)


def _check_languages(tesseract: str, langs: str) -> None:
    installed = installed_languages(tesseract)
    missing = [lang for lang in langs.split("+") if lang not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        raise ConfigError(
            f"ASSISTANT_OCR_LANGS={langs}: Tesseract has no {', '.join(missing)} — installed: "
            f"{', '.join(installed) or 'none'}; install with: apt-get install {packages}"
        )


def installed_languages(tesseract: str) -> list[str]:
    """The languages Tesseract has data for, as `tesseract --list-langs` prints them."""
    try:
        done = subprocess.run(
            [tesseract, "--list-langs"], capture_output=True, text=True, timeout=30, env=_one_thread()
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(
            f"Tesseract at {tesseract} does not run ({type(err).__name__}) — reinstall it: {INSTALL}, "
            "or set ASSISTANT_OCR=off"
        ) from None
    return [line.strip() for line in done.stdout.splitlines() if _LANGUAGE.fullmatch(line.strip())]


def recognize(image: Image.Image, options: OcrOptions, seconds: float, dpi: float | None = None) -> str:
    """The text Tesseract reads in `image`, as it prints it; TimeoutError once it takes over `seconds`."""
    if options.tesseract is None:
        raise ValueError("recognize() needs OcrOptions with Tesseract: see OcrOptions.why_not")
    picture = io.BytesIO()
    image.save(picture, format="PPM")  # uncompressed: PNG took 1.2 s to pack 20 MP that Tesseract unpacks at once
    command = [options.tesseract, "stdin", "stdout", "-l", options.langs]
    if dpi:  # a rendered page's; else Tesseract estimates it from the height of the letters
        command += ["--dpi", str(round(dpi))]
    try:
        done = subprocess.run(
            command, input=picture.getvalue(), capture_output=True, timeout=max(seconds, 0.001), env=_one_thread()
        )
    except subprocess.TimeoutExpired:  # run() has killed it
        raise TimeoutError(f"Tesseract took over {seconds:.1f} s") from None
    if done.returncode != 0:
        complaint = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {done.returncode}"]
        raise OcrError(complaint[-1][:120])
    return done.stdout.decode("utf-8", "replace")


def _one_thread() -> dict[str, str]:
    """The environment of a Tesseract process: one OpenMP thread. Its default, a thread per core, spins on a busy
    machine: a page took 7 to 28 s here instead of 1.1 to 1.8 s. The limit must not be set in this process's own
    environment: torch reads it when it loads, and embedding ran 1.5 times slower (docs/reliability.md)."""
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}
