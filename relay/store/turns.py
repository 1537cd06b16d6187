"""The model's turn in a story and the candidates it writes.

A turn is a lease (`ai_turns`): claimed for one writer ("writing"), its text so far kept as a
draft, refreshed while they work, and "pending" once its candidates wait to be accepted or
discarded; it ends when one is accepted, when they are discarded, when it is released, or
when someone else claims it after it expired ("lost"). Candidates are model output the server
generated; accepting one appends it as an AI paragraph. Every function runs inside a
transaction on checked arguments.
"""

from __future__ import annotations

import json
import secrets
import time

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import NotAllowed, NotFound, TurnBusy, TurnLost
from relay.store.records import CANDIDATE_COLUMNS, AITurnState, Candidate, Paragraph, candidate_from_row
from relay.store.schema import ai_turns, candidates, stories
from relay.store.timeline import append, lock_story
from relay.store.validation import _now, _pid_alive
from relay.store.writers import admit

CANDIDATE_MAX_AGE_S = 24 * 3600.0
TURN_STATUSES = ("writing", "pending")  # a turn that is still open
CANDIDATE_MISSING = "This suggestion does not exist any more (it may have expired); ask the model again."


# --- the lease ----------------------------------------------------------------------------------


def claim_ai_turn(
    conn: sa.Connection, story_id: int, author: str, ttl: float, writer_key: str | None,
    writer_id: str | None, process: str,
) -> str:
    lock_story(conn, story_id)
    admit(conn, story_id, author, writer_key)
    now = time.time()
    turn = current_turn(conn, story_id)
    if turn is not None and same_holder(turn, author, writer_id):
        conn.execute(
            ai_turns.update().where(ai_turns.c.n == turn["n"]).values(
                status="writing", draft="", expires_at=now + ttl, process=process
            )
        )
        turn_id = turn["id"]
    else:
        if turn is not None:
            if turn["expires_at"] > now:
                raise turn_busy(turn)
            conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="lost", lost_to=author))
        turn_id = _open_turn(conn, story_id, author, writer_id, now + ttl, process, now)
    conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
    bump(conn, story_id)
    return turn_id


def _open_turn(
    conn: sa.Connection, story_id: int, holder: str, holder_id: str | None, expires_at: float, process: str,
    now: float,
) -> str:
    turn_id = secrets.token_urlsafe(12)
    conn.execute(
        ai_turns.insert().values(
            id=turn_id, story_id=story_id, holder=holder, holder_id=holder_id, status="writing", draft="",
            expires_at=expires_at, process=process, claimed_at=now,
        )
    )
    conn.execute(stories.update().where(stories.c.id == story_id).values(ai_turn_id=turn_id))
    return turn_id


def set_ai_draft(
    conn: sa.Connection, story_id: int, author: str, text: str, writer_id: str | None, ttl: float | None
) -> None:
    lock_story(conn, story_id)
    turn = held_turn(conn, story_id, author, writer_id)
    expires = turn["expires_at"] if ttl is None else time.time() + ttl
    conn.execute(
        ai_turns.update().where(ai_turns.c.n == turn["n"]).values(draft=text, status="writing", expires_at=expires)
    )
    bump(conn, story_id)


def touch_ai_turn(conn: sa.Connection, story_id: int, author: str, ttl: float, writer_id: str | None) -> None:
    lock_story(conn, story_id)
    turn = held_turn(conn, story_id, author, writer_id)
    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(expires_at=time.time() + ttl))
    bump(conn, story_id)


def release_ai_turn(conn: sa.Connection, story_id: int, author: str, writer_id: str | None) -> None:
    lock_story(conn, story_id)
    turn = current_turn(conn, story_id)
    if turn is not None and same_holder(turn, author, writer_id):
        end_turn(conn, story_id, turn, "released")


