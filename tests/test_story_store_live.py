"""The live model turn and the change feed: what every open tab watches, across processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time

import pytest

from relay.story_store import (
    CANDIDATE_MAX_AGE_S,
    InvalidInput,
    NameTaken,
    NotAllowed,
    NotFound,
    StoryStore,
    TurnBusy,
    TurnLost,
)

CTX = multiprocessing.get_context("spawn")
pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL
IDLE = 0.3  # the idle timeout of a pending turn, short for the tests


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def story(store):
    """An alternate-rule story whose next paragraph is the model's."""
    s = store.create_story("릴레이", "민수")
    store.add_paragraph(s.id, "옛날 옛적에", "민수")
    return s


# --- the race of issue 8 -------------------------------------------------------------------------


def test_a_waiting_candidate_keeps_the_turn_for_its_writer(store, story):
    turn_id = store.claim_ai_turn(story.id, "민수")
    cid = store.add_candidate(story.id, "민수", "호랑이가 살았다.", {}, idle_ttl=60)
    state = store.ai_turn(story.id)
    assert (state.holder, state.status, state.turn_id, state.draft) == ("민수", "pending", turn_id, "")
    assert [c.id for c in state.candidates] == [cid]
    with pytest.raises(TurnBusy, match="민수") as err:
        store.claim_ai_turn(story.id, "지영")
    assert (err.value.holder, err.value.status) == ("민수", "pending")
    assert err.value.expires_at == state.expires_at
    with pytest.raises(NotAllowed, match="민수"):
        store.accept_candidate(cid, "지영")
    p = store.accept_candidate(cid, "민수")
    assert p.text == "호랑이가 살았다." and store.ai_turn(story.id) is None


def test_after_the_idle_timeout_another_writer_may_take_the_turn_and_the_first_is_told_why(store, story):
    store.claim_ai_turn(story.id, "민수")
    cid = store.add_candidate(story.id, "민수", "호랑이가 살았다.", {}, idle_ttl=IDLE)
    time.sleep(IDLE + 0.05)
    assert store.ai_turn(story.id) is None and store.ai_turn_holder(story.id) is None
    store.claim_ai_turn(story.id, "지영")
    with pytest.raises(TurnLost, match="idle too long") as err:
        store.accept_candidate(cid, "민수")
    assert err.value.holder == "지영" and "지영" in str(err.value)
    assert [p.text for p in store.timeline(story.id)] == ["옛날 옛적에"]
    # Writer 2's own turn goes on undisturbed.
    theirs = store.add_candidate(story.id, "지영", "여우가 웃었다.", {})
    assert store.accept_candidate(theirs, "지영").text == "여우가 웃었다."
    with pytest.raises(TurnLost):
        store.accept_candidate(cid, "민수")


def test_a_turn_lost_even_after_the_taker_finished_still_refuses_the_old_candidate(store, story):
    store.claim_ai_turn(story.id, "민수")
    cid = store.add_candidate(story.id, "민수", "늦은 글", {}, idle_ttl=IDLE)
    time.sleep(IDLE + 0.05)
    store.claim_ai_turn(story.id, "지영")
    store.release_ai_turn(story.id, "지영")
    with pytest.raises(TurnLost):
        store.accept_candidate(cid, "민수")


def test_if_nobody_took_the_expired_turn_its_candidate_can_still_be_accepted(store, story):
    store.claim_ai_turn(story.id, "민수")
    cid = store.add_candidate(story.id, "민수", "호랑이가 살았다.", {}, idle_ttl=IDLE)
    time.sleep(IDLE + 0.05)
    p = store.accept_candidate(cid, "민수")
    assert (p.kind, p.author, p.text) == ("ai", "민수", "호랑이가 살았다.")


def test_after_the_idle_timeout_anyone_on_the_story_may_accept_or_discard(store, story):
    store.claim_ai_turn(story.id, "민수")
    cid = store.add_candidate(story.id, "민수", "호랑이가 살았다.", {}, idle_ttl=60)
    with pytest.raises(NotAllowed, match="민수"):
        store.discard_ai_turn(story.id, "지영")
    store.touch_ai_turn(story.id, "민수", IDLE)  # their last activity; then they go idle
    time.sleep(IDLE + 0.05)
    assert store.accept_candidate(cid, "지영").author == "지영"


