"""Folder permissions with single sign-on at Debian's nginx (deploy/nginx-sso.conf's auth_request), the real models
and Chromium: alice reads the HR folder, and bob's view never holds a word of it, by any door."""

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, launch_chromium
from tests.system.test_offline import product_env
from tests.system.test_proxy import NGINX, NGINX_CONF, wait_for

SAMPLE = ROOT / "deploy" / "nginx-sso.conf"
PROXY_ADDRESS = "127.0.0.2"  # nginx connects to the app from here: the one trusted proxy; tests connect from 127.0.0.1
HR_TEXT = (
    "Salary review of the Zephyrine division. The Quetzalmark salary band is 98,400 dollars a year, "
    "approved by the director, Ottoline Farquharson, at the board meeting in Reykjavik.\n"
)
SECRET_WORDS = ("Quetzalmark", "98,400", "Farquharson", "Reykjavik", "salaries")  # not in QUESTION (answers repeat it)
QUESTION = "What is the salary band of the Zephyrine division, and who approved it?"
ACCESS = """admins = ["carol"]

[groups]
finance = ["dora"]

[folders]
"hr" = ["group:hr"]
"public" = ["*"]
"""
PEOPLE = {"alice": "hr", "bob": "", "carol": ""}  # who the auth service signs in, with the groups it names


class AuthService(BaseHTTPRequestHandler):
    """The sign-in service of nginx's auth_request: the user named by the `sso` cookie, else 401."""

    def do_GET(self) -> None:
        cookies = dict(
            part.strip().split("=", 1) for part in (self.headers.get("Cookie") or "").split(";") if "=" in part
        )
        user = cookies.get("sso")
        if user in PEOPLE:
            self.send_response(200)
            self.send_header("X-Remote-User", user)
            self.send_header("X-Remote-Groups", PEOPLE[user])
        else:
            self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def signed_in_by_nginx(tmp: Path):
    shutil.copytree(ROOT / "corpus", tmp / "corpus" / "public")
    (tmp / "corpus" / "hr").mkdir()
    (tmp / "corpus" / "hr" / "salaries.txt").write_text(HR_TEXT)
    (tmp / "access.toml").write_text(ACCESS)
    auth_port, app_port, proxy_port = free_port(), free_port(), free_port()
    auth = ThreadingHTTPServer(("127.0.0.1", auth_port), AuthService)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    env = {
        "ASSISTANT_ACCESS": str(tmp / "access.toml"),
        "ASSISTANT_TRUSTED_USER_HEADER": "X-Remote-User",
        "ASSISTANT_TRUSTED_GROUPS_HEADER": "X-Remote-Groups",
        "ASSISTANT_TRUSTED_PROXIES": PROXY_ADDRESS,
    }
    app_log = tmp / "app.log"
    app = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--root-path", "/qa", "--port", str(app_port)],
        cwd=tmp,
        stdout=open(app_log, "w"),
        stderr=subprocess.STDOUT,
        env={**product_env(), **env},
    )
    sample = SAMPLE.read_text().replace("127.0.0.1:7860", f"127.0.0.1:{app_port}")
    (tmp / "qa.conf").write_text(
        f"proxy_bind {PROXY_ADDRESS};\n" + sample.replace("127.0.0.1:4180", f"127.0.0.1:{auth_port}")
    )
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=proxy_port))
    nginx = subprocess.Popen(
        [NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], stderr=open(tmp / "nginx.log", "w")
    )
    try:
        wait_for(f"http://127.0.0.1:{app_port}/healthz", app, app_log)
        yield f"http://127.0.0.1:{proxy_port}/qa/", f"http://127.0.0.1:{app_port}/"
    finally:
        nginx.terminate()
        app.terminate()
        auth.shutdown()
        nginx.wait(timeout=30)
        app.wait(timeout=30)


@pytest.fixture(scope="module")
def urls(tmp_path_factory):
    with signed_in_by_nginx(tmp_path_factory.mktemp("sso")) as found:
        yield found


def call(url: str, user: str | None = None, body: dict | None = None, headers: dict | None = None):
    """(status, JSON) of a request; `user` signs in through the auth service's cookie."""
    sent = {"Content-Type": "application/json", **({"Cookie": f"sso={user}"} if user else {}), **(headers or {})}
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=sent), timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        body = err.read().decode()
        return err.code, json.loads(body) if body.startswith("{") else {"detail": body}  # nginx's own pages: HTML


