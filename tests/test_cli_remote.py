"""`assistant ask --server URL` against a running server (uvicorn in a thread, the fake embedder): the same output,
JSON or text, and the same errors and exit codes as the command answering in its own process."""

import io
import json
import threading
from dataclasses import replace

import pytest

from assistant import cli
from assistant.service import Assistant
from tests.helpers import free_port

CORPUS = {
    "reports/talks.txt": "Cesar Guedes spoke first. Ahsan Iqbal spoke next about border patrols.",
    "reports/countries.txt": "The countries were Spain, Italy and Oman.",
    "notes.txt": "The meeting ended at noon in Islamabad.",
}
PASSWORD = "pw-ana"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The index built in-process, then served by uvicorn with a login (ana) and a service token."""
    import uvicorn

    from assistant.config import Settings
    from assistant.serve import create_server
    from tests.helpers import FakeEmbedder

    root = tmp_path_factory.mktemp("remote")
    for path, text in CORPUS.items():
        (root / "corpus" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "corpus" / path).write_text(text)
    settings = Settings(corpus=root / "corpus", index=root / "index", min_score=-1.0, users=f"ana:{PASSWORD}")
    assistant = Assistant(replace(settings, api_token="t0ken"), FakeEmbedder())
    assistant.build()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_server(assistant), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        threading.Event().wait(0.05)
    yield settings, f"http://127.0.0.1:{port}/"
    server.should_exit = True


@pytest.fixture
def run(served, monkeypatch, capsys):
    """(exit code, stdout, stderr) of `assistant ...` in-process, with the served index's settings."""
    from tests.helpers import FakeEmbedder

    settings, _ = served
    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: FakeEmbedder())
    monkeypatch.setenv("ASSISTANT_CORPUS", str(settings.corpus))
    monkeypatch.setenv("ASSISTANT_INDEX", str(settings.index))
    monkeypatch.setenv("ASSISTANT_MIN_SCORE", "-1")
    monkeypatch.setenv("ASSISTANT_API_TOKEN", "t0ken")

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.mark.parametrize(
    "options",
    [
        ["--json", "Who spoke first?"],
        ["Who spoke first?"],  # the text output, drawn from the server's JSON
        ["--json", "-k", "2", "--mode", "bm25", "Which countries?"],
        ["--source", "reports", "Which countries?"],
        ["--json", "--source", "notes.txt", "--source", "reports/talks.txt", "Where was the meeting?"],
    ],
)
def test_a_server_answers_as_the_command_does_in_its_own_process(served, run, options):
    _, url = served
    here = run("ask", *options)
    there = run("ask", "--server", url, *options)
    assert here[0] == there[0] == 0 and here[1] and here[1] == there[1]


def test_a_conversation_on_stdin_goes_to_the_server_with_its_history(served, run):
    _, url = served
    lines = "Who spoke first?\nWhat did he say?\n\nWhich countries?\n"
    here = run("ask", "--chat", "--json", stdin=lines)
    there = run("ask", "--chat", "--json", "--server", url, stdin=lines)
    assert here == there and len(there[1].splitlines()) == 3
    assert json.loads(there[1].splitlines()[1])["context"]["question"] == "Who spoke first?"


@pytest.mark.parametrize(
    "options",
    [
        ["--source", "nowhere", "Who?"],  # not in the index: exit 1
        ["--source", "../up", "Who?"],  # not a part of the corpus: exit 2, before any call
        ["-k", "0", "Who?"],
        ["x" * 2001],  # too long a question
    ],
)
def test_a_servers_refusals_are_the_commands_own(served, run, options):
    _, url = served
    here = run("ask", *options)
    there = run("ask", "--server", url, *options)
    assert here[0] == there[0] != 0 and here[2].splitlines()[0].split(" — ")[0] in there[2], (here, there)


def test_an_unreachable_server_is_one_line_naming_it(run):
    url = f"http://127.0.0.1:{free_port()}/"
    code, out, err = run("ask", "--server", url, "Who spoke first?")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"assistant: cannot reach the server at {url} (") and "ASSISTANT_URL" in err


def test_credentials_come_from_the_token_or_the_user_and_password(served, run, monkeypatch):
    _, url = served
    monkeypatch.setenv("ASSISTANT_API_TOKEN", "wrong")
    code, _, err = run("ask", "--server", url, "Who spoke first?")
    assert code == 1 and "refused the credentials (401" in err and "ASSISTANT_USER" in err
    monkeypatch.delenv("ASSISTANT_API_TOKEN")
    monkeypatch.setenv("ASSISTANT_USER", "ana")
    monkeypatch.setenv("ASSISTANT_PASSWORD", PASSWORD)
    assert run("ask", "--server", url, "Who spoke first?")[0] == 0
    monkeypatch.setenv("ASSISTANT_URL", url)  # the variable instead of the flag
    assert run("ask", "--json", "Who spoke first?")[0] == 0


def test_asking_as_someone_else_is_for_the_local_index_only(served, run):
    _, url = served
    code, _, err = run("ask", "--server", url, "--as", "bob", "Who?")
    assert code == 2 and "--as answers from this machine's index" in err


def test_a_slow_load_is_said_on_stderr_and_a_quick_one_is_not(run, monkeypatch):
    monkeypatch.setattr(cli, "LOADING_NOTICE", 0.0)
    assert "loading the index and the models" in run("ask", "Who spoke first?")[2]
    monkeypatch.setattr(cli, "LOADING_NOTICE", 60.0)
    assert run("ask", "Who spoke first?")[2] == ""