def test_the_holder_reclaiming_keeps_earlier_candidates_as_swipes(store, story):
    turn_id = store.claim_ai_turn(story.id, "민수")
    first = store.add_candidate(story.id, "민수", "첫째", {}, idle_ttl=60)
    assert store.claim_ai_turn(story.id, "민수") == turn_id
    state = store.ai_turn(story.id)
    assert state.status == "writing" and [c.text for c in state.candidates] == ["첫째"]
    second = store.add_candidate(story.id, "민수", "둘째", {}, idle_ttl=60)
    assert [c.id for c in store.ai_turn(story.id).candidates] == [first, second]
    store.accept_candidate(first, "민수")
    assert store.get_candidate(second).status == "not_chosen"
    with pytest.raises(NotAllowed, match="Another suggestion"):
        store.accept_candidate(second, "민수")


def test_the_draft_is_visible_to_everyone_and_moves_the_change_token_not_the_version(store, story):
    store.claim_ai_turn(story.id, "민수")
    version, token = store.version(story.id), store.change_token()
    store.set_ai_draft(story.id, "민수", "호랑이가", ttl=30)
    state = store.ai_turn(story.id)
    assert (state.status, state.draft) == ("writing", "호랑이가")
    assert store.version(story.id) == version and store.change_token() > token
    assert state.expires_at > time.time() + 20
    with pytest.raises(NotAllowed, match="do not hold"):
        store.set_ai_draft(story.id, "지영", "가짜")
    store.add_candidate(story.id, "민수", "호랑이가 살았다.", {})
    assert store.ai_turn(story.id).draft == ""


def test_touching_a_pending_turn_keeps_it_from_timing_out(store, story):
    store.claim_ai_turn(story.id, "민수")
    store.add_candidate(story.id, "민수", "고치는 중", {}, idle_ttl=IDLE)
    store.touch_ai_turn(story.id, "민수", 2.0)  # the writer starts editing
    for _ in range(3):
        time.sleep(IDLE)
        store.touch_ai_turn(story.id, "민수", 2.0)
    # Three idle timeouts later, the turn is still theirs.
    assert store.ai_turn_holder(story.id) == "민수"
    with pytest.raises(TurnBusy):
        store.claim_ai_turn(story.id, "지영")


def test_a_writer_whose_turn_was_taken_cannot_keep_writing_drafts(store, story):
    store.claim_ai_turn(story.id, "민수", ttl=IDLE)
    time.sleep(IDLE + 0.05)
    store.claim_ai_turn(story.id, "지영")
    with pytest.raises(TurnLost) as err:
        store.set_ai_draft(story.id, "민수", "늦었다")
    assert err.value.holder == "지영"
    with pytest.raises(TurnLost):
        store.touch_ai_turn(story.id, "민수", 10)


def test_discarding_frees_the_turn_and_nothing_discarded_can_be_accepted(store, story):
    store.claim_ai_turn(story.id, "민수")
    a = store.add_candidate(story.id, "민수", "하나", {})
    store.claim_ai_turn(story.id, "민수")
    b = store.add_candidate(story.id, "민수", "둘", {})
    assert store.discard_ai_turn(story.id, "민수") == 2
    assert store.ai_turn(story.id) is None
    for cid in (a, b):
        with pytest.raises(NotAllowed, match="discarded"):
            store.accept_candidate(cid, "민수")
    with pytest.raises(NotFound, match="no model turn"):
        store.discard_ai_turn(story.id, "민수")
    store.claim_ai_turn(story.id, "지영")  # the turn is free again


def test_a_candidate_older_than_the_limit_is_refused_at_accept(store, story, db):
    cid = store.add_candidate(story.id, "민수", "오래된 글", {})
    db.execute("UPDATE candidates SET created_unix = created_unix - :age WHERE id = :id",
               {"age": CANDIDATE_MAX_AGE_S + 60, "id": cid})
    with pytest.raises(NotFound, match="expired"):
        store.accept_candidate(cid, "민수")
    assert [p.text for p in store.timeline(story.id)] == ["옛날 옛적에"]


