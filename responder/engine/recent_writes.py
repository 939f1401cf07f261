"""Which workloads this process wrote lately, so that a read taken before a workload's lock can be trusted or not.

Stage: engine (in-process bookkeeping, no I/O). The processor reads an alert's workload while locating it,
before it holds the workload's lock; another task of this process may write the workload in between. A read
taken when the write counter stood at `seq` is still current unless a write on that workload finished since
(another replica's write is caught by the resourceVersion precondition of the next write).
"""

from __future__ import annotations

import collections

__all__ = ["RecentWrites"]

_REMEMBERED = 4096
"""Workloads whose last write by this process is remembered (to know whether a read taken before the target's
lock is still current); older ones are forgotten together, which only costs a re-read."""


class RecentWrites:
    """Which workloads this process wrote, in order, so a read taken earlier can be trusted or not."""

    def __init__(self) -> None:
        self.seq = 0
        self._by_key: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._forgotten_seq = 0

    def wrote(self, key: str) -> None:
        """This process finished a write (or an attempt) on workload `key`."""
        self.seq += 1
        self._by_key[key] = self.seq
        self._by_key.move_to_end(key)
        while len(self._by_key) > _REMEMBERED:
            _, seq = self._by_key.popitem(last=False)
            self._forgotten_seq = max(self._forgotten_seq, seq)

    def unwritten_since(self, key: str, seq: int) -> bool:
        """No write by this process on `key` finished after the write counter read `seq`."""
        return self._forgotten_seq <= seq and self._by_key.get(key, 0) <= seq
