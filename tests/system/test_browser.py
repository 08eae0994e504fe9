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
EXAMPLES = "# the seed article, as a team would ask it\nWhere was the conference held?\n\nWhich countries took part?\n"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` in a folder with corpus/ and no index: it builds the index, then serves, with the example
    questions of an ASSISTANT_EXAMPLES file."""
    folder = tmp_path_factory.mktemp("app")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "hostile.md").write_text(HOSTILE)
    yield from run_app(folder, {})


def run_app(folder, env: dict[str, str]):
    """`python app.py` in `folder`, with the seed article added to its corpus/, EXAMPLES as its example questions
    and `env`; yields its URL once it answers, and stops it after."""
    shutil.copytree(ROOT / "corpus", folder / "corpus", dirs_exist_ok=True)
    (folder / "examples.txt").write_text(EXAMPLES)
    port = free_port()
    env = {**os.environ, "ASSISTANT_PORT": str(port), "ASSISTANT_EXAMPLES": "examples.txt", **env}
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
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a page a failed test left open holds the graceful shutdown: not a new error
        server.kill()
        server.wait(timeout=10)


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
    assert {"Pakistan", "Iraq", "Czech Republic"} <= set(first.locator("strong").all_inner_texts())  # entities
    assert first.locator("mark").count() == 0  # its one sentence: a highlight would say nothing
    assert len(page.locator(".answer li").all()) == 21
    page.close()


def test_a_follow_up_leans_on_the_question_before_until_new_topic(browser, app_url):
    page, _ = ask(browser, app_url, "Who is Mushahid Hussain Syed?")
    page.fill("textarea", "What did he say?")
    page.keyboard.press("Enter")
    about = page.locator(".scope", has_text="from your previous question")
    about.wait_for(timeout=60_000)
    assert "About: unodc-regional-conference-islamabad.txt" in about.inner_text()
    assert "“Who is Mushahid Hussain Syed?”" in about.inner_text()
    page.get_by_role("button", name="New topic").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"user\"]').length === 0", timeout=10_000)
    page.fill("textarea", "What did he say?")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=bot] .passage", state="attached", timeout=60_000)  # the reply is in
    assert page.locator(".scope", has_text="from your previous question").count() == 0  # asked alone now
    page.close()


def test_speakers_question_shows_the_four_speakers_above_the_passages(browser, app_url):
    page, _ = ask(browser, app_url, "Who spoke at the conference?")
    names = page.locator(".answer li strong").all_inner_texts()
    assert sorted(names) == ["Ahsan Iqbal", "Cesar Guedes", "Leon Waskin", "Mushahid Hussain Syed"]
    page.close()


def test_the_picker_narrows_the_answer_to_the_documents_chosen(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    page.get_by_label("Search within").click()
    page.get_by_label("Search within").fill("hostile")  # searchable: typing narrows the choices
    page.get_by_role("option", name="hostile.md").click()
    page.fill("textarea", "Who spoke at the conference?")  # answered from the seed article without the picker
    page.keyboard.press("Enter")
    page.wait_for_selector(".passage", state="attached", timeout=60_000)
    assert page.locator(".scope").inner_text() == "Within: hostile.md"
    assert "Not in the documents" in page.locator(".message").last.inner_text()  # not in the one chosen
    sources = [page.locator(".passage .source").nth(i).text_content() for i in range(page.locator(".passage").count())]
    assert sources and all("hostile.md" in source for source in sources), sources  # its closest passages only
    page.close()


def test_document_markup_is_shown_as_text_and_never_run_or_fetched(browser, app_url):
    page, requests = ask(browser, app_url, "Speakers list script track")
    page.wait_for_timeout(1000)
    # hostile.md's passage: not first, since the seed's, which tells who spoke, leads as the answer's evidence
    shown = page.locator(".passage").filter(has_text="hostile.md").first.inner_text()
    assert "<script>document.title='PWNED'</script>" in shown
    assert "![](http://127.0.0.1:9/track.png)" in shown and "$x$" in shown
    assert page.title() != "PWNED"
    assert page.locator(".passage img, .passage script, .passage .katex").count() == 0
    assert page.locator(".passage .source bdi").count() >= 1  # names stay in isolates of their own in the page
    assert page.locator('.passage .text[dir="auto"]').count() >= 1
    assert not [u for u in requests if "127.0.0.1:9/" in u]
    page.close()


def test_app_py_with_a_missing_examples_file_stops_with_one_line_naming_it(tmp_path):
    env = {**os.environ, "ASSISTANT_EXAMPLES": "our-examples.txt", "ASSISTANT_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "assistant: ASSISTANT_EXAMPLES file our-examples.txt cannot be read (No such file or directory) — point "
        "ASSISTANT_EXAMPLES at a text file with one example question per line, or unset it"
    )


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


def ask_in(page, question: str) -> None:
    """Ask on an open chat page and wait until the reply to this question is in (the chat may hold earlier ones)."""
    replies = page.locator('[data-testid="bot"]').count()
    page.fill("textarea", question)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=bot]').length > n", arg=replies, timeout=60_000
    )
    page.wait_for_timeout(1000)  # the longest the page takes to settle: Gradio's own autoscroll waited 300 ms


def assert_new_question_at_the_top(page, question: str) -> None:
    """After an answer: the question just asked is at the top of the answers and in the window, and the answer
    goes on below it (the chat was not scrolled to its end)."""
    where = page.evaluate(
        """() => {
            const log = document.querySelector('#answers [role="log"]');
            const asked = [...log.querySelectorAll('[data-testid="user"]')].at(-1);
            const box = log.getBoundingClientRect(), top = asked.getBoundingClientRect().top;
            return {text: asked.innerText, top, box: box.top, window: innerHeight,
                    below: log.scrollHeight - log.scrollTop - log.clientHeight};
        }"""
    )
    assert where["text"].strip() == question
    assert where["box"] <= where["top"] < where["box"] + 100, where
    assert 0 <= where["top"] < where["window"], where
    assert where["below"] > 200, where


def test_after_an_answer_the_chat_shows_the_new_question_at_its_top_not_the_answers_end(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    for question in ["Which countries took part?", "Who spoke at the conference?"]:
        ask_in(page, question)
        assert_new_question_at_the_top(page, question)
    page.close()


def test_an_empty_or_over_long_question_shows_a_warning_and_adds_no_bubble(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    page.wait_for_selector("textarea")
    page.fill("textarea", "   ")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast-body", timeout=30_000)
    assert "the question is empty" in page.locator(".toast-body").first.inner_text()
    # the box cannot take more than the limit (below): take its limit off, as a script or an old browser would
    page.evaluate("() => document.querySelector('textarea').removeAttribute('maxlength')")
    page.fill("textarea", "x" * 2001)
    page.keyboard.press("Enter")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('2001'))")
    assert "the limit is 2000" in " ".join(page.locator(".toast-body").all_inner_texts())
    page.wait_for_timeout(1000)
    assert page.locator('[data-testid="user"]').count() == 0 and page.locator('[data-testid="bot"]').count() == 0
    assert len(page.input_value("textarea")) == 2001  # kept, to be shortened
    page.close()


def test_the_question_box_takes_no_more_than_the_question_limit(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    assert page.get_attribute("textarea", "maxlength") == "2000"
    page.fill("textarea", "y" * 2100)
    assert len(page.input_value("textarea")) == 2000
    page.close()


def rendered_fonts(page, selector: str) -> list[set[str]]:
    """The fonts Chromium drew each matching element's text with (DevTools' CSS.getPlatformFontsForNode)."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("DOM.enable")
    devtools.send("CSS.enable")
    root = devtools.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    nodes = devtools.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
    assert nodes, selector
    return [
        {font["familyName"] for font in devtools.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]}
        for node in nodes
    ]


def test_bold_text_is_drawn_in_one_font_not_patched_with_dejavu(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    ask_in(page, "Who spoke at the conference?")
    assert "Ahsan Iqbal" in page.locator(".answer li strong").all_inner_texts()
    family = page.eval_on_selector(".answer li strong", "e => getComputedStyle(e).fontFamily")
    assert family.startswith('"Source Sans Pro"'), family
    # the heading "Document Q&A" (600), the Ask button (600) and the answer's names (700)
    for selector in ("h2", "button.primary", ".answer li strong"):
        for fonts in rendered_fonts(page, selector):
            assert len(fonts) == 1 and not any("DejaVu" in font for font in fonts), (selector, fonts)
    page.close()


def test_the_example_questions_are_those_of_the_examples_file(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    page.wait_for_selector("button.gallery-item")
    assert page.locator("button.gallery-item").all_inner_texts() == [
        "Where was the conference held?",
        "Which countries took part?",
    ]
    assert page.get_attribute("textarea", "placeholder") == "Where was the conference held?"
    page.locator("button.gallery-item").nth(1).click()
    page.wait_for_function("document.querySelector('textarea').value === 'Which countries took part?'")
    page.close()


@pytest.fixture(scope="module")
def app_with_users_url(tmp_path_factory):
    """The app of `app_url` over the seed article alone, with one user who must sign in."""
    yield from run_app(tmp_path_factory.mktemp("app-users"), {"ASSISTANT_USERS": "ana:correct horse"})


# Each violation of the page's Content-Security-Policy, as the page's own event reports it; Playwright runs this
# before the page's scripts and outside its policy.
WATCH_POLICY = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
"""


def watch_policy(context) -> list[str]:
    """The violations of the Content-Security-Policy that Chromium reports on the console of any page of `context`."""
    violations: list[str] = []
    context.add_init_script(WATCH_POLICY)
    context.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    return violations


def assert_no_violation(page, console: list[str]) -> None:
    assert page.evaluate("window.__violations") == [] and console == [], (page.url, console)


def test_every_feature_of_the_chat_and_the_api_docs_works_under_the_content_security_policy(
    browser, app_with_users_url
):
    """The login, an example question, the picker, an answer with its highlights, the copy button, the document
    view (scrolled to its passage), New topic and /api/docs: all work, and the policy refuses nothing they do."""
    url = app_with_users_url
    context = browser.new_context(viewport={"width": 1000, "height": 400})  # low: the document view must scroll
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
    console = watch_policy(context)
    page = context.new_page()
    policy = page.goto(url).headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self' 'unsafe-eval' 'sha256-" in policy
    page.wait_for_selector("input[type=password]", timeout=30_000)
    page.locator("input").first.fill("ana")
    page.fill("input[type=password]", "correct horse")
    page.keyboard.press("Enter")
    page.locator("button.gallery-item", has_text="Where was the conference held?").click()
    page.wait_for_function("document.querySelector('textarea').value === 'Where was the conference held?'")
    page.get_by_label("Search within").click()
    page.get_by_role("option", name="unodc-regional-conference-islamabad.txt").click()
    ask_in(page, "Where was the conference held?")
    assert page.locator(".scope").inner_text() == "Within: unodc-regional-conference-islamabad.txt"
    highlighted = page.locator(".passage").filter(has=page.locator("mark"))
    assert highlighted.count() >= 1
    page.locator('[data-testid="bot"]').last.hover()
    page.get_by_role("button", name="Copy message").last.click()
    copied = page.evaluate("navigator.clipboard.readText()")  # Gradio copies the reply's HTML
    assert "Within:" in copied and "conference" in copied, copied
    with context.expect_page() as opened:
        highlighted.first.locator("a.document-link").click()
    document = opened.value
    document.wait_for_selector(".document mark#cited-passage", timeout=30_000)
    document.wait_for_function("scrollY > 0")  # js_on_load brought the passage into view
    assert document.locator("mark#cited-passage").is_visible()
    assert 0 <= document.locator("mark#cited-passage").bounding_box()["y"] < 400
    assert_no_violation(document, console)
    page.get_by_role("button", name="New topic").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"user\"]').length === 0", timeout=10_000)
    assert_no_violation(page, console)
    docs = context.new_page()
    docs.goto(url + "api/docs")
    docs.wait_for_selector('.opblock-summary-path[data-path="/api/ask"]', timeout=30_000)  # Swagger UI drew it
    assert_no_violation(docs, console)
    # the policy is in force: an inline script that the server did not write is refused, and reported
    page.evaluate("document.head.append(Object.assign(document.createElement('script'), {text: 'window.ran = 1'}))")
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.ran") is None and "script-src" in page.evaluate("window.__violations")[0]
    context.close()
