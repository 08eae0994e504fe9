import io
import json

import pytest

from assistant import cli

QUESTIONS_KEYS = {"text", "source", "page", "score", "start", "end", "chunk_id"}


@pytest.fixture
def run(monkeypatch, settings, fake_embedder):
    """Run `assistant ...` in-process with the fake embedder and the test's corpus and index."""
    monkeypatch.setattr("assistant.service.Embedder", lambda *args, **kwargs: fake_embedder)
    monkeypatch.setenv("ASSISTANT_CORPUS", str(settings.corpus))
    monkeypatch.setenv("ASSISTANT_INDEX", str(settings.index))
    monkeypatch.setenv("ASSISTANT_MIN_SCORE", "-1")

    def run(*argv: str) -> int:
        return cli.main(list(argv))

    return run


@pytest.fixture
def built(run, corpus, capsys):
    (corpus / "doc.txt").write_text("Cesar Guedes spoke first.\n\nThe countries were Spain and Italy.")
    assert run("build") == 0
    capsys.readouterr()
    return run


def test_build_json_prints_the_summary_object(run, corpus, capsys):
    (corpus / "doc.txt").write_text("Some text about Austria.")
    (corpus / "bad.xyz").write_text("?")
    assert run("build", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"added", "changed", "removed", "unchanged", "chunks", "seconds", "skipped"} <= summary.keys()
    assert summary["added"] == 1 and summary["skipped"][0]["path"] == "bad.xyz"


def test_build_prints_a_summary_line_and_skipped_files(run, corpus, capsys):
    (corpus / "doc.txt").write_text("Some text about Austria.")
    (corpus / "empty.md").write_text("")
    assert run("build") == 0
    out = capsys.readouterr().out
    assert "skipped empty.md: empty file" in out
    assert "1 added, 0 changed, 0 removed, 0 unchanged, 1 skipped" in out


def test_ask_joins_words_into_one_question(built, capsys):
    assert built("ask", "Which", "countries?", "-k", "1") == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Which countries?") and "doc.txt" in out


