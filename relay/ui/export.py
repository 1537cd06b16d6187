"""Export: the open story as a downloadable file (plain text, Markdown or the JSON that import reads back)."""

from __future__ import annotations

from relay.story_store import StoryError, writer_id_of
from relay.ui.common import _need_story, export_path
from relay.ui.story_services import StoryServices

EXPORT_FORMATS = ("txt", "md", "json")


class Export:
    """The export button's handler over the page's services."""

    def __init__(self, services: StoryServices):
        self.services = services

    def export(self, story_id, fmt, lang, key=None) -> str:
        """The path of a fresh file holding the story in `fmt` (one of EXPORT_FORMATS); the story's creator
        (by `key`) gets its hidden paragraphs in the JSON too, everyone else does not."""
        sid = _need_story(story_id, lang)
        if fmt not in EXPORT_FORMATS:
            fmt = "txt"
        path = export_path(sid, fmt)
        path.write_text(self.services.store.export(sid, fmt, writer_key=_well_formed(key), lang=lang), encoding="utf-8")
        return str(path)


def _well_formed(key) -> str | None:
    """The key if it could be a writer key (the store decides whose it is), else None: an anonymous export."""
    try:
        writer_id_of(key)
    except StoryError:
        return None
    return key
