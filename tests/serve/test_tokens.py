"""Per-user API tokens: the ASSISTANT_TOKENS file, TokenFile.user_of, and `assistant token create|list|revoke`."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from assistant import cli
from assistant.errors import ConfigError
from assistant.serve import auth
from assistant.serve.auth import verify_password
from assistant.serve.tokens import TokenEntry, TokenFile

UNKNOWN = "qa_000000000000_" + "x" * 43  # the right form, an id no file holds


@pytest.fixture
def scrypts(monkeypatch) -> list[int]:
    """The cost (n) of each scrypt computed from here on."""
    costs: list[int] = []
    real = auth.hashlib.scrypt

    def counted(*args, **kwargs):
        costs.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(auth.hashlib, "scrypt", counted)
    return costs


def test_a_created_token_acts_as_its_user_and_only_its_hash_is_stored(tmp_path):
    path = tmp_path / "tokens"
    tokens = TokenFile(path)
    token = tokens.create("ana")
    prefix, token_id, secret = token.split("_", 2)
    assert prefix == "qa" and len(token_id) == 12 and len(secret) == 43
    user, stored_id, stored = path.read_text().strip().split(":", 2)
    assert (user, stored_id) == ("ana", token_id) and stored.startswith("scrypt$")
    assert token not in path.read_text() and secret not in path.read_text()
    assert verify_password(token, stored)
    assert tokens.user_of(token) == "ana" and TokenFile(path).user_of(token) == "ana"
    assert tokens.user_of(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.user_of(UNKNOWN) is None and tokens.user_of("not a token") is None


def test_a_new_file_is_private_and_an_existing_one_keeps_its_lines_and_mode(tmp_path):
    path = tmp_path / "tokens"
    TokenFile(path).create("ana")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("# team tokens\n" + path.read_text() + "\n# end")  # no newline at the end
    path.chmod(0o640)
    TokenFile(path).create("bo")
    lines = path.read_text().splitlines()
    assert lines[0] == "# team tokens" and lines[3] == "# end" and lines[4].startswith("bo:")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p != path]  # no temporary file left behind


def test_list_gives_ids_and_users_in_file_order(tmp_path):
    tokens = TokenFile(tmp_path / "tokens")
    assert tokens.list() == []
    first, second = tokens.create("ana"), tokens.create("bo")
    assert tokens.list() == [TokenEntry(first.split("_")[1], "ana"), TokenEntry(second.split("_")[1], "bo")]


def test_a_revoke_holds_at_the_next_check_without_a_new_token_file(tmp_path):
    path = tmp_path / "tokens"
    server = TokenFile(path)  # the server's, made before the tokens and never remade
    kept, revoked = TokenFile(path).create("ana"), TokenFile(path).create("bo")
    assert server.user_of(revoked) == "bo" and server.user_of(kept) == "ana"  # and now cached
    TokenFile(path).revoke(revoked.split("_")[1])
    assert server.user_of(revoked) is None and server.user_of(kept) == "ana"
    assert [e.user for e in server.list()] == ["ana"]
    path.unlink()
    assert server.user_of(kept) is None  # no file, no tokens


def test_a_verified_token_costs_no_scrypt_the_next_time(tmp_path, scrypts):
    tokens = TokenFile(tmp_path / "tokens")
    token = tokens.create("ana")
    scrypts.clear()
    assert [tokens.user_of(token) for _ in range(5)] == ["ana"] * 5
    assert len(scrypts) == 1


def test_an_unknown_token_id_costs_the_same_scrypt_as_a_known_one(tmp_path, scrypts):
    tokens = TokenFile(tmp_path / "tokens")
    token = tokens.create("ana")
    tokens.user_of(UNKNOWN)  # the hash of nothing is made once per process, like the file's read at start
    scrypts.clear()
    assert tokens.user_of(UNKNOWN) is None
    assert tokens.user_of(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.user_of(UNKNOWN) is None  # a refusal is never cached
    assert scrypts == [2**14] * 3


def test_a_malformed_line_stops_the_load_naming_the_file_and_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# tokens\n\nana:0123456789ab:plaintext\n")
    with pytest.raises(ConfigError, match=rf"bad line 3 in {path}: expected user:token-id:scrypt"):
        TokenFile(path)
    hashed = auth.hash_password("qa_0123456789ab_secret")
    path.write_text(f"ana:0123456789ab:{hashed}\nbo:0123456789ab:{hashed}\n")
    with pytest.raises(ConfigError, match="bad line 2 .* token id 0123456789ab comes twice"):
        TokenFile(path)


def test_a_file_broken_after_the_load_keeps_the_last_good_tokens_and_warns(tmp_path, caplog):
    path = tmp_path / "tokens"
    tokens = TokenFile(path)
    token = tokens.create("ana")
    assert tokens.user_of(token) == "ana"  # the version read last, before the file broke
    path.write_text(path.read_text() + "bo has no token\n")
    with caplog.at_level(logging.WARNING, logger="assistant.serve.tokens"):
        assert tokens.user_of(token) == "ana" and tokens.user_of(token) == "ana"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and f"bad line 2 in {path}" in warned[0]  # once per version of the file, not per request
    with pytest.raises(ConfigError, match="bad line 2"):
        tokens.create("bo")  # and nothing is appended to it


@pytest.mark.parametrize("user", ["", "a:b", "ana smith", "tab\there", "bell\a", "#root"])
def test_a_user_name_must_be_plain(tmp_path, user):
    with pytest.raises(ConfigError, match="bad user name"):
        TokenFile(tmp_path / "tokens").create(user)
    assert not (tmp_path / "tokens").exists()


def test_revoking_an_unknown_id_names_it_and_the_list_command(tmp_path):
    with pytest.raises(ConfigError, match="no token with id 'feedbeef0000' .* run: assistant token list"):
        TokenFile(tmp_path / "tokens").revoke("feedbeef0000")


def test_token_commands_create_list_and_revoke(monkeypatch, capsys, tmp_path):
    path = tmp_path / "tokens"
    monkeypatch.setenv("ASSISTANT_TOKENS", str(path))
    assert cli.main(["token", "create", "ana"]) == 0
    token = capsys.readouterr().out
    assert token.count("\n") == 1 and TokenFile(path).user_of(token.strip()) == "ana"
    token_id = token.split("_")[1]
    assert cli.main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert listed == f"{token_id}\tana\n" and "scrypt" not in listed
    assert cli.main(["token", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"id": token_id, "user": "ana"}]
    assert cli.main(["token", "revoke", token_id]) == 0
    assert capsys.readouterr().out == "" and TokenFile(path).list() == []
    assert cli.main(["token", "revoke", token_id]) == 1
    assert f"no token with id '{token_id}'" in capsys.readouterr().err
    assert cli.main(["token", "create", "a:b"]) == 1
    assert capsys.readouterr().err.startswith("assistant: bad user name 'a:b'")


@pytest.mark.parametrize("argv", [["create", "ana"], ["list"], ["list", "--json"], ["revoke", "0123456789ab"]])
def test_token_commands_need_assistant_tokens(capsys, argv):
    assert cli.main(["token", *argv]) == 1
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == (
        "assistant: ASSISTANT_TOKENS is not set — set it to a file path, e.g. ASSISTANT_TOKENS=tokens.txt\n"
    )
