"""The model's turn on a story, with the same rules for the browser and the API."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from relay.settings import EngineError, SamplingSettings, SettingsError
from relay.story_store import StoryStore, TurnBusy
from relay.ui.common import _fail
from relay.ui.render import _esc
from relay.ui_text import say

AI_TURN_TTL = 90.0  # seconds an AI-turn lease lives without a refresh (a crashed worker frees it)


class AITurn:
    """The model's turn on a story: holds the story's AI-turn lease while the engine writes.

    Shared by the browser handlers and the API so both follow the same rules: the turn rule is
    checked first, one model turn per story at a time (the lease), and the finished text is kept
    as a server-side candidate; only candidates can become AI paragraphs.
    """

    def __init__(self, engine, store: StoryStore, *, escape_names: bool):
        self.engine = engine
        self.store = store
        self.name = _esc if escape_names else str  # browser toasts render HTML; API messages are plain

    def check_ai_may_write(self, story_id: int, lang: str):
        story = self.store.get_story(story_id)
        head = self.store.head(story_id)
        if story.turn_rule == "alternate" and (head is None or head.kind == "ai"):
            raise _fail(say(lang, "not_ai_turn"))
        return story, head

    @contextlib.contextmanager
    def _turn(self, story_id: int, author: str, lang: str, writer_key: str | None = None):
        """Check the turn rule and hold the story's AI-turn lease; yields (head, paragraph texts).

        `writer_key` (when given) is checked and recorded by the store on the lease and the candidates."""
        _, head = self.check_ai_may_write(story_id, lang)
        try:
            self.store.claim_ai_turn(story_id, author, ttl=AI_TURN_TTL, writer_key=writer_key)
        except TurnBusy as e:
            raise _fail(say(lang, "ai_busy", holder=self.name(e.holder))) from None
        try:
            yield head, [p.text for p in self.store.timeline(story_id)]
        except (SettingsError, EngineError) as e:
            raise _fail(say(lang, "generation_failed", detail=str(e))) from None
        finally:
            self.store.release_ai_turn(story_id, author, writer_key=writer_key)

    def stream(self, story_id: int, author: str, settings: SamplingSettings, adapter: str | None,
               cancel: threading.Event | None, lang: str, *, writer_key: str | None = None,
               ) -> Iterator[tuple[str, dict | None]]:
        """Yields (text so far, None) while writing, then (final text, candidate info)."""
        with self._turn(story_id, author, lang, writer_key) as (head, paragraphs):
            continuation = self.engine.continue_story(paragraphs, settings, adapter=adapter, cancel=cancel)
            text, refreshed = "", time.monotonic()
            try:
                for chunk in continuation:
                    text += chunk
                    if time.monotonic() - refreshed > AI_TURN_TTL / 3:  # keep the lease while writing
                        self.store.claim_ai_turn(story_id, author, ttl=AI_TURN_TTL, writer_key=writer_key)
                        refreshed = time.monotonic()
                    yield text, None
            finally:
                continuation.close()
            text, meta = continuation.text, dict(continuation.meta)
            if not text.strip():
                raise _fail(say(lang, "empty_output"))
            candidate_id = self.store.add_candidate(story_id, author, text, meta, writer_key=writer_key)
            self.store.release_ai_turn(story_id, author, writer_key=writer_key)  # before the last render, so it shows the turn is over
            yield text, {"candidate_id": candidate_id, "meta": meta, "expected_head": head.id if head else 0}

    def alternatives(self, story_id: int, author: str, settings: SamplingSettings, n: int,
                     adapter: str | None, lang: str, *, writer_key: str | None = None,
                     ) -> tuple[list[str], list[str], int, dict]:
        """n candidates from one batched call: (texts, candidate ids, expected head, meta)."""
        with self._turn(story_id, author, lang, writer_key) as (head, paragraphs):
            texts = self.engine.alternatives(paragraphs, settings, n, adapter=adapter)
            meta = dict(texts.meta)
            kept = [(i, t) for i, t in enumerate(texts) if t.strip()]
            if not kept:
                raise _fail(say(lang, "empty_output"))
            ids = [self.store.add_candidate(story_id, author, t, {**meta, "alternative": i}, writer_key=writer_key)
                   for i, t in kept]
            return [t for _, t in kept], ids, (head.id if head else 0), meta

