"""`/relay/tokens`: the token probability view of one accepted AI paragraph, or of one suggestion waiting in the
story's model turn (as co-writers watch it), fetched by the page only when the writer turns "확률 보기" on and the
card comes into view (relay/ui/token_view.js).

A timeline card only says it has a record (data-tokens); the view itself is ~200 bytes a token, so carrying it in
every card would shrink the live window (WINDOW_BYTES) several times over for everyone, toggle on or not. The
paragraph is read as the timeline shows it (visible paragraphs only, the same read as the older-paragraphs page).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse

from relay.story_store import NotFound, StoryStore
from relay.ui.token_view import token_html, tokens_of
from relay.ui_text import LANGS

TURN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a model turn's id can look like (the store issues them)
MAX_SUGGESTIONS = 10_000  # a place in a turn beyond any turn's suggestions
WHOLE = re.compile(r"[0-9]{1,19}")


def _whole(text: str) -> int | None:
    """A query value as a whole number written in ASCII digits, else None ("²" and "-1" are not)."""
    return int(text) if WHOLE.fullmatch(text) else None


def paragraph_tokens_html(store: StoryStore, story_id: int, seq: int, lang: str) -> str | None:
    """The token view of visible AI paragraph number `seq` of the story, or None if there is none to show."""
    paragraphs, _ = store.timeline_page(story_id, 1, before=seq + 1)
    if not paragraphs or paragraphs[0].seq != seq or paragraphs[0].kind != "ai":
        return None
    paragraph = paragraphs[0]
    tokens = tokens_of(paragraph.meta)
    if tokens is None:
        return None
    return token_html(tokens, lang, branchable=False, edited=bool(paragraph.edited))


def suggestion_tokens_html(store: StoryStore, story_id: int, turn_id: str, n: int, lang: str) -> str | None:
    """The token view of suggestion `n` of the story's model turn `turn_id`, while it waits (co-writers see its
    text already), or None: another turn, a suggestion accepted or thrown away, or one without a record."""
    turn = store.ai_turn(story_id)
    if turn is None or turn.turn_id != turn_id or n >= len(turn.candidates) or turn.candidates[n].status != "open":
        return None
    tokens = tokens_of(turn.candidates[n].meta)
    return token_html(tokens, lang, branchable=False) if tokens is not None else None


def add_token_route(app: FastAPI, store: StoryStore) -> None:
    """Serve `/relay/tokens?story=ID&seq=N&lang=ko|en` (a paragraph) and `?story=ID&turn=T&n=I` (a suggestion
    waiting in the story's model turn T) on `app`."""

    @app.get("/relay/tokens")
    def tokens(story: str = Query(...), seq: str = Query(""), turn: str = Query(""), n: str = Query(""),
               lang: str = Query("ko")):
        """HTML: the paragraph's or suggestion's tokens coloured by probability, with their alternatives."""
        story_id, seq_n, place = _whole(story), _whole(seq), _whole(n)
        by_seq = seq_n is not None and 0 < seq_n < 2**62 and not turn and not n
        by_turn = bool(TURN_ID.fullmatch(turn)) and place is not None and place < MAX_SUGGESTIONS and not seq
        if lang not in LANGS or story_id is None or not 0 < story_id < 2**63 or not (by_seq or by_turn):
            return JSONResponse({"error": "story must be a positive whole number, with either seq (a positive whole "
                                          "number) or turn and n (a model turn and a suggestion's place in it); "
                                          "lang ko or en"}, status_code=400)
        try:
            view = (paragraph_tokens_html(store, story_id, seq_n, lang) if by_seq
                    else suggestion_tokens_html(store, story_id, turn, place, lang))
        except NotFound:
            view = None
        if view is None:
            return JSONResponse({"error": "no token record for that paragraph or suggestion"}, status_code=404)
        return HTMLResponse(view, headers={"Cache-Control": "no-store"})
