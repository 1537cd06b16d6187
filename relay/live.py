"""Live stories: every open tab sees its story change as it happens, the model's turn included.

One `LiveHub` per app process. A single watcher thread asks the store what changed
(`store.wait_for_change`: a one-row read four times a second on SQLite, LISTEN/NOTIFY on
PostgreSQL) and only while at least one tab is watching; an idle server runs no watcher at all.
When a story changes, the hub takes one snapshot of it (the newest paragraphs, whose turn it is,
the model's text so far and the suggestions waiting), renders it once per page language, and hands
the result to every tab that shows that story. A snapshot holds only a window of the newest cards
(relay.ui.demo.WINDOW), whatever the story's length; a tab gets older ones in pages on demand.
Each message is serialized once per snapshot, language and previous snapshot, then shared by every
tab in that position. A story's snapshot is dropped when its last tab closes. Tabs listen on a plain Server-Sent Events route
(`/relay/live?story=ID&lang=ko`) mounted beside Gradio, so an idle tab costs one open connection
and a comment line every 25 s: nothing goes through Gradio's queue, and no tab polls.

Because change detection goes through the store, a paragraph written by another app process
(or another machine, on PostgreSQL) reaches these tabs the same way as a local one.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from relay.story_store import NotFound, StoryStore

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 1.0  # longest single wait on the store; the watcher re-checks its subscribers after it
KEEPALIVE_S = 25.0  # an SSE comment line this often keeps proxies from closing an idle tab's stream
MAX_SUBSCRIBERS = 5000  # open tabs one process will serve; more get HTTP 503 with a message
RELEASE_AFTER_S = 2.0  # after a story's last tab closes, hand freed memory back to the OS this much later...
RELEASE_EVERY_S = 10.0  # ...and at most this often


# The parts of a story every tab shows besides its cards: sent whole at first, then when they change.
PARTS = ("header", "status", "turn", "turn_state", "head", "count", "first", "more", "empty", "older", "steering",
         "presence", "ai_gate")
_serials = itertools.count(1)


@dataclass
class Snapshot:
    """A story as every tab sees it at one change token: rendered parts, one dict per page language."""

    story_id: int
    token: int
    parts: dict[str, dict]  # lang -> {"header", "status", "turn", "cards": [(paragraph id, seq, fingerprint, html)], ...}
    turn_expires_at: float | None  # when the current model turn times out (nothing is written then)
    serial: int = field(default_factory=lambda: next(_serials))  # tells snapshots apart (tokens can repeat)
    _sent: dict = field(default_factory=dict, repr=False)  # (lang, previous serial) -> the SSE lines

    def event(self, lang: str, previous: Snapshot | None) -> str | None:
        """The SSE lines that bring a tab from `previous` (None: nothing yet) to this snapshot, or None
        if nothing it shows changed. Built once and shared by every tab in the same position."""
        key = (lang, previous.serial if previous is not None else 0)
        if key not in self._sent:
            message = _message(self.parts[lang], previous.parts[lang] if previous is not None else None)
            self._sent[key] = None if message is None else f"data: {json.dumps(message, ensure_ascii=False)}\n\n"
        return self._sent[key]


@dataclass(eq=False)
class _Subscriber:
    story_id: int
    lang: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    writer: str | None = None  # the tab's writer (public id, as the page says: for "who is here" only)


class LiveHub:
    """Watches the store and pushes each story's live state to the tabs that show it.

    `render(story_id, lang)` returns the parts of a story as a page in `lang` shows them (a dict
    with "header", "status", "turn" HTML strings, "cards": the newest paragraphs as a list of
    (paragraph id, seq, fingerprint, card html) in seq order, "first": the first card's seq,
    "more": whether older paragraphs exist, "head": the last paragraph's id, "turn_state": a small
    JSON-able dict, and "expires_at": when the model's turn times out or None); it raises NotFound
    for a story that does not exist.
    """

    def __init__(self, store: StoryStore, render: Callable[[int, str], dict], *, langs: tuple[str, ...] = ("ko", "en")):
        self.store = store
        self.render = render
        self.langs = langs
        self._subs: dict[int, set[_Subscriber]] = {}
        self._latest: dict[int, Snapshot] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._watcher: threading.Thread | None = None
        self._closed = False
        self._release_pending = False
        self._released_at = -RELEASE_EVERY_S

    # -- subscribers -------------------------------------------------------------------------

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def _add(self, sub: _Subscriber) -> None:
        with self._lock:
            if sum(len(s) for s in self._subs.values()) >= MAX_SUBSCRIBERS:
                raise OverflowError("too many open tabs on this server")
            self._subs.setdefault(sub.story_id, set()).add(sub)
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name="relay-live-watcher", daemon=True)
                self._watcher.start()
        self._wake.set()

    def _remove(self, sub: _Subscriber) -> None:
        with self._lock:
            subs = self._subs.get(sub.story_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.story_id]
                    self._latest.pop(sub.story_id, None)
                    self._schedule_release()

    def _schedule_release(self) -> None:
        """Soon after a story's last tab closed, give the memory its snapshot and streams used back to the OS.

        glibc keeps freed heap pages for reuse, so without this a burst of tabs leaves the process at
        its peak RSS for good (issue 20). One release pending at a time; the caller holds the lock.
        """
        if self._release_pending:
            return
        self._release_pending = True
        wait = max(RELEASE_AFTER_S, self._released_at + RELEASE_EVERY_S - time.monotonic())
        timer = threading.Timer(wait, self._release)
        timer.daemon = True
        timer.start()

    def _release(self) -> None:
        with self._lock:
            self._release_pending = False
            self._released_at = time.monotonic()
        give_back_memory()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # -- the watcher thread ------------------------------------------------------------------

    def snapshot(self, story_id: int) -> Snapshot:
        """The story's current snapshot, rendered in every language (cached until the story changes)."""
        token = self.store.change_token()
        with self._lock:
            cached = self._latest.get(story_id)
        if cached is not None and cached.token >= token:
            return cached
        parts = {lang: self.render(story_id, lang) for lang in self.langs}
        expires = next(iter(parts.values())).get("expires_at")
        snap = Snapshot(story_id=story_id, token=token, parts=parts, turn_expires_at=expires)
        with self._lock:
            if story_id in self._subs:
                self._latest[story_id] = snap
        return snap

    def _refresh_presence(self) -> None:
        """Mark this process's open tabs as still here (and end a dead process's), at the keep-alive interval."""
        try:
            self.store.refresh_presence()
        except Exception:
            log.exception("live watcher: refreshing who is here failed; retrying")

    def _join(self, sub: _Subscriber) -> None:
        if sub.writer:
            self.store.join_story(sub.story_id, sub.writer)

    def _leave(self, sub: _Subscriber) -> None:
        if sub.writer:
            try:
                self.store.leave_story(sub.story_id, sub.writer)
            except Exception:  # the next refresh from any process ends the row anyway
                log.exception("live: recording that a tab closed failed")

    def _watch(self) -> None:
        token = self.store.change_token()
        refreshed = time.monotonic()
        while not self._closed:
            with self._lock:
                watched = bool(self._subs)
            if not watched:
                # Nobody is watching: sleep until a tab subscribes (no store reads at all).
                self._wake.wait()
                self._wake.clear()
                token = self.store.change_token()
                continue
            try:
                changed: set[int] = set()
                new = self.store.wait_for_change(token, WATCH_TIMEOUT_S)
                if new > token:
                    token, ids = self.store.changed_stories(token)
                    changed.update(ids)
                now = time.time()
                with self._lock:
                    for sid, snap in self._latest.items():
                        if snap.turn_expires_at is not None and snap.turn_expires_at <= now:
                            changed.add(sid)  # the model's turn timed out: nothing was written, but it is free now
                for sid in changed:
                    self._publish(sid)
                if time.monotonic() - refreshed > KEEPALIVE_S:
                    refreshed = time.monotonic()
                    self._refresh_presence()
            except Exception:  # the store was briefly unavailable: keep the tabs, try again shortly
                log.exception("live watcher: reading the store failed; retrying")
                time.sleep(1.0)

    def _publish(self, story_id: int) -> None:
        with self._lock:
            subs = list(self._subs.get(story_id, ()))
            self._latest.pop(story_id, None)
        if not subs:
            return
        try:
            snap = self.snapshot(story_id)
        except NotFound:
            return
        for sub in subs:
            sub.loop.call_soon_threadsafe(_offer, sub.queue, snap)

    # -- one tab's stream --------------------------------------------------------------------

    async def stream(self, story_id: int, lang: str, writer: str | None = None) -> AsyncIterator[str]:
        """Server-Sent Events for one tab: the whole story first, then what changes, as it changes.

        `writer` (the page's public writer id) puts the tab's writer among who is here while it is open."""
        sub = _Subscriber(story_id=story_id, lang=lang if lang in self.langs else self.langs[0],
                          loop=asyncio.get_running_loop(), writer=writer)
        self._add(sub)
        try:
            if writer:
                await asyncio.to_thread(self._join, sub)
            snap = await asyncio.to_thread(self.snapshot, story_id)
            sent: Snapshot | None = None
            while True:
                event = snap.event(sub.lang, sent)
                if event is not None:
                    yield event
                    sent = snap
                try:
                    snap = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
        finally:
            self._remove(sub)
            if writer:
                threading.Thread(target=self._leave, args=(sub,), name="relay-live-leave", daemon=True).start()


def give_back_memory() -> bool:
    """Return freed heap memory to the OS where the C library can (glibc's malloc_trim); False elsewhere."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows): it has nothing to trim
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


def _offer(queue: asyncio.Queue, snap: Snapshot) -> None:
    """Give a tab the newest snapshot; one it has not read yet is replaced (it only needs the latest)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(snap)


def _message(now: dict, sent: dict | None) -> dict | None:
    """What to send a tab that last got `sent`: only the parts that changed, and only the cards that did.

    The first message carries the window of newest cards as [id, seq, html]. Later ones carry
    "upsert" (new or changed cards: the page puts each in its place by seq, replacing one with the
    same id) and "remove" (ids gone from the story: undone or hidden). A card that only slid out
    of the window's front is still in the story, so the page keeps it.
    """
    if sent is None:
        return {"kind": "full", **_public(now), "cards": [[pid, seq, html] for pid, seq, _, html in now["cards"]]}
    message: dict = {"kind": "update"}
    for key in PARTS:
        if now.get(key) != sent.get(key):
            message[key] = now.get(key)
    old = {pid: fp for pid, _, fp, _ in sent["cards"]}
    upsert = [[pid, seq, html] for pid, seq, fp, html in now["cards"] if old.get(pid) != fp]
    shown = {pid for pid, _, _, _ in now["cards"]}
    first = now["cards"][0][1] if now["cards"] else 0
    remove = [pid for pid, seq, _, _ in sent["cards"] if pid not in shown and seq >= first]
    if upsert:
        message["upsert"] = upsert
    if remove:
        message["remove"] = remove
    return message if len(message) > 1 else None


def _public(parts: dict) -> dict:
    return {k: parts.get(k) for k in PARTS}
