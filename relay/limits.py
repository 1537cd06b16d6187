"""Per-writer and per-address limits, shared by the browser handlers and the API.

One `Limits` object per server process (built next to the store, passed to the page and the API).
Two kinds of limit:

* **Rates** (the `limits` library, moving windows): paragraphs per minute, stories per hour, model
  turns per minute and model candidates per minute, each counted per writer key AND per client
  address (the address limit is looser: several people can share one address):

      limits.check("paragraph", writer_id, ip)          # raises LimitExceeded when over
      limits.check("candidates", writer_id, ip, cost=n)  # n alternatives count n

* **Model slots**: how many model jobs one writer key or one address may have waiting in the
  model queue or running at once (default 2). Hold a slot for the whole job, from before it queues
  until it ends, so a client cannot fill the shared queue:

      with limits.model_slot(writer_id, ip):
          ... stream the continuation ...

  A slot counts only from where it is taken, so take it where the job starts WAITING. The engine
  serves model calls one at a time in arrival order by itself, so a model handler can run with
  `concurrency_limit=None` (no Gradio queue group), take the slot first thing and then wait in the
  engine's line, as relay/ui/api.py's /continue_story does. A handler that stays in a Gradio
  concurrency group waits in Gradio's queue before it runs: take the slot in its unqueued
  precheck with `take_model_slot()` and give it back with `free_model_slot(token)` in the model
  handler's `finally` (and in the precheck if the chain stops there).

* **Sizes** checked before the model is touched: `check_context(text)` for the lab's free-text
  context and any API text (MAX_CONTEXT_CHARS), and `tail_context(paragraphs)` keeps only the end
  of a long story (the model sees ~1,024 tokens of it anyway).

Counters live in memory per process by default (`memory://`): with several server processes each
has its own counters, so the effective limit is N times higher. `RELAY_LIMITS_STORAGE` takes a
`limits` storage URI (e.g. `redis://host:6379`) to share the rate counters between processes;
model slots are always per process (they count jobs this process runs).

* **Fair model time**: at most `model_jobs` model jobs run at once in the process; the others wait,
  let in round-robin by address (relay/fairness.py), so a flood from many addresses delays another
  writer by about one job, not by the flood. `model_slot()` takes the writer's slots, then waits
  for the gate.

Every number is a setting: `Rates.from_env()` reads `RELAY_LIMIT_*` variables (ENV_NAMES; a pair
is written `per_key/per_address`, e.g. `RELAY_LIMIT_PARAGRAPHS=10/60`), today's values the defaults.

`writer_id` is the public id of the writer key (store.writer_id(key)) or any stable string; pass
"" when there is none (the address limit still applies). `ip` is the client address
(`client_ip(request)`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields

from relay.fairness import FairGate, GateFull

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# Rates: (per writer key, per client address). The address limit is several writers' worth,
# because a classroom or an office shares one address.
PARAGRAPHS_PER_MINUTE = (6, 30)  # human paragraphs: a person writes far slower than 6 a minute
STORIES_PER_HOUR = (5, 20)  # new stories (forks count): more is a flood of empty stories
MODEL_TURNS_PER_MINUTE = (6, 20)  # model requests (continue, regenerate, alternatives, lab runs)
WRITER_KEYS_PER_HOUR = (60, 60)  # keys issued by /writer_key to one address (each is a database row); no key yet
CANDIDATES_PER_MINUTE = (16, 48)  # generated texts: alternatives count each candidate
LAB_SAMPLES_PER_MINUTE = (48, 96)  # lab samples (runs and sweeps, relay/lab_runs.py): one model job, batched rows
MODEL_SLOTS = (2, 4)  # model jobs waiting or running at once, per writer key and per address
MAX_CONTEXT_CHARS = 8_000  # lab context / API text; KoGPT-2 reads ~1,024 tokens (~2,500 Korean characters)
MODEL_JOBS = 8  # model jobs running at once in one process (the OpenVINO backend batches them); more wait, fairly
MODEL_WAITING = 64  # model jobs waiting for the gate at once; more are refused at once ("the model is busy")
MODEL_WAIT_S = 120  # the longest a model job waits for the gate before it is refused
LIVE_TABS_PER_ADDRESS = 200  # live streams (open tabs) one client address may hold in one process
STORAGE_ENV = "RELAY_LIMITS_STORAGE"  # a `limits` storage URI; default memory:// (per process)
TRUSTED_PROXIES_ENV = "RELAY_TRUSTED_PROXIES"  # reverse proxies that append X-Forwarded-For (1 on a Space)

RATES = {
    "paragraph": (PARAGRAPHS_PER_MINUTE, "minute"),
    "story": (STORIES_PER_HOUR, "hour"),
    "model_turn": (MODEL_TURNS_PER_MINUTE, "minute"),
    "candidates": (CANDIDATES_PER_MINUTE, "minute"),
    "lab_samples": (LAB_SAMPLES_PER_MINUTE, "minute"),
    "writer_key": (WRITER_KEYS_PER_HOUR, "hour"),
}


class LimitExceeded(Exception):
    """A writer or an address went over a limit; `.action` names which, `.retry_after_s` when to retry.

    `.action` is a key of RATES, "model_slots" or "context"; `.limit` the number allowed;
    `.retry_after_s` is whole seconds (0 when it depends on a job ending, not on time).
    """

    def __init__(self, action: str, retry_after_s: int, limit: int = 0):
        self.action, self.retry_after_s, self.limit = action, int(retry_after_s), limit
        super().__init__(f"limit {action!r} reached ({limit}); retry in {self.retry_after_s} s")


@dataclass(frozen=True)
class Rates:
    """Per-key and per-address amounts for each rate; tests pass smaller ones."""

    paragraph: tuple[int, int] = PARAGRAPHS_PER_MINUTE
    story: tuple[int, int] = STORIES_PER_HOUR
    model_turn: tuple[int, int] = MODEL_TURNS_PER_MINUTE
    candidates: tuple[int, int] = CANDIDATES_PER_MINUTE
    lab_samples: tuple[int, int] = LAB_SAMPLES_PER_MINUTE
    writer_key: tuple[int, int] = WRITER_KEYS_PER_HOUR
    model_slots: tuple[int, int] = MODEL_SLOTS
    max_context_chars: int = MAX_CONTEXT_CHARS
    model_jobs: int = MODEL_JOBS
    model_waiting: int = MODEL_WAITING
    model_wait_s: int = MODEL_WAIT_S
    live_tabs_per_address: int = LIVE_TABS_PER_ADDRESS

    @classmethod
    def from_env(cls, environ=None) -> "Rates":
        """Today's limits, each replaced by its RELAY_LIMIT_* variable when set; ValueError names a bad one."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_NAMES[f.name])
            if raw is not None and raw.strip():
                values[f.name] = _parse_setting(ENV_NAMES[f.name], raw, pair=isinstance(f.default, tuple))
        return cls(**values)


