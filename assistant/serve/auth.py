"""Who may use the assistant: users with scrypt password hashes, and a bearer token for the API."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ..errors import ConfigError

_N, _R, _P = 2**14, 8, 1  # scrypt cost: about 20 ms and 16 MB per check


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64), the form of a line's hash in an ASSISTANT_USERS file."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def load_users(spec: str) -> dict[str, str]:
    """ASSISTANT_USERS: a file of `user:hash` lines, or one `user:password` (hashed here, kept in memory only)."""
    path = Path(spec).expanduser()
    if path.is_file():
        users = dict(
            _parse_line(line, path)
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        if not users:
            raise ConfigError(
                f"ASSISTANT_USERS file {path} has no user:hash line — make one with: assistant hash-password USER"
            )
        return users
    if ":" in spec and "/" not in spec:
        user, password = spec.split(":", 1)
        if user and password:
            return {user: hash_password(password)}
    shown = spec.split(":", 1)[0] + ":…" if ":" in spec else spec  # what follows a colon may be a password
    raise ConfigError(
        f"ASSISTANT_USERS={shown!r} is neither a file of user:hash lines nor user:password "
        "(a password with a / goes in a file: assistant hash-password USER)"
    )


def check_user(users: dict[str, str], user: str, password: str) -> bool:
    """Whether the password is the user's. An unknown name is checked against a hash of nothing, at the same
    cost: how long a refusal takes never tells which names exist."""
    stored = users.get(user)
    if stored is None:
        verify_password(password, _unknown_user_hash())
        return False
    return verify_password(password, stored)


@functools.cache
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_hex(16))


def check_token(expected: str, authorization: str | None) -> bool:
    """A constant-time comparison of `Authorization: Bearer <token>` with the expected token."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def _parse_line(line: str, path: Path) -> tuple[str, str]:
    user, _, stored = line.strip().partition(":")
    if not user or not stored.startswith("scrypt$"):
        raise ConfigError(
            f"bad line in {path}: expected user:scrypt$... — make one with: assistant hash-password {user or 'USER'}"
        )
    return user, stored


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
