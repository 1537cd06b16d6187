"""Writers: their keys, the names they write under, and who may act on what.

A writer key is registered when the site issues it (only its SHA-256 is stored): `register` for
keys from /writer_key, the page, or a signed-in account. `admit` checks, inside a write, that the
key was issued, that its writer is not blocked from the story, and binds their display name to
their key there; a name that looks like one another key holds in the story (same skeleton:
relay.store.validation.name_skeleton) is refused like the name itself. `wrote` and `check_creator` answer "may this caller undo/edit this paragraph" and
"is this caller the story's creator".
"""

from __future__ import annotations

import sqlalchemy as sa

from relay.store.errors import InvalidInput, NameTaken, NotAllowed, UnknownWriterKey
from relay.store.records import Paragraph
from relay.store.schema import blocked_writers, story_names, writers
from relay.store.validation import _now, key_sha256, name_skeleton, writer_id_of


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


def issued(conn: sa.Connection, key: str) -> str:
    """The public id of a key this site issued; UnknownWriterKey for any other well-formed key."""
    wid = writer_id_of(key)
    known = conn.execute(sa.select(writers.c.key_sha256).where(writers.c.id == wid)).scalar()
    if known != key_sha256(key):
        raise UnknownWriterKey("This writer key was not issued by this site; get a new one from /writer_key.")
    return wid


def admit(conn: sa.Connection, story_id: int, author: str, key: str | None) -> str | None:
    """Check a keyed writer may write to this story under `author`, binding the name on first use.

    Returns the writer's public id (None without a key: the old name-only behaviour). The
    story's row must already be locked.
    """
    if key is None:
        return None
    wid = issued(conn, key)
    if is_blocked(conn, story_id, wid):
        raise NotAllowed("The story's creator has blocked you from writing in this story.")
    owner = conn.execute(
        sa.select(story_names.c.writer_id).where(story_names.c.story_id == story_id, story_names.c.name == author)
    ).scalar()
    if owner is None:
        twin = _look_alike(conn, story_id, author, wid)
        if twin is not None:
            raise NameTaken(f"{author} looks like {twin}, a name another writer uses in this story; choose another "
                            "name.", twin)
        conn.execute(story_names.insert().values(story_id=story_id, name=author, writer_id=wid, bound_at=_now()))
    elif owner != wid:
        raise NameTaken(f"Another writer already writes as {author} in this story; choose another name.", author)
    return wid


def _look_alike(conn: sa.Connection, story_id: int, author: str, writer_id: str) -> str | None:
    """A name another key holds in this story that reads the same as `author` (None if there is none)."""
    skeleton = name_skeleton(author)
    for name, owner in conn.execute(
        sa.select(story_names.c.name, story_names.c.writer_id).where(story_names.c.story_id == story_id)
    ):
        if owner != writer_id and name_skeleton(name) == skeleton:
            return name
    return None


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