def test_keyed_turns_belong_to_the_key_not_the_name(store, story):
    alice, mallory = store.new_writer_key(), store.new_writer_key()
    store.claim_ai_turn(story.id, "민수", writer_key=alice)
    cid = store.add_candidate(story.id, "민수", "진짜", {}, writer_key=alice)
    assert store.ai_turn(story.id).holder_id is not None
    with pytest.raises(NameTaken):
        store.claim_ai_turn(story.id, "민수", writer_key=mallory)
    with pytest.raises(TurnBusy):
        store.claim_ai_turn(story.id, "말로리", writer_key=mallory)
    with pytest.raises(NotAllowed, match="Only 민수"):
        store.accept_candidate(cid, "말로리", writer_key=mallory)
    with pytest.raises(NotAllowed):
        store.discard_ai_turn(story.id, "민수")
    assert store.accept_candidate(cid, "민수", writer_key=alice).text == "진짜"


# --- the change feed ------------------------------------------------------------------------------


def test_every_kind_of_change_moves_the_token_and_names_its_story(store):
    token = store.change_token()
    a = store.create_story("A", "x")
    b = store.create_story("B", "x", turn_rule="free")

    def moved(*story_ids):
        nonlocal token
        now, changed = store.changed_stories(token)
        assert now > token and changed == sorted(story_ids)
        token = now

    moved(a.id, b.id)
    p = store.add_paragraph(a.id, "하나", "x")
    moved(a.id)
    store.claim_ai_turn(a.id, "x")
    moved(a.id)
    store.set_ai_draft(a.id, "x", "초안")
    moved(a.id)
    cid = store.add_candidate(a.id, "x", "둘", {})
    moved(a.id)
    store.touch_ai_turn(a.id, "x", 30)
    moved(a.id)
    store.accept_candidate(cid, "x")
    moved(a.id)
    store.undo_last(a.id, "x")
    moved(a.id)
    store.claim_ai_turn(a.id, "x")
    store.release_ai_turn(a.id, "x")
    moved(a.id)
    f = store.fork(a.id, p.id, "갈래", "y")
    moved(f.id)
    store.add_paragraph(b.id, "b", "x")
    moved(b.id)
    imported = store.import_json(store.export(b.id, "json"))
    moved(imported.id)
    # Reads change nothing.
    store.timeline(a.id), store.ai_turn(a.id), store.list_stories(), store.export(a.id, "md")
    assert store.changed_stories(token) == (token, [])


def test_change_token_and_changed_stories_are_single_indexed_reads(store, db):
    if db.backend == "sqlite":
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN SELECT id FROM stories WHERE change_seq > 5"))
        assert "stories_by_change" in plan
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN SELECT value FROM change_counter WHERE id = 1"))
        assert "PRIMARY KEY" in plan
    else:
        # A tiny table is cheaper to scan than to index-search: forbid that to see which index serves.
        plan = db.execute("SET LOCAL enable_seqscan = off; EXPLAIN SELECT id FROM stories WHERE change_seq > 5")
        assert "stories_by_change" in " ".join(r[0] for r in plan)
        plan = db.execute("SET LOCAL enable_seqscan = off; EXPLAIN SELECT value FROM change_counter WHERE id = 1")
        assert "change_counter_pkey" in " ".join(r[0] for r in plan)


def test_wait_for_change_returns_at_once_when_behind_and_after_the_timeout_when_idle(store):
    store.create_story("A", "x")
    token = store.change_token()
    assert store.wait_for_change(token - 1, timeout=5) == token
    started = time.monotonic()
    assert store.wait_for_change(token, timeout=0.3) == token
    assert time.monotonic() - started >= 0.3
    with pytest.raises(InvalidInput):
        store.wait_for_change(token, timeout=float("nan"))
    with pytest.raises(InvalidInput):
        store.changed_stories("3")


def _write_after(path, story_id, delay):
    time.sleep(delay)
    with StoryStore(path) as s:
        s.add_paragraph(story_id, "다른 프로세스에서", "b")


