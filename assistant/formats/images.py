"""Images (PNG, JPEG, TIFF) read by OCR, and what OCR of scanned PDF pages shares with them: the pixel limits and
a page as Tesseract reads it best."""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..documents import Section
from ..ocr import OcrError, OcrOptions, recognize
from .base import Deadline, SkipFile, join_pages

if TYPE_CHECKING:
    from PIL import Image

# OCR of scanned PDF pages and images. Tesseract, on one thread, reads a 300 dpi letter page of text in 1.1 to 1.8 s
# here, at 70 MB. It is given at most OCR_MAX_PIXELS: 20 MP of text took 3 s and 110 MB, of noise (the slowest)
# 6 to 7 s and 310 MB; larger images are scaled down to it, and PDF pages are rendered at OCR_DPI or less to fit
OCR_DPI = 300
OCR_MAX_PIXELS = 20_000_000
# what Pillow or PDFium may decode, checked on the headers first: an image file's page, or all the images of a PDF
# page (PDFium decodes each whole, whatever the size of the page: 200 MP took +300 MB). 39 MP came to +255 MB (RGB)
# and +260 MB (with transparency), Tesseract's 20 MP apart; it holds a page scanned at 600 dpi or a 40 MP photo
IMAGE_MAX_PIXELS = 40_000_000
# pages OCR'd per file: at 1.1 to 1.8 s a page, 200 pages hold a build for up to 6 minutes (with the time limit
# raised for them: the default 20 s reads about 10 pages)
OCR_MAX_PAGES = 200
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_IMAGE_FORMATS = ("PNG", "JPEG", "TIFF")  # Pillow opens no other kind, whatever the name says (EPS runs Ghostscript)
_LINE_END_HYPHEN = re.compile(r"(?<=[a-z])-\n(?=[a-z])")  # "traf-\nficking" in OCR text: a word split at a line's end


def read_image(data: bytes, path: Path, deadline: Deadline, ocr: OcrOptions) -> tuple[str, str, list[Section]]:
    if not ocr.enabled:
        raise SkipFile(f"image (its text needs OCR) — {ocr.why_not}")
    pages = [recognize_image(page, deadline, ocr) for page in _image_pages(data, deadline)]
    return "", *join_pages(pages, range(1, len(pages) + 1))


def _image_pages(data: bytes, deadline: Deadline) -> Iterator[Image.Image]:
    """Each page of an image file (a TIFF's frames, the first frame of others) as OCR takes it. Each is checked on
    its header before it is decoded, and decoded alone: the file is opened again for each page."""
    from PIL import ImageOps

    for index in range(_page_count(data, deadline)):
        deadline()
        with _image_errors(), _open_image(data) as image:
            image.seek(index)
            if image.width * image.height > IMAGE_MAX_PIXELS:
                raise too_many_pixels(image.width * image.height, "image")
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # a photo taken upright is stored sideways, with a tag
            page = _for_ocr(image)
        yield page


def _page_count(data: bytes, deadline: Deadline) -> int:
    """A TIFF's pages, counted on their headers (refused over OCR_MAX_PAGES); 1 for other images."""
    with _image_errors(), _open_image(data) as image:
        count = 1
        while image.format == "TIFF":
            deadline()
            try:
                image.seek(count)
            except EOFError:
                break
            count += 1
            if count > OCR_MAX_PAGES:
                raise SkipFile(f"TIFF has over {OCR_MAX_PAGES} pages, the OCR limit — split the file")
        return count


def _open_image(data: bytes) -> Image.Image:
    """The image with its header read, nothing decoded yet."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise SkipFile("not a PNG, JPEG or TIFF image — damaged, or named wrongly") from None
    except Image.DecompressionBombError as err:  # Pillow's own limit, far above ours, checked first (179 MP)
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise too_many_pixels(int(pixels.group(1)) if pixels else 2 * (Image.MAX_IMAGE_PIXELS or 0), "image") from None


@contextlib.contextmanager
def _image_errors() -> Iterator[None]:
    """Within it, Pillow's errors on a damaged image become a skip reason."""
    try:
        yield
    except SkipFile:
        raise
    except Exception as err:  # Pillow raises many types for damaged files
        raise SkipFile(f"corrupt or unreadable image ({type(err).__name__}: {str(err)[:80]})") from None


def too_many_pixels(pixels: int, what: str) -> SkipFile:
    return SkipFile(
        f"{what} would decode to {pixels / 1e6:,.0f} megapixels, over the limit of {IMAGE_MAX_PIXELS // 1_000_000} "
        "— a decompression bomb? Scale it down to read it"
    )


def _for_ocr(image: Image.Image) -> Image.Image:
    """A decoded page as Tesseract reads it best: grayscale, transparent parts white, at most OCR_MAX_PIXELS."""
    from PIL import Image

    if image.has_transparency_data and "A" not in image.getbands():
        image = image.convert("RGBA")  # a palette or a colour marked transparent
    gray = image.convert("L")
    if "A" in image.getbands():  # a transparent pixel is often black under its alpha: it would read as ink
        page = Image.new("L", image.size, 255)
        page.paste(gray, mask=image.getchannel("A"))
        gray = page
    scale = math.sqrt(OCR_MAX_PIXELS / max(gray.width * gray.height, 1))
    if scale < 1:
        size = (max(1, int(gray.width * scale)), max(1, int(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    return gray


def recognize_image(image: Image.Image, deadline: Deadline, ocr: OcrOptions, dpi: float | None = None) -> str:
    """The text Tesseract reads in the image, as paragraphs, within the time left to read the file."""
    deadline()
    darkest, lightest = image.getextrema()
    if darkest == lightest:  # blank, as PDF pages whose content is damaged render: 0.4 s of Tesseract saved
        return ""
    try:
        text = recognize(image, ocr, deadline.left(), dpi)
    except TimeoutError:
        raise deadline.passed() from None
    except OcrError as err:
        raise SkipFile(f"OCR failed (Tesseract: {err})") from None
    paragraphs = re.split(r"\n\s*\n", _LINE_END_HYPHEN.sub("", text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())  # lines joined: one sentence, one line
