"""A paragraph's history: undo and redo the last paragraph, edit one (keeping every earlier
text), list its versions, and fork a story at a paragraph.

Every function runs inside a write (or read) transaction on checked arguments.
"""

from __future__ import annotations

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import NotAllowed, NotFound, StaleHeadError
from relay.store.records import (
    PARAGRAPH_COLUMNS,
    Paragraph,
    ParagraphVersion,
    Story,
    paragraph_from_row,
    paragraph_with,
    story_from_row,
    version_from_row,
)
from relay.store.schema import paragraph_versions, paragraphs, stories
from relay.store.timeline import (
    STALE_MESSAGE,
    check_room,
    fetch_paragraph,
    fetch_story,
    head,
    last_live,
    lock_story,
    recount,
)
from relay.store.validation import _now
from relay.store.writers import admit, wrote

# What a fork copies of each paragraph (the rest is the new story's or a fresh default).
_FORKED_COLUMNS = ("seq", "author", "kind", "text", "created_at", "edited", "meta", "writer_id", "hidden")


# --- undo and redo ------------------------------------------------------------------------------


def undo_last(
    conn: sa.Connection, story_id: int, author: str, expected_head: int | None, writer_key: str | None
) -> Paragraph:
    lock_story(conn, story_id)
    wid = admit(conn, story_id, author, writer_key)
    current = head(conn, story_id)
    if expected_head is not None and (current.id if current else 0) != expected_head:
        raise StaleHeadError(STALE_MESSAGE, current)
    last = _undoable(conn, story_id, author, wid)
    now = _now()
    conn.execute(paragraphs.update().where(paragraphs.c.id == last.id).values(deleted=1))
    after = head(conn, story_id)
    conn.execute(
        paragraphs.update().where(paragraphs.c.id == last.id).values(
            undone_by=author, undone_by_id=wid, undone_at=now, head_after_undo=after.id if after else 0
        )
    )
    _story_changed(conn, story_id, now, added=-1)
    return paragraph_with(last, deleted=True)


def _undoable(conn: sa.Connection, story_id: int, author: str, writer_id: str | None) -> Paragraph:
    """The story's last live paragraph, if this caller may undo it; else raise saying why not."""
    last = last_live(conn, story_id)
    if last is None:
        raise NotFound("There is nothing to undo: the story has no paragraphs.")
    if last.hidden:
        raise NotFound("The last paragraph was hidden by the story's creator, so there is nothing to undo.")
    if not wrote(last, author, writer_id):
        raise NotAllowed(f"Only {last.author} can undo the last paragraph: they wrote or accepted it.")
    return last


def redo_last(conn: sa.Connection, story_id: int, author: str, writer_key: str | None) -> Paragraph:
    lock_story(conn, story_id)
    wid = admit(conn, story_id, author, writer_key)
    row = _last_undone_by(conn, story_id, author, wid)
    if row is None:
        raise NotFound("There is nothing of yours to redo in this story.")
    current = head(conn, story_id)
    if (current.id if current else 0) != row["head_after_undo"]:
        raise StaleHeadError("The story has moved on since you undid that paragraph, so it cannot be put back.", current)
    last = last_live(conn, story_id)
    seq = last.seq + 1 if last else 1
    check_room(seq)
    now = _now()
    conn.execute(
        paragraphs.update().where(paragraphs.c.id == row["id"]).values(
            deleted=0, seq=seq, undone_by=None, undone_by_id=None, undone_at=None, head_after_undo=None
        )
    )
    _story_changed(conn, story_id, now, added=1)
    return paragraph_with(paragraph_from_row(row), deleted=False, seq=seq)


def _last_undone_by(conn: sa.Connection, story_id: int, author: str, writer_id: str | None):
    """The row of the paragraph this writer (by key, else by name) undid most recently, or None."""
    who = (paragraphs.c.undone_by_id == writer_id) if writer_id is not None else sa.and_(
        paragraphs.c.undone_by_id.is_(None), paragraphs.c.undone_by == author
    )
    return conn.execute(
        sa.select(*PARAGRAPH_COLUMNS, paragraphs.c.head_after_undo)
        .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 1, who)
        .order_by(paragraphs.c.undone_at.desc(), paragraphs.c.id.desc()).limit(1)
    ).mappings().first()


def _story_changed(conn: sa.Connection, story_id: int, now: str, added: int = 0) -> None:
    """Move the story's version and last activity on; `added` paragraphs join (or leave) its count."""
    values = {"version": stories.c.version + 1, "last_activity": now}
    if added:
        values["paragraph_count"] = stories.c.paragraph_count + added
    conn.execute(stories.update().where(stories.c.id == story_id).values(**values))
    bump(conn, story_id)


