"""The StoryStore methods for steering the model (memory, author's note, story cards), kept beside the
room they call (relay/store/steering.py) rather than in the facade: `StoryStore` inherits them.

Like every StoryStore method: arguments are checked before a transaction starts (bad input raises
InvalidInput, or SteeringLimit naming what is too long, and writes nothing), then one transaction runs.
"""

from __future__ import annotations

from relay.store import steering
from relay.store.errors import InvalidInput
from relay.store.steering import Steering, SteeringVersion, StoryCard
from relay.store.validation import _now, _validate_id, validate_author, writer_id_of


class SteeringMethods:
    """Read and change a story's memory, author's note and story cards (mixed into StoryStore)."""

    def steering(self, story_id: int) -> Steering:
        """The story's memory, note, card settings and live cards (the defaults when nobody set any)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return steering.read(conn, story_id)

    def steering_versions(self, story_id: int, block: str, card_id: int | None = None) -> list[SteeringVersion]:
        """Every version of the story's "memory", "note" or one "card" (`card_id`), oldest first."""
        story_id = _validate_id(story_id, "story_id")
        if block not in steering.BLOCKS:
            raise InvalidInput(f"Unknown block {block!r}: use one of {', '.join(steering.BLOCKS)}.")
        card_id = _validate_id(card_id, "card_id") if block == "card" else None
        with self._read() as conn:
            return steering.versions(conn, story_id, block, card_id)

    def set_memory(self, story_id: int, text: str, author: str, *, writer_key: str | None = None,
                   expected_version: int | None = None) -> Steering:
        """Replace the story memory (pinned at the top of what the model reads; "" clears it).

        `expected_version`: the version the writer loaded; SteeringChanged if someone saved since."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        text = steering.validate_block_text(text, "memory", steering.MAX_MEMORY_CHARS)
        expected = _optional_version(expected_version)
        with self._write() as conn:
            return steering.set_memory(conn, story_id, text, author, writer_key, expected, _now())

    def set_note(self, story_id: int, text: str, depth: int, author: str, *, writer_key: str | None = None,
                 expected_version: int | None = None) -> Steering:
        """Replace the author's note and how many paragraphs before the end it goes (0: right before the model
        writes); "" clears it."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        text = steering.validate_block_text(text, "note", steering.MAX_NOTE_CHARS)
        depth = steering.validate_depth(depth, "note's depth")
        expected = _optional_version(expected_version)
        with self._write() as conn:
            return steering.set_note(conn, story_id, text, depth, author, writer_key, expected, _now())

    def set_scan_depth(self, story_id: int, depth: int, author: str, *, writer_key: str | None = None) -> Steering:
        """How many of the latest paragraphs the cards look for their keys in (1 to 50)."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        depth = steering.validate_depth(depth, "cards' scan depth", 1)
        with self._write() as conn:
            return steering.set_scan_depth(conn, story_id, depth, author, writer_key, _now())

    def lock_steering(self, story_id: int, locked: bool, *, writer_key: str) -> Steering:
        """Lock the memory, note and cards so only the creator may change them (or unlock); the creator only."""
        story_id = _validate_id(story_id, "story_id")
        if not isinstance(locked, bool):
            raise InvalidInput("locked must be true or false.")
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            return steering.set_locked(conn, story_id, locked, wid, _now())

    def save_card(self, story_id: int, card: dict, author: str, *, writer_key: str | None = None,
                  expected_version: int | None = None) -> StoryCard:
        """Create a story card (`card` without "id") or change one ({"id": …}): name, keys, text, priority
        (0-100), always_on, enabled, inside_words. Returns it as stored."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        fields = steering.validate_card(card)
        card_id = card.get("id")
        card_id = None if card_id is None else _validate_id(card_id, "card id")
        expected = _optional_version(expected_version if expected_version is not None else card.get("version"))
        with self._write() as conn:
            return steering.save_card(conn, story_id, card_id, fields, author, writer_key, expected, _now())

    def delete_card(self, story_id: int, card_id: int, author: str, *, writer_key: str | None = None,
                    expected_version: int | None = None) -> Steering:
        """Delete a story card (its versions stay, and the JSON export keeps it marked deleted)."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        card_id = _validate_id(card_id, "card_id")
        expected = _optional_version(expected_version)
        with self._write() as conn:
            return steering.delete_card(conn, story_id, card_id, author, writer_key, expected, _now())


def _optional_version(value) -> int | None:
    return None if value is None else _validate_id(value, "expected_version")
