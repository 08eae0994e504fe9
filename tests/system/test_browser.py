"""The chat in a real browser (Debian's Chromium driven by Playwright): `python app.py` from a fresh folder."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import ROOT, free_port, launch_chromium

HOSTILE = (
    "# Speakers\n\nSpeakers list: <script>document.title='PWNED'</script> "
    "then ![](http://127.0.0.1:9/track.png) and $x$ end.\n"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` in a folder with corpus/ and no index: it builds the index, then serves."""
    folder = tmp_path_factory.mktemp("app")
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    (folder / "corpus" / "hostile.md").write_text(HOSTILE)
    port = free_port()
    env = {**os.environ, "ASSISTANT_PORT": str(port)}
    log = open(folder / "app.log", "w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, (folder / "app.log").read_text()
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        pytest.fail("app did not start: " + (folder / "app.log").read_text())
    assert (folder / "index" / "CURRENT").exists()
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


def ask(browser, url, question):
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    page.fill("textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_selector(".passage", timeout=60_000)
    return page, requests


def test_countries_question_shows_the_country_list_first_with_its_source(browser, app_url):
    page, _ = ask(browser, app_url, "Which countries took part?")
    first = page.locator(".passage").first
    assert "unodc-regional-conference-islamabad.txt" in first.inner_text()
    assert "Czech Republic UAE" in first.inner_text()
    assert "participant countries" in "".join(first.locator("mark").all_inner_texts())
    assert len(page.locator(".answer li").all()) == 21
    page.close()


def test_speakers_question_shows_the_four_speakers_above_the_passages(browser, app_url):
    page, _ = ask(browser, app_url, "Who spoke at the conference?")
    names = page.locator(".answer li strong").all_inner_texts()
    assert sorted(names) == ["Ahsan Iqbal", "Cesar Guedes", "Leon Waskin", "Mushahid Hussain Syed"]
    page.close()


def test_document_markup_is_shown_as_text_and_never_run_or_fetched(browser, app_url):
    page, requests = ask(browser, app_url, "Speakers list script track")
    page.wait_for_timeout(1000)
    shown = page.locator(".passage").first.inner_text()
    assert "<script>document.title='PWNED'</script>" in shown
    assert "![](http://127.0.0.1:9/track.png)" in shown and "$x$" in shown
    assert page.title() != "PWNED"
    assert page.locator(".passage img, .passage script, .passage .katex").count() == 0
    assert not [u for u in requests if "127.0.0.1:9/" in u]
    page.close()


def test_the_same_server_answers_the_rest_api_and_is_ready(app_url):
    import json

    assert urllib.request.urlopen(app_url + "readyz", timeout=10).status == 200
    request = urllib.request.Request(
        app_url + "api/ask",
        data=json.dumps({"question": "Which countries took part?"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    body = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert len(body["answer"]["items"]) == 21 and body["no_answer"] is False
