"""One build at a time on a Milvus index. In this process, a lock; across processes and machines, a lease row in
the side collection that the build renews after every batch of documents (build.BATCH_CHUNKS chunks). A lease
whose build died on this machine is taken over at once, one from another machine when it runs out."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import IndexLocked
from .collections import Collections

log = logging.getLogger(__name__)

LEASE_SECONDS = 600  # a build that has not renewed its lease for this long is presumed dead
_LOCKS: dict[tuple[str, str], threading.Lock] = {}


@contextmanager
def held(collections: Collections, owner: str) -> Iterator[None]:
    """Hold the lease of `collections` for `owner` ("host:pid"), or refuse with IndexLocked."""
    where = f"the Milvus collection {collections.base} at {collections.uri}"
    lock = _LOCKS.setdefault((collections.uri, collections.base), threading.Lock())
    if not lock.acquire(blocking=False):
        raise IndexLocked(f"another build is running on {where} in this process — wait for it to finish")
    try:
        holder = collections.get_meta("lease")
        if holder and holder["owner"] not in ("", owner) and holder["until"] > time.time() and _alive(holder["owner"]):
            raise IndexLocked(f"another build is running on {where} ({holder['owner']}) — wait for it to finish")
        renew(collections, owner)
        try:
            yield
        finally:
            try:
                collections.put_meta("lease", {"owner": "", "until": 0})
            except Exception as err:  # the build's own error matters more; the lease runs out anyway
                log.warning("could not release the build lease: %s", err)
    finally:
        lock.release()


def renew(collections: Collections, owner: str) -> None:
    collections.put_meta("lease", {"owner": owner, "until": time.time() + LEASE_SECONDS})


def _alive(owner: str) -> bool:
    """Whether the build that holds a lease may still be running: false only for a dead process on this machine."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
