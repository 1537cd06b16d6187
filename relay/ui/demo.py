"""The Relay page: `build_demo(engine, store)` lays out the tabs and wires them; `story_parts` is
what the live stream (relay/live.py) shows of a story.

State has three homes: the story store (shared by every browser), `gr.State` (one browser tab: the
open story, the suggestion in its preview) and `gr.BrowserState` (one browser: the writer's name and
secret writer key). The story tab lives in relay/ui/story.py, the lab in relay/ui/lab.py, the named
API in relay/ui/api.py.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import gradio as gr

from relay.settings import SamplingSettings
from relay.limits import Limits
from relay.story_store import NotFound, StoryStore
from relay.turns import AITurn, Stops, turn_idle_s
from relay.ui.api import register_api
from relay.ui.common import STATE_TTL_S
from relay.ui.controls import i18n_key
from relay.ui.lab import build_lab_tab
from relay.ui.preparing import build_preparing_banner, note_model_buttons
from relay.ui.presence_view import ai_gate, presence_parts
from relay.ui.render import CardCache, render_card, render_header, render_status, render_turn
from relay.ui.steering import render_shared
from relay.ui.story import TOUCH_EVERY_S, build_story_tabs
from relay.ui_text import say



WINDOW = 200  # newest cards a page (and every live message) carries; older ones come in pages on demand
WINDOW_BYTES = 180_000  # ...and at most this much card HTML (UTF-8; 200 cards of ~40 characters), so long paragraphs make a shorter window
OLDER_PAGE = 100  # cards in one "older paragraphs" page (relay/ui/server.py: `/relay/older`), also within WINDOW_BYTES
MAX_OLDER_PAGE = 200  # the most one request may ask for


def story_parts(store: StoryStore, story_id: int, lang: str, cards: CardCache | None = None) -> dict:
    """A story as the live stream sends it to a page in `lang` (see relay.live.LiveHub).

    Only the newest WINDOW paragraphs (fewer if their cards pass WINDOW_BYTES), read with one
    indexed query and rendered through `cards` (reused across snapshots), so a change to a story of
    thousands of paragraphs costs what a short one does. "more" says whether older paragraphs exist
    (the page fetches them on demand).
    """
    story = store.get_story(story_id)
    paragraphs, more = store.timeline_page(story_id, WINDOW)
    turn = store.ai_turn(story_id)
    head = paragraphs[-1] if paragraphs else None
    render = cards.card if cards is not None else render_card
    kept = _newest_within([(p, render(p, lang)) for p in paragraphs], WINDOW_BYTES)
    more = more or len(kept) < len(paragraphs)
    paragraphs = [p for p, _ in kept]
    window = [(p.id, p.seq, hash(html), html) for p, html in kept]
    turn_state = None
    if turn is not None:
        turn_state = {"holder_id": turn.holder_id, "status": turn.status, "turn_id": turn.turn_id,
                      "n": len(turn.candidates), "expires_at": turn.expires_at}
    presence, takeover_at = presence_parts(store, story_id, turn, lang)  # who is here (relay/ui/presence_view.py)
    wake_at = turn.expires_at if turn is not None else None  # the live hub re-renders the story then
    if turn_state is not None:
        # Whether a co-writer may take over the waiting suggestion now; if later, the hub wakes up then.
        turn_state["takeover"] = takeover_at is not None and takeover_at <= time.time()
        if takeover_at is not None and not turn_state["takeover"]:
            wake_at = min(wake_at, takeover_at)
    return {
        "header": render_header(story, lang, fork_seq=_fork_point(store, story)),
        "status": render_status(story, head, turn, lang),
        "turn": render_turn(turn, lang),
        "turn_state": turn_state,
        "cards": window,
        "empty": f"<p><em>{say(lang, 'empty_timeline')}</em></p>",
        "head": head.id if head else 0,
        "count": story.paragraph_count,
        "first": paragraphs[0].seq if paragraphs else 0,
        "more": more,
        "older": say(lang, "older_paragraphs"),
        "expires_at": wake_at,
        "steering": render_shared(store.steering(story_id), lang),  # memory, note, cards (relay/ui/steering.py)
        "presence": presence,
        "ai_gate": ai_gate(story, head, turn, lang),  # why "AI 이어쓰기" is disabled now, if it is
    }


def older_cards(store: StoryStore, story_id: int, before: int, lang: str, cards: CardCache | None = None,
                limit: int = OLDER_PAGE) -> dict:
    """The `limit` paragraphs before seq `before` as rendered cards ([id, seq, html], oldest first) and
    whether still older ones exist: what a page asks for when its reader scrolls up."""
    paragraphs, more = store.timeline_page(story_id, min(limit, MAX_OLDER_PAGE), before=before)
    render = cards.card if cards is not None else render_card
    kept = _newest_within([(p, render(p, lang)) for p in paragraphs], WINDOW_BYTES)
    return {"cards": [[p.id, p.seq, html] for p, html in kept], "more": more or len(kept) < len(paragraphs)}


def _newest_within(rendered: list, budget: int) -> list:
    """The newest (paragraph, card html) pairs whose HTML fits in `budget` bytes, in order; at least one."""
    total, start = 0, len(rendered)
    while start > 0:
        total += len(rendered[start - 1][1].encode("utf-8"))
        if total > budget and start < len(rendered):
            break
        start -= 1
    return rendered[start:]


def _fork_point(store: StoryStore, story) -> int | None:
    """The number (seq) of the paragraph a fork was made at, if it is still in the original (one row read)."""
    if not story.forked_from:
        return None
    source, paragraph_id = story.forked_from
    try:
        at = store.paragraph(source, paragraph_id)
    except NotFound:
        return None
    return None if at.deleted or at.hidden else at.seq


def build_demo(engine, store: StoryStore, *, tiny: bool = False, ai_idle_s: float | None = None) -> gr.Blocks:
    """The Relay web app (UI and API) over one engine and one story store.

    `ai_idle_s`: how long a finished suggestion keeps the model's turn for its writer without activity
    (default: the RELAY_TURN_IDLE_S setting, 180 s).
    """
    ai_idle_s = turn_idle_s() if ai_idle_s is None else ai_idle_s
    specs = SamplingSettings.specs()
    ui = SimpleNamespace(
        engine=engine, store=store, defaults=SamplingSettings(), names=[s.name for s in specs],
        ai_turn=AITurn(engine, store, escape_names=True, idle_s=ai_idle_s), cancels=Stops(),
        private=dict(api_visibility="private"),
        # Model jobs start at once (no Gradio concurrency group): the engine queues and batches them
        # itself, and per-writer caps refuse floods, so cheap events never wait behind the model.
        model_queue=dict(concurrency_limit=None),
        limits=Limits(),  # one set of counters for the page and the API (relay/limits.py)
    )
    with gr.Blocks(title="릴레이 소설 · Relay") as demo:
        ui.demo = demo
        # The API first, so its endpoints get the plain names (private UI handlers get suffixes).
        register_api(engine, store, AITurn(engine, store, escape_names=False, idle_s=ai_idle_s), ui.limits)

        ui.writer_saved = gr.BrowserState("", storage_key="relay-writer-name", secret="relay-writer-name-v1")
        ui.writer_key = gr.BrowserState("", storage_key="relay-writer-key", secret="relay-writer-key-v1")
        ui.writer_id = gr.Textbox(visible=False)  # public id of this browser's key (the page script compares it)
        # The open story id: a hidden component rather than gr.State, so the page script sees it change.
        ui.story_state = gr.Number(value=None, visible=False, precision=0, elem_id="relay-story-id")
        ui.lang_state = gr.State("ko", time_to_live=STATE_TTL_S)
        ui.seen_head = gr.Number(value=0, visible=False, precision=0)
        ui.draft_id = gr.Textbox(visible=False)  # replaced by the page script: one id per draft (a retry stores once)
        ui.turn_view = gr.State(None, time_to_live=STATE_TTL_S)  # {"ids", "index", "expected_head"}: this tab's suggestions
        ui.touch_timer = gr.Timer(TOUCH_EVERY_S, active=False)  # keeps a pending suggestion's turn alive

        gr.Markdown(i18n_key("app_title"))
        gr.Markdown(i18n_key("app_intro"))
        gr.Markdown(i18n_key("tiny_banner"), visible=tiny, elem_id="relay-tiny-banner")
        build_preparing_banner(demo, engine, ui.private)  # "the model is being prepared (N%)" on a first start
        with gr.Row():
            ui.writer = gr.Textbox(label=i18n_key("writer_name"), info=i18n_key("writer_name_info"), max_length=40,
                                   elem_id="relay-writer", scale=3)
            if os.environ.get("SPACE_ID"):
                gr.LoginButton(scale=1)

        with gr.Tabs(selected="stories") as ui.tabs:
            build_story_tabs(ui)
            with gr.Tab(i18n_key("tab_lab"), id="lab"):
                build_lab_tab(ui)
        note_model_buttons(demo, engine, ui.private)  # pressed while the model is being prepared: say so
    return demo