# The environment variable of each limit (README "Limits"); pairs are "per_key/per_address".
ENV_NAMES = {
    "paragraph": "RELAY_LIMIT_PARAGRAPHS", "story": "RELAY_LIMIT_STORIES", "model_turn": "RELAY_LIMIT_MODEL_REQUESTS",
    "candidates": "RELAY_LIMIT_CANDIDATES", "lab_samples": "RELAY_LIMIT_LAB_SAMPLES", "writer_key": "RELAY_LIMIT_WRITER_KEYS",
    "model_slots": "RELAY_LIMIT_MODEL_SLOTS", "max_context_chars": "RELAY_LIMIT_CONTEXT_CHARS",
    "model_jobs": "RELAY_LIMIT_MODEL_JOBS", "model_waiting": "RELAY_LIMIT_MODEL_WAITING",
    "model_wait_s": "RELAY_LIMIT_MODEL_WAIT_S", "live_tabs_per_address": "RELAY_LIMIT_LIVE_TABS",
}


def _parse_setting(name: str, raw: str, *, pair: bool):
    """"6/30" -> (6, 30) for a pair, "8000" -> 8000 otherwise; every number a whole number of 1 or more."""
    parts = raw.strip().split("/")
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != (2 if pair else 1) or min(numbers) < 1:
        shape = "PER_KEY/PER_ADDRESS, e.g. 6/30" if pair else "a whole number, e.g. 8"
        raise ValueError(f"{name}={raw!r} is not a valid limit: write {shape} (whole numbers of 1 or more).")
    return numbers if pair else numbers[0]


