"""Watching the corpus: what changes is indexed once it settles; hidden, temporary and growing files are not
indexed (half-way); nothing that changes during a build is lost; and the setting that turns it on."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace

import pytest

from assistant import cli, watch
from assistant.builds import Builds
from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.watch import ignored, watch_corpus, watching
from tests.helpers import wait_until

QUIET = 0.3


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setattr(watch, "QUIET_SECONDS", QUIET)


@pytest.fixture
def builds(assistant):
    running = Builds(assistant)
    yield running
    running.close()


@pytest.fixture
def watched(settings, builds):
    with watching(settings, builds):
        yield builds


def indexed(assistant) -> set[str]:
    return set(assistant.index().catalog())


def test_a_file_copied_in_is_indexed_once_the_corpus_is_quiet(assistant, watched, corpus, tmp_path):
    (tmp_path / "report.txt").write_text("The delegation from Bahrain arrived on Wednesday.")
    shutil.copy(tmp_path / "report.txt", corpus / "report.txt")
    assert watched.state()["last"] is None and not watched.state()["running"]  # not at once: after the quiet
    wait_until(lambda: "report.txt" in indexed(assistant), timeout=10)
    assert watched.wait(10)  # published before the build's record is kept: the build has ended
    status = assistant.status()
    assert status["documents"] == 2 and status["stale"] == []
    assert status["last_build"]["reason"] == "1 change in the corpus: report.txt"


def test_a_deleted_file_is_removed_from_the_index(assistant, watched, corpus):
    (corpus / "doc.txt").unlink()
    wait_until(lambda: "doc.txt" not in indexed(assistant), timeout=10)
    assert watched.wait(10)
    assert watched.state()["last"]["summary"]["removed"] == 1


@pytest.mark.parametrize(
    "name",
    [".hidden.txt", ".notes/a.txt", "drafts/.cache/b.txt", "doc.txt~", ".doc.txt.swp", ".doc.txt.swx", "#doc.txt#",
     "upload.tmp", "film.part", "report.pdf.crdownload", "~$report.docx", "REPORT.TMP"],
)  # fmt: skip
def test_hidden_and_temporary_files_are_ignored(name, corpus):
    assert ignored(corpus / name, corpus)


@pytest.mark.parametrize("name", ["doc.txt", "notes/a.txt", "a~b.txt", "#1 report.txt", "part.txt", "tmp/x.md"])
def test_ordinary_files_are_not_ignored(name, corpus):
    assert not ignored(corpus / name, corpus)


def test_changes_to_hidden_and_temporary_files_ask_for_no_build(watched, corpus):
    for name in [".hidden.txt", ".git/objects/x.txt", "doc.txt~", ".doc.txt.swp", "#doc.txt#", "upload.tmp",
                 "film.part", "report.pdf.crdownload", "~$report.docx"]:  # fmt: skip
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text("scratch")
    time.sleep(QUIET * 5)
    assert watched.state()["last"] is None and not watched.state()["running"]
    (corpus / "real.txt").write_text("A real document.")  # the watcher is alive, and only this one was pending
    wait_until(lambda: watched.state()["last"] is not None, timeout=10)
    assert watched.state()["last"]["reason"] == "1 change in the corpus: real.txt"


def test_a_growing_file_is_indexed_only_once_it_stops_growing(assistant, watched, corpus, monkeypatch):
    monkeypatch.setattr(watch, "QUIET_SECONDS", 0.8)  # over three times the pause between two writes
    sizes: list[int] = []  # of the file, at the start of each build
    build = assistant.build

    def noted_build(*args, **kwargs):
        sizes.append((corpus / "big.txt").stat().st_size)
        return build(*args, **kwargs)

    assistant.build = noted_build
    parts = [f"Part {n} of the report names the delegate from Oman number {n}.\n\n" for n in range(6)]
    with open(corpus / "big.txt", "w") as out:
        for part in parts:  # 1.5 s in all, never quiet for QUIET_SECONDS
            out.write(part)
            out.flush()
            time.sleep(0.25)
    wait_until(lambda: "big.txt" in indexed(assistant), timeout=10)
    assert watched.wait(10)
    assert sizes and set(sizes) == {len("".join(parts))}
    assert assistant.status()["stale"] == []


def test_a_file_that_grows_without_telling_is_looked_at_again(corpus, monkeypatch):
    """Between two looks QUIET_SECONDS apart, a file's size or age changed: not settled yet (a network share
    may grow a file without inotify events)."""
    changes = watch._Changes(corpus)
    (corpus / "slow.txt").write_text("first part")
    changes.add([corpus / "slow.txt"])
    time.sleep(QUIET * 1.2)
    (corpus / "slow.txt").write_text("first part, and the second")
    assert not changes.settled()
    time.sleep(QUIET * 1.2)
    assert changes.settled() and changes.take() == "1 change in the corpus: slow.txt"
    assert not changes.settled()  # nothing pending


def test_changes_during_a_build_are_not_lost(assistant, watched, corpus):
    entered, release = threading.Event(), threading.Event()
    build = assistant.build

    def slow_build(*args, **kwargs):
        summary = build(*args, **kwargs)  # the corpus is read: what changes from here on needs one more build
        entered.set()
        assert release.wait(10)
        return summary

    assistant.build = slow_build
    (corpus / "a.txt").write_text("Qatar sent two delegates.")
    assert entered.wait(10)
    (corpus / "b.txt").write_text("Kuwait sent three delegates.")
    time.sleep(QUIET * 4)  # settled, and asked for while the first build still runs
    assert watched.state()["running"]
    release.set()
    wait_until(lambda: "b.txt" in indexed(assistant), timeout=10)
    assert {"a.txt", "b.txt"} <= indexed(assistant)


def test_watching_a_missing_corpus_is_a_config_error(settings, builds, tmp_path):
    missing = replace(settings, corpus=tmp_path / "no-such-folder")
    with pytest.raises(ConfigError, match=r"cannot watch the corpus folder .*no-such-folder/: it does not exist"):
        watch_corpus(missing, builds, threading.Event())
    with pytest.raises(ConfigError, match="no-such-folder"), watching(missing, builds):
        pass


def test_watching_stops_when_asked(settings, builds):
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=watch_corpus, args=(settings, builds, stop, ready))
    thread.start()
    assert ready.wait(10)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


# ---- the setting ---------------------------------------------------------------------------------------


def _serve_settings(monkeypatch, argv: list[str]) -> Settings:
    seen: list[Settings] = []
    monkeypatch.setattr(cli, "_serve", lambda settings, args: seen.append(settings) or 0)
    assert cli.main(argv) == 0
    return seen[0]


def test_serve_watch_flag_turns_watching_on(monkeypatch):
    assert _serve_settings(monkeypatch, ["serve", "--watch"]).watch is True
    assert _serve_settings(monkeypatch, ["serve"]).watch is False


def test_without_the_flag_assistant_watch_decides(monkeypatch):
    monkeypatch.setenv("ASSISTANT_WATCH", "1")
    assert _serve_settings(monkeypatch, ["serve"]).watch is True
    monkeypatch.setenv("ASSISTANT_WATCH", "0")
    assert _serve_settings(monkeypatch, ["serve", "--watch"]).watch is True  # the flag overrides


def test_a_bad_assistant_watch_names_the_valid_values(monkeypatch):
    monkeypatch.setenv("ASSISTANT_WATCH", "maybe")
    with pytest.raises(ConfigError, match="ASSISTANT_WATCH='maybe' is not a valid switch — use 1 or 0"):
        Settings.from_env()


def test_paths_are_named_relative_to_the_corpus(corpus):
    changes = watch._Changes(corpus)
    changes.add([corpus / f"f{n}.txt" for n in range(7)])
    assert changes.take() == "7 changes in the corpus: f0.txt, f1.txt, f2.txt, f3.txt, f4.txt and 2 more"


def test_the_index_folder_inside_the_corpus_is_not_watched(settings, corpus, fake_embedder):
    """A build that writes its index inside the corpus must not ask for the next build, and so on forever."""
    from assistant.service import Assistant

    inside = replace(settings, index=corpus / "index")
    (corpus / "doc.txt").write_text("Oman attended.")
    assistant = Assistant(inside, fake_embedder)
    builds = Builds(assistant)
    try:
        with watching(inside, builds):
            (corpus / "new.txt").write_text("Qatar attended.")
            wait_until(lambda: builds.state()["last"] is not None, timeout=10)
            time.sleep(QUIET * 5)
            assert builds.state()["last"]["reason"] == "1 change in the corpus: new.txt"
            assert not builds.state()["running"]
    finally:
        builds.close()
