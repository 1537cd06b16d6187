"""Export: the open story as a downloadable file (plain text, Markdown or the JSON that import reads back)."""

from __future__ import annotations

from relay.ui.common import _need_story, export_path
from relay.ui.story_services import StoryServices

EXPORT_FORMATS = ("txt", "md", "json")


class Export:
    """The export button's handler over the page's services."""

    def __init__(self, services: StoryServices):
        self.services = services

    def export(self, story_id, fmt, lang) -> str:
        """The path of a fresh file holding the story in `fmt` (one of EXPORT_FORMATS)."""
        sid = _need_story(story_id, lang)
        path = export_path(sid, fmt)
        path.write_text(self.services.store.export(sid, fmt), encoding="utf-8")
        return str(path)
