"""Branching a suggestion on the writing desk: rewrite it from any token (with an alternative the model considered
there, or afresh from that position), and "더 쓰기" (write more after it). Each writes a new swipe of the same
turn, streamed, seeded and watched live by co-writers like any suggestion, as a server-side job (relay/turn_jobs.py)
that outlives the tab. Also the desk's token probability panels for the suggestion shown and the side-by-side
columns (relay/ui/token_view.py renders them; relay/ui/token_view.js opens the popover and sends a branch).

The page sends only the candidate, the position and the alternative's index; AITurn.branch rebuilds the prefix
from the ids stored with that candidate, after checking the writer's key and turn.
"""

from __future__ import annotations

import html
import json
import re

import gradio as gr

from relay.story_store import StoryError
from relay.ui.desk import MAX_ALTERNATIVES, Desk, next_seed
from relay.ui.messages import user_error
from relay.ui.token_view import legend_html, token_html, tokens_of
from relay.ui_text import say

MAX_REQUEST_CHARS = 200  # {"candidate": id, "at": position, "choice": index}: anything longer is not the page's
MAX_CHOICE = 10  # alternatives a position can have (the engine records 5)
CANDIDATE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the store's candidate keys (url-safe tokens)


def parse_branch_request(raw) -> tuple[str, int, int | None] | None:
    """(candidate key, position, alternative index or None for "from here") from the page's request, or None if
    it is not one the page sends."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_REQUEST_CHARS:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    candidate, at, choice = data.get("candidate"), data.get("at"), data.get("choice")
    if not isinstance(candidate, str) or not CANDIDATE_KEY.fullmatch(candidate) or not _whole(at) or at < 0:
        return None
    if choice is not None and (not _whole(choice) or not 0 <= choice < MAX_CHOICE):
        return None
    return candidate, at, choice


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value < 2**63


def check_position(tokens: dict | None, at: int, choice: int | None, lang: str) -> None:
    """Refuse, with a message, a position or alternative the candidate's token record does not have."""
    if not tokens or not isinstance(tokens.get("ids"), list) or not tokens["ids"]:
        raise user_error(lang, say(lang, "probs_branch_no_tokens"))
    if at >= len(tokens["ids"]):
        raise user_error(lang, say(lang, "probs_branch_bad_place"))
    if choice is not None:
        top = tokens.get("top") if isinstance(tokens.get("top"), list) else []
        if at >= len(top) or not isinstance(top[at], list) or choice >= len(top[at]):
            raise user_error(lang, say(lang, "probs_branch_bad_place"))


class Branch:
    """The branch and "더 쓰기" handlers, and the desk's token panels; they run through the desk's job machinery."""

    def __init__(self, desk: Desk):
        self.desk = desk
        self.services = desk.services

    def _candidate(self, view, candidate_id: str, lang: str):
        """The stored suggestion `candidate_id`, which must be one of the turn's this tab was shown."""
        if not view or candidate_id not in (view.get("ids") or []):
            raise user_error(lang, say(lang, "probs_branch_nothing"))
        try:
            return self.services.store.get_candidate(candidate_id)
        except StoryError:
            raise user_error(lang, say(lang, "probs_branch_nothing")) from None

    def branch(self, request: gr.Request, story_id, name, key, view, adapter_name, lang, *values):
        """Rewrite a suggestion from a token: the last value is the page's {"candidate", "at", "choice"}.

        A new swipe whose text keeps the suggestion's tokens before `at`, then the chosen alternative (or a
        fresh sample when choice is None), then whatever the model writes under the settings."""
        *values, raw = values
        sid, name, settings, turn_note = self.desk._turn_inputs(story_id, name, values, lang)
        parsed = parse_branch_request(raw)
        if parsed is None:
            raise user_error(lang, say(lang, "probs_branch_bad_place"))
        candidate_id, at, choice = parsed
        check_position(tokens_of(self._candidate(view, candidate_id, lang).meta), at, choice, lang)
        if choice is None:  # the same prefix under a seed the turn used would write the same text again
            settings = next_seed(settings, self.desk._seeds_used(view), lang)
        ai_turn = self.services.ai_turn

        def work(stop):
            for text, done in ai_turn.branch(sid, name, candidate_id, at, choice, settings, adapter_name or None,
                                             stop, lang, writer_key=key, turn_note=turn_note):
                yield [text], done

        job = self.desk._start_job(request, sid, name, key, lang, work)
        yield from self.desk.follow_new_swipe(job, view, lang)

    def extend(self, request: gr.Request, story_id, name, key, view, adapter_name, lang, *values):
        """"더 쓰기": the suggestion shown, continued further (up to the settings' length more), as a new swipe."""
        sid, name, settings, turn_note = self.desk._turn_inputs(story_id, name, values, lang)
        if not view or not view.get("ids"):
            raise user_error(lang, say(lang, "probs_branch_nothing"))
        candidate_id = view["ids"][view["index"]]
        if not tokens_of(self._candidate(view, candidate_id, lang).meta):
            raise user_error(lang, say(lang, "probs_branch_no_tokens"))
        settings = next_seed(settings, self.desk._seeds_used(view), lang)
        ai_turn = self.services.ai_turn

        def work(stop):
            for text, done in ai_turn.extend(sid, name, candidate_id, settings, adapter_name or None, stop, lang,
                                             writer_key=key, turn_note=turn_note):
                yield [text], done

        job = self.desk._start_job(request, sid, name, key, lang, work)
        yield from self.desk.follow_new_swipe(job, view, lang)

    def token_panels(self, view, text, lang):
        """The token views of the suggestion shown and of the side-by-side columns; a note when the box's `text`
        (None: the text the view last saw) differs from the suggestion's. Outputs: the suggestion's panel, then
        MAX_ALTERNATIVES column panels."""
        if not view or not view.get("ids"):
            return ("", *[""] * MAX_ALTERNATIVES)
        if text is None:
            text = view.get("seen_text")
        shown = view["ids"][view["index"]]
        alts = [c for c in view.get("alts") or [] if c in view["ids"]][:MAX_ALTERNATIVES]
        panel = self._panel(shown, lang, legend=True, text=text)
        columns = [self._panel(c, lang) if i < len(alts) else "" for i, c in enumerate(alts + [None] * MAX_ALTERNATIVES)]
        return (panel, *columns[:MAX_ALTERNATIVES])

    def token_panels_for_view(self, view, lang):
        """`token_panels` when the view changes (a new or flipped suggestion): the box may not hold its text yet."""
        return self.token_panels(view, None, lang)

    def _panel(self, candidate_id: str, lang: str, *, legend: bool = False, text: str | None = None) -> str:
        try:
            candidate = self.services.store.get_candidate(candidate_id)
        except StoryError:
            return ""
        tokens = tokens_of(candidate.meta)
        edited = text is not None and text.strip() != candidate.text.strip()
        body = token_html(tokens or {}, lang, branchable=bool(tokens), edited=edited)
        key = legend_html(lang) if legend and tokens else ""
        return f'<div class="relay-tk-panel" data-candidate="{html.escape(str(candidate_id), quote=True)}">{key}{body}</div>'
