"""Steering the model from the story tab: the story memory, the author's note (and a note for the next model turn
only), the story cards, and a view of exactly what the model reads next turn, block by block.

`build_steering_panel(ui, controls)` lays the panel out inside the story tab and wires it; `SteeringPanel` holds
its handlers over the page's services, so a test calls them without the page. The view is rendered from
`Engine.assemble`, the function the model's turn generates from, with the same story, steering and settings,
so it cannot drift from what the model reads. `render_shared` is the part every open tab on the story shows
live (relay/ui/demo.py puts it in the live stream as "steering"; relay/ui/live.js shows it and asks this panel
to refresh).
"""

from __future__ import annotations

import html
from types import SimpleNamespace

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.settings import SettingsError
from relay.story_store import (MAX_CARD_TEXT_CHARS, MAX_MEMORY_CHARS, MAX_NOTE_CHARS, SteeringChanged, SteeringLimit,
                               SteeringLocked, StoryError)
from relay.ui.common import STATE_TTL_S
from relay.ui.controls import i18n_key, settings_from_values
from relay.ui.history import render_time
from relay.ui.limit_text import limit_message
from relay.ui.messages import error_text, info, warn
from relay.ui.story_services import StoryServices
from relay.ui_text import say

PANEL_ID = "relay-steering"
SHARED_ID = "relay-steering-live"  # live.js fills it from the stream's "steering" part
READS_ID = "relay-reads"
SYNC_ID = "relay-steer-sync"  # clicked by live.js when the shared steering changes: refresh the unedited boxes
REFRESH_ID = "relay-reads-refresh"  # clicked by live.js when the story or its steering changes, if the view shows
NEW_CARD = 0  # the card picker's "new card" choice
CARD_FIELDS = ("name", "keys", "text", "priority", "always_on", "enabled", "inside_words")

CSS = """
#relay-steering .relay-steer-shared { display: flex; flex-direction: column; gap: 0.5rem; }
#relay-steering .relay-steer-item { border-left: 3px solid #8aa4c8; padding: 0.2rem 0.6rem; }
#relay-steering .relay-steer-item small, .relay-reads small { opacity: 0.75; }
#relay-steering .relay-steer-cards { margin: 0.2rem 0 0 1.2rem; padding: 0; }
.relay-reads { display: flex; flex-direction: column; gap: 0.4rem; }
.relay-reads-summary { font-weight: 600; }
.relay-reads-problem { border: 1px solid #d9534f; border-radius: 6px; padding: 0.4rem 0.6rem; color: #b52b27; }
.relay-read { border-left: 4px solid #8aa4c8; padding: 0.2rem 0.6rem; }
.relay-read-memory { border-left-color: #5b9a68; }
.relay-read-card { border-left-color: #d59a3a; }
.relay-read-note { border-left-color: #c88ab8; }
.relay-read-title { font-size: 0.8rem; opacity: 0.85; }
.relay-read-text { white-space: pre-wrap; font-family: inherit; margin: 0.1rem 0 0 0; line-height: 1.6; }
.relay-read-story .relay-read-text { max-height: 16rem; overflow-y: auto; }
.relay-reads-dropped { font-size: 0.85rem; opacity: 0.85; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# -- what every tab shows, live ---------------------------------------------------------------------


def render_shared(steering, lang: str) -> str:
    """The story's memory, note and cards as every open tab shows them (escaped; who changed each and when)."""
    none = f"<em>{_esc(say(lang, 'steer_live_none'))}</em>"

    def by(version, who, when) -> str:
        if not version:
            return ""
        return f" <small>{_esc(say(lang, 'steer_live_by', version=version, who=who or '', when=''))}{render_time(when)}</small>"

    memory = (f'<div class="relay-steer-item relay-steer-memory"><b>{_esc(say(lang, "steer_live_memory"))}</b>'
              f'{by(steering.memory_version, steering.memory_by, steering.memory_at)}'
              f'<div class="relay-text">{_esc(steering.memory) if steering.memory.strip() else none}</div></div>')
    note = (f'<div class="relay-steer-item relay-steer-note">'
            f'<b>{_esc(say(lang, "steer_live_note", depth=steering.note_depth))}</b>'
            f'{by(steering.note_version, steering.note_by, steering.note_at)}'
            f'<div class="relay-text">{_esc(steering.note) if steering.note.strip() else none}</div></div>')
    cards = "".join(_shared_card(card, lang) for card in steering.cards)
    cards_title = say(lang, "steer_live_cards", n=len(steering.cards), scan=steering.scan_depth)
    cards_html = (f'<div class="relay-steer-item relay-steer-cardlist"><b>{_esc(cards_title)}</b>'
                  f'<ul class="relay-steer-cards">{cards}</ul></div>')
    locked = f'<div><small>{_esc(say(lang, "steer_live_locked"))}</small></div>' if steering.locked else ""
    return f'<div class="relay-steer-shared">{locked}{memory}{note}{cards_html}</div>'


def _shared_card(card, lang: str) -> str:
    marks = [", ".join(card.keys)] if card.keys else []
    marks.append(f"P{card.priority}")
    marks += [say(lang, key) for key, on in (("steer_live_card_always", card.always_on),
                                             ("steer_live_card_inside", card.inside_words),
                                             ("steer_live_card_off", not card.enabled)) if on]
    return (f'<li class="relay-steer-card" data-card="{card.id}"><b>{_esc(card.name)}</b> '
            f'<small>{_esc(" · ".join(marks))} · v{card.version} · {_esc(card.updated_by)}</small>'
            f'<div class="relay-text">{_esc(card.text)}</div></li>')


# -- what the model reads -------------------------------------------------------------------------------


def render_reads(engine, assembly, timeline, lang: str) -> str:
    """The assembled prompt block by block, in the order the model reads it, with token counts, the budget,
    what fell out of the window and which cards were left out (or wait for their keys)."""
    seq = [p.seq for p in timeline]
    blocks = "".join(_read_block(engine, block, assembly, seq, lang) for block in assembly.blocks)
    span = assembly.story_range
    summary = say(lang, "ctx_summary", total=f"{len(assembly.ids) + assembly.room:,}", window=f"{assembly.window:,}",
                  memory=assembly.tokens("memory"), cards=sum(1 for b in assembly.blocks if b.kind == "card"),
                  card_tokens=assembly.tokens("card"), paragraphs=(span[1] - span[0] + 1) if span else 0,
                  story=assembly.tokens("story"), note=assembly.tokens("note"), room=assembly.room)
    problem = ""
    if assembly.problem is not None:
        text = say(lang, f"steer_too_long_{assembly.problem.block}", need=assembly.problem.need,
                   left=assembly.problem.left)
        problem = f'<p class="relay-reads-problem" data-block="{assembly.problem.block}">⚠️ {_esc(text)}</p>'
    notes = []
    if assembly.dropped_paragraphs and seq:
        notes.append(say(lang, "ctx_dropped_paragraphs", last=seq[assembly.dropped_paragraphs - 1],
                         n=assembly.dropped_paragraphs))
    elif seq:
        notes.append(say(lang, "ctx_dropped_none"))
    if assembly.dropped_cards:
        notes.append(say(lang, "ctx_dropped_cards", names=", ".join(t.card.name for t in assembly.dropped_cards)))
    steering = assembly.steering
    if steering is not None:
        shown = {b.trigger.card.id for b in assembly.blocks if b.kind == "card"} | {
            t.card.id for t in assembly.dropped_cards}
        waiting = [c.name for c in steering.cards if c.enabled and c.id not in shown]
        if waiting:
            notes.append(say(lang, "ctx_waiting_cards", scan=steering.scan_depth, names=", ".join(waiting)))
    dropped = "".join(f'<p class="relay-reads-dropped">{_esc(n)}</p>' for n in notes)
    return (f'<div class="relay-reads" data-tokens="{len(assembly.ids)}">'
            f'<p class="relay-reads-summary">{_esc(summary)}</p>{problem}{blocks}{dropped}</div>')


def _read_block(engine, block, assembly, seq: list[int], lang: str) -> str:
    n = len(block.ids)
    if block.kind == "memory":
        title = say(lang, "ctx_block_memory", n=n)
    elif block.kind == "card":
        t = block.trigger
        title = (say(lang, "ctx_block_card_always", name=t.card.name, n=n) if t.key is None else
                 say(lang, "ctx_block_card", name=t.card.name, n=n, trigger=t.key, word=t.word, seq=seq[t.paragraph]))
    elif block.kind == "note":
        title = say(lang, "ctx_block_note", n=n, depth=assembly.steering.note_depth if assembly.steering else 0)
    elif block.paragraphs is None:
        title = say(lang, "ctx_block_start")
    else:
        first, last = seq[block.paragraphs[0]], seq[block.paragraphs[1]]
        title = say(lang, "ctx_block_story_cut" if block.cut else "ctx_block_story", first=first, last=last, n=n)
    text = "" if block.paragraphs is None and block.kind == "story" else engine.block_text(block.ids)
    attributes = f' data-card="{block.trigger.card.id}"' if block.kind == "card" else ""
    return (f'<section class="relay-read relay-read-{block.kind}" data-tokens="{n}"{attributes}>'
            f'<div class="relay-read-title">{_esc(title)}</div><pre class="relay-read-text">{_esc(text)}</pre></section>')


# -- the handlers -----------------------------------------------------------------------------------------


class SteeringPanel:
    """The panel's handlers over the page's services (story store, engine, model turns, limits)."""

    def __init__(self, services: StoryServices):
        self.services = services

    # what the model reads

    def assembly(self, story_id: int, settings, turn_note: str | None = None):
        """(the assembled prompt of the story's next turn, its timeline): what `reads` shows, built exactly as the
        model's turn builds it (relay.turns.AITurn: the same timeline, steering and Engine.assemble)."""
        timeline = self.services.store.timeline(story_id)
        steering = self.services.ai_turn.steering(story_id, turn_note)
        return self.services.engine.assemble([p.text for p in timeline], settings, steering), timeline

    def reads(self, story_id, lang, turn_note, *values):
        """The "what the model reads" view for this tab's settings and its note for the next turn."""
        if story_id in (None, ""):
            return ""
        try:
            settings = settings_from_values(self.services.names, values, self.services.setting_range)
            assembly, timeline = self.assembly(int(story_id), settings, turn_note or None)
        except (SettingsError, StoryError) as e:
            return f'<p class="relay-reads-problem">{_esc(error_text(lang, e))}</p>'
        return render_reads(self.services.engine, assembly, timeline, lang)

    def warn_if_crowded(self, story_id: int, lang: str, turn_note, values) -> None:
        """After a save: if memory and note now leave the story too little, say which to shorten."""
        try:
            settings = settings_from_values(self.services.names, values, self.services.setting_range)
            problem = self.assembly(story_id, settings, turn_note or None)[0].problem
        except (SettingsError, StoryError):
            return
        if problem is not None:
            warn(lang, _esc(say(lang, f"steer_too_long_{problem.block}", need=problem.need, left=problem.left)))

    # the editors
    #
    # Each block has its own "seen" state in the tab: what its box was last filled with (and the version it was).
    # A save goes over that version (a newer one refuses it); a co-writer's change refreshes a box only if its
    # text is still what was filled in. One state per block, so a refresh never overwrites what a save of
    # another block (or of the same one, racing it) just recorded.

    def load(self, story_id, lang):
        """The editors filled from the store (when a story opens). Outputs: EDITOR_SLOTS, then the three seen
        states (memory, note, card)."""
        if story_id in (None, ""):
            return [gr.skip()] * (EDITOR_SLOTS + 3)
        s = self.services.store.steering(int(story_id))
        return (s.memory, s.note, s.note_depth, s.scan_depth, s.locked, _picker(s, lang, NEW_CARD),
                *_card_values(None), _memory_seen(s), _note_seen(s), _card_seen(None))

    def sync(self, story_id, lang, memory_seen, note_seen, card_seen, memory, note, depth, card_id, *card_values):
        """After someone changed the story's steering: refresh each box this writer has not edited since it was
        filled, and the card list; an edited box keeps its text (its save then says someone changed it)."""
        if story_id in (None, ""):
            return [gr.skip()] * (EDITOR_SLOTS + 3)
        s = self.services.store.steering(int(story_id))
        memory_seen, note_seen, card_seen = memory_seen or {}, note_seen or {}, card_seen or {}
        out = [gr.skip()] * (EDITOR_SLOTS + 3)
        if memory == memory_seen.get("text", "") and s.memory_version != memory_seen.get("version"):
            out[0], out[EDITOR_SLOTS] = s.memory, _memory_seen(s)
        unedited = note == note_seen.get("text", "") and _whole(depth) == note_seen.get("depth", _whole(depth))
        if unedited and s.note_version != note_seen.get("version"):
            out[1], out[2], out[EDITOR_SLOTS + 1] = s.note, s.note_depth, _note_seen(s)
        out[3], out[4] = s.scan_depth, s.locked
        picked = int(card_id or NEW_CARD)
        card = next((c for c in s.cards if c.id == picked), None)
        out[5] = _picker(s, lang, None)  # new choices; the writer's pick stays
        if picked != NEW_CARD and card is None:  # deleted meanwhile: back to a new card
            out[5], out[6:EDITOR_SLOTS] = _picker(s, lang, NEW_CARD), _card_values(None)
            out[EDITOR_SLOTS + 2] = _card_seen(None)
        elif (card is not None and card_seen.get("id") == card.id and card.version != card_seen.get("version")
              and list(card_values) == card_seen.get("values")):
            out[6:EDITOR_SLOTS] = _card_values(card)
            out[EDITOR_SLOTS + 2] = _card_seen(card)
        return tuple(out)

    def pick_card(self, story_id, card_id, lang):
        """The picked card's fields (empty ones for a new card). Outputs: the seven fields, the card's seen state."""
        card = None
        if story_id not in (None, "") and card_id not in (None, NEW_CARD):
            card = next((c for c in self.services.store.steering(int(story_id)).cards if c.id == int(card_id)), None)
        return (*_card_values(card), _card_seen(card))

    def save_memory(self, request: gr.Request, story_id, text, name, key, lang, seen, turn_note, *values):
        """Save the story memory (over the version this tab loaded). Outputs: the memory's seen state, the view."""
        s = self._attempt(request, story_id, name, key, lang, "set_memory", text or "",
                          expected_version=(seen or {}).get("version"))
        if s is None:
            return gr.skip(), gr.skip()
        info(lang, say(lang, "steer_memory_saved", version=s.memory_version))
        self.warn_if_crowded(s.story_id, lang, turn_note, values)
        return _memory_seen(s), self.reads(s.story_id, lang, turn_note, *values)

    def save_note(self, request: gr.Request, story_id, text, depth, name, key, lang, seen, turn_note, *values):
        """Save the author's note and its depth. Outputs: the note's seen state, the view."""
        s = self._attempt(request, story_id, name, key, lang, "set_note", text or "", _whole(depth),
                          expected_version=(seen or {}).get("version"))
        if s is None:
            return gr.skip(), gr.skip()
        info(lang, say(lang, "steer_note_saved", version=s.note_version))
        self.warn_if_crowded(s.story_id, lang, turn_note, values)
        return _note_seen(s), self.reads(s.story_id, lang, turn_note, *values)

    def save_scan(self, request: gr.Request, story_id, depth, name, key, lang, turn_note, *values):
        """How many latest paragraphs the cards search. Outputs: the view."""
        s = self._attempt(request, story_id, name, key, lang, "set_scan_depth", _whole(depth))
        if s is None:
            return gr.skip()
        sid = s.story_id
        info(lang, say(lang, "steer_scan_saved", n=s.scan_depth))
        return self.reads(sid, lang, turn_note, *values)

    def set_lock(self, request: gr.Request, story_id, locked, key, lang):
        """The creator locks or unlocks steering; anyone else is told why not (the box goes back)."""
        if story_id in (None, ""):
            return gr.skip()
        store = self.services.store
        try:
            s = store.lock_steering(int(story_id), bool(locked), writer_key=key)
        except StoryError as e:
            warn(lang, steering_error(lang, e))
            return store.steering(int(story_id)).locked
        info(lang, say(lang, "steer_lock_saved" if s.locked else "steer_unlock_saved"))
        return s.locked

    def save_card(self, request: gr.Request, story_id, card_id, card_name, keys, text, priority, always_on, enabled,
                  inside_words, name, key, lang, seen, turn_note, *values):
        """Create or change the picked card. Outputs: the picker, the card's seen state, the view."""
        card = {"name": card_name or "", "keys": (keys or "").split(","), "text": text or "",
                "priority": _whole(priority), "always_on": bool(always_on), "enabled": bool(enabled),
                "inside_words": bool(inside_words)}
        picked, expected = int(card_id or NEW_CARD), None
        if picked != NEW_CARD:
            card["id"] = picked
            expected = (seen or {}).get("version") if (seen or {}).get("id") == picked else None
        saved = self._attempt(request, story_id, name, key, lang, "save_card", card, expected_version=expected)
        if saved is None:
            return gr.skip(), gr.skip(), gr.skip()
        info(lang, say(lang, "steer_card_saved", name=_esc(saved.name), version=saved.version))
        sid = int(story_id)
        return (_picker(self.services.store.steering(sid), lang, saved.id), _card_seen(saved),
                self.reads(sid, lang, turn_note, *values))

    def delete_card(self, request: gr.Request, story_id, card_id, name, key, lang, seen, turn_note, *values):
        """Delete the picked card. Outputs: the picker, the seven fields, the card's seen state, the view."""
        if card_id in (None, NEW_CARD):
            warn(lang, say(lang, "steer_need_card"))
            return [gr.skip()] * 10
        expected = (seen or {}).get("version") if (seen or {}).get("id") == int(card_id) else None
        s = self._attempt(request, story_id, name, key, lang, "delete_card", int(card_id), expected_version=expected)
        if s is None:
            return [gr.skip()] * 10
        info(lang, say(lang, "steer_card_deleted"))
        return (_picker(s, lang, NEW_CARD), *_card_values(None), _card_seen(None),
                self.reads(s.story_id, lang, turn_note, *values))

    # shared steps

    def _attempt(self, request, story_id, name, key, lang, method: str, *args, **kwargs):
        """Run a store change for the writer (counted like writing a paragraph); None, after a toast saying
        why, when it is refused (so no output of the event is marked as failed)."""
        if story_id in (None, ""):
            warn(lang, say(lang, "need_story"))
            return None
        name = (name or "").strip()
        if not name:
            warn(lang, say(lang, "need_name"))
            return None
        store = self.services.store
        try:
            self.services.limits.check("paragraph", store.writer_id(key), client_ip(request))
            return getattr(store, method)(int(story_id), *args, name, writer_key=key, **kwargs)
        except LimitExceeded as e:
            warn(lang, _esc(limit_message(lang, e)))
        except StoryError as e:
            warn(lang, _esc(steering_error(lang, e)))
        return None


def steering_error(lang: str, exc: BaseException) -> str:
    """The sentence for a refused steering change: sizes name what is too long and its limit; a change over a
    newer version, or a locked story, say so; anything else as the page says it (relay/ui/messages.py)."""
    if isinstance(exc, SteeringLimit) and f"steer_limit_{exc.what}" in _catalogue():
        return say(lang, f"steer_limit_{exc.what}", limit=f"{exc.limit:,}", got=f"{exc.got:,}")
    if isinstance(exc, SteeringChanged):
        return say(lang, "err.SteeringChanged")
    if isinstance(exc, SteeringLocked):
        return say(lang, "err.SteeringLocked")
    if type(exc).__name__ == "InvalidInput":
        return say(lang, "err.steering.InvalidInput")
    return error_text(lang, exc)


def _catalogue() -> dict:
    from relay.ui_text import TEXT

    return TEXT


def _memory_seen(s) -> dict:
    return {"text": s.memory, "version": s.memory_version}


def _note_seen(s) -> dict:
    return {"text": s.note, "depth": s.note_depth, "version": s.note_version}


def _card_seen(card) -> dict:
    return {"id": card.id if card else None, "version": card.version if card else None,
            "values": list(_card_values(card))}


def _card_values(card) -> tuple:
    """The seven card fields as the editor shows them (keys comma-separated)."""
    if card is None:
        return "", "", "", 50, False, True, False
    return card.name, ", ".join(card.keys), card.text, card.priority, card.always_on, card.enabled, card.inside_words