def test_a_change_written_by_another_process_wakes_a_waiter_and_names_the_story(store, db):
    a = store.create_story("A", "x", turn_rule="free")
    b = store.create_story("B", "x", turn_rule="free")
    token = store.change_token()
    writer = CTX.Process(target=_write_after, args=(str(db.target), b.id, 0.5))
    writer.start()
    started = time.monotonic()
    new = store.wait_for_change(token, timeout=60)
    waited = time.monotonic() - started
    writer.join(60)
    assert writer.exitcode == 0
    assert new > token and waited < 30
    assert store.changed_stories(token) == (store.change_token(), [b.id])
    assert store.timeline(a.id) == [] and store.timeline(b.id)[0].text == "다른 프로세스에서"


# --- leases of dead processes ------------------------------------------------------------------------


def _claim_and_hang(path, story_id, ready):
    with StoryStore(path) as s:
        s.claim_ai_turn(story_id, "민수", ttl=600)
        s.set_ai_draft(story_id, "민수", "쓰다가")
        ready.set()
        time.sleep(600)


def test_release_dead_turns_frees_the_turn_of_a_killed_process_only(store, db):
    dead_story = store.create_story("죽은", "x", turn_rule="free")
    live_story = store.create_story("산", "x", turn_rule="free")
    ready = CTX.Event()
    child = CTX.Process(target=_claim_and_hang, args=(str(db.target), dead_story.id, ready))
    child.start()
    assert ready.wait(60)
    store.claim_ai_turn(live_story.id, "지영")  # this process: alive
    state = store.ai_turn(dead_story.id)
    assert state.process == f"{socket.gethostname()}:{child.pid}"
    assert store.release_dead_turns(socket.gethostname()) == 0  # the child still runs
    os.kill(child.pid, signal.SIGKILL)
    child.join(60)
    assert store.release_dead_turns(socket.gethostname()) == 1
    assert store.ai_turn(dead_story.id) is None
    assert store.ai_turn_holder(live_story.id) == "지영"
    assert store.release_dead_turns("some-other-host") == 0
    store.claim_ai_turn(dead_story.id, "준호")


def test_a_dead_process_turn_with_candidates_stays_pending_for_its_holder(store, story):
    store.claim_ai_turn(story.id, "민수", process="this-host:999999999")
    cid = store.add_candidate(story.id, "민수", "남은 글", {})
    store.claim_ai_turn(story.id, "민수", process="this-host:999999999")  # a swipe, then the process died
    assert store.release_dead_turns("this-host") == 1
    state = store.ai_turn(story.id)
    assert state.status == "pending" and [c.id for c in state.candidates] == [cid]
    assert store.accept_candidate(cid, "민수").text == "남은 글"


@pytest.mark.parametrize("process", ["nohost", "a:b", ":1", 5, "a b:1"])
def test_a_process_name_must_be_host_and_pid(store, story, process):
    with pytest.raises(InvalidInput, match="host:pid"):
        store.claim_ai_turn(story.id, "민수", process=process)
    assert store.ai_turn(story.id) is None


# --- upgrading ------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_lease_held_when_the_database_is_upgraded_becomes_a_turn(relay_db):
    from store_legacy_schema import build_legacy_database

    raw = build_legacy_database(relay_db)
    raw.execute(
        "INSERT INTO stories (title, created_by, created_at, turn_rule, last_activity, ai_turn_holder,"
        " ai_turn_expires) VALUES ('옛', '민수', '2026-01-01T00:00:00+00:00', 'free', '2026-01-01T00:00:00+00:00',"
        " '민수', ?)", (time.time() + 600,)
    )
    raw.close()
    with StoryStore() as s:
        (old,) = s.list_stories()
        assert s.ai_turn_holder(old.id) == "민수"
        with pytest.raises(TurnBusy):
            s.claim_ai_turn(old.id, "지영")


def test_on_postgresql_every_commit_notifies_listeners_with_the_new_token(store, db):
    if db.backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import psycopg

    from relay.store.schema import PG_CHANNEL, libpq_url

    with psycopg.connect(libpq_url(db.target), autocommit=True) as listener:
        listener.execute(f"LISTEN {PG_CHANNEL}")
        story = store.create_story("알림", "x", turn_rule="free")
        store.add_paragraph(story.id, "하나", "x")
        got = [int(n.payload) for n in listener.notifies(timeout=30, stop_after=2)]
    assert got == [store.change_token() - 1, store.change_token()]
