"""The folder permissions (assistant/access.py): the rules of an ASSISTANT_ACCESS file, who they let read what,
the scope they give a reader's searches, and the file read again while serving."""

import logging
import os
import random
from pathlib import Path

import pytest

from assistant.access import ANONYMOUS, EVERYTHING, OPEN, Access, Policy, Reader, access_from, parse_policy
from assistant.errors import ConfigError
from assistant.index.store import Scope

RULES = """\
admins = ["carol", "group:ops"]

[groups]
hr = ["alice"]
ops = ["olga"]

[folders]
public = ["*"]
hr = ["group:hr"]
"hr/handbook" = ["*"]
"hr/handbook/drafts" = ["dave"]
"private/" = ["bob"]
"""

ALICE, BOB, CAROL, DAVE, OLGA = (Reader(name) for name in ("alice", "bob", "carol", "dave", "olga"))


def policy(text: str = RULES) -> Policy:
    return parse_policy(text, "access.toml")


# ---- who reads what -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reader, path, allowed",
    [
        (ALICE, "hr/pay.txt", True),
        (BOB, "hr/pay.txt", False),
        (BOB, "hr/handbook/leave.txt", True),  # a deeper folder lets in whom the outer one keeps out
        (BOB, "hr/handbook/old/leave.txt", True),  # a folder under the deepest listed one follows it
        (ALICE, "hr/handbook/drafts/new.txt", False),  # a deeper folder keeps out whom the outer one lets in
        (DAVE, "hr/handbook/drafts/new.txt", True),
        (DAVE, "hr/pay.txt", False),
        (BOB, "private/diary.txt", True),
        (ALICE, "private/diary.txt", False),
        (ALICE, "privateer/log.txt", False),  # a folder is not a prefix of a name
    ],
)
def test_the_deepest_listed_folder_that_holds_a_file_decides(reader, path, allowed):
    assert policy().may_read(reader, path) is allowed


def test_a_file_under_no_listed_folder_is_read_by_admins_only():
    rules = policy()
    for path in ("notes.txt", "misc/notes.txt", "hrx/pay.txt"):
        assert not rules.may_read(ALICE, path) and not rules.may_read(BOB, path), path
        assert rules.may_read(CAROL, path) and rules.may_read(OLGA, path), path
        assert rules.why(BOB, path) == (False, "no listed folder holds it: only admins read it")


def test_admins_are_named_or_in_an_admin_group_of_the_file_or_of_the_proxy():
    rules = policy()
    assert rules.why(CAROL, "hr/handbook/drafts/new.txt") == (True, "carol is an admin")
    assert rules.is_admin(OLGA)  # ops, by the file's [groups]
    assert rules.is_admin(Reader("zed", frozenset({"ops"})))  # ops, by the proxy's groups header
    assert not rules.is_admin(ALICE) and not rules.is_admin(Reader("zed", frozenset({"hr"})))
    assert rules.is_admin(EVERYTHING) and rules.may_read(EVERYTHING, "anything/at/all.txt")


def test_groups_come_from_the_file_and_from_the_reader():
    rules = policy()
    assert rules.may_read(ALICE, "hr/pay.txt")  # the file's [groups] put alice in hr
    assert rules.may_read(Reader("erin", frozenset({"hr", "x"})), "hr/pay.txt")  # the proxy put erin in hr
    assert not rules.may_read(Reader("erin", frozenset({"sales"})), "hr/pay.txt")
    assert not rules.may_read(Reader("hr"), "hr/pay.txt")  # a user named like the group is not in it
    assert rules.why(ALICE, "hr/pay.txt") == (True, 'folder "hr" is for group:hr (alice is in group:hr)')


def test_a_star_is_any_signed_in_user_but_not_an_anonymous_one():
    rules = policy()
    assert rules.may_read(Reader("someone-new"), "public/menu.txt")
    assert rules.why(BOB, "public/menu.txt") == (True, 'folder "public" is for * (bob is signed in)')
    assert not rules.may_read(ANONYMOUS, "public/menu.txt")
    assert not rules.may_read(Reader("", frozenset({"hr"})), "hr/pay.txt")  # groups without a name sign no one in
    assert rules.readable(ANONYMOUS, ["public/menu.txt", "hr/pay.txt"]) == Scope()


