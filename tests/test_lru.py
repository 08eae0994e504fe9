import threading

import pytest

from assistant.lru import LRU


def test_the_least_recently_used_key_leaves_first_and_reading_refreshes_a_key():
    lru: LRU[int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert len(lru) == 2 and (lru.hits, lru.misses) == (3, 1)


def test_size_zero_remembers_nothing_and_a_negative_size_is_refused():
    lru: LRU[int] = LRU(0)
    lru.put("a", 1)
    assert lru.get("a") is None
    with pytest.raises(ValueError, match="0 or more"):
        LRU(-1)


def test_concurrent_writers_never_exceed_the_size():
    lru: LRU[int] = LRU(50)

    def write(offset: int) -> None:
        for i in range(2000):
            lru.put((offset, i), i)
            lru.get((offset, i - 1))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lru) == 50