def discard_ai_turn(conn: sa.Connection, story_id: int, author: str, writer_id: str | None) -> int:
    lock_story(conn, story_id)
    turn = current_turn(conn, story_id)
    if turn is None:
        raise NotFound("There is no model turn to discard in this story.")
    if not same_holder(turn, author, writer_id) and turn["expires_at"] > time.time():
        raise NotAllowed(f"Only {turn['holder']} can discard these suggestions until their turn times out.")
    count = conn.execute(
        candidates.update()
        .where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
        .values(status="discarded")
    ).rowcount
    end_turn(conn, story_id, turn, "discarded")
    return count


def ai_turn(conn: sa.Connection, story_id: int) -> AITurnState | None:
    turn = live_turn(conn, story_id)
    if turn is None:
        return None
    rows = conn.execute(
        sa.select(*CANDIDATE_COLUMNS)
        .where(candidates.c.turn_id == turn["id"], candidates.c.status != "discarded")
        .order_by(candidates.c.created_unix, candidates.c.id)
    ).mappings().all()
    return AITurnState(
        story_id=story_id, holder=turn["holder"], holder_id=turn["holder_id"], status=turn["status"],
        draft=turn["draft"], candidates=[candidate_from_row(r) for r in rows], expires_at=turn["expires_at"],
        process=turn["process"], turn_id=turn["id"],
    )


def ai_turn_holder(conn: sa.Connection, story_id: int) -> str | None:
    turn = live_turn(conn, story_id)
    return None if turn is None else turn["holder"]


def release_dead_turns(conn: sa.Connection, host: str) -> int:
    rows = conn.execute(
        sa.select(ai_turns)
        .join(stories, stories.c.ai_turn_id == ai_turns.c.id)
        .where(ai_turns.c.status == "writing", ai_turns.c.process.startswith(host + ":", autoescape=True))
        .order_by(ai_turns.c.story_id)
    ).mappings().all()
    dead = [t for t in rows if not _process_alive(t["process"])]
    for turn in dead:  # lock every story first (in id order), then write
        lock_story(conn, turn["story_id"])
    for turn in dead:
        if _has_open_candidates(conn, turn["id"]):
            conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="pending", draft=""))
            bump(conn, turn["story_id"])
        else:
            end_turn(conn, turn["story_id"], turn, "released")
    return len(dead)


def _has_open_candidates(conn: sa.Connection, turn_id: str) -> bool:
    row = conn.execute(
        sa.select(candidates.c.id).where(candidates.c.turn_id == turn_id, candidates.c.status == "open").limit(1)
    ).first()
    return bool(row)


def current_turn(conn: sa.Connection, story_id: int):
    """The story's open model turn (writing or pending), expired or not; NotFound for no story."""
    turn_id = conn.execute(sa.select(stories.c.ai_turn_id).where(stories.c.id == story_id)).first()
    if turn_id is None:
        raise NotFound(f"There is no story number {story_id}.")
    if turn_id[0] is None:
        return None
    return conn.execute(sa.select(ai_turns).where(ai_turns.c.id == turn_id[0])).mappings().first()


def live_turn(conn: sa.Connection, story_id: int):
    """The story's current model turn if it has not timed out, else None (a timeout writes nothing)."""
    turn = current_turn(conn, story_id)
    return None if turn is None or turn["expires_at"] <= time.time() else turn


def same_holder(turn, author: str, writer_id: str | None) -> bool:
    """A turn claimed with a writer key belongs to that key; one claimed by name, to that name."""
    if turn["holder_id"] is not None:
        return writer_id == turn["holder_id"]
    return writer_id is None and author == turn["holder"]


def turn_busy(turn) -> TurnBusy:
    """The TurnBusy for a writer who tries to claim this live turn of someone else."""
    holder = turn["holder"]
    if turn["status"] == "pending":
        message = (f"{holder}'s suggestion from the model is waiting to be accepted; the model's turn is theirs"
                   " until they decide or stay idle too long.")
    else:
        message = f"The model is already writing for {holder}; try again when it is done."
    return TurnBusy(message, holder, turn["status"], turn["expires_at"])


