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

`writer_id` is the public id of the writer key (store.writer_id(key)) or any stable string; pass
"" when there is none (the address limit still applies). `ip` is the client address
(`client_ip(request)`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

# Rates: (per writer key, per client address). The address limit is several writers' worth,
# because a classroom or an office shares one address.
PARAGRAPHS_PER_MINUTE = (6, 30)  # human paragraphs: a person writes far slower than 6 a minute
STORIES_PER_HOUR = (5, 20)  # new stories (forks count): more is a flood of empty stories
MODEL_TURNS_PER_MINUTE = (6, 20)  # model requests (continue, regenerate, alternatives, lab runs)
WRITER_KEYS_PER_HOUR = (60, 60)  # keys issued by /writer_key to one address (each is a database row); no key yet
CANDIDATES_PER_MINUTE = (16, 48)  # generated texts: alternatives count each candidate, a lab run each column
MODEL_SLOTS = (2, 4)  # model jobs waiting or running at once, per writer key and per address
MAX_CONTEXT_CHARS = 8_000  # lab context / API text; KoGPT-2 reads ~1,024 tokens (~2,500 Korean characters)
STORAGE_ENV = "RELAY_LIMITS_STORAGE"  # a `limits` storage URI; default memory:// (per process)
TRUSTED_PROXIES_ENV = "RELAY_TRUSTED_PROXIES"  # reverse proxies that append X-Forwarded-For (1 on a Space)

RATES = {
    "paragraph": (PARAGRAPHS_PER_MINUTE, "minute"),
    "story": (STORIES_PER_HOUR, "hour"),
    "model_turn": (MODEL_TURNS_PER_MINUTE, "minute"),
    "candidates": (CANDIDATES_PER_MINUTE, "minute"),
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
    writer_key: tuple[int, int] = WRITER_KEYS_PER_HOUR
    model_slots: tuple[int, int] = MODEL_SLOTS
    max_context_chars: int = MAX_CONTEXT_CHARS


class Limits:
    """Rate limits, model slots and size caps for one server process (thread-safe)."""

    def __init__(self, rates: Rates | None = None, storage_uri: str | None = None):
        self.rates = rates or Rates()
        uri = storage_uri or os.environ.get(STORAGE_ENV) or "memory://"
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri))
        self._items = {}
        for action, (_, period) in RATES.items():
            per_key, per_ip = getattr(self.rates, action)
            self._items[action] = (parse(f"{per_key}/{period}"), parse(f"{per_ip}/{period}"))
        self._lock = threading.Lock()
        self._slots: Counter[str] = Counter()

    def check(self, action: str, writer_id: str | None, ip: str | None, *, cost: int = 1) -> None:
        """Count one `action` (cost times) for this writer and address; LimitExceeded if either is over.

        Nothing is counted when the action is refused, so a refused request does not lengthen the wait.
        """
        by_key, by_ip = self._items[action]
        pairs = [(by_ip, ("ip", ip or "unknown"))]
        if writer_id:
            pairs.insert(0, (by_key, ("key", writer_id)))
        cost = max(1, int(cost))
        with self._lock:
            for item, ids in pairs:
                if not self._limiter.test(item, action, *ids, cost=cost):
                    reset = self._limiter.get_window_stats(item, action, *ids).reset_time
                    raise LimitExceeded(action, max(1, math.ceil(reset - time.time())), item.amount)
            for item, ids in pairs:
                self._limiter.hit(item, action, *ids, cost=cost)

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
        """Hold one of this writer's and this address's model slots for the duration of the block."""
        token = self.take_model_slot(writer_id, ip)
        try:
            yield
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
    """The client's address from a gr.Request.

    Behind reverse proxies (a Space) every request comes from the proxy, so the address is taken from
    X-Forwarded-For: the entry added by the nearest of TRUSTED_PROXIES_ENV proxies (default 1 on a
    Space, 0 elsewhere). Entries further left are whatever the client sent and are never trusted.
    """
    headers = getattr(request, "headers", None) or {}
    hops = trusted_proxies()
    forwarded = [part.strip() for part in (headers.get("x-forwarded-for") or "").split(",") if part.strip()]
    if hops and forwarded:
        return forwarded[-min(hops, len(forwarded))]
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else "unknown"


def trusted_proxies() -> int:
    """How many reverse proxies in front of the server add to X-Forwarded-For."""
    raw = os.environ.get(TRUSTED_PROXIES_ENV)
    if raw is None:
        return 1 if os.environ.get("SPACE_ID") else 0
    try:
        return max(0, int(raw))
    except ValueError:
        return 0
