"""Stories and their timelines: create, list and read stories, and append paragraphs.

Also the helpers every write room shares: fetch or lock a story's row, read its head and last
live paragraph, recount it, and `append` (expected head, turn rule, next seq, in one step).
Every function here runs inside a transaction the caller opened, on arguments already checked.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import InvalidInput, NotFound, StaleHeadError, StoryFull, TurnError
from relay.store.records import (
    PARAGRAPH_COLUMNS,
    STORY_COLUMNS,
    Paragraph,
    Story,
    paragraph_from_row,
    story_from_row,
)
from relay.store.schema import paragraphs, stories
from relay.store.validation import MAX_PARAGRAPHS_PER_STORY, _now
from relay.store.writers import admit

STALE_MESSAGE = "The story has moved on since you last looked: someone else added or undid a paragraph."
FULL_MESSAGE = (
    f"This story is full: it already holds {MAX_PARAGRAPHS_PER_STORY:,} paragraphs, the most a story may."
    " Fork it at its last paragraph, or continue it in a new story."
)

# Statements of the hot path (append), built once: SQLAlchemy memoizes a built statement's
# cache key, so executing one costs little more than the driver call.
_STORY_QUERY = sa.select(*STORY_COLUMNS, stories.c.ai_turn_id).where(stories.c.id == sa.bindparam("id"))
_STORY_QUERY_LOCKED = _STORY_QUERY.with_for_update()  # PostgreSQL; SQLite's BEGIN IMMEDIATE already holds it
_HEAD_QUERY = (  # the last paragraph a reader sees
    sa.select(*PARAGRAPH_COLUMNS)
    .where(paragraphs.c.story_id == sa.bindparam("id"), paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
    .order_by(paragraphs.c.seq.desc()).limit(1)
)
_LAST_LIVE_QUERY = (  # the last paragraph not undone, hidden or not: it holds the highest seq
    sa.select(*PARAGRAPH_COLUMNS)
    .where(paragraphs.c.story_id == sa.bindparam("id"), paragraphs.c.deleted == 0)
    .order_by(paragraphs.c.seq.desc()).limit(1)
)
_PAGE_QUERY = (  # the newest visible paragraphs before a seq, newest first: an index range scan (paragraphs_live_seq)
    sa.select(*PARAGRAPH_COLUMNS)
    .where(paragraphs.c.story_id == sa.bindparam("id"), paragraphs.c.deleted == 0, paragraphs.c.hidden == 0,
           paragraphs.c.seq < sa.bindparam("before"))
    .order_by(paragraphs.c.seq.desc()).limit(sa.bindparam("limit", type_=sa.Integer))
)
_NO_BOUND = 2**31 - 1  # above every seq (seqs are INTEGER, and a story holds at most MAX_PARAGRAPHS_PER_STORY)
_INSERT_PARAGRAPH = paragraphs.insert().returning(paragraphs.c.id)
_APPENDED = stories.update().where(stories.c.id == sa.bindparam("sid")).values(
    version=stories.c.version + 1, paragraph_count=stories.c.paragraph_count + 1,
    last_activity=sa.bindparam("now"),
)


# --- stories ------------------------------------------------------------------------------------


def create_story(
    conn: sa.Connection, title: str, author: str, turn_rule: str, settings_json: str,
    writer_key: str | None, creator_id: str | None, now: str,
) -> Story:
    story_id = conn.execute(
        stories.insert().values(
            title=title, created_by=author, created_at=now, turn_rule=turn_rule, settings=settings_json,
            paragraph_count=0, last_activity=now, version=0, change_seq=0, creator_id=creator_id,
        ).returning(stories.c.id)
    ).scalar_one()
    admit(conn, story_id, author, writer_key)
    bump(conn, story_id)
    return story_from_row(fetch_story(conn, story_id))


def list_stories(conn: sa.Connection) -> list[Story]:
    rows = conn.execute(
        sa.select(*STORY_COLUMNS).order_by(stories.c.last_activity.desc(), stories.c.id.desc())
    ).mappings().all()
    return [story_from_row(row) for row in rows]


def get_story(conn: sa.Connection, story_id: int) -> Story:
    return story_from_row(fetch_story(conn, story_id))


def fetch_story(conn: sa.Connection, story_id: int, *, lock: bool = False):
    """The story's row (with its open model turn's id); NotFound if there is none."""
    row = conn.execute(_STORY_QUERY_LOCKED if lock else _STORY_QUERY, {"id": story_id}).mappings().first()
    if row is None:
        raise NotFound(f"There is no story number {story_id}.")
    return row


def lock_story(conn: sa.Connection, story_id: int):
    """Lock the story's row for this write transaction (PostgreSQL) and return it; NotFound if none.

    Every write locks the stories it changes before it takes the change counter's row in
    bump, always in that order, so two writers never wait on each other in a cycle.
    """
    return fetch_story(conn, story_id, lock=True)


def recount(conn: sa.Connection, story_id: int) -> None:
    """Set paragraph_count to the paragraphs a reader sees (not undone, not hidden)."""
    count = conn.execute(
        sa.select(sa.func.count()).select_from(paragraphs)
        .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
    ).scalar_one()
    conn.execute(stories.update().where(stories.c.id == story_id).values(paragraph_count=count))


# --- paragraphs ---------------------------------------------------------------------------------


def story_head(conn: sa.Connection, story_id: int) -> Paragraph | None:
    fetch_story(conn, story_id)
    return head(conn, story_id)


def timeline(conn: sa.Connection, story_id: int) -> list[Paragraph]:
    fetch_story(conn, story_id)
    rows = conn.execute(
        sa.select(*PARAGRAPH_COLUMNS)
        .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
        .order_by(paragraphs.c.seq)
    ).mappings().all()
    return [paragraph_from_row(row) for row in rows]


def timeline_page(conn: sa.Connection, story_id: int, limit: int, before: int | None) -> tuple[list[Paragraph], bool]:
    """The newest `limit` visible paragraphs with seq < `before` (all seqs when None), oldest first, and
    whether older visible ones remain: one index range scan, however long the story is."""
    fetch_story(conn, story_id)
    rows = conn.execute(
        _PAGE_QUERY, {"id": story_id, "before": _NO_BOUND if before is None else before, "limit": limit + 1}
    ).mappings().all()
    page = [paragraph_from_row(row) for row in rows[:limit]]
    page.reverse()
    return page, len(rows) > limit


def add_paragraph(
    conn: sa.Connection, story_id: int, text: str, author: str, kind: str, expected_head: int | None,
    edited: bool, meta_json: str, writer_key: str | None, client_id: str | None,
) -> Paragraph:
    """Append a writer's paragraph, or return the one a retry with the same `client_id` stored."""
    lock_story(conn, story_id)
    if client_id is not None:
        earlier = _sent_before(conn, story_id, client_id, text)
        if earlier is not None:
            return earlier
    wid = admit(conn, story_id, author, writer_key)
    return append(
        conn, story_id, text, author, kind, expected_head, bool(edited), meta_json, writer_id=wid, client_id=client_id
    )


