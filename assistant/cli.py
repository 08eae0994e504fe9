"""The `assistant` command: build, ask, status, serve (and cli_accounts.py's). Thin over the library; errors become one
stderr line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .access import EVERYTHING, Reader
from .cli_accounts import add_account_commands
from .config import MODES, PRECISIONS, STORES, Settings
from .documents import printable
from .errors import AssistantError, QueryError
from .question import MAX_HISTORY, clean_query, read_sources

log = logging.getLogger(__name__)
_LISTED = 20  # documents listed by `assistant status`
LOADING_NOTICE = 1.0  # seconds of loading before `ask` says on stderr what it is doing
# the options that set a Settings field of the same name (the rest choose what a command does: -k, --json, ...)
SETTING_OPTIONS = (
    "corpus",
    "index",
    "model",
    "store",
    "milvus_uri",
    "milvus_collection",
    "precision",
    "mode",
    "host",
    "port",
    "root_path",
    "workers",
    "watch",
    "server",
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _log_to_stderr(args.verbose)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    return report_errors(lambda: args.handler(settings_from(args), args))


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings a command runs with: ASSISTANT_* variables, overridden by the options given on the command line.
    Every option of _parser() that is a setting has the setting's name as its `dest`."""
    overrides = {name: getattr(args, name, None) for name in SETTING_OPTIONS}
    return Settings.from_env(**overrides)


class _Stderr(logging.StreamHandler):
    """The CLI's own handler, told apart from any other on the root logger (a test runner's, say)."""


def _log_to_stderr(verbose: bool) -> None:
    """The assistant's own log lines on stderr (INFO and up with -v, else WARNING and up). Libraries' log lines
    and Python warnings (pypdf's "EOF marker not found", BeautifulSoup's XMLParsedAsHTMLWarning, ...) show only
    with -v: a build prints its progress, the skipped files and its summary, nothing else."""
    handler = _Stderr(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(
        lambda record: record.name.split(".")[0] == "assistant" or (verbose and record.levelno >= logging.INFO)
    )
    root = logging.getLogger()
    for earlier in [h for h in root.handlers if isinstance(h, _Stderr)]:  # main() ran before in this process
        root.removeHandler(earlier)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)