def held_turn(conn: sa.Connection, story_id: int, author: str, writer_id: str | None):
    """The story's turn if `author` holds it (even expired, while nobody took it); else raise."""
    turn = current_turn(conn, story_id)
    if turn is not None and same_holder(turn, author, writer_id):
        return turn
    lost = conn.execute(
        sa.select(ai_turns).where(ai_turns.c.story_id == story_id, ai_turns.c.status == "lost")
        .order_by(ai_turns.c.n.desc()).limit(1)
    ).mappings().first()
    if lost is not None and same_holder(lost, author, writer_id):
        raise TurnLost(f"You were idle too long, so the model's turn went to {lost['lost_to']}.", lost["lost_to"] or "")
    raise NotAllowed("You do not hold the model's turn in this story; ask the model first.")


def end_turn(conn: sa.Connection, story_id: int, turn, status: str) -> None:
    """Close the turn with `status` and free the story's model turn."""
    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status=status, draft=""))
    conn.execute(
        stories.update().where(stories.c.id == story_id).values(ai_turn_id=None, version=stories.c.version + 1)
    )
    bump(conn, story_id)


def _process_alive(process: str | None) -> bool:
    pid = (process or "").rpartition(":")[2]
    return pid.isdigit() and _pid_alive(int(pid))


# --- candidates ---------------------------------------------------------------------------------


def add_candidate(
    conn: sa.Connection, story_id: int, author: str, text: str, meta_json: str, writer_key: str | None,
    writer_id: str | None, idle_ttl: float | None, candidate_id: str, now: float,
) -> str:
    lock_story(conn, story_id)
    admit(conn, story_id, author, writer_key)
    conn.execute(candidates.delete().where(candidates.c.created_unix < now - CANDIDATE_MAX_AGE_S))
    turn = current_turn(conn, story_id)
    turn_id = None
    if turn is not None and same_holder(turn, author, writer_id):
        turn_id = turn["id"]
        expires = turn["expires_at"] if idle_ttl is None else now + idle_ttl
        conn.execute(
            ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="pending", draft="", expires_at=expires)
        )
    conn.execute(
        candidates.insert().values(
            id=candidate_id, story_id=story_id, author=author, text=text, meta=meta_json, created_at=_now(),
            created_unix=now, used=0, turn_id=turn_id, status="open", writer_id=writer_id,
        )
    )
    bump(conn, story_id)
    return candidate_id


def get_candidate(conn: sa.Connection, key: str) -> Candidate:
    row = conn.execute(sa.select(*CANDIDATE_COLUMNS).where(candidates.c.id == key)).mappings().first()
    if row is None:
        raise NotFound(CANDIDATE_MISSING)
    return candidate_from_row(row)


def turn_candidates(conn: sa.Connection, turn_id: str) -> list[Candidate]:
    rows = conn.execute(
        sa.select(*CANDIDATE_COLUMNS).where(candidates.c.turn_id == turn_id)
        .order_by(candidates.c.created_unix, candidates.c.id)
    ).mappings().all()
    return [candidate_from_row(r) for r in rows]


def candidate_key(candidate_id) -> str:
    """The candidate id as the database keys it; NotFound for anything that cannot be one."""
    if not isinstance(candidate_id, str) or not candidate_id:
        raise NotFound(CANDIDATE_MISSING)
    return candidate_id


def accept_candidate(
    conn: sa.Connection, key: str, author: str, text: str | None, expected_head: int | None,
    writer_key: str | None, writer_id: str | None,
) -> Paragraph:
    """Append the candidate as an AI paragraph; mark it used, its turn's others "not chosen", free the turn."""
    story_id = conn.execute(sa.select(candidates.c.story_id).where(candidates.c.id == key)).scalar()
    if story_id is None:
        raise NotFound(CANDIDATE_MISSING)
    lock_story(conn, story_id)
    admit(conn, story_id, author, writer_key)
    candidate = _acceptable_candidate(conn, key)
    turn = _turn_to_accept_from(conn, candidate, author, writer_id)
    edited = text is not None and text != candidate.text
    meta = _accepted_meta(conn, candidate, turn, edited, author, writer_id)
    paragraph = append(
        conn, candidate.story_id, text if edited else candidate.text, author, "ai", expected_head, edited,
        json.dumps(meta, ensure_ascii=False), writer_id=writer_id,
    )
    conn.execute(candidates.update().where(candidates.c.id == key).values(used=1, status="accepted"))
    if turn is not None:
        conn.execute(
            candidates.update()
            .where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
            .values(status="not_chosen")
        )
        if turn["status"] in TURN_STATUSES:
            end_turn(conn, candidate.story_id, turn, "accepted")
    return paragraph