def test_ask_json_prints_one_object_per_stdin_line_skipping_blanks(built, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Who spoke?\n\n   \nWhich countries?\n"))
    assert built("ask", "--json", "-k", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    answers = [json.loads(line) for line in lines]
    assert [a["question"] for a in answers] == ["Who spoke?", "Which countries?"]
    assert all(QUESTIONS_KEYS <= p.keys() for a in answers for p in a["passages"])


def test_ask_without_index_is_one_line_error_without_traceback(run, capsys):
    assert run("ask", "anything") == 1
    err = capsys.readouterr().err
    assert err.strip().endswith("— run: assistant build") and "no index at" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_ask_with_empty_question_on_stdin_is_a_clear_error(built, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("\x01\x02\n"))
    assert built("ask") == 1
    assert "the question is empty" in capsys.readouterr().err


def test_ask_with_bad_k_is_refused(built, capsys):
    assert built("ask", "x", "-k", "0") == 2
    assert "-k must be at least 1" in capsys.readouterr().err


def test_ask_within_sources_returns_k_passages_of_the_scope_and_echoes_it(run, corpus, capsys):
    for name in ["hot/a.txt", "hot/b.txt", "notes/one.txt", "notes/two.txt", "notes/deep/three.txt"]:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(f"Spain and Italy at the talks ({name}).\n\nItaly again, and Spain." * 2)
    (corpus / "hot" / "a.txt").write_text("Spain Spain Italy Italy, the talks.")
    assert run("build") == 0
    capsys.readouterr()
    assert run("ask", "--json", "-k", "3", "Spain and Italy") == 0
    assert json.loads(capsys.readouterr().out)["passages"][0]["source"] == "hot/a.txt"  # the best lie outside
    assert run("ask", "--json", "-k", "3", "--source", "notes/", "--source", "hot/b.txt", "Spain and Italy") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["sources"] == ["hot/b.txt", "notes"] and len(answer["passages"]) == 3
    assert {p["source"] for p in answer["passages"]} <= {"hot/b.txt", "notes/one.txt", "notes/two.txt",
                                                        "notes/deep/three.txt"}  # fmt: skip
    assert run("ask", "-k", "1", "--source", "notes/deep", "Spain") == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Spain\nWithin: notes/deep\n") and "[1] notes/deep/three.txt" in out


@pytest.mark.parametrize(
    "source, status, message",
    [
        ("/etc/passwd", 2, "assistant: --source: the source /etc/passwd is an absolute path — give it relative to"),
        ("../doc.txt", 2, "assistant: --source: the source ../doc.txt leads out of the corpus (..)"),
        ("", 2, "assistant: --source: a source is empty"),
        ("docs.txt", 1, "assistant: no document or folder docs.txt in the index — give paths relative to the corpus"),
    ],
)
def test_ask_within_a_bad_source_is_one_line_before_any_question_is_read(
    built, capsys, monkeypatch, source, status, message
):
    monkeypatch.setattr("sys.stdin", io.StringIO("Who spoke?\n"))
    assert built("ask", "--source", source) == status
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and len(captured.err.strip().splitlines()) == 1
    assert captured.out == "" and "Traceback" not in captured.err


def test_question_with_no_good_passage_exits_zero(built, capsys, monkeypatch):
    monkeypatch.setenv("ASSISTANT_MIN_SCORE", "0.999")
    assert built("ask", "--json", "zebra") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["no_answer"] is True and answer["passages"]  # the closest ones, flagged
    assert built("ask", "zebra") == 0
    assert "Not in the documents" in capsys.readouterr().out


def test_status_json_reports_documents_chunks_and_stale(built, corpus, capsys):
    (corpus / "new.txt").write_text("added after the build")
    assert built("status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert {"index", "documents", "chunks", "model", "built_at", "stale"} <= status.keys()
    assert status["documents"] == 1 and status["stale"] == ["new.txt"] and status["model"] == "all-MiniLM-L6-v2"


def test_status_text_names_the_command_to_rebuild(built, corpus, capsys):
    (corpus / "doc.txt").write_text("changed")
    assert built("status") == 0
    out = capsys.readouterr().out
    assert "run: assistant build" in out and "doc.txt  (1 chunk)" in out


def test_flags_override_environment(built, tmp_path, capsys):
    assert built("status", "--index", str(tmp_path / "elsewhere")) == 1
    assert "elsewhere" in capsys.readouterr().err


def test_bad_setting_in_environment_is_one_line(run, capsys, monkeypatch):
    monkeypatch.setenv("ASSISTANT_CHUNK_TOKENS", "lots")
    assert run("build") == 1
    assert capsys.readouterr().err.strip() == "assistant: ASSISTANT_CHUNK_TOKENS='lots' is not a valid int"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("assistant ")


def test_python_dash_m_assistant_runs_the_same_cli(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "assistant", "status", "--index", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"assistant: no index at {tmp_path / 'none'}/ — run: assistant build"


def test_ask_mode_flag_is_reported_in_json_and_unknown_modes_are_refused(built, capsys, monkeypatch):
    assert built("ask", "--json", "--mode", "bm25", "Spain") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["mode"] == "bm25" and answer["passages"][0]["source"] == "doc.txt"
    monkeypatch.setenv("ASSISTANT_MODE", "dense")
    assert built("ask", "--json", "Spain") == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "dense"
    with pytest.raises(SystemExit):
        built("ask", "--mode", "fuzzy", "Spain")
    assert "invalid choice: 'fuzzy'" in capsys.readouterr().err


def test_precision_flag_reaches_the_embedder_of_build_ask_and_serve(run, corpus, monkeypatch, fake_embedder):
    made = []
    monkeypatch.setattr("assistant.service.Embedder", lambda *args: made.append(args) or fake_embedder)
    monkeypatch.setattr("assistant.serve.serve", lambda assistant: None)
    (corpus / "doc.txt").write_text("Spain and Italy.")
    assert run("build", "--precision", "bf16") == 0
    monkeypatch.setenv("ASSISTANT_PRECISION", "bf16")
    assert run("ask", "--precision", "fp32", "Spain") == 0
    assert run("serve") == 0
    assert [args[2] for args in made] == ["bf16", "fp32", "bf16"]


def test_bad_precision_is_one_line_naming_the_valid_ones(run, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        run("build", "--precision", "fp16")
    assert "invalid choice: 'fp16' (choose from 'auto', 'fp32', 'bf16', 'onnx')" in capsys.readouterr().err
    monkeypatch.setenv("ASSISTANT_PRECISION", "fp16")
    assert run("ask", "x") == 1
    err = capsys.readouterr().err
    assert (
        err.strip() == "assistant: unknown precision 'fp16' (ASSISTANT_PRECISION, --precision) — valid precisions: "
        "auto, fp32, bf16, onnx"
    )


def test_status_reports_the_precision_of_the_index(built, capsys):
    assert built("status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "fp32"
    assert built("status") == 0
    assert "all-MiniLM-L6-v2  (fp32)" in capsys.readouterr().out


def test_status_json_reports_the_relevance_floor_and_the_vector_index(tmp_path, capsys, fake_embedder, monkeypatch):
    from assistant.search import relevance_floor

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Oman sent a delegation.\n\nQatar sent observers.")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("assistant.service.Embedder", lambda *a, **k: fake_embedder)
    assert cli.main(["build", "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["relevance_floor"] == relevance_floor(status["chunks"]) and status["vectors"] == {"type": "flat"}


def test_a_build_prints_its_phases_the_skipped_files_and_the_summary_and_no_library_noise(tmp_path):
    """pypdf logs "EOF marker not found" on a broken PDF, BeautifulSoup warns at length on XHTML and bm25s logs
    at DEBUG: none of it reaches the terminal; the bars of the three phases do."""
    import subprocess
    import sys

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not a PDF after all")
    (corpus / "page.xhtml.html").write_text(
        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">'
        "<body><p>Oman sent a delegate.</p></body></html>"
    )
    (corpus / "notes.txt").write_text("Qatar and Kuwait observed the talks.")
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "build", "--corpus", str(corpus), "--index", str(tmp_path / "index")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "skipped broken.pdf: corrupt or unreadable PDF (PdfStreamError: Stream has ended unexpectedly)",
        done.stdout.splitlines()[-1],
    ]
    assert done.stdout.splitlines()[-1].startswith("2 added, 0 changed, 0 removed, 0 unchanged, 1 skipped")
    shown = [line.strip() for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert shown and all(line.startswith(("reading", "chunking", "embedding")) for line in shown), shown
    assert {line.split()[0].rstrip(":") for line in shown} == {"reading", "chunking", "embedding"}


def test_ask_chat_reads_stdin_as_one_conversation_an_empty_line_a_new_topic(run, corpus, capsys, monkeypatch):
    (corpus / "minister.txt").write_text("Minister Ahsan Iqbal opened the border talks. He said patrols will grow.")
    (corpus / "weather.txt").write_text("What did he say? He would say the weather in Madrid was sunny.")
    assert run("build") == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("Who is Ahsan Iqbal?\nWhat did he say?\n\nWhat did he say?\n"))
    assert run("ask", "--chat", "--json", "-k", "1") == 0
    replies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["context"] for r in replies] == [
        None,
        {"question": "Who is Ahsan Iqbal?", "sources": ["minister.txt"]},
        None,  # a new topic
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("Who is Ahsan Iqbal?\nWhat did he say?\n"))
    assert run("ask", "--json", "-k", "1") == 0  # without --chat, each line stands alone
    assert [json.loads(line)["context"] for line in capsys.readouterr().out.splitlines()] == [None, None]
