"""A story's named sampling presets (saved from the sampling lab, shared by everyone writing the story).

They live inside the story's settings JSON under PRESETS_KEY, beside the story's own sampling settings (no table:
a story keeps a handful). Plain functions over a connection inside a transaction the caller opened (the
StoryStore method is `save_story_preset`). A save locks the story, admits the writer (a blocked key is refused,
the name is bound to the key), replaces a preset of the same name and moves the change token.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from relay.settings import STORY_PRESETS_KEY as PRESETS_KEY  # {name: settings dict} in a story's settings JSON
from relay.store.changes import bump
from relay.store.errors import InvalidInput
from relay.store.schema import stories
from relay.store.timeline import lock_story
from relay.store.validation import _dump_json_object, _validate_line
from relay.store.writers import admit

MAX_PRESETS = 20
MAX_PRESET_NAME_CHARS = 40


def validate_preset_name(name) -> str:
    return _validate_line(name, "Preset name", MAX_PRESET_NAME_CHARS)


def story_presets(settings: dict | None) -> dict[str, dict]:
    """The named presets in a story's settings JSON (none when it has none or they are not a dict)."""
    presets = (settings or {}).get(PRESETS_KEY)
    return {str(k): v for k, v in presets.items() if isinstance(v, dict)} if isinstance(presets, dict) else {}


def save_preset(conn: sa.Connection, story_id: int, name: str, preset: dict, author: str, writer_key: str | None):
    """Store `preset` (checked sampling settings) as the story's preset `name`; returns the story's presets."""
    row = lock_story(conn, story_id)
    admit(conn, story_id, author, writer_key)
    settings = json.loads(row["settings"]) if row["settings"] else {}
    presets = story_presets(settings)
    if name not in presets and len(presets) >= MAX_PRESETS:
        raise InvalidInput(f"A story keeps at most {MAX_PRESETS} presets; save under an existing name to replace one.")
    presets[name] = preset
    settings[PRESETS_KEY] = presets
    conn.execute(stories.update().where(stories.c.id == story_id).values(
        settings=_dump_json_object(settings, "Settings"), version=stories.c.version + 1))
    bump(conn, story_id)
    return presets