class Limits:
    """Rate limits, model slots and size caps for one server process (thread-safe)."""

    def __init__(self, rates: Rates | None = None, storage_uri: str | None = None):
        self.rates = rates or Rates.from_env()
        uri = storage_uri or os.environ.get(STORAGE_ENV) or "memory://"
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri))
        self._items = {}
        for action, (_, period) in RATES.items():
            per_key, per_ip = getattr(self.rates, action)
            self._items[action] = (parse(f"{per_key}/{period}"), parse(f"{per_ip}/{period}"))
        self._lock = threading.Lock()
        self._slots: Counter[str] = Counter()
        self.gate = FairGate(self.rates.model_jobs, self.rates.model_waiting, self.rates.model_wait_s)

    def check(self, action: str, writer_id: str | None, ip: str | None, *, cost: int = 1) -> None:
        """Count one `action` (cost times) for this writer and address; LimitExceeded if either is over.

        Nothing is counted when the action is refused, so a refused request does not lengthen the wait.
        """
        pairs, cost = self._counters(action, writer_id, ip), max(1, int(cost))
        with self._lock:
            self._refuse_if_over(action, pairs, cost)
            for item, ids in pairs:
                self._limiter.hit(item, action, *ids, cost=cost)

    @contextlib.contextmanager
    def counted(self, action: str, writer_id: str | None, ip: str | None, *, cost: int = 1) -> Iterator[None]:
        """Refuse the block when `action` is over its rate, and count it only if the block succeeds:
        a paragraph refused by the store (too long, out of turn) does not use up the writer's rate."""
        pairs, cost = self._counters(action, writer_id, ip), max(1, int(cost))
        with self._lock:
            self._refuse_if_over(action, pairs, cost)
        yield
        with self._lock:
            for item, ids in pairs:
                self._limiter.hit(item, action, *ids, cost=cost)

    def _counters(self, action: str, writer_id: str | None, ip: str | None) -> list:
        """(rate, counter ids) for the writer (if any) and the address."""
        by_key, by_ip = self._items[action]
        pairs = [(by_ip, ("ip", ip or "unknown"))]
        if writer_id:
            pairs.insert(0, (by_key, ("key", writer_id)))
        return pairs

    def _refuse_if_over(self, action: str, pairs: list, cost: int) -> None:
        for item, ids in pairs:
            if not self._limiter.test(item, action, *ids, cost=cost):
                reset = self._limiter.get_window_stats(item, action, *ids).reset_time
                raise LimitExceeded(action, max(1, math.ceil(reset - time.time())), item.amount)

    def take_model_slot(self, writer_id: str | None, ip: str | None) -> tuple[str, ...]:
        """Reserve one model job for this writer and address; returns a token for free_model_slot()."""
        per_key, per_ip = self.rates.model_slots
        names = [(f"ip:{ip or 'unknown'}", per_ip)]
        if writer_id:
            names.insert(0, (f"key:{writer_id}", per_key))
        with self._lock:
            for name, cap in names:
                if self._slots[name] >= cap:
                    raise LimitExceeded("model_slots", 0, cap)
            for name, _ in names:
                self._slots[name] += 1
        return tuple(name for name, _ in names)

    def free_model_slot(self, token: tuple[str, ...]) -> None:
        """Give back a slot taken by take_model_slot() (once per take)."""
        with self._lock:
            for name in token:
                self._slots[name] -= 1
                if self._slots[name] <= 0:
                    del self._slots[name]

    @contextlib.contextmanager
    def model_slot(self, writer_id: str | None, ip: str | None) -> Iterator[None]:
        """Hold one of this writer's and this address's model slots, then a turn of the model, for the block.

        Waits (fairly, by address) while the process runs its most model jobs; LimitExceeded
        ("model_busy") when too many wait already or the wait is too long.
        """
        token = self.take_model_slot(writer_id, ip)
        try:
            try:
                ticket = self.gate.acquire(ip or "unknown")
            except GateFull:
                raise LimitExceeded("model_busy", 5, self.rates.model_jobs) from None
            try:
                yield
            finally:
                self.gate.release(ticket)
        finally:
            self.free_model_slot(token)

    def check_context(self, text: str) -> None:
        """LimitExceeded("context") when free text given to the model is longer than the documented maximum."""
        if len(text or "") > self.rates.max_context_chars:
            raise LimitExceeded("context", 0, self.rates.max_context_chars)

    def tail_context(self, paragraphs: list[str]) -> list[str]:
        """The last paragraphs of a story that fit in the context cap (the last one cut at its end if alone)."""
        kept, total = [], 0
        for text in reversed(paragraphs):
            if total + len(text) > self.rates.max_context_chars:
                if not kept:
                    kept.append(text[-self.rates.max_context_chars:])
                break
            kept.append(text)
            total += len(text) + 1
        return kept[::-1]


