"""Fair model time: how many model jobs run at once in this process, and who goes next.

Per-writer and per-address slots (relay/limits.py) stop one client from queueing many jobs; they do
not stop ten addresses from taking every turn of the model between them. `FairGate` adds a cap on
the jobs running at once in the whole process and lets waiting jobs in by address, round-robin:
when a job ends, the next job let in is the oldest waiting job of the address with the fewest jobs
running. A writer arriving during a flood therefore waits for one running job to end, not for the
flood to drain. Jobs wait a bounded time, and only so many may wait; beyond either the job is
refused at once (`GateFull`; relay/limits.py turns it into the "model busy" message).

    gate = FairGate(capacity=8, max_waiting=64, wait_s=120)
    ticket = gate.acquire("203.0.113.7")   # blocks until let in (or raises GateFull)
    try: ... run the model job ...
    finally: gate.release(ticket)
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque



class GateFull(Exception):
    """Too many model jobs are waiting already, or this one waited longer than the gate allows."""


class FairGate:
    """At most `capacity` model jobs run at once; waiting jobs are let in round-robin by address (thread-safe)."""

    def __init__(self, capacity: int, max_waiting: int, wait_s: float):
        self.capacity, self.max_waiting, self.wait_s = max(1, int(capacity)), max(0, int(max_waiting)), float(wait_s)
        self._cond = threading.Condition()
        self._running: Counter[str] = Counter()
        self._waiting: dict[str, deque[object]] = {}  # address -> its waiting tickets, oldest first
        self._let_in: set[object] = set()
        self._served: dict[str, int] = {}  # address -> when it was last let in (a counter), while it has jobs
        self._grants = 0

    def acquire(self, address: str) -> str:
        """Wait until this address's job may run; returns the ticket for release()."""
        address = address or "unknown"
        with self._cond:
            if self._total_running() < self.capacity and not self._waiting:
                self._grant(address)
                return address
            if self._total_waiting() >= self.max_waiting:
                raise GateFull("too many model jobs are waiting")
            ticket = object()
            self._waiting.setdefault(address, deque()).append(ticket)
            deadline = time.monotonic() + self.wait_s
            while ticket not in self._let_in:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if ticket in self._let_in:
                        break
                    self._forget(address, ticket)
                    raise GateFull("too many model jobs are waiting")
            self._let_in.discard(ticket)
            return address

    def release(self, address: str) -> None:
        """A job let in by acquire() ended: let the next waiting job in."""
        with self._cond:
            self._running[address] -= 1
            if self._running[address] <= 0:
                del self._running[address]
                if address not in self._waiting:
                    self._served.pop(address, None)
            self._let_next_in()

    def stats(self) -> dict:
        """Jobs running and waiting right now (for tests and benchmarks)."""
        with self._cond:
            return {"running": self._total_running(), "waiting": self._total_waiting()}

    def _let_next_in(self) -> None:
        while self._waiting and self._total_running() < self.capacity:
            address = min(self._waiting, key=lambda a: (self._running[a], self._served.get(a, -1)))
            tickets = self._waiting[address]
            self._let_in.add(tickets.popleft())
            if not tickets:
                del self._waiting[address]
            self._grant(address)
        self._cond.notify_all()

    def _grant(self, address: str) -> None:
        self._running[address] += 1
        self._grants += 1
        self._served[address] = self._grants

    def _forget(self, address: str, ticket: object) -> None:
        tickets = self._waiting.get(address)
        if tickets is not None:
            tickets.remove(ticket)
            if not tickets:
                del self._waiting[address]
                if not self._running[address]:
                    self._served.pop(address, None)

    def _total_running(self) -> int:
        return sum(self._running.values())

    def _total_waiting(self) -> int:
        return sum(len(t) for t in self._waiting.values())
