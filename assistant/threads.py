"""Thread counts of torch and faiss: one thread for a question's small work, all of them for a build's."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ThreadCount:
    """Sets a library's thread count for the calling thread's work: 1 inside `held()`, the full count
    (the library's count when first asked, e.g. from OMP_NUM_THREADS) otherwise.

    A question's matrices (its embedding, its vector search) are too small to be worth splitting, and a split
    operation waits for its slowest thread: on the 2-core reference machine with another job running, one
    question took 490 ms to embed on two threads and 17 ms on one, and one exact search over 100,000 chunks
    48 ms on two threads and 10 ms on one.

    Why not "save the count, set 1, restore it": measured on torch 2.13 (OpenMP), the count is per thread
    once a thread has used the library, but a thread's first use copies the count last set in any thread.
    A thread that first ran while a question held 1 would save 1 and keep it for good, and a build started
    then would run on one thread. So each piece of work sets the count it wants, and the count left behind
    is always the full one."""

    def __init__(self, get: Callable[[], int], set: Callable[[int], None]) -> None:
        self._get, self._set = get, set
        self._full: int | None = None
        self._lock = threading.Lock()

    @property
    def full(self) -> int:
        with self._lock:
            if self._full is None:
                self._full = self._get()
            return self._full

    @contextmanager
    def held(self, active: bool = True) -> Iterator[None]:
        """One thread inside when `active`, else the full count; the full count after."""
        full = self.full
        self._set(1 if active else full)
        try:
            yield
        finally:
            if active:
                self._set(full)


def _torch_get() -> int:
    import torch

    return torch.get_num_threads()


def _torch_set(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def _faiss_get() -> int:
    import faiss

    return faiss.omp_get_max_threads()


def _faiss_set(count: int) -> None:
    import faiss

    faiss.omp_set_num_threads(count)


TORCH = ThreadCount(_torch_get, _torch_set)
FAISS = ThreadCount(_faiss_get, _faiss_set)