def _acceptable_candidate(conn: sa.Connection, key: str) -> Candidate:
    """The candidate, if it is still open and less than a day old; else raise saying why not."""
    row = conn.execute(
        sa.select(*CANDIDATE_COLUMNS, candidates.c.created_unix).where(candidates.c.id == key)
    ).mappings().first()
    if row is None:
        raise NotFound(CANDIDATE_MISSING)
    candidate = candidate_from_row(row)
    if candidate.status == "accepted":
        raise NotAllowed("This suggestion was already added to the story.")
    if candidate.status == "discarded":
        raise NotAllowed("This suggestion was discarded, so it cannot be added; ask the model again.")
    if candidate.status == "not_chosen":
        raise NotAllowed("Another suggestion of the same turn was already added to the story.")
    if row["created_unix"] < time.time() - CANDIDATE_MAX_AGE_S:
        raise NotFound("This suggestion expired: it is more than a day old. Ask the model again.")
    return candidate


def _turn_to_accept_from(conn: sa.Connection, candidate: Candidate, author: str, writer_id: str | None):
    """The candidate's model turn (None if it has none), once this caller may accept from it.

    TurnLost if the turn went to another writer since; NotAllowed while it is someone else's
    live turn.
    """
    if candidate.turn_id is None:
        return None
    turn = conn.execute(sa.select(ai_turns).where(ai_turns.c.id == candidate.turn_id)).mappings().first()
    if turn is None:
        return None
    later = conn.execute(
        sa.select(ai_turns.c.holder, ai_turns.c.holder_id)
        .where(ai_turns.c.story_id == turn["story_id"], ai_turns.c.n > turn["n"])
        .order_by(ai_turns.c.n)
    ).mappings().all()
    taker = next((t for t in later if not same_holder(turn, t["holder"], t["holder_id"])), None)
    if turn["status"] == "lost" or taker is not None:
        holder = turn["lost_to"] or (taker["holder"] if taker else "")
        raise TurnLost(
            f"You were idle too long, so the model's turn went to {holder}; this suggestion can no"
            " longer be added. Wait for your turn and ask the model again.",
            holder,
        )
    current = turn["status"] in TURN_STATUSES
    if current and not same_holder(turn, author, writer_id) and turn["expires_at"] > time.time():
        raise NotAllowed(f"Only {turn['holder']} can accept this suggestion until their turn times out.")
    return turn


def _accepted_meta(conn: sa.Connection, candidate: Candidate, turn, edited: bool, author: str,
                   writer_id: str | None) -> dict:
    """The paragraph's meta: the candidate's, its id, the original text if edited, the turn's other texts;
    and, when one writer asked the model and another chose the text (a takeover), both of them."""
    meta = dict(candidate.meta, candidate_id=candidate.id)
    same = (candidate.writer_id == writer_id if candidate.writer_id is not None or writer_id is not None
            else candidate.author == author)
    if not same:
        meta["asked_by"], meta["chosen_by"] = candidate.author, author
    if edited:
        meta["original_text"] = candidate.text
    if turn is not None:
        others = conn.execute(
            sa.select(candidates.c.text)
            .where(candidates.c.turn_id == turn["id"], candidates.c.id != candidate.id, candidates.c.status == "open")
            .order_by(candidates.c.created_unix, candidates.c.id)
        ).scalars().all()
        if others:
            meta["other_versions"] = list(others)
    return meta
