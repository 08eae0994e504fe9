"""Hostile images and scans, read by the real Tesseract: decompression bombs (a 200-megapixel PNG, a PNG whose
header lies, a PDF whose pages are huge images), a PDF page 200 inches wide, truncated images, images with no text,
files named as images that are not, images just under the pixel limit, a scan that takes longer than the time limit
and scans of too many pages. Each is indexed or skipped with a one-line reason, within 30 s and 500 MB, and so is
Tesseract's own process (measured apart); the build goes on with the good files."""

from __future__ import annotations

import functools
import io
import random
import re
import struct
import time
import zlib

import pytest
from PIL import Image

from assistant.index.faiss.store import open_index
from tests.helpers import read_corpus, scan_pages
from tests.system.hostile_files.helpers import GOOD_TEXT, build, measure, pdf_of

SEED = 20240605
BOMB = "would decode to {} megapixels, over the limit of 40 — a decompression bomb\\? Scale it down to read it"
NOT_AN_IMAGE = "not a PNG, JPEG or TIFF image — damaged, or named wrongly"


def png(width: int, height: int, rows: int | None = None) -> bytes:
    """A white 8-bit grayscale PNG of `width` x `height` pixels, written row by row without ever holding the image;
    with `rows`, the data stops after that many rows, whatever the header says."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(6), b"\x00" + b"\xff" * width  # filter byte 0, then the pixels
    count = height if rows is None else rows
    data = [packer.compress(row * min(64, count - done)) for done in range(0, count, 64)] + [packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(data)) + chunk(b"IEND", b"")


def pdf_of_huge_images(side: int, pages: int) -> bytes:
    """Letter pages, each showing one `side` x `side` grayscale image (the same object on every page): a few
    hundred KB that PDFium would decode to `side`² bytes and more per page."""
    packer = zlib.compressobj(6)
    row = bytes(side)
    packed = b"".join(packer.compress(row * min(64, side - done)) for done in range(0, side, 64)) + packer.flush()
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(pages))
    draw = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (side, side, len(packed), packed),
    ]
    objects += [
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 3 0 R >> >> "
        b"/Contents %d 0 R >>" % (4 + pages)
    ] * pages
    objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw))
    return pdf_of(objects)


def pdf_of_text_and_a_huge_image(side: int) -> bytes:
    """Two letter pages: one with a text layer, one showing a `side` x `side` image and no text."""
    packer = zlib.compressobj(6)
    packed = b"".join(packer.compress(bytes(side) * min(64, side - done)) for done in range(0, side, 64))
    packed += packer.flush()
    words = b"BT /F1 12 Tf 72 700 Td (The harbour of Valparaiso handles copper and wine.) Tj ET"
    draw = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources %s /Contents %d 0 R >>"
    return pdf_of(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R 5 0 R] /Count 2 >>",
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
            b"/Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (side, side, len(packed), packed),
            page % (b"<< /Font << /F1 6 0 R >> >>", 7),
            page % (b"<< /XObject << /Im1 3 0 R >> >>", 8),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(words), words),
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw),
        ]
    )


def test_a_pdf_page_that_is_a_bomb_is_left_out_and_the_rest_of_the_file_is_read(
    settings, corpus, fake_embedder, caplog
):
    (corpus / "report.pdf").write_bytes(pdf_of_text_and_a_huge_image(15_000))
    _, skipped = build(settings, fake_embedder)
    assert skipped == {}
    index = open_index(settings.index)
    try:
        text = index.documents(["report.pdf"])["report.pdf"]["text"]
    finally:
        index.close()
    assert text == "The harbour of Valparaiso handles copper and wine."
    assert re.search("report.pdf: page 2 left out — page 2's images " + BOMB.format(225), caplog.text)


def pdf_of_a_poster() -> bytes:
    """One page of 200 x 200 inches (the most PDF allows) with a square drawn on it, no text: at 300 dpi, 3.6
    gigapixels."""
    draw = b"0 g 720 720 7200 7200 re f"
    return pdf_of(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw),
        ]
    )


def saved(pages: list[Image.Image], kind: str, **options) -> bytes:
    out = io.BytesIO()
    pages[0].save(out, format=kind, **({"save_all": True, "append_images": pages[1:]} if pages[1:] else {}), **options)
    return out.getvalue()


@functools.cache
def hostile_images() -> dict[str, bytes]:
    """Every hostile image and scan, made from SEED, with one good scan: {name: bytes}."""
    rng = random.Random(SEED)
    report = scan_pages(f"{GOOD_TEXT} " * 10, page=(7.0, 3.0), margin=0.3)  # one page
    two_pages = saved(report * 2, "TIFF")
    noise = Image.frombytes("L", (2000, 2000), rng.randbytes(2000 * 2000))
    return {
        "bombs/200-megapixels.png": png(14_142, 14_142),
        "bombs/lying-header.png": png(8_000, 8_000, rows=64),
        "bombs/huge-images.pdf": pdf_of_huge_images(15_000, 3),
        "bombs/poster.pdf": pdf_of_a_poster(),
        "damaged/truncated.tif": two_pages[: len(two_pages) * 3 // 4],
        "damaged/truncated.jpg": saved(report, "JPEG")[:-3000],
        "no-text/blank.png": saved([Image.new("L", (2550, 3300), 255)], "PNG"),
        "no-text/noise.png": saved([noise], "PNG"),
        "not-images/notes.png": b"Notes named as a picture.\n",
        "not-images/random.jpg": rng.randbytes(20_000),
        "not-images/postscript.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "not-images/pdf.tif": pdf_of_a_poster(),
        "good/letter.png": saved(scan_pages(GOOD_TEXT, page=(7.0, 1.0), margin=0.3), "PNG"),
    }


def images_at_the_limits() -> dict[str, bytes]:
    """Images just under IMAGE_MAX_PIXELS, so decoded, then scaled down to 20 MP for Tesseract: the dearest
    measured (noise: 6 s; either: +255 to +260 MB here, and 310 MB in Tesseract's process)."""
    rng, width, height = random.Random(SEED), 7_200, 5_400
    alpha = Image.linear_gradient("L").resize((width, height))
    black = Image.new("L", (width, height), 0)
    return {
        "limits/noise-39-megapixels.jpg": saved(
            [Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))], "JPEG"
        ),
        "limits/transparent-39-megapixels.png": saved([Image.merge("RGBA", (black, black, black, alpha))], "PNG"),
    }