@pytest.mark.parametrize("root", [".", "", "/"])
def test_the_corpus_itself_is_the_folder_dot(root):
    rules = policy(f'[folders]\n"{root}" = ["bob"]\n"hr" = ["alice"]\n')
    assert rules.may_read(BOB, "notes.txt") and rules.may_read(BOB, "misc/deep/notes.txt")
    assert not rules.may_read(BOB, "hr/pay.txt") and rules.may_read(ALICE, "hr/pay.txt")
    assert not rules.may_read(ALICE, "notes.txt")
    assert rules.why(BOB, "notes.txt") == (True, 'folder "." is for bob (bob is named)')
    assert policy('[folders]\n"." = ["*"]\n').readable(BOB, ["a.txt", "b/c.txt"]) is None  # all: no scope at all


def test_without_an_access_file_everyone_reads_everything():
    assert access_from(None).policy() is OPEN
    assert OPEN.may_read(ANONYMOUS, "hr/pay.txt") and OPEN.readable(ANONYMOUS, ["hr/pay.txt"]) is None
    assert not OPEN.is_admin(BOB)


def test_the_rules_digest_changes_with_the_rules():
    assert policy().digest == policy().digest != policy(RULES.replace('"bob"', '"bert"')).digest


# ---- mistakes name their line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('admins = ["carol"]\n\n[folders]\nhr = ["alice" "bob"]\n', 4, "not valid TOML"),
        ('[folders]\nhr = ["alice"]\nhr = ["bob"]\n', 3, "not valid TOML"),  # the same key twice
        ('admins = ["carol"]\nfolder = {hr = ["bob"]}\n', 2, "unknown key 'folder'"),
        ('admins = "carol"\n', 1, "'admins' must be a list of names"),
        ('admins = ["carol", 7]\n', 1, "'admins' must be a list of names"),
        ('admins = ["carol"]\nfolders = ["hr"]\n', 2, "folders must be a table"),
        ('admins = ["carol"]\ngroups = "hr"\n', 2, "groups must be a table"),
        ('[groups]\n"h r" = ["alice"]\n', 2, "'h r' in [groups] is not a group name"),
        ('[groups]\nhr = ["group:ops"]\n', 2, "'group:ops' in 'hr' is not a user name"),
        ('[folders]\nhr = "alice"\n', 2, "'hr' must be a list of names"),
        ('[folders]\nhr = ["alice bob"]\n', 2, "'alice bob' in 'hr' is not a user name"),
        ('[folders]\nhr = ["group:"]\n', 2, "'group:' in 'hr' is not a user name"),
        ('[folders]\nhr = [""]\n', 2, "'' in 'hr' is not a user name"),
        ('[folders]\nhr = ["a,b"]\n', 2, "'a,b' in 'hr' is not a user name"),
        ('[folders]\n"/etc" = ["*"]\n', 2, "folder '/etc' must be relative to the corpus"),
        ('[folders]\n"hr/../x" = ["*"]\n', 2, "folder 'hr/../x' must be relative to the corpus"),
        ('[folders]\n"./hr" = ["*"]\n', 2, "folder './hr' must be relative to the corpus"),
        ('[folders]\n"hr\\\\x" = ["*"]\n', 2, "must be relative to the corpus"),
        ('[folders]\nhr = ["tab\\tbed"]\n', 2, "is not a user name"),
        ('[groups]\n"o\\tps" = ["olga"]\n', 2, "is not a group name"),
        ('[folders]\nhr = ["*"]\n"hr/" = ["bob"]\n', 3, "folder 'hr/' is listed twice"),
        ('[folders]\n"." = ["*"]\n"" = ["bob"]\n', 3, "is listed twice"),
        ('# the admins:\nadmins = ["carol", 7]\n', 2, "'admins' must be a list"),
        (
            '[groups]\nhr = ["alice"]\n\n[folders]\nhr = ["group:hr", "bad name"]\n',
            5,
            "'bad name' in 'hr' is not a user name",
        ),
        ('admins = ["group:ops"]\n\n[groups]\nops = ["o lga"]\n', 4, "'o lga' in 'ops'"),
    ],
)
def test_every_mistake_is_a_config_error_naming_its_line(text, line, message):
    with pytest.raises(ConfigError) as raised:
        policy(text)
    assert message in str(raised.value)
    assert f"line {line}" in str(raised.value) and "access.toml" in str(raised.value)


