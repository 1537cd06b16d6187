"""From the lab to the story: a lab sample becomes the writer's suggestion for the model's turn (under the same
turn rule and lease as "AI 이어쓰기", relay/turns.py), and the writer id a lab run is counted under."""

from __future__ import annotations

from relay.story_store import StoryError


def lab_writer_id(store, key: str | None) -> str:
    """The public id of a writer key this site issued, else "" (only the address limits then apply)."""
    if not isinstance(key, str) or not key:
        return ""
    try:
        return store.writer_id(key) if store.writer_key_issued(key) else ""
    except StoryError:
        return ""


def offer_sample(ai_turn, story_id: int, author: str, sample: dict, lang: str, *, writer_key: str | None) -> str:
    """Put a lab sample's text into the story as `author`'s suggestion for the model's turn; returns its id.

    The turn is claimed exactly as a model turn claims it (AITurn._turn): refused with the page's message when
    it is not the model's turn under the story's rule or another writer holds it; a suggestion the writer
    already has stays, and this one joins it as the last swipe."""
    meta = {**(sample.get("meta") or {}), "lab": True}
    with ai_turn._turn(story_id, author, lang, writer_key):
        return ai_turn.store.add_candidate(story_id, author, sample["text"], meta, writer_key=writer_key,
                                           idle_ttl=ai_turn.idle_s)
