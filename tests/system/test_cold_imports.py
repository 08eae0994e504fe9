"""The command line's paths import only what they use: no web server libraries for build, status and ask, and
nothing of the models for `ask --server` (the real model and spaCy, in fresh processes)."""

import subprocess
import sys

import pytest

WEB = {"gradio", "fastapi", "uvicorn", "starlette"}
MODELS = {"torch", "sentence_transformers", "transformers", "spacy", "faiss"}
PROBE = """
import sys
from assistant import cli
code = cli.main(sys.argv[1:])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
sys.exit(code)
"""


def imported(argv: list[str], cwd) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(done.stderr.splitlines()[-1].split())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cold")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "talks.txt").write_text("Cesar Guedes spoke first at the conference in Islamabad.")
    return folder


def test_build_status_and_ask_import_no_web_server(folder):
    for argv in (["build"], ["status", "--json"], ["ask", "Who spoke first?"]):
        assert not imported(argv, folder) & WEB, argv


def test_ask_of_a_server_imports_no_model(folder):
    from tests.helpers import free_port

    probe = subprocess.run(
        [sys.executable, "-c", PROBE, "ask", "--server", f"http://127.0.0.1:{free_port()}/", "Who spoke first?"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 1 and "cannot reach the server" in probe.stderr  # nothing listens there
    modules = set(probe.stderr.splitlines()[-1].split())
    assert not modules & (WEB | MODELS), modules & (WEB | MODELS)


def test_a_fresh_ask_under_auto_runs_the_question_in_onnx_runtime_without_sentence_transformers(folder):
    """Whatever the CPU: the question's model is ONNX Runtime's, and the highlights use the build's sentence
    vectors, so neither sentence-transformers nor transformers is imported (spaCy's own imports aside)."""
    imported(["build"], folder)
    modules = imported(["ask", "Where did Cesar Guedes speak?"], folder)
    assert "onnxruntime" in modules and not modules & {"sentence_transformers", "transformers", "sklearn"}, modules
