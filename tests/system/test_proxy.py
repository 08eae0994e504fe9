"""Behind Debian's nginx under /qa/, with the location block of docs/deploying.md: the chat in Chromium, and the API."""

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.helpers import ROOT, free_port, launch_chromium
from tests.system.netaudit import outside_calls, read_log
from tests.system.test_browser import assert_new_question_at_the_top
from tests.system.test_offline import NETAUDIT, product_env

NGINX = "/usr/sbin/nginx"
SCRIPT = "<script>window.__pwned = 1; alert('script')</script>"
IMG = "<img src=x onerror=\"window.__pwned = 2; alert('img')\">"
XSS_TEXT = f"Zanzibar smuggling report: {SCRIPT} and {IMG} end of report.\n"
EMBED_PORT = free_port()  # the intranet page that embeds the chat, on another origin
LOCATION = ROOT / "deploy" / "nginx-qa.conf"
NGINX_CONF = """daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{}}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        include {tmp}/qa.conf;
    }}
}}
"""


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer: " + log.read_text())


@contextmanager
def behind_nginx(tmp: Path, env: dict[str, str]):
    """The app started with --root-path /qa in `tmp`, and nginx in front of it with docs/deploying.md's location block.

    The app runs under tests/system/netaudit.py, which logs its lookups and connections to `tmp`/net.log, and with
    the offline switches left to the product's own defaults."""
    assert Path(NGINX).exists(), "nginx is missing — scripts/run-tests.sh installs nginx-light"
    shutil.copytree(ROOT / "corpus", tmp / "corpus")
    (tmp / "corpus" / "payloads.txt").write_text(XSS_TEXT)
    app_port, proxy_port = free_port(), free_port()
    app_log = tmp / "app.log"
    app = subprocess.Popen(
        [
            sys.executable,
            str(NETAUDIT),
            str(tmp / "net.log"),
            "-m",
            "assistant",
            "serve",
            "--root-path",
            "/qa",
            "--port",
            str(app_port),
        ],
        cwd=tmp,
        stdout=open(app_log, "w"),
        stderr=subprocess.STDOUT,
        env={**product_env(), **env},
    )
    (tmp / "qa.conf").write_text(LOCATION.read_text().replace("127.0.0.1:7860", f"127.0.0.1:{app_port}"))
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=proxy_port))
    nginx = subprocess.Popen(
        [NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], stderr=open(tmp / "nginx.log", "w")
    )
    url = f"http://127.0.0.1:{proxy_port}/qa/"
    try:
        wait_for(url + "healthz", app, app_log)
        yield url
    finally:
        nginx.terminate()
        app.terminate()
        nginx.wait(timeout=30)
        app.wait(timeout=30)


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("proxy")


@pytest.fixture(scope="module")
def proxy_url(proxy_dir):
    with behind_nginx(proxy_dir, {"ASSISTANT_FRAME_ANCESTORS": f"'self' http://127.0.0.1:{EMBED_PORT}"}) as url:
        yield url


def test_the_deploying_page_shows_the_location_block_the_tests_use():
    page = (ROOT / "docs" / "deploying.md").read_text()
    assert LOCATION.read_text().strip() in page