# what each is skipped with (a pattern), or None: indexed, or skipped with any reason (what OCR makes of noise)
EXPECTED = {
    "bombs/200-megapixels.png": "image " + BOMB.format(200),
    "bombs/lying-header.png": "image " + BOMB.format(64),
    "bombs/huge-images.pdf": "page 1's images " + BOMB.format(225),
    "bombs/poster.pdf": "no text found in the file",
    "damaged/truncated.tif": r"corrupt or unreadable image \(OSError: .*",
    "damaged/truncated.jpg": r"corrupt or unreadable image \(OSError: image file is truncated.*",
    "no-text/blank.png": "no text found in the file",
    "no-text/noise.png": None,
    "not-images/notes.png": NOT_AN_IMAGE,
    "not-images/random.jpg": NOT_AN_IMAGE,
    "not-images/postscript.png": NOT_AN_IMAGE,
    "not-images/pdf.tif": NOT_AN_IMAGE,
}


def test_hostile_images_and_scans_are_indexed_or_skipped_with_a_reason_and_the_build_goes_on(
    settings, corpus, fake_embedder, reliability
):
    for name, data in hostile_images().items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_bytes(data)
    (corpus / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")

    documents, skipped = build(settings, fake_embedder)  # asserts that every reason is one printable line

    assert {"good.txt", "good/letter.png"} <= set(documents)
    assert set(documents) | set(skipped) == set(hostile_images()) | {"good.txt"}
    for name, pattern in EXPECTED.items():
        if pattern is not None:
            assert re.fullmatch(pattern, skipped.get(name, "indexed")), (name, skipped.get(name))
    assert fake_embedder.texts and any(GOOD_TEXT in text for text in fake_embedder.texts)
    reliability(
        "files",
        "images and scans (OCR)",
        tried=len(hostile_images()),
        survived=len(hostile_images()),
        detail=f"{len(documents) - 1} indexed, {len(skipped)} skipped with a reason",
    )


def test_each_hostile_image_is_read_within_30_s_and_500_mb_tesseract_included(tmp_path, reliability):
    corpus, made = tmp_path / "corpus", {**hostile_images(), **images_at_the_limits()}
    for name, data in made.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_bytes(data)
    rows = measure(corpus)
    assert {row["path"] for row in rows} == set(made) and all(row["outcome"] for row in rows)
    over = [row for row in rows if row["seconds"] > 30 or row["growth_mb"] > 500 or row["tesseract_mb"] > 500]
    assert not over, over
    worst = max(rows, key=lambda row: row["seconds"])
    reliability(
        "files",
        "each image and scan read within 30 s and 500 MB, Tesseract's process too",
        tried=len(rows),
        survived=len(rows),
        detail=f"slowest {worst['seconds']:.1f} s ({worst['path']}), peak +{max(r['growth_mb'] for r in rows):.0f} MB"
        f", Tesseract {max(r['tesseract_mb'] for r in rows):.0f} MB",
    )


def test_a_scan_that_takes_longer_than_the_time_limit_is_skipped_at_it(corpus):
    pages = scan_pages("\n\n".join(["Smugglers moved migrants along new sea routes. " * 8] * 40))  # 6 pages
    (corpus / "long.tif").write_bytes(saved(pages, "TIFF", compression="tiff_lzw"))
    started = time.monotonic()
    documents, skipped = read_corpus(corpus, max_file_seconds=2)
    seconds = time.monotonic() - started
    assert documents == []
    assert [(s.path, s.reason) for s in skipped] == [
        ("long.tif", "reading took over 2 s (ASSISTANT_MAX_FILE_SECONDS) — split the file, or raise the limit")
    ]
    assert seconds < 2 + 3, seconds  # Tesseract is given the time left, and killed at it


@pytest.mark.parametrize("name", ["pages.tif", "pages.pdf"])
def test_a_scan_of_over_200_pages_is_refused_before_any_ocr(corpus, name):
    pages = [Image.new("L", (64, 64), 255) for _ in range(201)]
    (corpus / name).write_bytes(saved(pages, "TIFF" if name.endswith(".tif") else "PDF"))
    started = time.monotonic()
    documents, skipped = read_corpus(corpus)
    assert documents == [] and time.monotonic() - started < 5
    assert [s.reason for s in skipped] == [
        "TIFF has over 200 pages, the OCR limit — split the file"
        if name.endswith(".tif")
        else "PDF has 201 pages without a text layer, over the OCR limit of 200 — split the file"
    ]
