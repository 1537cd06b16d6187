"""`/relay/tokens`: the token probability view of one accepted AI paragraph, fetched by the page only when the
writer turns "확률 보기" on and the card comes into view (relay/ui/token_view.js).

A timeline card only says it has a record (data-tokens); the view itself is ~200 bytes a token, so carrying it in
every card would shrink the live window (WINDOW_BYTES) several times over for everyone, toggle on or not. The
paragraph is read as the timeline shows it (visible paragraphs only, the same read as the older-paragraphs page).
"""

from __future__ import annotations

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse

from relay.story_store import NotFound, StoryStore
from relay.ui.token_view import token_html, tokens_of
from relay.ui_text import LANGS


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


def add_token_route(app: FastAPI, store: StoryStore) -> None:
    """Serve `/relay/tokens?story=ID&seq=N&lang=ko|en` on `app`."""

    @app.get("/relay/tokens")
    def tokens(story: str = Query(...), seq: str = Query(...), lang: str = Query("ko")):
        """HTML: the paragraph's tokens coloured by probability, with their alternatives for the popover."""
        if lang not in LANGS or not story.isdigit() or not seq.isdigit() or not 0 < int(story) < 2**63 \
                or not 0 < int(seq) < 2**62:
            return JSONResponse({"error": "story and seq must be positive whole numbers, lang ko or en"},
                                status_code=400)
        try:
            view = paragraph_tokens_html(store, int(story), int(seq), lang)
        except NotFound:
            view = None
        if view is None:
            return JSONResponse({"error": "no token record for that paragraph"}, status_code=404)
        return HTMLResponse(view, headers={"Cache-Control": "no-store"})
