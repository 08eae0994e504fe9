"""The chat's example questions: the lines of the ASSISTANT_EXAMPLES file, or the seed article's."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from ..errors import ConfigError, QueryError
from ..question import clean_query

# the examples of the seed article that ships in corpus/, shown when ASSISTANT_EXAMPLES is unset and the article
# is in the corpus; over anyone else's documents they would only mislead, so then none are shown
# (docs/configuration.md#example-questions)
SEED_ARTICLE = "unodc-regional-conference-islamabad.txt"
SEED_EXAMPLES = [
    "Who spoke at the conference?",
    "Which countries took part?",
    "What did the US ambassador's message say?",
]


def load_examples(settings: Settings, public: Callable[[str], bool] = lambda path: True) -> list[str]:
    """The chat's example questions: the lines of the ASSISTANT_EXAMPLES file (blank lines and # comments left
    out); with none set, the seed article's when it is in the corpus and `public` (every signed-in user may read
    it: the examples are shown to all), else none."""
    if settings.examples is None:
        shown = (settings.corpus / SEED_ARTICLE).is_file() and public(SEED_ARTICLE)
        return list(SEED_EXAMPLES) if shown else []
    path = settings.examples.expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        why = (err.strerror or str(err)) if isinstance(err, OSError) else "it is not UTF-8 text"
        raise ConfigError(
            f"ASSISTANT_EXAMPLES file {path} cannot be read ({why}) — point ASSISTANT_EXAMPLES at a text file "
            "with one example question per line, or unset it"
        ) from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                examples.append(clean_query(line))
            except QueryError as err:
                raise ConfigError(f"ASSISTANT_EXAMPLES file {path}, line {number}: {err}") from None
    return examples