def leaked(found) -> list[str]:
    text = json.dumps(found, ensure_ascii=False)
    return [word for word in SECRET_WORDS if word in text]


def test_the_permissions_page_shows_the_sample_the_tests_use():
    sample = SAMPLE.read_text()
    page = (ROOT / "docs" / "permissions.md").read_text()
    lines = [line.strip() for line in sample.splitlines() if not line.startswith("#")]
    assert all(line in page for line in lines if "auth" in line or "X-Remote" in line)


def test_alice_reads_hr_and_bob_never_gets_a_word_of_it_through_the_api(urls):
    proxy, _ = urls
    status, alice = call(proxy + "api/ask", "alice", {"question": QUESTION})
    assert status == 200 and alice["passages"][0]["source"] == "hr/salaries.txt"
    hr_chunk = alice["passages"][0]["chunk_id"]
    status, bob = call(proxy + "api/ask", "bob", {"question": QUESTION})  # the same question: alice's is cached
    assert status == 200 and bob["passages"] and not leaked(bob)
    assert all(p["source"].startswith("public/") for p in bob["passages"])
    assert call(proxy + "api/status", "alice")[1]["documents"] == 2
    status, bob_status = call(proxy + "api/status", "bob")
    assert status == 200 and bob_status["documents"] == 1 and not leaked(bob_status)
    assert call(proxy + f"api/documents/{hr_chunk}", "alice")[0] == 200
    forbidden = call(proxy + f"api/documents/{hr_chunk}", "bob")
    unknown = call(proxy + "api/documents/no-such-chunk", "bob")
    assert forbidden[0] == unknown[0] == 404 and not leaked(forbidden)
    within = call(proxy + "api/ask", "bob", {"question": QUESTION, "sources": ["hr"]})
    assert within[0] == 422 and "no document or folder hr in the index" in within[1]["detail"]
    carol = call(proxy + "api/ask", "carol", {"question": QUESTION})[1]  # the admin reads everything
    assert carol["passages"][0]["source"] == "hr/salaries.txt"


def test_the_sign_in_header_is_believed_only_from_the_proxy(urls):
    proxy, app = urls
    assert call(proxy + "api/status")[0] == 401  # nobody signed in: the auth service refuses
    status, found = call(proxy + "api/status", "bob", headers={"X-Remote-User": "alice", "X-Remote-Groups": "hr"})
    assert status == 200 and found["documents"] == 1  # the proxy sets the headers: a client's own never passes
    status, refused = call(app + "api/status", headers={"X-Remote-User": "alice"})  # around the proxy
    assert status == 401 and "not a trusted proxy" in refused["detail"]
    assert call(app + "api/ask", body={"question": QUESTION}, headers={"X-Remote-Groups": "hr"})[0] == 401


def test_in_the_chat_bob_sees_only_public_passages_sources_and_documents(urls):
    from playwright.sync_api import sync_playwright

    proxy, _ = urls
    hr_chunk = call(proxy + "api/ask", "alice", {"question": QUESTION})[1]["passages"][0]["chunk_id"]
    host = proxy.split("/")[2].split(":")[0]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        for user, sees in (("alice", True), ("bob", False)):
            context = browser.new_context()
            context.add_cookies([{"name": "sso", "value": user, "domain": host, "path": "/"}])
            page = context.new_page()
            page.goto(proxy)
            page.wait_for_selector("textarea", timeout=60_000)
            page.fill("textarea", QUESTION)
            page.keyboard.press("Enter")
            page.wait_for_selector("#answers .passage", state="attached", timeout=60_000)  # bob's: "not in" them
            answers = page.text_content("#answers") or ""
            assert ("Farquharson" in answers) == sees, (user, answers[:500])
            picker = page.get_by_label("Search within")
            picker.click()
            options = page.locator("[role=option]").all_inner_texts()
            assert any(o.startswith("hr") for o in options) == sees, (user, options)
            page.goto(f"{proxy}?doc={hr_chunk}")
            page.wait_for_selector(".document, p:has-text('no longer in the index')", timeout=60_000)
            shown = page.inner_text("body")
            assert ("Farquharson" in shown) == sees and (sees or not [w for w in SECRET_WORDS if w in shown])
            context.close()
        browser.close()
