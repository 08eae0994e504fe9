"""How sure an answer is: "high", "low" or "none" (not in the documents), from three signals of the search.

- margin: the best cosine of any passage searched, minus the relevance floor for the index's size
  (search.relevance_floor). Alone, it refused a quarter of the answerable questions about one article among
  48 others, whose words the passages say differently ("spoke" where the text has "said");
- unknown: how rare the rarest of the question's words is that no document searched holds, from 0 (each is
  held, or the missing ones are common words: "spoke" where the text has "said") to 1 (a word English has
  never seen). A question about something else names something the documents never mention ("sourdough",
  "Kilimanjaro"). Rarity is English's at large (wordfreq), not the corpus's own: in a corpus of one article,
  every word it lacks would be "rare";
- passages: the share of the question's terms, each weighed by its rarity, that the best of the first three
  passages ranked holds: whether one passage holds what the question names.
A logistic model turns them into the probability that the documents answer the question; its weights and the
two cut points are fitted by benchmarks/confidence.py on questions with known answers and off-topic questions
over many documents (docs/benchmarks.md#confidence). Under NONE_UNDER the reply is "not in the documents";
from HIGH_FROM it is answered with high confidence; between, the answer is shown as low confidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .documents import Passage
from .index.lexical import terms
from .index.store import Scope, Store
from .question import Question

# Fitted by benchmarks/confidence.py (docs/benchmarks.md#confidence): logit = BIAS + sum of weight * signal.
WEIGHTS = {"margin": 10.36, "unknown": -2.05, "passages": 5.72}
BIAS = -2.97
NONE_UNDER = 0.2  # refuses at most 2% of the answerable training questions (the target: 3% on held-out ones)
HIGH_FROM = 0.7  # at most 2.5% of the off-topic training questions reach it
PASSAGES_WEIGHED = 3  # the first passages ranked that `passages` looks at
WORD = re.compile(r"(?u)\b\w\w+\b")  # a word as bm25s's tokenizer finds them
ZIPF_CEILING = 6.0  # a word's weight is 6 - zipf, at least 1 (zipf: log10 of its frequency per billion words)
RARE_ZIPF = 5.0  # rarer than about once in 100,000 words ("conference"): a missing word this rare counts


@dataclass(frozen=True)
class Signals:
    margin: float
    unknown: float
    passages: float

    def probability(self) -> float:
        """The probability that the documents answer the question."""
        logit = BIAS + sum(weight * getattr(self, name) for name, weight in WEIGHTS.items())
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def to_json(self) -> dict[str, float]:
        return {name: round(getattr(self, name), 4) for name in WEIGHTS}


def level(probability: float) -> str:
    return "none" if probability < NONE_UNDER else "high" if probability >= HIGH_FROM else "low"


def read_signals(
    store: Store[Any],
    question: Question,
    passages: Sequence[Passage],
    relevance: float,
    floor: float,
    within: Sequence[Scope] = (),
) -> Signals:
    """The signals of a question's search: `passages` as ranked, `relevance` the best cosine of the chunks
    searched, `floor` the relevance floor, `within` the scopes searched (only their chunks are looked at, so a
    document outside a reader's view never tells whether it holds a word)."""
    weights = rarity(question.text)
    if not weights:  # nothing to weigh ("is it?"): the lexical signals neither help nor hinder
        return Signals(relevance - floor, 0.0, 0.5)
    missing = set(weights) - store.known_terms(list(weights), within)
    unknown = max((max(0.0, weights[t] - (ZIPF_CEILING - RARE_ZIPF)) / RARE_ZIPF for t in missing), default=0.0)
    best = max((share(weights, p.text) for p in passages[:PASSAGES_WEIGHED]), default=0.0)
    return Signals(relevance - floor, unknown, best)


def share(weights: dict[str, float], text: str) -> float:
    """The share of a question's terms, weighed as `rarity` weighs them, that `text` holds."""
    held = set(terms([text])[0])
    return sum(w for term, w in weights.items() if term in held) / (sum(weights.values()) or 1.0)


def rarity(text: str) -> dict[str, float]:
    """The BM25 terms of `text` (lexical.terms), each weighed by how rare its word is in English at large:
    6 - zipf, at least 1, from wordfreq's frequency per billion words (zipf 0 for a word it has never seen, 5 for
    "conference": every word as common weighs 1, "sourdough" 3.2). The ceiling 6 was chosen on the training
    questions of benchmarks/confidence.py among 5 to 9 (9 would be the word's self-information). General
    frequencies, not the corpus's own: in a corpus of one document, every word it holds is common to it, and
    the question's words it lacks would outweigh the rest."""
    weights: dict[str, float] = {}
    for word in dict.fromkeys(WORD.findall(text.lower())):
        for term in terms([word])[0]:  # none for a stop word
            weights[term] = max(weights.get(term, 0.0), ZIPF_CEILING - _zipf(word))
    return weights


@lru_cache(maxsize=65536)
def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return min(zipf_frequency(word, "en"), ZIPF_CEILING - 1.0)
