"""Who may read what: the folder permissions of the ASSISTANT_ACCESS file, and the reader a request comes from."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .index.store import Scope

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the virtualenv runs 3.11
    import tomli as tomllib

log = logging.getLogger(__name__)

EVERY_USER = "*"  # in a folder's list: every signed-in user
GROUP = "group:"  # in a list: the members of a group (of the file's [groups], or named by the proxy's header)
_ROOT = {"", ".", "/"}  # the corpus itself, as a folder's name
_NAME = re.compile(r"[^\s:,\x00-\x1f\x7f]+")  # a user or group name: no spaces, colons, commas or controls
_KEYS = {"admins", "groups", "folders"}


@dataclass(frozen=True)
class Reader:
    """Who asks. `everything`: the machine's own command line, or the service token, which read every document.
    `groups`: those the sign-in named (a proxy's groups header); the file's [groups] add theirs."""

    name: str = ""
    groups: frozenset[str] = frozenset()
    everything: bool = False

    def __str__(self) -> str:
        return "the service" if self.everything else (self.name or "an anonymous user")


EVERYTHING = Reader(everything=True)
ANONYMOUS = Reader()


@dataclass(frozen=True)
class Policy:
    """The rules of one ASSISTANT_ACCESS file. `folders` maps a folder relative to the corpus ("" for the corpus
    itself) to who may read the files under it; the deepest listed folder that holds a file decides, and a file
    under none is read by admins only. Without a file (`open`), every reader reads everything."""

    admins: tuple[str, ...] = ()
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    folders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    open: bool = False
    digest: str = ""  # changes with the rules: part of what answers are cached by

    def is_admin(self, reader: Reader) -> bool:
        return reader.everything or (not self.open and self._names(reader, self.admins))

    def decider(self, path: str) -> str | None:
        """The deepest listed folder that holds `path` (a file's path relative to the corpus), None for none."""
        parts = path.split("/")[:-1]
        for depth in range(len(parts), -1, -1):
            folder = "/".join(parts[:depth])
            if folder in self.folders:
                return folder
        return None

    def public(self, path: str) -> bool:
        """Whether every signed-in user may read the file at `path` (what the chat may show to anyone)."""
        folder = self.decider(path)
        return self.open or (folder is not None and EVERY_USER in self.folders[folder])

    def may_read(self, reader: Reader, path: str) -> bool:
        return self.why(reader, path)[0]

    def why(self, reader: Reader, path: str) -> tuple[bool, str]:
        """Whether `reader` may read the file at `path`, and the rule that says so."""
        if self.open:
            return True, "there is no ASSISTANT_ACCESS file: every signed-in user reads everything"
        if self.is_admin(reader):
            return True, f"{reader} is an admin"
        folder = self.decider(path)
        if folder is None:
            return False, "no listed folder holds it: only admins read it"
        listed = ", ".join(self.folders[folder]) or "nobody"
        match = self._match(reader, self.folders[folder])
        how = {EVERY_USER: "is signed in", reader.name: "is named"}.get(match or "", f"is in {match}")
        named = f" ({reader} {how})" if match else ""
        return match is not None, f'folder "{folder or "."}" is for {listed}{named}'

    def reads_all(self, reader: Reader) -> bool:
        """Whether `reader` may read every file, whatever the corpus holds: no rules, an admin, or the corpus itself
        listed for them with every folder under it."""
        if self.open or self.is_admin(reader):
            return True
        return "" in self.folders and all(self._names(reader, who) for who in self.folders.values())

    def readable(self, reader: Reader, documents: Collection[str]) -> Scope | None:
        """What `reader` may read among `documents` as a search scope; None: all of them. As few terms as the rules
        allow, so that a store filters by a few folders rather than by thousands of names: a listed folder whose
        listed subfolders are all allowed too is one folder; a readable document's folder is taken whole, as high
        up as no listed folder lies inside it (its files all follow the same rule); the rest are named."""
        if self.reads_all(reader):
            return None
        allowed = {folder for folder, who in self.folders.items() if self._names(reader, who)}
        whole = {f for f in allowed if all(g in allowed for g in self.folders if _inside(g, f))}
        holding = {ancestor for folder in self.folders for ancestor in _ancestors(folder)}  # a listed one inside
        folders, named = set(whole), []
        for path in documents:
            decider = self.decider(path)
            if decider not in allowed or any(path.startswith(f + "/") for f in whole):
                continue
            parts = path.split("/")[:-1]
            depth = max(len(decider.split("/")) if decider else 0, 1)
            top = next(
                ("/".join(parts[:d]) for d in range(depth, len(parts) + 1) if "/".join(parts[:d]) not in holding), None
            )
            if top is None:
                named.append(path)
            else:
                folders.add(top)
        folders = {f for f in folders if not any(_inside(f, outer) for outer in folders)}
        return Scope(tuple(sorted(named)), tuple(sorted(folders)))

    def _names(self, reader: Reader, listed: Collection[str]) -> bool:
        return self._match(reader, listed) is not None

    def _match(self, reader: Reader, listed: Collection[str]) -> str | None:
        """The first entry of `listed` (names, "group:NAME" or "*") that names the reader; None for none."""
        if not reader.name:
            return None
        for entry in listed:
            if entry == EVERY_USER or entry == reader.name:
                return entry
            group = entry[len(GROUP) :] if entry.startswith(GROUP) else None
            if group and (group in reader.groups or reader.name in self.groups.get(group, ())):
                return entry
        return None


OPEN = Policy(open=True, digest="open")


def _ancestors(folder: str) -> list[str]:
    """The folders strictly above `folder`, the corpus ("") included."""
    parts = folder.split("/") if folder else []
    return ["/".join(parts[:depth]) for depth in range(len(parts))]


def _inside(folder: str, outer: str) -> bool:
    """Whether `folder` lies strictly under `outer` ("" being the corpus)."""
    return folder != outer and (outer == "" or folder.startswith(outer + "/"))


def parse_policy(text: str, where: str) -> Policy:
    """The rules of an ASSISTANT_ACCESS file's text; ConfigError naming the line of the first mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        at = "" if "line" in str(err) else f", line {len(text.splitlines())}"  # "at end of document"
        raise ConfigError(f"{where}{at} is not valid TOML ({err}) — fix it (docs/permissions.md)") from None
    rules = _Rules(text, where)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise rules.mistake(None, unknown[0], f"unknown key {unknown[0]!r} (the keys are admins, [groups], [folders])")
    admins = rules.names(None, "admins", data.get("admins", []))
    if EVERY_USER in admins:
        raise rules.mistake(None, "admins", '"*" in admins would make every user an admin — name them, or a group')
    groups = {
        rules.group(name): frozenset(rules.names("groups", name, members, groups=False))
        for name, members in rules.table(data, "groups").items()
    }
    folders: dict[str, tuple[str, ...]] = {}
    for folder, who in rules.table(data, "folders").items():
        key = rules.folder(folder)
        if key in folders:
            raise rules.mistake("folders", folder, f"folder {folder!r} is listed twice")
        folders[key] = tuple(rules.names("folders", folder, who))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Policy(tuple(admins), groups, folders, digest=digest)


_HEADER = re.compile(r"\s*\[\s*([^\]]*?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


class _Rules:
    """The checks of an access file's values, each mistake told with the line of the key it is under."""

    def __init__(self, text: str, where: str) -> None:
        self.text, self.where = text, where

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise self.mistake(None, key, f"{key} must be a table: [{key}]")
        return table

    def names(self, table: str | None, key: str, value: Any, groups: bool = True) -> list[str]:
        """A list of user names (and, where `groups`, "group:NAME" and "*")."""
        if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
            raise self.mistake(table, key, f'{key!r} must be a list of names, like ["alice", "group:hr"]')
        for entry in value:
            name = entry[len(GROUP) :] if groups and entry.startswith(GROUP) else entry
            if groups and entry == EVERY_USER:
                continue
            if not _NAME.fullmatch(name) or name.startswith(EVERY_USER):
                kinds = 'a user name, "group:NAME" or "*"' if groups else "a user name"
                raise self.mistake(table, key, f"{entry!r} in {key!r} is not {kinds}")
        return list(value)

    def group(self, name: str) -> str:
        if not _NAME.fullmatch(name) or name.startswith(EVERY_USER):
            raise self.mistake(
                "groups", name, f"{name!r} in [groups] is not a group name (no spaces, colons or commas)"
            )
        return name

    def folder(self, folder: str) -> str:
        """A folder relative to the corpus, "/"-separated, without a trailing "/"; "" for the corpus itself."""
        if folder in _ROOT:
            return ""
        clean = folder.rstrip("/")
        parts = clean.split("/")
        if folder.startswith("/") or "\\" in folder or any(part in ("", ".", "..") for part in parts):
            what = f'folder {folder!r} must be relative to the corpus, like "hr" or "hr/2024"'
            raise self.mistake("folders", folder, what)
        return clean

    def mistake(self, table: str | None, key: str, what: str) -> ConfigError:
        """ConfigError naming the line where `key` is set in `table` (None: at the top); its last setting, as a
        key given twice is the mistake at its second place."""
        found = None
        current: str | None = None
        for number, row in enumerate(self.text.splitlines(), start=1):
            if header := _HEADER.match(row):
                current = header[1]
            elif current == table and (given := _KEY.match(row)) and _key(given[1]) == key:
                found = number
        return ConfigError(f"{self.where}{f', line {found}' if found else ''}: {what} — fix it (docs/permissions.md)")


def _key(raw: str) -> str:
    """A TOML key as written (bare, "quoted" with escapes, or 'literal') as the parser reads it."""
    if raw[0] in "\"'":
        try:
            return str(tomllib.loads(f"k = {raw}")["k"])
        except tomllib.TOMLDecodeError:
            return raw
    return raw


class Access:
    """The ASSISTANT_ACCESS file, read again when it changes: a server picks up new rules at the next request,
    without a restart. A file that cannot be read refuses to start; one that turns bad while serving is logged
    and the last good rules stay."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None if path is None else self._stat()
        self._policy = OPEN if path is None else self._read()

    def policy(self) -> Policy:
        if self.path is None:
            return OPEN
        with self._lock:
            try:
                seen: tuple[int, int, int] | None = self._stat()
            except ConfigError as err:
                seen = None
                if self._seen is not None:  # logged once, not at every request
                    log.warning("%s — the rules read before stay in force", err)
            if seen is not None and seen != self._seen:
                try:
                    self._policy = self._read()
                except ConfigError as err:
                    log.warning("%s — the rules read before stay in force", err)
            self._seen = seen
            return self._policy

    def _stat(self) -> tuple[int, int, int]:
        assert self.path is not None
        try:
            stat = self.path.stat()
        except OSError as err:
            raise ConfigError(
                f"ASSISTANT_ACCESS file {self.path} cannot be read ({err.strerror}) — point ASSISTANT_ACCESS at "
                "the permissions file, or unset it"
            ) from None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _read(self) -> Policy:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"ASSISTANT_ACCESS file {self.path} cannot be read ({err}) — fix it or unset it"
            ) from None
        policy = parse_policy(text, f"ASSISTANT_ACCESS file {self.path}")
        log.info("permissions from %s: %d folders, %d admins", self.path, len(policy.folders), len(policy.admins))
        return policy


def access_from(path: str | os.PathLike[str] | None) -> Access:
    return Access(Path(path).expanduser() if path else None)
