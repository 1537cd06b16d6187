"""Small pieces every UI handler uses: the page language, user-facing errors, input checks, stop buttons,
escaped toast text, the session-state lifetime and the export folder."""

from __future__ import annotations

import html
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from relay.identity import identity_from_profile, server_secret
from relay.limits import LimitExceeded
from relay.story_store import StoryError
from relay.ui import limit_text
from relay.ui_text import TEXT, pick_lang, say

STATE_TTL_S = 2 * 3600  # gr.State(time_to_live=...) for per-tab state: a tab idle 2 h starts over
STATE_SESSION_CAPACITY = 1000  # sessions kept in memory (least recently used dropped first); ~0.4 MB each
MAX_UPLOAD_SIZE = "2mb"  # launch(max_file_size=...): imports are JSON exports, far smaller than this
CACHE_CLEANUP = (600, 3600)  # Blocks.delete_cache: every 10 min delete Gradio cache files older than 1 h
EXPORT_MAX_AGE_S = 3600  # export files older than this are deleted at the next export
EXPORT_DIR = Path(tempfile.gettempdir()) / "relay-exports"  # inside Gradio's allowed temp dir


def toast_text(lang: str, key: str, **values) -> str:
    """Message `key` (relay/ui_text.py or relay/ui/limit_text.py) with every value HTML-escaped.

    gr.Error / gr.Warning / gr.Info render their message as HTML (after a sanitiser that keeps
    images, links, forms and styles), so a writer's name or any user text must be escaped first.
    The message templates themselves are ours and may hold markup.
    """
    safe = {k: html.escape(str(v), quote=True) if isinstance(v, str) or not isinstance(v, (int, float)) else v
            for k, v in values.items()}
    if key in TEXT:
        return say(lang, key, **safe)
    return limit_text.say(lang, key, **safe)


def ui_error(lang: str, error: Exception, **values) -> gr.Error:
    """The toast for a refusal in a browser handler, with every user-controlled part escaped.

    LimitExceeded gets its limit message (pass `length=` for the context limit), a name bound to
    another writer's key gets "name_taken" (`name=`, else the error's own), any other error the
    catalogue's sentence for it in `lang` (relay/ui/messages.error_text), never the store's own English text.
    """
    if isinstance(error, LimitExceeded):
        merged = {"limit": error.limit, "retry": error.retry_after_s, "length": 0, **values}
        return _fail(toast_text(lang, f"limit_{error.action}", **merged))
    if type(error).__name__ == "NameTaken":  # the store's own sentence is English: never show it
        return _fail(toast_text(lang, "name_taken", name=values.get("name") or getattr(error, "name", "")))
    from relay.ui.messages import error_text  # the page's language for every store refusal, never str(error)

    return _fail(error_text(lang, error))


def page_writer(store, saved_key: str | None, profile=None, *, secret: bytes | None = None,
                before_issuing=None) -> tuple[str, str | None]:
    """The writer key of a browser session, and the display name of its signed-in account (None if nobody is).

    A signed-in Hugging Face account's key (relay.identity.identity_from_profile) comes first; else the
    key the browser kept in its gr.BrowserState, if this site issued it; else a new key from the store
    (the caller saves it back into the BrowserState), after `before_issuing()` (the caller's rate
    limit, which may raise). `secret` defaults to server_secret() beside the database.
    """
    if profile is not None and getattr(profile, "username", None):
        if secret is None:
            path = getattr(store, "path", None)
            secret = server_secret(Path(path).parent if path else None)
        name, key = identity_from_profile(profile, secret)
        store.register_writer_key(key)  # derived by the server from the account: issued here
        return key, name
    if isinstance(saved_key, str) and saved_key and store.writer_key_issued(saved_key):
        return saved_key, None
    if before_issuing is not None:
        before_issuing()
    return store.new_writer_key(), None


def export_path(story_id: int, fmt: str, *, now: float | None = None) -> Path:
    """A fresh file path for one export under EXPORT_DIR, after deleting exports older than EXPORT_MAX_AGE_S.

    Gradio copies a returned file into its own cache (cleaned by CACHE_CLEANUP), so ours only needs
    to live until the handler returns; the age keeps concurrent downloads safe.
    """
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    clean_exports(now=now)
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=EXPORT_DIR))
    return folder / f"relay-story-{int(story_id)}.{fmt}"


def clean_exports(*, now: float | None = None, max_age_s: float = EXPORT_MAX_AGE_S) -> int:
    """Delete export folders older than `max_age_s`; returns how many were deleted."""
    now = time.time() if now is None else now
    removed = 0
    if not EXPORT_DIR.is_dir():
        return 0
    for entry in EXPORT_DIR.iterdir():
        try:
            if now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed += 1
        except OSError:  # another process removed it first, or it is not ours to remove
            continue
    return removed

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

