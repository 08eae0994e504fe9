"""Per-user API tokens: a file of `user:token-id:scrypt-hash` lines, managed with `assistant token`."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError
from .auth import check_user, hash_password

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"qa_([0-9a-f]{12})_[A-Za-z0-9_-]{16,}")  # qa_<token-id>_<secret>
_TOKEN_ID = re.compile(r"[0-9a-f]{12}")
_Signature = tuple[int, int, int]  # (mtime_ns, size, inode): a change of any means the file was rewritten


@dataclass(frozen=True)
class TokenEntry:
    """One line of the file, as `assistant token list` shows it; the hash never leaves this module."""

    id: str
    user: str


@dataclass(frozen=True)
class _Line:
    number: int  # from 1, as an editor shows it
    user: str
    stored: str


@dataclass(frozen=True)
class _Snapshot:
    """One version of the file: each token id's user and hash, and the tokens already verified (sha256 -> user)."""

    signature: _Signature | None
    users: dict[str, str]
    hashes: dict[str, str]
    verified: dict[bytes, str] = field(default_factory=dict)

    @classmethod
    def of(cls, signature: _Signature | None, lines: dict[str, _Line]) -> _Snapshot:
        return cls(
            signature, {i: line.user for i, line in lines.items()}, {i: line.stored for i, line in lines.items()}
        )


class TokenFile:
    """The ASSISTANT_TOKENS file. Re-read when it changes on disk, so a revoke holds from the next request on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.of(_signature(path), _parse(self._read(), path))

    def user_of(self, token: str) -> str | None:
        """The user a token acts as, or None. One scrypt check the first time (an unknown id costs the same), then
        none until the file changes."""
        found = _TOKEN.fullmatch(token)
        if not found:
            return None  # the token's form is public: refusing it early tells nothing about the file
        snapshot = self._current()
        key = hashlib.sha256(token.encode()).digest()
        if key in snapshot.verified:
            return snapshot.verified[key]
        # the ids are check_user's names: an unknown id is checked against a hash of nothing, at the same cost
        if not check_user(snapshot.hashes, found[1], token):
            return None
        user = snapshot.verified[key] = snapshot.users[found[1]]  # this version's cache: a reload starts empty
        return user

    def create(self, user: str) -> str:
        """A new token for the user, appended to the file; the token itself is returned, and stored nowhere."""
        _check_user_name(user)
        token_id, token = _new_token()
        stored = f"{user}:{token_id}:{hash_password(token)}"
        text = self._read()
        _parse(text, self.path)  # never append to a file that is already broken
        self._write(text + ("" if text.endswith("\n") or not text else "\n") + stored + "\n")
        return token

    def list(self) -> list[TokenEntry]:
        return [TokenEntry(token_id, user) for token_id, user in self._current().users.items()]

    def revoke(self, token_id: str) -> None:
        text = self._read()
        lines = _parse(text, self.path)
        if token_id not in lines:
            raise ConfigError(f"no token with id {token_id!r} in {self.path} — run: assistant token list")
        kept = [line for n, line in enumerate(text.splitlines(keepends=True), 1) if n != lines[token_id].number]
        self._write("".join(kept))

    def _current(self) -> _Snapshot:
        with self._lock:
            signature = _signature(self.path)
            if signature != self._snapshot.signature:
                self._snapshot = self._reload(signature)
            return self._snapshot

    def _reload(self, signature: _Signature | None) -> _Snapshot:
        try:  # a removed file holds no tokens: every one is revoked
            return _Snapshot.of(signature, _parse(self._read(), self.path))
        except ConfigError as err:
            # the tokens of the last good version hold until the file is fixed; warned once per version
            log.warning("%s; until then the tokens read before still hold", err)
            return replace(self._snapshot, signature=signature)

    def _read(self) -> str:
        """The file's text; none yet is no tokens yet (`assistant token create` makes it)."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read the tokens file {self.path}: {err} — check ASSISTANT_TOKENS") from None

    def _write(self, text: str) -> None:
        """Replaces the file in one step: a reader sees the old lines or the new ones, never half of them."""
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), mode)
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as err:
            Path(temp).unlink(missing_ok=True)
            raise ConfigError(f"cannot write the tokens file {self.path}: {err} — check ASSISTANT_TOKENS") from None


def _new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(6)
    return token_id, f"qa_{token_id}_{secrets.token_urlsafe(32)}"


def _plain(user: str) -> bool:
    # a ':' would split the line wrongly, and a leading '#' would make it a comment
    return (
        bool(user) and not user.startswith("#") and all(c != ":" and c.isprintable() and not c.isspace() for c in user)
    )


def _check_user_name(user: str) -> None:
    if not _plain(user):
        raise ConfigError(
            f"bad user name {user!r}: it must be a plain name, without ':', spaces or control characters "
            "and not starting with '#' — e.g. assistant token create alice"
        )


def _parse(text: str, path: Path) -> dict[str, _Line]:
    lines: dict[str, _Line] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        user, _, rest = raw.strip().partition(":")
        token_id, _, stored = rest.partition(":")
        well_formed = _plain(user) and _TOKEN_ID.fullmatch(token_id) is not None and stored.startswith("scrypt$")
        if not well_formed or token_id in lines:
            why = "expected user:token-id:scrypt$..." if not well_formed else f"token id {token_id} comes twice"
            raise ConfigError(
                f"bad line {number} in {path}: {why} — fix or delete it (new tokens: assistant token create USER)"
            )
        lines[token_id] = _Line(number, user, stored)
    return lines


def _signature(path: Path) -> _Signature | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino
