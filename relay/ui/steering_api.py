"""Named API endpoints for steering the model: read and set a story's memory and author's note, save and delete
its story cards, lock them (the creator), and see exactly what the model reads next turn.

Keyed and rate-limited like paragraphs (a change counts as one paragraph against the writer's rate); arguments
are checked as strictly as relay/ui/api.py checks its own. `steering_endpoints(...)` is called from
`relay.ui.api.api_functions` with its helpers, so every endpoint shares its refusals and limits.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from relay.settings import SamplingSettings
from relay.story_store import StoryStore
from relay.turns import AITurn
from relay.ui.limit_text import say as say_limit

# Every steering endpoint that writes (each needs a writer key).
STEERING_WRITES = ("set_memory", "set_note", "set_scan_depth", "save_card", "delete_card", "lock_steering")


def steering_endpoints(engine, store: StoryStore, ai_turn: AITurn, limits, *, guarded: Callable, writer: Callable,
                       positive_id: Callable, text_arg: Callable, refusal: type[Exception],
                       got: Callable) -> dict[str, Callable]:
    """The endpoint functions by API name; `guarded`, `writer`, ... are relay/ui/api.py's own helpers."""

    def kind_of(value, what: str, lang: str, wanted: type, ko: str, en: str):
        """`value` if it is exactly of type `wanted` (no bool for an int, no numeric strings), else a refusal."""
        if type(value) is not wanted:
            raise refusal(f"{what}은(는) {ko}여야 합니다 (받은 값: {got(value)})." if lang == "ko"
                          else f"{what} must be {en} (got {got(value)}).")
        return value

    def whole(value, what: str, lang: str, *, optional: bool = False) -> int | None:
        """A whole number; the store checks its range."""
        if value is None and optional:
            return None
        return kind_of(value, what, lang, int, "정수", "a whole number")

    def change(writer_key, lang, ip) -> str:
        key, wid = writer(writer_key, lang)
        limits.check("paragraph", wid, ip)  # a steering change is paced like writing a paragraph
        return key

    # -- reading -------------------------------------------------------------------------------

    @guarded
    def _steering(lang, ip, story_id):
        return store.steering(positive_id(story_id, "story_id", lang)).to_dict()

    def steering(story_id: int, request: gr.Request = None) -> dict:
        """The story's memory, author's note (with its depth), card scan depth, lock and live story cards."""
        return _steering(story_id, request=request)

    @guarded
    def _steering_versions(lang, ip, story_id, block, card_id):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(block, "block", lang, max_chars=10)
        cid = positive_id(card_id, "card_id", lang) if block == "card" else None
        return [v.to_dict() for v in store.steering_versions(sid, block, cid)]

    def steering_versions(story_id: int, block: str, card_id: int | None = None, request: gr.Request = None) -> list:
        """Every version of the "memory", the "note" or one "card" (card_id): what it became, who, when."""
        return _steering_versions(story_id, block, card_id, request=request)

    @guarded
    def _what_the_model_reads(lang, ip, story_id, settings, turn_note):
        sid = positive_id(story_id, "story_id", lang)
        if settings is not None and not isinstance(settings, dict):
            raise refusal(say_limit(lang, "bad_settings_arg"))
        sampling = SamplingSettings.from_dict(settings or {})
        text_arg(turn_note, "turn_note", lang, optional=True, max_chars=500)
        timeline = store.timeline(sid)
        assembly = engine.assemble([p.text for p in timeline], sampling, ai_turn.steering(sid, turn_note))
        return reads_dict(engine, assembly, [p.seq for p in timeline])

    def what_the_model_reads(story_id: int, settings: dict | None = None, turn_note: str | None = None,
                             request: gr.Request = None) -> dict:
        """Exactly what the model reads next turn under these settings: its ids, and block by block (memory, cards
        with the key that brought each in, the story window, the author's note) with token counts and the budget."""
        return _what_the_model_reads(story_id, settings, turn_note, request=request)

    # -- writing ----------------------------------------------------------------------------------

    @guarded
    def _set_memory(lang, ip, story_id, text, author, writer_key, expected_version):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(text, "text", lang)
        text_arg(author, "author", lang)
        expected = whole(expected_version, "expected_version", lang, optional=True)
        key = change(writer_key, lang, ip)
        return store.set_memory(sid, text, author, writer_key=key, expected_version=expected).to_dict()

    def set_memory(story_id: int, text: str, author: str, writer_key: str | None = None,
                   expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Replace the story memory, pinned at the top of what the model reads ("" clears it; 500 characters at
        most). expected_version: the memory_version you read (a newer one refuses the save)."""
        return _set_memory(story_id, text, author, writer_key, expected_version, request=request)

    @guarded
    def _set_note(lang, ip, story_id, text, depth, author, writer_key, expected_version):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(text, "text", lang)
        depth = whole(depth, "depth", lang)
        text_arg(author, "author", lang)
        expected = whole(expected_version, "expected_version", lang, optional=True)
        key = change(writer_key, lang, ip)
        return store.set_note(sid, text, depth, author, writer_key=key, expected_version=expected).to_dict()

    def set_note(story_id: int, text: str, depth: int, author: str, writer_key: str | None = None,
                 expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Replace the author's note, read as "[작가의 말: …]" `depth` paragraphs before the end (0: right before the
        model writes); "" clears it."""
        return _set_note(story_id, text, depth, author, writer_key, expected_version, request=request)

    @guarded
    def _set_scan_depth(lang, ip, story_id, depth, author, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        depth = whole(depth, "depth", lang)
        text_arg(author, "author", lang)
        key = change(writer_key, lang, ip)
        return store.set_scan_depth(sid, depth, author, writer_key=key).to_dict()

    def set_scan_depth(story_id: int, depth: int, author: str, writer_key: str | None = None,
                       request: gr.Request = None) -> dict:
        """How many of the latest paragraphs the story cards look for their keys in (1 to 50, default 4)."""
        return _set_scan_depth(story_id, depth, author, writer_key, request=request)

    @guarded
    def _save_card(lang, ip, story_id, card, author, writer_key, expected_version):
        sid = positive_id(story_id, "story_id", lang)
        kind_of(card, "card", lang, dict, "JSON 객체", "a JSON object")
        text_arg(author, "author", lang)
        expected = whole(expected_version, "expected_version", lang, optional=True)
        key = change(writer_key, lang, ip)
        return store.save_card(sid, card, author, writer_key=key, expected_version=expected).to_dict()

    def save_card(story_id: int, card: dict, author: str, writer_key: str | None = None,
                  expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Create a story card ({"name", "keys": [...], "text", "priority": 0-100, "always_on", "enabled",
        "inside_words"}) or change one (with its "id"); returns it as stored, with its id and version."""
        return _save_card(story_id, card, author, writer_key, expected_version, request=request)

    @guarded
    def _delete_card(lang, ip, story_id, card_id, author, writer_key, expected_version):
        sid = positive_id(story_id, "story_id", lang)
        cid = positive_id(card_id, "card_id", lang)
        text_arg(author, "author", lang)
        expected = whole(expected_version, "expected_version", lang, optional=True)
        key = change(writer_key, lang, ip)
        return store.delete_card(sid, cid, author, writer_key=key, expected_version=expected).to_dict()

    def delete_card(story_id: int, card_id: int, author: str, writer_key: str | None = None,
                    expected_version: int | None = None, request: gr.Request = None) -> dict:
        """Delete a story card (kept in its versions and the JSON export, marked deleted)."""
        return _delete_card(story_id, card_id, author, writer_key, expected_version, request=request)

    @guarded
    def _lock_steering(lang, ip, story_id, locked, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        kind_of(locked, "locked", lang, bool, "true 또는 false", "true or false")
        key = change(writer_key, lang, ip)
        return store.lock_steering(sid, locked, writer_key=key).to_dict()

    def lock_steering(story_id: int, locked: bool, writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Lock the memory, note and cards so only the story's creator may change them (or unlock; creator's key)."""
        return _lock_steering(story_id, locked, writer_key, request=request)

    return {
        "steering": steering,
        "steering_versions": steering_versions,
        "what_the_model_reads": what_the_model_reads,
        "set_memory": set_memory,
        "set_note": set_note,
        "set_scan_depth": set_scan_depth,
        "save_card": save_card,
        "delete_card": delete_card,
        "lock_steering": lock_steering,
    }


def reads_dict(engine, assembly, seqs: list[int]) -> dict:
    """An assembly as JSON: the ids, the text, each block (kind, tokens, text, and for a card the key that
    brought it in; for the story the paragraph numbers), the budget, and what was left out."""
    blocks = []
    for block in assembly.blocks:
        item = {"kind": block.kind, "tokens": len(block.ids), "text": engine.block_text(block.ids)}
        if block.trigger is not None:
            t = block.trigger
            item.update(card_id=t.card.id, card=t.card.name, key=t.key, word=t.word,
                        paragraph=None if t.paragraph is None else seqs[t.paragraph])
        if block.paragraphs is not None:
            item.update(paragraphs=[seqs[block.paragraphs[0]], seqs[block.paragraphs[1]]], cut=block.cut)
        blocks.append(item)
    problem = assembly.problem
    return {
        "ids": list(assembly.ids), "tokens": len(assembly.ids), "window": assembly.window, "room": assembly.room,
        "blocks": blocks, "dropped_paragraphs": assembly.dropped_paragraphs,
        "dropped_cards": [t.card.name for t in assembly.dropped_cards],
        "problem": None if problem is None else {"block": problem.block, "need": problem.need, "left": problem.left},
    }