def _sent_before(conn: sa.Connection, story_id: int, client_id: str, text: str) -> Paragraph | None:
    row = conn.execute(
        sa.select(*PARAGRAPH_COLUMNS).where(paragraphs.c.story_id == story_id, paragraphs.c.client_id == client_id)
    ).mappings().first()
    if row is None:
        return None
    if row["text"] != text:
        raise InvalidInput("This request id was already used for a different paragraph; send new text with a new id.")
    if row["deleted"]:  # stored, then undone: the retry must not report it as added
        raise NotFound("This paragraph was added and then undone; send it again with a new id to add it anew.")
    return paragraph_from_row(row)


def fetch_paragraph(conn: sa.Connection, story_id: int, paragraph_id: int) -> Paragraph:
    """Paragraph `paragraph_id` of story `story_id` (deleted or hidden ones too); NotFound if it is not there."""
    row = conn.execute(
        sa.select(*PARAGRAPH_COLUMNS).where(paragraphs.c.id == paragraph_id, paragraphs.c.story_id == story_id)
    ).mappings().first()
    if row is None:
        raise NotFound(f"Story {story_id} has no paragraph number {paragraph_id}.")
    return paragraph_from_row(row)


def head(conn: sa.Connection, story_id: int) -> Paragraph | None:
    """The last paragraph a reader sees (not undone, not hidden), or None."""
    row = conn.execute(_HEAD_QUERY, {"id": story_id}).mappings().first()
    return paragraph_from_row(row) if row else None


def last_live(conn: sa.Connection, story_id: int) -> Paragraph | None:
    """The last paragraph not undone, hidden or not: the one with the highest seq."""
    row = conn.execute(_LAST_LIVE_QUERY, {"id": story_id}).mappings().first()
    return paragraph_from_row(row) if row else None


def check_room(seq: int) -> None:
    """Raise StoryFull if a paragraph at `seq` would pass the cap on a story's paragraphs.

    Seqs of paragraphs not undone run 1..n, hidden ones included, so `seq` is the count after the
    append. The cap keeps every read and render of a story bounded (issue 20).
    """
    if seq > MAX_PARAGRAPHS_PER_STORY:
        raise StoryFull(FULL_MESSAGE)


def check_turn(previous: Paragraph | None, kind: str) -> None:
    """Raise TurnError if the `alternate` rule does not let a `kind` paragraph follow `previous`."""
    if previous is None and kind == "ai":
        raise TurnError("A person writes the first paragraph; the model takes the next turn.")
    if previous is not None and previous.kind == kind:
        if kind == "human":
            raise TurnError("It is the model's turn: ask it for the next paragraph.")
        raise TurnError("It is a person's turn: write the next paragraph yourself.")


def append(
    conn: sa.Connection,
    story_id: int,
    text: str,
    author: str,
    kind: str,
    expected_head: int | None,
    edited: bool,
    meta_json: str,
    *,
    writer_id: str | None = None,
    client_id: str | None = None,
) -> Paragraph:
    """Check `expected_head` and the turn rule, then add the paragraph at the end; the story is locked."""
    story = fetch_story(conn, story_id)
    current = head(conn, story_id)
    if expected_head is not None and (current.id if current else 0) != expected_head:
        raise StaleHeadError(STALE_MESSAGE, current)
    if story["turn_rule"] == "alternate":
        check_turn(current, kind)
    # Non-deleted seqs are always 1..n (only the last paragraph can be undone), so this is n + 1.
    last = last_live(conn, story_id)
    seq = last.seq + 1 if last else 1
    check_room(seq)
    now = _now()
    paragraph_id = conn.execute(
        _INSERT_PARAGRAPH,
        {"story_id": story_id, "seq": seq, "author": author, "kind": kind, "text": text, "created_at": now,
         "edited": int(edited), "meta": meta_json, "deleted": 0, "writer_id": writer_id, "client_id": client_id,
         "hidden": 0},
    ).scalar_one()
    conn.execute(_APPENDED, {"sid": story_id, "now": now})
    bump(conn, story_id)
    return Paragraph(
        id=paragraph_id, story_id=story_id, seq=seq, author=author, kind=kind, text=text, created_at=now,
        edited=edited, meta=json.loads(meta_json), deleted=False, writer_id=writer_id,
    )
