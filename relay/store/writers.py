"""Writers: their keys, the names they write under, and who may act on what.

A writer key is registered on first use (only its SHA-256 is stored); `admit` checks, inside a
write, that a keyed writer is not blocked from the story and binds their display name to their
key there. `wrote` and `check_creator` answer "may this caller undo/edit this paragraph" and
"is this caller the story's creator".
"""

from __future__ import annotations

import sqlalchemy as sa

from relay.store.errors import InvalidInput, NameTaken, NotAllowed
from relay.store.records import Paragraph
from relay.store.schema import blocked_writers, story_names, writers
from relay.store.validation import _now, key_sha256, writer_id_of


def register(conn: sa.Connection, key: str) -> str:
    """Record a writer key (hashed) if new; return its public id."""
    wid = writer_id_of(key)
    digest = key_sha256(key)
    known = conn.execute(sa.select(writers.c.key_sha256).where(writers.c.id == wid)).scalar()
    if known is None:
        # ON CONFLICT DO NOTHING (SQLite and PostgreSQL): two processes may register one key at once.
        conn.execute(
            sa.text("INSERT INTO writers (id, key_sha256, created_at) VALUES (:id, :sha, :now) ON CONFLICT DO NOTHING"),
            {"id": wid, "sha": digest, "now": _now()},
        )
        known = conn.execute(sa.select(writers.c.key_sha256).where(writers.c.id == wid)).scalar()
    if known != digest:
        raise InvalidInput("This writer key cannot be used; ask the site for a new one.")
    return wid


def admit(conn: sa.Connection, story_id: int, author: str, key: str | None) -> str | None:
    """Check a keyed writer may write to this story under `author`, binding the name on first use.

    Returns the writer's public id (None without a key: the old name-only behaviour). The
    story's row must already be locked.
    """
    if key is None:
        return None
    wid = register(conn, key)
    if is_blocked(conn, story_id, wid):
        raise NotAllowed("The story's creator has blocked you from writing in this story.")
    owner = conn.execute(
        sa.select(story_names.c.writer_id).where(story_names.c.story_id == story_id, story_names.c.name == author)
    ).scalar()
    if owner is None:
        conn.execute(story_names.insert().values(story_id=story_id, name=author, writer_id=wid, bound_at=_now()))
    elif owner != wid:
        raise NameTaken(f"Another writer already writes as {author} in this story; choose another name.", author)
    return wid


def is_blocked(conn: sa.Connection, story_id: int, writer_id: str) -> bool:
    row = conn.execute(
        sa.select(blocked_writers.c.writer_id).where(
            blocked_writers.c.story_id == story_id, blocked_writers.c.writer_id == writer_id
        )
    ).first()
    return row is not None


def wrote(paragraph: Paragraph, author: str, writer_id: str | None) -> bool:
    """Whether this caller wrote (or accepted) the paragraph: by key when it was written with one."""
    if paragraph.writer_id is not None:
        return writer_id == paragraph.writer_id
    return paragraph.author == author


def check_creator(story, writer_id: str, what: str) -> None:
    """Raise NotAllowed unless `writer_id` created the story (its row); `what` names the act."""
    if story["creator_id"] is None or story["creator_id"] != writer_id:
        raise NotAllowed(f"Only the story's creator can {what}.")