# --- edits and versions -------------------------------------------------------------------------


def edit_paragraph(
    conn: sa.Connection, story_id: int, paragraph_id: int, text: str, author: str, writer_key: str | None
) -> Paragraph:
    story = lock_story(conn, story_id)
    wid = admit(conn, story_id, author, writer_key)
    paragraph = fetch_paragraph(conn, story_id, paragraph_id)
    if paragraph.deleted:
        raise NotFound(f"Paragraph {paragraph_id} was undone; only paragraphs in the story can be edited.")
    if story["turn_rule"] != "free" and not wrote(paragraph, author, wid):
        raise NotAllowed(f"Only {paragraph.author} can edit this paragraph: they wrote or accepted it.")
    if text == paragraph.text:
        return paragraph
    now = _now()
    earlier = versions(conn, paragraph)
    if len(earlier) == 1:  # keep the original as version 1 before the first edit
        insert_version(conn, paragraph.id, earlier[0])
    insert_version(conn, paragraph.id, ParagraphVersion(len(earlier) + 1, text, author, now, wid))
    conn.execute(paragraphs.update().where(paragraphs.c.id == paragraph.id).values(text=text, edited=1))
    _story_changed(conn, story_id, now)
    return paragraph_with(paragraph, text=text, edited=True)


def list_versions(conn: sa.Connection, paragraph_id: int) -> list[ParagraphVersion]:
    row = conn.execute(sa.select(*PARAGRAPH_COLUMNS).where(paragraphs.c.id == paragraph_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no paragraph number {paragraph_id}.")
    return versions(conn, paragraph_from_row(row))


def versions(conn: sa.Connection, paragraph: Paragraph) -> list[ParagraphVersion]:
    """Every text the paragraph has had, oldest first; just its own text if it was never edited."""
    rows = conn.execute(
        sa.select(paragraph_versions).where(paragraph_versions.c.paragraph_id == paragraph.id)
        .order_by(paragraph_versions.c.version)
    ).mappings().all()
    if not rows:  # never edited: the paragraph as written is its only version
        return [ParagraphVersion(1, paragraph.text, paragraph.author, paragraph.created_at, paragraph.writer_id)]
    return [version_from_row(r) for r in rows]


def insert_version(conn: sa.Connection, paragraph_id: int, v: ParagraphVersion) -> None:
    conn.execute(
        paragraph_versions.insert().values(
            paragraph_id=paragraph_id, version=v.version, text=v.text, editor=v.editor, editor_id=v.editor_id,
            edited_at=v.edited_at,
        )
    )


# --- forks --------------------------------------------------------------------------------------


def fork(
    conn: sa.Connection, story_id: int, at_paragraph_id: int, title: str, author: str,
    writer_key: str | None, creator_id: str | None, now: str,
) -> Story:
    source = lock_story(conn, story_id)
    at_seq = _fork_point(conn, story_id, at_paragraph_id)
    new_id = conn.execute(
        stories.insert().values(
            title=title, created_by=author, created_at=now, turn_rule=source["turn_rule"],
            settings=source["settings"], forked_from_story=story_id, forked_from_paragraph=at_paragraph_id,
            paragraph_count=0, last_activity=now, version=0, change_seq=0, creator_id=creator_id,
        ).returning(stories.c.id)
    ).scalar_one()
    conn.execute(
        paragraphs.insert().from_select(
            ["story_id", *_FORKED_COLUMNS, "deleted"],
            sa.select(sa.literal(new_id, sa.BigInteger), *(paragraphs.c[c] for c in _FORKED_COLUMNS), sa.literal(0))
            .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.seq <= at_seq)
            .order_by(paragraphs.c.seq),
        )
    )
    recount(conn, new_id)
    admit(conn, new_id, author, writer_key)
    bump(conn, new_id)
    return story_from_row(fetch_story(conn, new_id))


def _fork_point(conn: sa.Connection, story_id: int, paragraph_id: int) -> int:
    """The seq of the live paragraph a fork copies up to; NotFound if it is not in the story."""
    at = conn.execute(
        sa.select(paragraphs.c.seq, paragraphs.c.deleted).where(
            paragraphs.c.id == paragraph_id, paragraphs.c.story_id == story_id
        )
    ).mappings().first()
    if at is None:
        raise NotFound(f"Story {story_id} has no paragraph number {paragraph_id}.")
    if at["deleted"]:
        raise NotFound(f"Paragraph {paragraph_id} was undone; fork from a paragraph still in the story.")
    return at["seq"]
