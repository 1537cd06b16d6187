"""Who is here: the writers with a tab open on a story, across every app process; and taking over a
finished suggestion whose writer has left.

Each app process keeps one `presence` row per (story, writer, process): how many of that writer's tabs
it serves on the story and when it last said so (`seen_at`). The live hub adds a row's tab when a tab
opens, takes it away when it closes (then `seen_at` is when the writer left), and refreshes its rows at
the keep-alive interval. A row not refreshed for PRESENCE_STALE_S belongs to a process that died: it
counts as left at its last refresh. A writer is here while any of their rows has a tab and is fresh.

A pending turn (a finished suggestion waiting) whose writer is not here may be taken over by any
co-writer once the writer has been gone for the grace period (counted from when they left, or from
when the turn began if they never had a tab open): the turn passes to the taker with its suggestions,
and the writer who asked is told their turn was taken (TurnLost), as after the idle timeout.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import NotAllowed, NotFound, TurnBusy
from relay.store.schema import ai_turns, candidates, presence, stories, story_names
from relay.store.timeline import lock_story
from relay.store.turns import _open_turn, live_turn, same_holder, turn_busy
from relay.store.writers import admit

PRESENCE_STALE_S = 75.0  # a row not refreshed for this long is a dead process's (3 keep-alive intervals)
FORGET_AFTER_S = 24 * 3600.0  # rows of writers gone this long are deleted


def join(conn: sa.Connection, story_id: int, writer_id: str, process: str, now: float) -> None:
    lock_story(conn, story_id)
    arrived = not _here(conn, story_id, writer_id, now)
    key = _row_key(story_id, writer_id, process)
    row = conn.execute(sa.select(presence.c.tabs, presence.c.seen_at).where(*key)).first()
    fresh = row is not None and row.seen_at >= now - PRESENCE_STALE_S
    if row is None:
        conn.execute(presence.insert().values(story_id=story_id, writer_id=writer_id, process=process, tabs=1,
                                              seen_at=now))
    else:
        tabs = (row.tabs if fresh else 0) + 1
        conn.execute(presence.update().where(*key).values(tabs=tabs, seen_at=now))
    if arrived:
        bump(conn, story_id)


def leave(conn: sa.Connection, story_id: int, writer_id: str, process: str, now: float) -> None:
    lock_story(conn, story_id)
    key = _row_key(story_id, writer_id, process)
    row = conn.execute(sa.select(presence.c.tabs).where(*key)).first()
    if row is None:
        return
    conn.execute(presence.update().where(*key).values(tabs=max(row.tabs - 1, 0), seen_at=now))
    if not _here(conn, story_id, writer_id, now):
        bump(conn, story_id)


def refresh(conn: sa.Connection, process: str, now: float) -> list[int]:
    """Mark this process's open tabs as still here; end the stale rows of dead processes (and say which
    stories lost a writer that way); forget long-gone writers."""
    conn.execute(presence.update().where(presence.c.process == process, presence.c.tabs > 0).values(seen_at=now))
    stale = conn.execute(
        sa.select(presence.c.story_id).where(presence.c.tabs > 0, presence.c.seen_at < now - PRESENCE_STALE_S)
        .distinct().order_by(presence.c.story_id)
    ).scalars().all()
    for story_id in stale:
        lock_story(conn, story_id)
    for story_id in stale:
        conn.execute(presence.update().where(presence.c.story_id == story_id, presence.c.tabs > 0,
                                             presence.c.seen_at < now - PRESENCE_STALE_S).values(tabs=0))
        bump(conn, story_id)
    conn.execute(presence.delete().where(presence.c.tabs == 0, presence.c.seen_at < now - FORGET_AFTER_S))
    return list(stale)


def here(conn: sa.Connection, story_id: int, now: float) -> list[tuple[str, str]]:
    """(writer id, name) of every writer with a tab open on the story, in the order they arrived; the name
    is the one the writer's key last bound in this story ("" for a reader who never wrote in it)."""
    rows = conn.execute(
        sa.select(presence.c.writer_id, sa.func.min(presence.c.seen_at))
        .where(presence.c.story_id == story_id, presence.c.tabs > 0, presence.c.seen_at >= now - PRESENCE_STALE_S)
        .group_by(presence.c.writer_id).order_by(sa.func.min(presence.c.seen_at), presence.c.writer_id)
    ).all()
    return [(wid, _name(conn, story_id, wid)) for wid, _ in rows]


def takeover_at(conn: sa.Connection, story_id: int, grace: float, now: float) -> float | None:
    """When a co-writer may take over the story's waiting suggestion (None: not while its writer is here,
    nor while nothing finished waits, nor for a turn claimed without a writer key)."""
    turn = live_turn(conn, story_id)
    return None if turn is None else _takeover_at(conn, turn, grace, now)


def _takeover_at(conn: sa.Connection, turn, grace: float, now: float) -> float | None:
    if turn["status"] != "pending" or turn["holder_id"] is None:
        return None
    if _here(conn, turn["story_id"], turn["holder_id"], now):
        return None
    left = conn.execute(
        sa.select(sa.func.max(presence.c.seen_at))
        .where(presence.c.story_id == turn["story_id"], presence.c.writer_id == turn["holder_id"])
    ).scalar()
    return max(left or 0.0, turn["claimed_at"]) + grace


def take_over(conn: sa.Connection, story_id: int, taker: str, writer_key: str | None, taker_id: str | None,
              grace: float, idle_ttl: float, process: str, now: float) -> str:
    """Pass the story's waiting suggestion, with its model turn, to `taker`; return the new turn's id."""
    lock_story(conn, story_id)
    admit(conn, story_id, taker, writer_key)
    turn = live_turn(conn, story_id)
    if turn is None:
        raise NotFound("There is no waiting suggestion to take over in this story.")
    if same_holder(turn, taker, taker_id):
        return turn["id"]
    if turn["status"] != "pending":
        raise turn_busy(turn)
    at = _takeover_at(conn, turn, grace, now)
    if at is None or at > now:
        raise TurnBusy(f"{turn['holder']} is still here, or left only a moment ago: their suggestion is theirs"
                       " to decide for now.", turn["holder"], turn["status"], turn["expires_at"])
    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="lost", lost_to=taker, draft=""))
    turn_id = _open_turn(conn, story_id, taker, taker_id, now + idle_ttl, process, now)
    conn.execute(ai_turns.update().where(ai_turns.c.id == turn_id).values(status="pending"))
    conn.execute(candidates.update().where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
                 .values(turn_id=turn_id))
    conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
    bump(conn, story_id)
    return turn_id


def _here(conn: sa.Connection, story_id: int, writer_id: str, now: float) -> bool:
    row = conn.execute(
        sa.select(presence.c.tabs).where(
            presence.c.story_id == story_id, presence.c.writer_id == writer_id, presence.c.tabs > 0,
            presence.c.seen_at >= now - PRESENCE_STALE_S).limit(1)
    ).first()
    return row is not None


def _name(conn: sa.Connection, story_id: int, writer_id: str) -> str:
    name = conn.execute(
        sa.select(story_names.c.name).where(story_names.c.story_id == story_id, story_names.c.writer_id == writer_id)
        .order_by(story_names.c.bound_at.desc()).limit(1)
    ).scalar()
    return name or ""


def _row_key(story_id: int, writer_id: str, process: str):
    return (presence.c.story_id == story_id, presence.c.writer_id == writer_id, presence.c.process == process)
