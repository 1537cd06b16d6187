"""Moderation by a story's creator: hide a paragraph, purge what was hidden or edited away, block a writer.

Both run inside a write transaction on checked arguments and refuse anyone but the creator
(by writer key).
"""

from __future__ import annotations

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import InvalidInput
from relay.store.records import Paragraph, paragraph_with
from relay.store.schema import blocked_writers, paragraph_versions, paragraphs, stories
from relay.store.timeline import fetch_paragraph, lock_story, recount
from relay.store.validation import _now
from relay.store.writers import check_creator, is_blocked


def hide_paragraph(conn: sa.Connection, story_id: int, paragraph_id: int, writer_id: str) -> Paragraph:
    story = lock_story(conn, story_id)
    check_creator(story, writer_id, "hide paragraphs")
    paragraph = fetch_paragraph(conn, story_id, paragraph_id)
    if paragraph.hidden:
        return paragraph
    conn.execute(paragraphs.update().where(paragraphs.c.id == paragraph_id).values(hidden=1))
    recount(conn, story_id)
    conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
    bump(conn, story_id)
    return paragraph_with(paragraph, hidden=True)


PURGED_TEXT = "[삭제됨 · purged]"  # what stays of purged text: the row keeps the story's numbering


def purge(conn: sa.Connection, story_id: int, paragraph_id: int, version: int | None, writer_id: str) -> None:
    """Erase for good a hidden paragraph's text and every version of it, or one earlier version of any
    paragraph (not its current text: edit that first). The rows stay, so numbering and exports hold."""
    story = lock_story(conn, story_id)
    check_creator(story, writer_id, "purge text")
    paragraph = fetch_paragraph(conn, story_id, paragraph_id)
    versions = paragraph_versions.c
    if version is None:
        if not paragraph.hidden:
            raise InvalidInput("Only a hidden paragraph can be purged: hide it first.")
        conn.execute(paragraphs.update().where(paragraphs.c.id == paragraph_id).values(text=PURGED_TEXT, meta="{}"))
        conn.execute(paragraph_versions.update().where(versions.paragraph_id == paragraph_id).values(text=PURGED_TEXT))
    else:
        latest = conn.execute(sa.select(sa.func.max(versions.version)).where(versions.paragraph_id == paragraph_id)).scalar()
        if latest is None or not 1 <= version < latest:
            raise InvalidInput("Only an earlier version of a paragraph can be purged (not its current text).")
        conn.execute(paragraph_versions.update().where(versions.paragraph_id == paragraph_id,
                                                       versions.version == version).values(text=PURGED_TEXT))
    conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
    bump(conn, story_id)


def block_writer(conn: sa.Connection, story_id: int, target: str, writer_id: str) -> None:
    story = lock_story(conn, story_id)
    check_creator(story, writer_id, "block writers")
    if target == writer_id:
        raise InvalidInput("You cannot block yourself from your own story.")
    if not is_blocked(conn, story_id, target):
        conn.execute(blocked_writers.insert().values(story_id=story_id, writer_id=target, blocked_at=_now()))
        bump(conn, story_id)
