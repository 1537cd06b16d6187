"""Small pieces every UI handler uses: the page language, user-facing errors, input checks, stop buttons."""

from __future__ import annotations

import gradio as gr

from relay.ui_text import pick_lang, say

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

