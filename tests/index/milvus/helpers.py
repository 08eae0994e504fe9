"""Helpers of the Milvus tests: a corpus of topics where no two cosines tie, and the rows of the live chunks
collection."""

from pathlib import Path

from assistant.index.milvus.store import open_milvus

TOPICS = [
    "border control",
    "migrant smuggling",
    "maritime patrols",
    "drug trafficking",
    "victim protection",
    "visa fraud",
    "airport checks",
    "regional cooperation",
    "money laundering",
    "forensic training",
]


def write_topics(corpus: Path, count: int = 30) -> None:
    for i in range(count):
        topic, other = TOPICS[i % len(TOPICS)], TOPICS[(i * 3 + 1) % len(TOPICS)]
        first, last = (" ".join(f"note{i}n{j}" for j in range(n)) for n in (i, count - i))  # no two cosines tie
        (corpus / f"d{i:02}.txt").write_text(
            f"Report {i} on {topic}. {first}\n\n"
            f"Officers from unit {i} discussed {topic} and {other} in session {i % 7}."
            f"\n\nThe {other} working group met {i} times; {topic} budgets grew. {last}"
        )


def chunk_rows(settings) -> list[dict]:
    """Every row of the live chunks collection, versions no reader sees included."""
    store = open_milvus(settings)
    return store.db.query(store.chunk_table, 'key != ""', ["key", "source", "sha", "text"])
