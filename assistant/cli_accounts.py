"""The commands that manage who may use the assistant: `access check`, `hash-password` and `token`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .access import Reader
from .config import Settings
from .documents import printable
from .errors import AssistantError, ConfigError
from .question import read_sources

if TYPE_CHECKING:
    from .serve.tokens import TokenFile


def add_account_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """`access`, `hash-password` and `token`, as subcommands of `sub`; `common`: the options every command reading
    the corpus or the index takes."""
    access = sub.add_parser("access", help="check the folder permissions of ASSISTANT_ACCESS")
    access_sub = access.add_subparsers(dest="access_command", metavar="ACTION", required=True)
    check = access_sub.add_parser(
        "check", parents=[common], help="whether USER may read PATH, and why (exit 0: may read, 1: may not, 2: error)"
    )
    check.add_argument("user", help="the user name")
    check.add_argument("path", help="a file's path relative to the corpus, as `assistant status` lists it")
    check.add_argument(
        "--group", action="append", dest="groups", metavar="NAME", help="a group the user belongs to (repeatable)"
    )
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(handler=_access_check)

    hasher = sub.add_parser("hash-password", help="print a user:hash line for an ASSISTANT_USERS file")
    hasher.add_argument("user", help="the user name")
    hasher.set_defaults(handler=_hash_password)
    _add_token_commands(sub)


def _add_token_commands(sub: argparse._SubParsersAction) -> None:
    token = sub.add_parser("token", help="create, list and revoke the API tokens of an ASSISTANT_TOKENS file")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="print a new token for a user (shown once) and store its hash")
    create.add_argument("user", help="the user name the token acts as")
    create.set_defaults(handler=_token_create)
    listing = actions.add_parser("list", help="print each token's id and user (never a token or a hash)")
    listing.add_argument("--json", action="store_true", help='print a JSON list of {"id": ..., "user": ...}')
    listing.set_defaults(handler=_token_list)
    revoke = actions.add_parser("revoke", help="remove a token, by its id; the server refuses it from then on")
    revoke.add_argument("token_id", metavar="TOKEN-ID", help="the id that assistant token list shows")
    revoke.set_defaults(handler=_token_revoke)


def _access_check(settings: Settings, args: argparse.Namespace) -> int:
    """Whether a user may read a file by the rules of ASSISTANT_ACCESS: exit 0 if so, 1 if not, 2 on an error."""
    from .access import access_from

    try:
        (path,) = read_sources([args.path])
        policy = access_from(settings.access).policy()
    except AssistantError as err:
        print(f"assistant: {err}", file=sys.stderr)
        return 2
    allowed, why = policy.why(Reader(args.user, frozenset(args.groups or ())), path)
    if args.json:
        print(json.dumps({"user": args.user, "path": path, "allowed": allowed, "why": why}, ensure_ascii=False))
    else:
        print(f"{printable(args.user)} {'may' if allowed else 'may not'} read {printable(path)}: {why}")
    return 0 if allowed else 1


def _hash_password(settings: Settings, args: argparse.Namespace) -> int:
    """The password comes from a prompt, or from the first line of stdin when it is not a terminal."""
    import getpass

    from .serve.auth import hash_password

    password = (
        getpass.getpass(f"password for {args.user}: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    )
    if not password or ":" in args.user:
        print("assistant: the password must not be empty and the user name must not contain ':'", file=sys.stderr)
        return 2
    print(f"{args.user}:{hash_password(password)}")
    return 0


def _token_file(settings: Settings) -> TokenFile:
    from .serve.tokens import TokenFile  # here, not at the top: importing serve/ loads Gradio

    if not settings.tokens:
        raise ConfigError("ASSISTANT_TOKENS is not set — set it to a file path, e.g. ASSISTANT_TOKENS=tokens.txt")
    return TokenFile(Path(settings.tokens).expanduser())


def _token_create(settings: Settings, args: argparse.Namespace) -> int:
    """The token goes to stdout alone, so that `$(assistant token create ana)` is the token."""
    tokens = _token_file(settings)
    print(tokens.create(args.user))
    print(f"a token for {args.user}, shown only this once; its hash is in {tokens.path}", file=sys.stderr)
    return 0


def _token_list(settings: Settings, args: argparse.Namespace) -> int:
    entries = _token_file(settings).list()
    if args.json:
        print(json.dumps([{"id": e.id, "user": e.user} for e in entries], ensure_ascii=False))
        return 0
    for entry in entries:
        print(f"{entry.id}\t{entry.user}")
    return 0


def _token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    tokens = _token_file(settings)
    tokens.revoke(args.token_id)
    print(f"revoked token {args.token_id} in {tokens.path}", file=sys.stderr)
    return 0
