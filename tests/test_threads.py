import threading

from assistant.threads import TORCH, ThreadCount


class Counter:
    """A library's thread count, with the history of what it was set to."""

    def __init__(self, count: int) -> None:
        self.count, self.history = count, []

    def get(self) -> int:
        return self.count

    def set(self, count: int) -> None:
        self.count = count
        self.history.append(count)


def test_held_work_runs_on_one_thread_and_leaves_the_full_count_even_after_an_error():
    counter = Counter(4)
    cap = ThreadCount(counter.get, counter.set)
    try:
        with cap.held():
            assert counter.count == 1
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert counter.count == 4


def test_unheld_work_sets_the_full_count_back_whatever_was_left():
    counter = Counter(4)
    cap = ThreadCount(counter.get, counter.set)
    assert cap.full == 4
    counter.count = 1  # e.g. a thread that copied a question's count when it first used the library
    with cap.held(active=False):
        assert counter.count == 4


def test_overlapping_questions_each_run_on_one_thread_and_leave_torch_on_all():
    """Threads that used torch before, and new ones, while others hold it: each question runs on one thread,
    and every thread, old or new, is back on the full count after."""
    import torch

    full = TORCH.full
    ready, start = threading.Barrier(5), threading.Barrier(8)
    seen: list[int] = []
    after: list[int] = []

    def question(used_before: bool) -> None:
        if used_before:
            torch.get_num_threads()  # this thread's own count exists from here on
            ready.wait()
        start.wait()
        for _ in range(50):
            with TORCH.held():
                seen.append(torch.get_num_threads())
        after.append(torch.get_num_threads())

    old = [threading.Thread(target=question, args=(True,)) for _ in range(4)]
    for worker in old:
        worker.start()
    ready.wait()  # the old threads have used torch
    new = [threading.Thread(target=question, args=(False,)) for _ in range(4)]
    for worker in new:
        worker.start()
    for worker in old + new:
        worker.join()
    assert set(seen) == {1} and len(seen) == 400
    assert after == [full] * 8
    fresh: list[int] = []
    late = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    late.start()
    late.join()
    assert fresh == [full] and torch.get_num_threads() == full
