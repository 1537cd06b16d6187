"""Handing a continuation from the generating thread to the reader, and taking turns at the model.

The engine's worker thread writes into a `Channel` (a queue of text chunks, or of (index, chunk) pairs in a
`ManyChannel`, ended by `END` or by the error to raise); the caller reads it through a `Continuation` or an
`AlternativesStream`, whose `close()` (or garbage collection) cancels generation. `Emitter` is the worker's
side: it sends each candidate's newly shown text as a chunk and completes it with the final text. `FifoLock`
gives a backend that runs one request at a time to writers in arrival order.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any, Iterator

from relay.settings import EngineError

__all__ = ["Continuation", "Alternatives", "AlternativesStream", "Channel", "ManyChannel", "Emitter", "FifoLock",
           "END"]


class FifoLock:
    """A lock granted in arrival order; a waiter whose cancel event is set leaves the line."""

    def __init__(self):
        self._cond = threading.Condition()
        self._line: deque = deque()
        self._held = False

    def acquire(self, cancel_events: tuple[threading.Event, ...] = ()) -> bool:
        """Wait for our turn; False (without the lock) if cancelled while waiting."""
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            while True:
                if any(event.is_set() for event in cancel_events):
                    self._line.remove(ticket)
                    self._cond.notify_all()
                    return False
                if not self._held and self._line[0] is ticket:
                    break
                self._cond.wait(timeout=0.05)
            self._line.popleft()
            self._held = True
            return True

    def release(self) -> None:
        """Hand the lock to the next in line."""
        with self._cond:
            self._held = False
            self._cond.notify_all()


END = object()


class Channel:
    """What the generating thread and the Continuation share. Holds no reference to the Continuation,
    so an abandoned Continuation is garbage-collected (and so closed) while generation runs."""

    def __init__(self, cancel: threading.Event | None):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = threading.Event()
        self.events = (self.closed,) + ((cancel,) if cancel is not None else ())
        self.text = ""
        self.meta: dict[str, Any] = {}

    def cancelled(self) -> bool:
        return any(event.is_set() for event in self.events)


class Emitter:
    """The worker's side of a channel: what has been sent of each candidate, and sending the rest.

    With `single` the queue carries text chunks (a Continuation); otherwise (index, chunk) pairs."""

    def __init__(self, channel: Channel, n: int, single: bool):
        self.channel = channel
        self.single = single
        self.sent = [""] * n

    def show(self, index: int, shown: str) -> None:
        """Send what `shown` adds to candidate `index`'s text so far (nothing if it does not extend it)."""
        sent = self.sent[index]
        if len(shown) > len(sent) and shown.startswith(sent):
            self._put(index, shown[len(sent):])
            self.sent[index] = shown

    def finish(self, index: int, final: str) -> str:
        """Send the rest of candidate `index`'s final text; returns its whole text.

        A trimmed ending makes `final` shorter than what was streamed: then `final` is what counts."""
        sent = self.sent[index]
        rest = final[len(sent):] if final.startswith(sent) else ""
        if rest:
            self._put(index, rest)
        return final if len(final) < len(sent) else sent + rest

    def _put(self, index: int, chunk: str) -> None:
        self.channel.queue.put(chunk if self.single else (index, chunk))


class Continuation(Iterator[str]):
    """A continuation being written: iterate for text chunks; `.text` and `.meta` once it is finished.

    Reading `.text` or `.meta` early waits for the end. `close()` (also on garbage collection or in a
    `with` block) stops generation within a token and frees the model for the next writer.
    """

    def __init__(self, channel: Channel):
        self._channel = channel
        self._finished = False

    def __iter__(self) -> "Continuation":
        return self

    def __next__(self) -> str:
        if self._finished:
            raise StopIteration
        item = self._channel.queue.get()
        if item is END:
            self._finished = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._finished = True
            if isinstance(item, EngineError):
                raise item
            raise EngineError(f"생성 중 오류 / generation failed: {item!r}") from item
        return item

    def _drain(self) -> None:
        for _ in self:
            pass

    @property
    def text(self) -> str:
        """The whole continuation: the joined chunks, less an unfinished last sentence if `trim_incomplete` dropped one."""
        self._drain()
        return self._channel.text

    @property
    def meta(self) -> dict[str, Any]:
        """What the store keeps: model, adapter, settings (with the seed used), seed, token counts, seconds, stopped_by."""
        self._drain()
        return self._channel.meta

    def close(self) -> None:
        """Stop generating (like cancel) and let the next writer have the model."""
        self._channel.closed.set()

    def __enter__(self) -> "Continuation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self._channel.closed.set()


class Alternatives(list):
    """n candidate continuations (a list of str) with `.meta` describing how they were made."""

    meta: dict[str, Any]


class ManyChannel(Channel):
    """A channel for n candidates: the queue carries (index, chunk) pairs."""

    def __init__(self, cancel: threading.Event | None):
        super().__init__(cancel)
        self.texts: list[str] = []


class AlternativesStream(Continuation):
    """n candidates being written side by side: iterate for (index, chunk) pairs; `.texts` and `.meta` at the end.

    Like a Continuation, `close()` (or garbage collection) stops all candidates within a token."""

    def __next__(self) -> tuple[int, str]:  # type: ignore[override]
        return super().__next__()

    @property
    def texts(self) -> list[str]:
        """Each candidate's whole text (less an unfinished last sentence when `trim_incomplete` dropped one)."""
        self._drain()
        return list(self._channel.texts)

    @property
    def text(self) -> str:  # type: ignore[override]
        raise AttributeError("an AlternativesStream has .texts (one per candidate), not .text")