def test_an_unclosed_list_at_the_end_of_the_file_names_a_line():
    with pytest.raises(ConfigError, match=r"line \d"):
        policy('admins = ["carol"]\n[folders]\nhr = ["alice"\n')


def test_a_star_among_a_groups_members_is_refused():
    with pytest.raises(ConfigError, match="line 2"):
        policy('[groups]\nops = ["*"]\n')


# ---- the scope of a reader's searches ---------------------------------------------------------------------

USERS = ["u1", "u2", "u3", "u4"]
NAMES = ["a", "b", "c", "a_b", "ab"]  # "ab" starts like "a" and "a_b": a prefix is not a folder


def random_layout(rng: random.Random) -> tuple[Policy, list[str]]:
    """Some listed folders, nested up to three deep, each for a few users, groups or everyone; the root listed
    sometimes; documents at every depth, in listed folders and in others."""
    folders = {"/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 8))}
    if rng.random() < 0.3:
        folders.add(".")
    who = USERS + ["group:g1", "group:g2", "group:proxy", "*"]
    lines = ['admins = ["u4"]', "[groups]", 'g1 = ["u1", "u2"]', 'g2 = ["u3"]', "[folders]"]
    lines += [f'"{folder}" = {rng.sample(who, rng.randint(0, 3))}'.replace("'", '"') for folder in sorted(folders)]
    documents = {"/".join([*(rng.choice(NAMES) for _ in range(rng.randint(0, 4))), f"f{n}.txt"]) for n in range(60)}
    return parse_policy("\n".join(lines), "generated"), sorted(documents)


READERS = [Reader(user) for user in USERS] + [
    Reader("u5"),
    Reader("u5", frozenset({"proxy"})),
    Reader("u1", frozenset({"g2"})),
    ANONYMOUS,
    EVERYTHING,
]


@pytest.mark.parametrize("seed", range(40))
def test_a_readers_scope_allows_exactly_the_documents_they_may_read(seed):
    rules, documents = random_layout(random.Random(seed))
    for reader in READERS:
        scope = rules.readable(reader, documents)
        for path in documents:
            allowed = scope is None or scope.allows(path)
            assert allowed == rules.may_read(reader, path), (str(reader), path, rules.folders)


@pytest.mark.parametrize("seed", range(40))
def test_a_scope_never_allows_a_new_file_its_reader_may_not_read(seed):
    """A document added after the scope was made (not among those it was made from) is allowed only if readable."""
    rng = random.Random(seed)
    rules, documents = random_layout(rng)
    _, later = random_layout(rng)
    for reader in READERS:
        scope = rules.readable(reader, documents)
        for path in later:
            if scope is not None and scope.allows(path):
                assert rules.may_read(reader, path), (str(reader), path, rules.folders)


def test_a_scope_names_whole_folders_where_it_can_and_files_elsewhere():
    documents = ["public/a.txt", "public/b/c.txt", "hr/pay.txt", "hr/handbook/leave.txt", "hr/handbook/drafts/x.txt"]
    assert policy().readable(BOB, documents) == Scope(("hr/handbook/leave.txt",), ("private", "public"))
    assert policy().readable(DAVE, documents) == Scope((), ("hr/handbook", "public"))
    assert policy().readable(CAROL, documents) is None


# ---- the file, read again while serving -------------------------------------------------------------------


def rewrite(path: Path, text: str) -> None:
    """The file's new text, with a newer modification time (two writes within a clock tick could share one)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "access.toml"
    path.write_text('[folders]\npublic = ["*"]\n')
    return path


def test_a_changed_file_gives_new_rules_to_the_same_access(rules_file):
    access = Access(rules_file)
    assert not access.policy().may_read(BOB, "hr/pay.txt")
    rewrite(rules_file, '[folders]\npublic = ["*"]\nhr = ["bob"]\n')
    assert access.policy().may_read(BOB, "hr/pay.txt")
    rewrite(rules_file, '[folders]\npublic = ["*"]\nhr = ["al"]\n')  # as long as before: the time tells
    assert not access.policy().may_read(BOB, "hr/pay.txt") and access.policy().may_read(Reader("al"), "hr/pay.txt")


def test_a_file_made_malformed_while_serving_keeps_the_last_good_rules_and_logs_it(rules_file, caplog):
    access = Access(rules_file)
    rewrite(rules_file, '[folders]\npublic = ["*"]\nhr = ["bob"]\n')
    good = access.policy()
    rewrite(rules_file, '[folders]\npublic = ["*"]\nhr = ["bob", "not a name"]\n')
    with caplog.at_level(logging.WARNING, logger="assistant.access"):
        assert access.policy() == good and access.policy().may_read(BOB, "hr/pay.txt")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once for the bad version, not at every request
    assert "line 3" in warnings[0] and "the rules read before stay in force" in warnings[0]
    rewrite(rules_file, '[folders]\npublic = ["*"]\n')  # fixed: read again
    assert not access.policy().may_read(BOB, "hr/pay.txt")


def test_a_file_removed_while_serving_keeps_the_last_rules_until_it_is_back(rules_file, caplog):
    access = Access(rules_file)
    rewrite(rules_file, '[folders]\nhr = ["bob"]\n')
    assert access.policy().may_read(BOB, "hr/pay.txt")
    rules_file.unlink()
    with caplog.at_level(logging.WARNING, logger="assistant.access"):
        assert access.policy().may_read(BOB, "hr/pay.txt") and access.policy().may_read(BOB, "hr/pay.txt")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be read" in warnings[0]
    rules_file.write_text('[folders]\nhr = ["al"]\n')
    assert not access.policy().may_read(BOB, "hr/pay.txt")


def test_a_malformed_or_missing_file_refuses_to_start(tmp_path):
    path = tmp_path / "access.toml"
    path.write_text('admins = ["carol"]\n[folders]\nhr = ["bob", 3]\n')
    with pytest.raises(ConfigError, match=r"ASSISTANT_ACCESS file .*access.toml, line 3: 'hr' must be a list"):
        Access(path)
    with pytest.raises(ConfigError, match="cannot be read .* point ASSISTANT_ACCESS at the permissions file"):
        Access(tmp_path / "missing.toml")
    path.write_bytes(b'[folders]\nhr = ["b\xffob"]\n')
    with pytest.raises(ConfigError, match="cannot be read"):
        Access(path)


def test_a_readers_scope_names_folders_not_thousands_of_files():
    """Kept out of one folder under a corpus open to all, a reader's scope is the other folders, not their files:
    the stores filter by a few ranges (FAISS) or LIKE prefixes (Milvus) rather than by every name."""
    rules = policy('[folders]\n"." = ["*"]\n"hr" = ["group:hr"]\n"hr/open" = ["*"]\n')
    documents = [f"team{t}/sub{s}/doc{d}.txt" for t in range(10) for s in range(5) for d in range(40)]
    documents += ["hr/pay.txt", "hr/open/rules.txt", "hrx/a.txt", "top.txt"]
    scope = rules.readable(BOB, documents)
    assert scope == Scope(("top.txt",), ("hr/open", "hrx", *sorted(f"team{t}" for t in range(10))))
    assert all(scope.allows(path) == rules.may_read(BOB, path) for path in documents)


def test_a_star_among_the_admins_is_refused():
    with pytest.raises(ConfigError, match='line 1: "\\*" in admins would make every user an admin'):
        policy('admins = ["*"]\n')