def report_errors(run: Callable[[], int]) -> int:
    """The edge where library errors become one stderr line and an exit code, without a traceback."""
    try:
        return run()
    except AssistantError as err:
        print(f"assistant: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("assistant: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", type=Path, help="documents folder (default: corpus/, or ASSISTANT_CORPUS)")
    common.add_argument("--index", type=Path, help="index folder (default: index/, or ASSISTANT_INDEX)")
    common.add_argument(
        "--model", help="sentence-transformers name or folder (default: all-MiniLM-L6-v2, or ASSISTANT_MODEL)"
    )
    common.add_argument(
        "--store",
        choices=STORES,
        help="where the index lives: faiss (files in the index folder) or milvus (default faiss, or ASSISTANT_STORE)",
    )
    common.add_argument(
        "--milvus-uri",
        help="Milvus server (http://host:19530) or Milvus Lite file "
        "(default <index>/milvus.db, or ASSISTANT_MILVUS_URI); the token comes from ASSISTANT_MILVUS_TOKEN",
    )
    common.add_argument(
        "--milvus-collection",
        help="name the Milvus collections start with (default assistant, or ASSISTANT_MILVUS_COLLECTION)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what is happening")
    embeds = argparse.ArgumentParser(add_help=False)  # the commands that run the model
    embeds.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="model arithmetic: auto (builds in bf16 if the CPU has it natively, else onnx; questions in onnx), "
        "fp32, bf16, or onnx (fp32 run by ONNX Runtime) (default auto, or ASSISTANT_PRECISION)",
    )
    parser = argparse.ArgumentParser(prog="assistant", description="Offline document Q&A over the files in a folder.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.set_defaults(
        command=None,
        verbose=False,
        corpus=None,
        index=None,
        model=None,
        store=None,
        milvus_uri=None,
        milvus_collection=None,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    build = sub.add_parser("build", parents=[common, embeds], help="index the corpus (only new and changed files)")
    build.add_argument("--rebuild", action="store_true", help="re-embed every document")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.set_defaults(handler=_build)

    ask = sub.add_parser("ask", parents=[common, embeds], help="ask a question (or read questions from stdin)")
    ask.add_argument("words", nargs="*", help="the question; without it, one question per line on stdin")
    ask.add_argument("-k", type=int, default=5, help="passages to return (default 5; capped at the chunk count)")
    ask.add_argument(
        "--mode", choices=MODES, help="retrieval: dense, bm25 or hybrid (default hybrid, or ASSISTANT_MODE)"
    )
    ask.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="PATH",
        help="search only this document or folder, relative to the corpus (repeat for more; default: all)",
    )
    ask.add_argument("--json", action="store_true", help="print one JSON object per question (JSON Lines)")
    ask.add_argument(
        "--server",
        metavar="URL",
        help="ask the assistant served at URL (its chat's address) instead of loading the index here "
        "(or ASSISTANT_URL); credentials: ASSISTANT_API_TOKEN, or ASSISTANT_USER and ASSISTANT_PASSWORD",
    )
    ask.add_argument(
        "--chat",
        action="store_true",
        help="read stdin as one conversation: each line may follow up the lines before it; an empty line starts "
        "a new topic",
    )
    ask.add_argument(
        "--as",
        dest="reader",
        metavar="USER",
        help="answer as USER would be answered: only from what ASSISTANT_ACCESS lets them read (default: everything)",
    )
    ask.add_argument(
        "--group",
        action="append",
        dest="groups",
        metavar="NAME",
        help="with --as: a group the user belongs to as a sign-in proxy would name it (repeat for more)",
    )
    ask.set_defaults(handler=_ask)

    status = sub.add_parser("status", parents=[common], help="what the index holds and what changed since")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)

    serve = sub.add_parser("serve", parents=[common, embeds], help="run the web app")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1, or ASSISTANT_HOST)")
    serve.add_argument("--port", type=int, help="port (default 7860, or ASSISTANT_PORT)")
    serve.add_argument(
        "--root-path", help="prefix behind a reverse proxy, e.g. /qa (default none, or ASSISTANT_ROOT_PATH)"
    )
    serve.add_argument("--workers", type=int, help="questions answered at once (default 2, or ASSISTANT_WORKERS)")
    serve.add_argument(
        "--watch",
        action="store_true",
        default=None,  # absent: ASSISTANT_WATCH decides
        help="index the corpus's changes as they happen, a few seconds after they settle (or ASSISTANT_WATCH=1)",
    )
    serve.set_defaults(handler=_serve)

    add_account_commands(sub, common)
    return parser


def _build(settings: Settings, args: argparse.Namespace) -> int:
    from .service import Assistant

    summary = Assistant(settings).build_in_terminal(rebuild=args.rebuild)
    if args.json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print("\n".join(summary.lines()))
    return 0


def _ask(settings: Settings, args: argparse.Namespace) -> int:
    if args.k < 1:
        print(f"assistant: -k must be at least 1 (got {args.k})", file=sys.stderr)
        return 2
    try:
        sources = read_sources(args.sources or [])
    except QueryError as err:
        print(f"assistant: --source: {err}", file=sys.stderr)
        return 2
    if args.groups and not args.reader:
        print("assistant: --group needs --as USER: the groups are those of the user asked as", file=sys.stderr)
        return 2
    if settings.server and args.reader:
        print("assistant: --as answers from this machine's index; a server answers as its credentials' user "
              "(ASSISTANT_API_TOKEN, or ASSISTANT_USER and ASSISTANT_PASSWORD)", file=sys.stderr)  # fmt: skip
        return 2
    answer_of = _asked_of_server(settings, args, sources) if settings.server else _asked_here(settings, args, sources)
    history: list[str] = []
    for question in _questions(args.words, args.chat):
        if not question:  # --chat: a new topic
            history.clear()
            continue
        found, answer = answer_of(question, history)
        if args.chat:
            history = [*history, question][-MAX_HISTORY:]
        if args.json:
            print(json.dumps(found, ensure_ascii=False), flush=True)
        else:
            print(_format_answer(answer), flush=True)
    return 0


Asked = Callable[[str, list[str]], tuple[dict, Any]]  # a question and its history -> (its JSON, its Answer)


