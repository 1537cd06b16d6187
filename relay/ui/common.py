"""Small pieces every UI handler uses: the page language, user-facing errors, input checks, stop buttons."""

from __future__ import annotations

import threading

import gradio as gr

from relay.ui_text import pick_lang, say

class Cancels:
    """Stop buttons: one threading.Event per browser session, set by the stop button."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
            return event

    def cancel(self, session: str) -> None:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()

    def done(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]


def _lang(request: gr.Request | None) -> str:
    return pick_lang(request.headers.get("accept-language") if request is not None else None)


def _fail(message: str):
    """A user-facing error (no server traceback: it is the user's mistake, not ours)."""
    return gr.Error(message, print_exception=False)


def _need_name(writer: str | None, lang: str) -> str:
    name = (writer or "").strip()
    if not name:
        raise _fail(say(lang, "need_name"))
    return name


def _need_story(story_id, lang: str) -> int:
    if story_id in (None, ""):
        raise _fail(say(lang, "need_story"))
    return int(story_id)

