"""Named API endpoints for gradio_client (`/list_stories`, `/create_story`, ...), documented in the README."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from relay.settings import SamplingSettings, SettingsError
from relay.story_store import StoryError, StoryStore
from relay.turns import AITurn


def register_api(engine, store: StoryStore, ai_turn: AITurn) -> None:
    """Named endpoints for gradio_client; errors come back as gr.Error messages."""

    def api_error(e: Exception):
        return gr.Error(str(e), print_exception=False)

    def list_stories() -> list[dict]:
        """All stories, most recently active first."""
        return [s.to_dict() for s in store.list_stories()]

    def create_story(title: str, author: str, turn_rule: str = "alternate") -> dict:
        """Create a story; turn_rule is "alternate" or "free"."""
        try:
            return store.create_story(title, author, turn_rule=turn_rule).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    def timeline(story_id: int) -> list[dict]:
        """The story's paragraphs in order."""
        try:
            return [p.to_dict() for p in store.timeline(int(story_id))]
        except StoryError as e:
            raise api_error(e) from None

    def add_paragraph(story_id: int, text: str, author: str, expected_head: int | None = None) -> dict:
        """Append a human paragraph; expected_head is the id of the last paragraph you saw (0: empty story)."""
        try:
            return store.add_paragraph(int(story_id), text, author, kind="human", expected_head=expected_head).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    def continue_story(story_id: int, author: str, settings: dict | None = None, adapter: str | None = None) -> Iterator[dict]:
        """Stream a model continuation: {"text", "done": false} chunks, then the candidate to accept."""
        try:
            sampling = SamplingSettings.from_dict(settings or {})
            name = (author or "").strip()
            if not name:
                raise api_error(ValueError("author is required"))
            for text, done in ai_turn.stream(int(story_id), name, sampling, adapter or None, None, "en"):
                if done is None:
                    yield {"text": text, "done": False}
                else:
                    yield {"text": text, "done": True, **done}
        except (StoryError, SettingsError) as e:
            raise api_error(e) from None

    def accept(candidate_id: str, author: str, text: str | None = None, expected_head: int | None = None) -> dict:
        """Store a generated candidate as the story's next AI paragraph, optionally edited."""
        try:
            return store.accept_candidate(candidate_id, author, text=text, expected_head=expected_head).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    gr.api(list_stories, api_name="list_stories")
    gr.api(create_story, api_name="create_story")
    gr.api(timeline, api_name="timeline")
    gr.api(add_paragraph, api_name="add_paragraph")
    gr.api(continue_story, api_name="continue_story", concurrency_id="model", concurrency_limit=1)
    gr.api(accept, api_name="accept")