def _asked_here(settings: Settings, args: argparse.Namespace, sources: tuple[str, ...]) -> Asked:
    """Questions answered in this process: the index and the models are loaded here (a few seconds, said on
    stderr when it takes over LOADING_NOTICE seconds)."""
    from .service import Assistant

    notice = threading.Timer(LOADING_NOTICE, _say_loading)
    notice.daemon = True
    notice.start()
    assistant = Assistant(settings)
    assistant.index()  # a missing or mismatched index fails before any question is read
    reader = Reader(args.reader, frozenset(args.groups or ())) if args.reader else EVERYTHING
    if sources:
        assistant.scope(sources, reader)  # and so does a source that is not in it (or not the reader's)

    def asked(question: str, history: list[str]) -> tuple[dict, Any]:
        answer = assistant.ask(question, args.k, sources=sources, history=history, reader=reader)
        notice.cancel()
        return answer.to_json(), answer

    return asked


def _asked_of_server(settings: Settings, args: argparse.Namespace, sources: tuple[str, ...]) -> Asked:
    """Questions asked of the server at settings.server (cli_remote.py): nothing is loaded here."""
    from .answers import Answer
    from .cli_remote import Server

    server = Server(settings)

    def asked(question: str, history: list[str]) -> tuple[dict, Any]:
        clean_query(question)  # an empty or too long question: the same message as in-process, with no call
        found = server.ask(question, args.k, args.mode, sources, history)
        return found, None if args.json else Answer.from_json(found)

    return asked


def _say_loading() -> None:
    print(
        "assistant: loading the index and the models (a few seconds; `--server URL` asks a running server instead)",
        file=sys.stderr,
        flush=True,
    )


def _questions(words: list[str], chat: bool = False) -> Iterator[str]:
    """The question of the words, else one per line of stdin; with `chat`, an empty line too (a new topic)."""
    if words:
        yield " ".join(words)
        return
    for line in sys.stdin:
        if line.strip() or chat:
            yield line.strip()


def _format_answer(answer) -> str:
    lines = [f"Q: {answer.question}"]
    if answer.sources:
        lines.append("Within: " + ", ".join(map(printable, answer.sources)))
    if answer.no_answer:
        lines.append(f"Not in the documents: nothing found answers this question ({answer.why_none()}).")
        lines.append("Closest passages, not an answer:" if answer.passages else "The index is empty.")
    elif answer.confidence == "low":
        lines.append("Low confidence: the documents may not answer this question; check the passages.")
    if answer.answer:
        number = {p.chunk_id: i for i, p in enumerate(answer.passages, start=1)}
        for index, group in enumerate(answer.answer.groups or [None]):
            items = group.items if group else answer.answer.items
            where = f" from {printable(group.source)}" if group and len(answer.answer.groups) > 1 else ""
            head = f"Answer ({answer.answer.category or answer.answer.type}){where}:" if index == 0 else f"Also{where}:"
            lines.append(head)
            for item in items:
                cites = "".join(f"[{number[c]}]" for c in item.passages if c in number)
                lines.append(f"  - {item.text}" + (f" — {item.role}" if item.role else "") + f" {cites}")
    for rank, p in enumerate(answer.passages, start=1):
        where = printable(p.source) + (f", page {p.page}" if p.page is not None else "")
        where += (f" › {printable(p.section)}" if p.section else "") + (" (read by OCR)" if p.ocr else "")
        lines.append(f"[{rank}] {where}  (score {p.score:.3f})")
        lines.extend("    " + line for line in p.text.splitlines() if line.strip())
    return "\n".join(lines) + "\n"


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from .service import Assistant

    assistant = Assistant(settings)
    status = assistant.status()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
        return 0
    where = f"{status['index']}/" if status["store"] == "faiss" else status["where"]
    print(f"index:     {where}  built {status['built_at']}")
    print(f"model:     {status['model']}  ({status['precision']})")
    print(f"documents: {status['documents']}  chunks: {status['chunks']}  skipped: {len(status['skipped'])}")
    documents = assistant.index().catalog()
    for path in list(documents)[:_LISTED]:
        count = documents[path]["chunks"]
        print(f"  {printable(path)}  ({count} chunk{'' if count == 1 else 's'})  {documents[path]['title']}")
    if len(documents) > _LISTED:
        print(f"  … and {len(documents) - _LISTED} more")
    for skipped in status["skipped"]:
        print(f"  skipped {printable(skipped['path'])}: {skipped['reason']}")
    if status["stale"]:
        print(
            f"changed since the build ({len(status['stale'])}): {', '.join(map(printable, status['stale']))}"
            " — run: assistant build"
        )
    else:
        print("up to date with the corpus")
    return 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from .serve import serve
    from .service import Assistant

    serve(Assistant(settings))
    return 0


def _version() -> str:
    try:
        return version("assistant")
    except PackageNotFoundError:
        return "unknown"
