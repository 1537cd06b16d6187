"""The StoryStore methods for who is here and taking over a waiting suggestion, kept beside the room
they call (relay/store/presence.py) rather than in the facade: `StoryStore` inherits them."""

from __future__ import annotations

import time

from relay.store import presence
from relay.store.errors import InvalidInput
from relay.store.validation import (_optional_writer_id, _validate_id, _validate_process, _validate_ttl,
                                    validate_author, validate_writer_id)


def _seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 10**7:
        raise InvalidInput(f"{what} must be a number of seconds (0 or more).")
    return float(value)


class PresenceMethods:
    """Presence rows kept by the live hub, and the takeover of a suggestion whose writer left (mixed into StoryStore)."""

    def join_story(self, story_id: int, writer_id: str, *, process: str | None = None) -> None:
        """One more tab of this writer is open on the story (served by `process`, default this one)."""
        story_id, writer_id = _validate_id(story_id, "story_id"), validate_writer_id(writer_id)
        process = _validate_process(process)
        with self._write() as conn:
            presence.join(conn, story_id, writer_id, process, time.time())

    def leave_story(self, story_id: int, writer_id: str, *, process: str | None = None) -> None:
        """One of this writer's tabs on the story closed."""
        story_id, writer_id = _validate_id(story_id, "story_id"), validate_writer_id(writer_id)
        process = _validate_process(process)
        with self._write() as conn:
            presence.leave(conn, story_id, writer_id, process, time.time())

    def refresh_presence(self, *, process: str | None = None) -> list[int]:
        """Keep this process's open tabs marked as here; end the rows of processes that stopped refreshing
        theirs. Returns the stories that lost a writer that way."""
        process = _validate_process(process)
        with self._write() as conn:
            return presence.refresh(conn, process, time.time())

    def here(self, story_id: int) -> list[tuple[str, str]]:
        """(writer id, name) of every writer with a tab open on the story now, in the order they came."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return presence.here(conn, story_id, time.time())

    def takeover_at(self, story_id: int, grace: float) -> float | None:
        """When (unix time) a co-writer may take over the story's waiting suggestion, or None if not at all now."""
        story_id, grace = _validate_id(story_id, "story_id"), _seconds(grace, "grace")
        with self._read() as conn:
            return presence.takeover_at(conn, story_id, grace, time.time())

    def take_over_ai_turn(self, story_id: int, author: str, *, grace: float, idle_ttl: float,
                          writer_key: str | None = None, process: str | None = None) -> str:
        """Take the story's waiting suggestion (and its model turn) from a writer who left it; return the turn id.

        Allowed once its writer has had no tab open on the story for `grace` seconds; the taker may then
        accept, edit, regenerate or discard it, and holds the turn for `idle_ttl` seconds of inactivity.
        TurnBusy while the writer is here (or the model is writing), NotFound when nothing waits.
        """
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        grace, idle_ttl = _seconds(grace, "grace"), _validate_ttl(idle_ttl, "idle_ttl")
        wid = _optional_writer_id(writer_key)
        process = _validate_process(process)
        with self._write() as conn:
            return presence.take_over(conn, story_id, author, writer_key, wid, grace, idle_ttl, process, time.time())