def client_ip(request) -> str:
    """The client's address from a gr.Request (or a Starlette request).

    The connection's address, unless the operator names the reverse proxies in front of the server
    (RELAY_TRUSTED_PROXIES): then the X-Forwarded-For entry the nearest trusted proxy added. Either a
    count of proxies that always stand in front ("1": a Space, one nginx), or the proxies' addresses
    and networks ("127.0.0.1,10.0.0.0/8"): X-Forwarded-For is then read only on connections from
    them, right to left, skipping the listed proxies. Entries further left are whatever the client
    sent and are never trusted.
    """
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    peer = str(host) if host else "unknown"
    headers = getattr(request, "headers", None) or {}
    forwarded = [part.strip() for part in (headers.get("x-forwarded-for") or "").split(",") if part.strip()]
    hops, networks = trusted_proxies_setting()
    if hops and forwarded:
        return forwarded[-min(hops, len(forwarded))]
    if networks and forwarded and _in(peer, networks):
        for address in reversed(forwarded):
            if not _in(address, networks):
                return address
        return forwarded[0]
    return peer


def trusted_proxies() -> int:
    """How many reverse proxies always stand in front of the server (0 when they are named by address)."""
    return trusted_proxies_setting()[0]


def trusted_proxies_setting() -> tuple[int, tuple]:
    """(count of proxies, networks of proxies) from RELAY_TRUSTED_PROXIES; default 1 on a Space, else none."""
    raw = os.environ.get(TRUSTED_PROXIES_ENV)
    if raw is None or not raw.strip():
        return (1 if os.environ.get("SPACE_ID") else 0), ()
    raw = raw.strip()
    if raw.isdigit():
        return int(raw), ()
    networks = []
    for part in raw.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            continue  # a bad entry trusts nothing (app.py refuses it at startup)
    return 0, tuple(networks)


def check_trusted_proxies() -> None:
    """ValueError naming RELAY_TRUSTED_PROXIES when it is neither a count nor a list of addresses/networks."""
    raw = (os.environ.get(TRUSTED_PROXIES_ENV) or "").strip()
    if not raw or raw.isdigit():
        return
    for part in raw.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{TRUSTED_PROXIES_ENV}={raw!r}: {part.strip()!r} is not an address or network; "
                             "write a count of proxies (1) or their addresses (127.0.0.1,10.0.0.0/8).") from None


def _in(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks if net.version == ip.version)