def _picker(s, lang: str, value: int | None) -> gr.Dropdown:
    """The card picker's choices ("new card", then the cards by priority); `value` None keeps the writer's pick."""
    choices = [(say(lang, "steer_card_new"), NEW_CARD)] + [(f"{c.name} (P{c.priority})", c.id) for c in s.cards]
    if value is None:
        return gr.Dropdown(choices=choices)
    return gr.Dropdown(choices=choices, value=value if any(v == value for _, v in choices) else NEW_CARD)


def _whole(value) -> int:
    """A number box's value as a whole number (the store refuses it when out of range)."""
    try:
        return int(round(float(value)))
    except (TypeError, ValueError):
        return -1


EDITOR_SLOTS = 13  # memory, note, depth, scan depth, lock, card picker, the seven card fields


# -- layout and wiring -----------------------------------------------------------------------------------


def build_steering_panel(ui, controls: list) -> SimpleNamespace:
    """The panel inside the story tab (an accordion), wired; returns its parts (`turn_note` goes with model turns)."""
    services = StoryServices.from_ui(ui)
    panel = SteeringPanel(services)
    story, lang, writer, key, private = ui.story_state, ui.lang_state, ui.writer, ui.writer_key, ui.private
    # Clicked by live.js (never by a person): outside the accordion, so they exist before it is first opened.
    sync_btn = gr.Button("sync", elem_id=SYNC_ID, elem_classes=["relay-hidden"])
    refresh_hidden = gr.Button("reads", elem_id=REFRESH_ID, elem_classes=["relay-hidden"])
    # What each block's box was last filled with (see SteeringPanel): one state per block.
    memory_seen, note_seen, card_seen = (gr.State({}, time_to_live=STATE_TTL_S) for _ in range(3))
    with gr.Accordion(i18n_key("steer_title"), open=False, elem_id=PANEL_ID) as accordion:
        gr.HTML(f"<style>{CSS}</style>", padding=False)
        gr.Markdown(i18n_key("steer_intro"))
        turn_note = gr.Textbox(label=i18n_key("steer_turn_note"), lines=1, max_lines=3, elem_id="relay-turn-note")
        with gr.Row():
            gr.Markdown(i18n_key("steer_reads"))
            refresh_btn = gr.Button(i18n_key("steer_refresh"), size="sm", elem_id="relay-reads-button", min_width=80)
        reads = gr.HTML(elem_id=READS_ID)
        gr.Markdown(i18n_key("steer_shared"))
        gr.HTML(f'<div id="{SHARED_ID}"></div>', padding=False)
        with gr.Group():
            memory = gr.Textbox(label=i18n_key("steer_memory"), placeholder=i18n_key("steer_memory_ph"), lines=3,
                                max_lines=8, elem_id="relay-memory")
            memory_btn = gr.Button(i18n_key("steer_memory_save"), size="sm", elem_id="relay-memory-save")
        with gr.Group():
            note = gr.Textbox(label=i18n_key("steer_note"), placeholder=i18n_key("steer_note_ph"), lines=2, max_lines=6,
                              elem_id="relay-note")
            depth = gr.Number(value=3, precision=0, minimum=0, maximum=50, label=i18n_key("steer_note_depth"),
                              elem_id="relay-note-depth")
            note_btn = gr.Button(i18n_key("steer_note_save"), size="sm", elem_id="relay-note-save")
        with gr.Group():
            gr.Markdown(i18n_key("steer_cards"))
            picker = gr.Dropdown(choices=[("+", NEW_CARD)], value=NEW_CARD, label=i18n_key("steer_card_pick"),
                                 elem_id="relay-card-pick")
            card_name = gr.Textbox(label=i18n_key("steer_card_name"), max_lines=1, elem_id="relay-card-name")
            card_keys = gr.Textbox(label=i18n_key("steer_card_keys"), max_lines=1, elem_id="relay-card-keys")
            card_text = gr.Textbox(label=i18n_key("steer_card_text"), lines=2, max_lines=6, elem_id="relay-card-text")
            with gr.Row():
                priority = gr.Number(value=50, precision=0, minimum=0, maximum=100,
                                     label=i18n_key("steer_card_priority"), elem_id="relay-card-priority")
                always_on = gr.Checkbox(label=i18n_key("steer_card_always"), elem_id="relay-card-always")
                enabled = gr.Checkbox(value=True, label=i18n_key("steer_card_enabled"), elem_id="relay-card-enabled")
                inside = gr.Checkbox(label=i18n_key("steer_card_inside"), elem_id="relay-card-inside")
            with gr.Row():
                card_btn = gr.Button(i18n_key("steer_card_save"), size="sm", variant="primary", elem_id="relay-card-save")
                delete_btn = gr.Button(i18n_key("steer_card_delete"), size="sm", variant="stop",
                                       elem_id="relay-card-delete")
        with gr.Group():
            scan = gr.Number(value=4, precision=0, minimum=1, maximum=50, label=i18n_key("steer_scan_depth"),
                             elem_id="relay-scan-depth")
            scan_btn = gr.Button(i18n_key("steer_scan_save"), size="sm", elem_id="relay-scan-save")
        lock = gr.Checkbox(label=i18n_key("steer_lock"), elem_id="relay-steer-lock")

    fields = [card_name, card_keys, card_text, priority, always_on, enabled, inside]
    editors = [memory, note, depth, scan, lock, picker, *fields]
    assert len(editors) == EDITOR_SLOTS
    view = [turn_note, *controls]

    seen = [memory_seen, note_seen, card_seen]
    story.change(panel.load, [story, lang], [*editors, *seen], **private)
    sync_btn.click(panel.sync, [story, lang, *seen, memory, note, depth, picker, *fields], [*editors, *seen],
                   show_progress="hidden", **private)
    for trigger in (refresh_btn.click, refresh_hidden.click, accordion.expand, turn_note.blur):
        trigger(panel.reads, [story, lang, *view], [reads], show_progress="hidden", **private)
    picker.input(panel.pick_card, [story, picker, lang], [*fields, card_seen], **private)
    memory_btn.click(panel.save_memory, [story, memory, writer, key, lang, memory_seen, *view], [memory_seen, reads],
                     **private)
    note_btn.click(panel.save_note, [story, note, depth, writer, key, lang, note_seen, *view], [note_seen, reads],
                   **private)
    scan_btn.click(panel.save_scan, [story, scan, writer, key, lang, *view], [reads], **private)
    lock.input(panel.set_lock, [story, lock, key, lang], [lock], **private)
    card_btn.click(panel.save_card, [story, picker, *fields, writer, key, lang, card_seen, *view],
                   [picker, card_seen, reads], **private)
    delete_btn.click(panel.delete_card, [story, picker, writer, key, lang, card_seen, *view],
                     [picker, *fields, card_seen, reads], **private)
    return SimpleNamespace(panel=panel, turn_note=turn_note, reads=reads, memory=memory)


__all__ = ["build_steering_panel", "SteeringPanel", "render_shared", "render_reads", "steering_error",
           "MAX_MEMORY_CHARS", "MAX_NOTE_CHARS", "MAX_CARD_TEXT_CHARS"]