def test_api_through_the_proxy(proxy_url):
    assert json.loads(urllib.request.urlopen(proxy_url + "healthz").read()) == {"status": "ok"}
    assert json.loads(urllib.request.urlopen(proxy_url + "api/status").read())["documents"] == 2
    request = urllib.request.Request(
        proxy_url + "api/ask",
        data=json.dumps({"question": "Which countries took part?"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert len(json.loads(urllib.request.urlopen(request).read())["answer"]["items"]) == 21
    assert json.loads(urllib.request.urlopen(proxy_url + "readyz").read())["status"] == "ready"
    for payload, message in [
        ({"question": ""}, "at least 1 character"),
        ({"question": "x" * 2001}, "at most 2000 characters"),
        ({"question": "Who?", "k": 0}, "greater than or equal to 1"),
        ({"question": "Who?", "k": 51}, "less than or equal to 50"),
        ({"question": "Who?", "mode": "fuzzy"}, "'dense', 'bm25' or 'hybrid'"),
        ({"question": "Who?", "sources": ["../index/CURRENT"]}, "leads out of the corpus"),
    ]:
        status, body = post_error(proxy_url + "api/ask", payload)
        assert status == 422 and message in body, (payload, body)


def test_a_forged_forwarded_host_never_reaches_the_page_through_the_proxy(proxy_url):
    """Gradio builds the page's root address from X-Forwarded-Host: the sample sets it to the request's Host."""
    request = urllib.request.Request(proxy_url, headers={"X-Forwarded-Host": "evil.example"})
    with urllib.request.urlopen(request) as response:
        page = response.read().decode()
        assert response.headers["Cache-Control"] == "no-store"  # and no cache keeps a page
    assert "evil.example" not in page and "/qa" in page


def post_error(url: str, payload: dict, headers: dict | None = None) -> tuple[int, str] | None:
    """(status, body) of a refused POST; None if it was accepted."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    return None


@pytest.mark.parametrize("path", ["/etc/passwd", "{index}/CURRENT", "{corpus}/unodc-regional-conference-islamabad.txt"])
def test_files_outside_the_ui_are_not_served_through_the_proxy(proxy_url, proxy_dir, path):
    target = path.format(index=proxy_dir / "index", corpus=proxy_dir / "corpus")
    for route in (f"gradio_api/file={target}", f"file={target}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(proxy_url + route)
        assert refused.value.code in (403, 404), route


def page_links(html: str, page_url: str) -> list[str]:
    """Every URL the page names in an attribute (links, scripts, icons, preloads, og:image …), resolved."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    base = urljoin(page_url, soup.base["href"]) if soup.base else page_url
    named = [
        tag[attr]
        for tag in soup.find_all(True)
        if tag.name != "base"
        for attr in ("href", "src", "srcset")
        if tag.get(attr)
    ]
    named += [
        meta["content"]
        for meta in soup.find_all("meta", content=True)
        if meta["content"].startswith(("http:", "https:", "/", "./", "../", "{"))
        or (meta.get("property") or meta.get("name") or "").endswith(("image", "url"))
    ]
    return [urljoin(base, link) for link in named]


def gradio_config(html: str) -> dict:
    start = html.index("window.gradio_config = ") + len("window.gradio_config = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def test_every_link_of_the_page_stays_under_the_sub_path_and_answers(proxy_url):
    html = urllib.request.urlopen(proxy_url).read().decode()
    links = page_links(html, proxy_url)
    assert [link for link in links if not link.startswith(proxy_url)] == []  # Gradio's own page: /manifest.json
    assert proxy_url + "favicon.ico" in links  # else browsers ask the site's root for /favicon.ico
    config = gradio_config(html)
    assert config["root"] == proxy_url.rstrip("/")  # the frontend builds its requests on it
    links += [config["root"] + path for path in ("/config", "/theme.css", config["api_prefix"] + "/info")]
    manifest = next(link for link in links if link.endswith("manifest.json"))
    icons = json.loads(urllib.request.urlopen(manifest).read())
    links += [urljoin(manifest, icon["src"]) for icon in icons["icons"]] + [urljoin(manifest, icons["start_url"])]
    assert [link for link in links if not link.startswith(proxy_url)] == []
    assert {link: urllib.request.urlopen(link).status for link in links} == {link: 200 for link in links}


def test_the_server_process_makes_no_outside_call_from_start_up_to_answers(proxy_url, proxy_dir):
    """Start-up (index build, model load), the page, a question in the chat and one to the API: all on this machine."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(proxy_url)
        page.fill("textarea", "Who spoke at the conference?")
        page.keyboard.press("Enter")
        page.wait_for_selector(".answer li", timeout=60_000)
        browser.close()
    request = urllib.request.Request(
        proxy_url + "api/ask",
        data=json.dumps({"question": "Which countries took part?"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert json.loads(urllib.request.urlopen(request).read())["answer"]
    log = proxy_dir / "net.log"
    assert read_log(log)[0][0] == "audit" and (proxy_dir / "index" / "CURRENT").exists()  # watched, and it built
    assert outside_calls(log) == []


@contextmanager
def intranet_page(folder: Path, snippet: str, proxy_url: str):
    """The embedding snippet `snippet` of docs/deploying.md (from deploy/), pointed at the proxy, served from another
    origin."""
    import http.server
    import threading
    from functools import partial

    html = (ROOT / "deploy" / snippet).read_text()
    assert html.strip() in (ROOT / "docs" / "deploying.md").read_text()
    (folder / "index.html").write_text(html.replace("http://127.0.0.1:8080/qa/", proxy_url))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", EMBED_PORT), handler)
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{EMBED_PORT}/index.html"
    finally:
        page_server.shutdown()
        page_server.server_close()


def test_the_deploying_page_embedding_snippet_shows_the_chat_in_an_intranet_page(proxy_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with intranet_page(tmp_path, "embed.html", proxy_url) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.goto(url)
        chat = page.frame_locator("iframe")
        chat.locator("textarea").fill("Which countries took part?")
        chat.locator("textarea").press("Enter")
        chat.locator(".passage").first.wait_for(timeout=60_000)
        assert len(chat.locator(".answer li").all()) == 21
        browser.close()


def test_the_deploying_page_web_component_snippet_shows_the_chat_in_an_intranet_page_from_the_app_alone(
    proxy_url, tmp_path
):
    from playwright.sync_api import sync_playwright

    with intranet_page(tmp_path, "embed-component.html", proxy_url) as url, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.fill("gradio-app textarea", "Which countries took part?")
        page.keyboard.press("Enter")
        page.wait_for_selector("gradio-app .passage", timeout=60_000)
        assert len(page.locator("gradio-app .answer li").all()) == 21
        page.wait_for_timeout(1000)
        assert_new_question_at_the_top(page, "Which countries took part?")  # in another site's page too
        browser.close()
    elsewhere = {u for u in requests if not u.startswith((proxy_url, url))}
    # Gradio's mount_css resolves its stylesheet against the script's origin, not its path: that one request
    # misses /qa/ and fails; the same file has come from /qa/assets/ already
    origin = proxy_url.removesuffix("/qa/")
    assert all(re.fullmatch(re.escape(origin) + r"/assets/index-[\w-]+\.css", u) for u in elsewhere), elsewhere
    assert {u.replace(origin, proxy_url.rstrip("/")) for u in elsewhere} <= set(requests)


def test_chat_under_the_sub_path_loads_everything_from_the_proxy(proxy_url):
    from playwright.sync_api import sync_playwright

    host = proxy_url.split("/")[2]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context()  # the chat's page and the document view's tab
        requests, errors = [], []
        context.on("request", lambda r: requests.append(r.url))
        context.on("response", lambda r: errors.append((r.status, r.url)) if r.status >= 400 else None)
        # the page closes the queue's event stream once the answer is in: Chromium reports it as aborted
        context.on(
            "requestfailed",
            lambda r: (
                None
                if r.failure == "net::ERR_ABORTED" and "/gradio_api/queue/data" in r.url
                else errors.append((r.failure, r.url))
            ),
        )
        page = context.new_page()
        page.goto(proxy_url)
        page.get_by_label("Search within").click()  # its choices come through the sub-path too
        page.get_by_role("option", name="unodc-regional-conference-islamabad.txt").click()
        page.fill("textarea", "Which countries took part?")
        page.keyboard.press("Enter")
        page.wait_for_selector(".passage", timeout=60_000)
        assert page.locator(".scope").inner_text() == "Within: unodc-regional-conference-islamabad.txt"
        assert len(page.locator(".answer li").all()) == 21
        assert "Czech Republic UAE" in page.locator(".passage").first.inner_text()
        page.wait_for_timeout(1000)
        assert_new_question_at_the_top(page, "Which countries took part?")  # the page's script runs under /qa/
        document = open_document_view(context, page)
        assert document.url.startswith(proxy_url + "?doc=")
        assert "Czech Republic UAE" in document.locator(".document mark#cited-passage").inner_text()
        shown = document.locator(".document").inner_text()
        assert "ISLAMABAD, 24 October" in shown and "underpinning Pakistan" in shown  # the whole article, first to last
        assert document.locator("textarea").count() == 0  # the view, not the chat
        browser.close()
    assert requests and all(u.split("/")[2] == host for u in requests), sorted({u.split("/")[2] for u in requests})
    assert all(u.split("/", 3)[3].startswith("qa/") for u in requests)
    assert errors == []


def open_document_view(context, page, rank: int = 0):
    """Click the passage's "view in document" link; the view opens in a new tab with the passage marked."""
    with context.expect_page() as opened:
        page.locator(".passage a.document-link").nth(rank).click()
    document = opened.value
    document.wait_for_selector(".document mark#cited-passage", timeout=30_000)
    return document


def test_the_api_docs_page_works_under_the_sub_path_from_the_app_alone(proxy_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("response", lambda r: errors.append((r.status, r.url)) if r.status >= 400 else None)
        page.on("requestfailed", lambda r: errors.append((r.failure, r.url)))
        page.goto(proxy_url + "api/docs")
        page.wait_for_selector('.opblock-summary-path[data-path="/api/ask"]', timeout=30_000)  # drawn from the schema
        browser.close()
    assert [u for u in requests if not u.startswith(proxy_url)] == [] and errors == []


def test_markup_payloads_in_a_document_are_shown_as_text_and_never_run(proxy_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context()
        dialogs = []
        context.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page = context.new_page()
        page.goto(proxy_url)
        page.fill("textarea", "Zanzibar smuggling report")
        page.keyboard.press("Enter")
        page.wait_for_selector(".passage", timeout=60_000)
        page.wait_for_timeout(1000)
        shown = page.locator(".passage").first.inner_text()
        flag = page.evaluate("window.__pwned")
        images = page.locator(".passage img").count()
        document = open_document_view(context, page)
        document.wait_for_timeout(1000)
        in_view = document.locator(".document").inner_text()
        document_flag = document.evaluate("window.__pwned")
        document_images = document.locator(".document img, .document script").count()
        browser.close()
    assert SCRIPT in shown and IMG in shown
    assert dialogs == [] and flag is None and images == 0
    assert SCRIPT in in_view and IMG in in_view
    assert document_flag is None and document_images == 0


def test_with_users_the_chat_asks_for_a_login_and_the_right_one_gets_in(tmp_path):
    from playwright.sync_api import sync_playwright

    with behind_nginx(tmp_path, {"ASSISTANT_USERS": "ana:correct horse", "ASSISTANT_API_TOKEN": "t0k"}) as url:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "api/status")
        assert refused.value.code == 401
        assert post_error(url + "api/ask", {"question": "Who spoke?"})[0] == 401
        assert post_error(url + "api/ask", {"question": "Who spoke?"}, {"Authorization": "Bearer wrong"})[0] == 401
        assert post_error(url + "api/ask", {"question": "Who spoke?"}, {"Authorization": "Bearer t0k"}) is None
        assert urllib.request.urlopen(url + "healthz").status == 200  # probes stay open
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("input[type=password]", timeout=30_000)
            assert page.locator("textarea").count() == 0  # no chat before the login
            page.locator("input").first.fill("ana")
            page.fill("input[type=password]", "wrong")
            page.keyboard.press("Enter")
            page.wait_for_timeout(1500)
            assert page.locator("textarea").count() == 0
            page.locator("input").first.fill("ana")
            page.fill("input[type=password]", "correct horse")
            page.keyboard.press("Enter")
            page.wait_for_selector("textarea", timeout=30_000)
            page.fill("textarea", "Which countries took part?")
            page.keyboard.press("Enter")
            page.wait_for_selector(".answer li", timeout=60_000)
            browser.close()
        check_document_view_needs_the_login(url)


def check_document_view_needs_the_login(url: str) -> None:
    """A document link opened without a session shows the login, not the text; after the login, the passage."""
    from playwright.sync_api import sync_playwright

    ask = urllib.request.Request(
        url + "api/ask",
        data=json.dumps({"question": "Senator Mushahid Hussain Syed legislation"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer t0k"},
    )
    chunk_id = json.loads(urllib.request.urlopen(ask).read())["passages"][0]["chunk_id"]
    link = f"{url}?doc={chunk_id}"
    assert "holistic manner" not in urllib.request.urlopen(link).read().decode()
    with pytest.raises(urllib.error.HTTPError) as refused:  # Gradio's own route to the view's handler
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}gradio_api/call/open_document?doc={chunk_id}",
                data=b'{"data": []}',
                headers={"Content-Type": "application/json"},
            )
        )
    assert refused.value.code == 401
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_context(viewport={"width": 800, "height": 300}).new_page()  # fresh: no session cookie
        page.goto(link)
        page.wait_for_selector("input[type=password]", timeout=30_000)
        page.wait_for_timeout(1500)
        assert "holistic manner" not in page.content() and page.locator(".document").count() == 0
        page.locator("input").first.fill("ana")
        page.fill("input[type=password]", "correct horse")
        page.keyboard.press("Enter")
        page.wait_for_selector(".document mark#cited-passage", timeout=30_000)
        page.wait_for_timeout(500)
        mark = page.locator(".document mark#cited-passage")
        assert "holistic manner" in mark.inner_text()
        top, bottom = mark.evaluate("m => [m.getBoundingClientRect().top, m.getBoundingClientRect().bottom]")
        assert 0 <= top and bottom <= 300  # the last paragraph, scrolled into the short window
        browser.close()
