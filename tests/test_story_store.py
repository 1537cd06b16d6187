"""The story store's contract: stories, timelines, turn rules, undo, fork, leases, candidates, export."""

from __future__ import annotations

import json
import pickle
import sqlite3
import threading
import time

import pytest

from relay.story_store import (
    MAX_AUTHOR_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    InvalidInput,
    NotAllowed,
    NotFound,
    StaleHeadError,
    StoryError,
    StoryStore,
    TurnBusy,
    TurnError,
    TurnLost,
)

from store_legacy_schema import build_legacy_database, m001_initial

pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def free_story(store):
    return store.create_story("Free for all", "minsu", turn_rule="free")


@pytest.fixture
def relay_story(store):
    return store.create_story("릴레이", "민수")


def snapshot(store: StoryStore):
    """Everything a bad call could have changed."""
    def exported(story_id):
        data = json.loads(store.export(story_id, "json"))
        data.pop("exported_at")
        return data

    return [(s, exported(s.id)) for s in store.list_stories()]


# --- opening the store --------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_database_path_defaults_to_relay_db_env(relay_db, store):
    store.create_story("t", "a")
    assert store.path == relay_db
    assert relay_db.exists()


@pytest.mark.sqlite_only
def test_explicit_path_wins_over_env_and_parent_dirs_are_created(tmp_path, relay_db):
    path = tmp_path / "deep" / "er" / "stories.db"
    with StoryStore(path) as s:
        s.create_story("t", "a")
    assert path.exists()
    assert not relay_db.exists()


@pytest.mark.sqlite_only
def test_without_env_the_database_lives_in_relay_data(tmp_path, monkeypatch):
    monkeypatch.delenv("RELAY_DB")
    monkeypatch.chdir(tmp_path)
    with StoryStore() as s:
        s.create_story("t", "a")
    assert (tmp_path / "relay-data" / "relay.db").exists()


@pytest.mark.sqlite_only
def test_in_memory_database_is_refused_because_threads_would_not_share_it():
    with pytest.raises(InvalidInput):
        StoryStore(":memory:")


@pytest.mark.sqlite_only
def test_connections_use_wal_busy_timeout_and_foreign_keys(store, relay_db):
    conn = store._engine.raw_connection()  # a pooled connection as the store's transactions get it
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at) VALUES (999, 1, 'a', 'human', 't', 'x')"
        )


@pytest.mark.sqlite_only
def test_migrations_are_recorded_once_however_often_the_store_opens(relay_db):
    for _ in range(3):
        StoryStore().close()
    with sqlite3.connect(relay_db) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [("m008",)]


@pytest.mark.sqlite_only
def test_a_database_from_the_first_schema_is_upgraded_keeping_its_stories(relay_db):
    raw = build_legacy_database(relay_db, migrations=(m001_initial,))
    raw.execute(
        "INSERT INTO stories (title, created_by, created_at, turn_rule, last_activity)"
        " VALUES ('옛 이야기', '할머니', '2026-01-01T00:00:00+00:00', 'free', '2026-01-01T00:00:00+00:00')"
    )
    raw.close()
    with StoryStore() as s:
        (old,) = s.list_stories()
        assert old.title == "옛 이야기"
        s.claim_ai_turn(old.id, "할머니")
        assert s.ai_turn_holder(old.id) == "할머니"


@pytest.mark.sqlite_only
def test_a_database_from_a_newer_relay_is_refused(relay_db):
    StoryStore().close()
    with sqlite3.connect(relay_db) as raw:
        raw.execute("UPDATE alembic_version SET version_num = 'm999'")
    with pytest.raises(StoryError, match="newer"):
        StoryStore()


@pytest.mark.sqlite_only
def test_a_pre_alembic_database_from_a_newer_relay_is_refused(relay_db):
    raw = build_legacy_database(relay_db)
    raw.execute("INSERT INTO _migrations VALUES ('m999_future', '2030-01-01T00:00:00+00:00')")
    raw.close()
    with pytest.raises(StoryError, match="newer"):
        StoryStore()


# --- stories ------------------------------------------------------------------------------------


def test_created_story_is_empty_with_names_stripped(store):
    story = store.create_story("  첫 이야기 \t", " 민수 ", turn_rule="free", settings={"temperature": 0.9})
    assert (story.title, story.created_by, story.turn_rule) == ("첫 이야기", "민수", "free")
    assert story.settings == {"temperature": 0.9}
    assert story.paragraph_count == 0 and story.forked_from is None
    assert story.created_at.endswith("+00:00")
    assert store.get_story(story.id) == story
    assert store.timeline(story.id) == [] and store.head(story.id) is None


def test_default_turn_rule_is_alternate_and_settings_empty(store):
    story = store.create_story("t", "a")
    assert story.turn_rule == "alternate" and story.settings == {}


def test_stories_are_listed_most_recently_active_first_with_counts(store):
    a = store.create_story("A", "x", turn_rule="free")
    b = store.create_story("B", "x", turn_rule="free")
    c = store.create_story("C", "x", turn_rule="free")
    assert [s.id for s in store.list_stories()] == [c.id, b.id, a.id]
    store.add_paragraph(a.id, "one", "x")
    store.add_paragraph(a.id, "two", "x")
    listed = store.list_stories()
    assert [s.id for s in listed] == [a.id, c.id, b.id]
    assert listed[0].paragraph_count == 2
    assert listed[0].last_activity == store.timeline(a.id)[-1].created_at


def test_unknown_story_ids_are_not_found_everywhere(store):
    calls = [
        lambda: store.get_story(404),
        lambda: store.version(404),
        lambda: store.timeline(404),
        lambda: store.head(404),
        lambda: store.add_paragraph(404, "text", "a"),
        lambda: store.undo_last(404, "a"),
        lambda: store.fork(404, 1, "t", "a"),
        lambda: store.export(404, "txt"),
        lambda: store.claim_ai_turn(404, "a"),
        lambda: store.ai_turn_holder(404),
        lambda: store.add_candidate(404, "a", "text", {}),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="404"):
            call()


@pytest.mark.parametrize("bad_id", ["1", 1.0, True, None])
def test_story_ids_must_be_whole_numbers(store, free_story, bad_id):
    with pytest.raises(InvalidInput):
        store.add_paragraph(bad_id, "text", "a")
    with pytest.raises(InvalidInput):
        store.get_story(bad_id)


def test_to_dict_is_json_ready(store, free_story):
    p = store.add_paragraph(free_story.id, "글", "a", meta={"seed": 3})
    fork = store.fork(free_story.id, p.id, "f", "a")
    assert json.loads(json.dumps(fork.to_dict()))["forked_from"] == [free_story.id, p.id]
    assert json.loads(json.dumps(p.to_dict())) == {
        "id": p.id, "story_id": free_story.id, "seq": 1, "author": "a", "kind": "human", "text": "글",
        "created_at": p.created_at, "edited": False, "meta": {"seed": 3}, "deleted": False,
        "writer_id": None, "hidden": False,
    }


# --- appending ----------------------------------------------------------------------------------


def test_added_paragraph_is_returned_as_stored(store, free_story):
    p = store.add_paragraph(free_story.id, "첫 문단\n\t둘째 줄", " 민수 ", kind="ai", edited=True, meta={"model": "m"})
    assert store.timeline(free_story.id) == [p]
    assert (p.seq, p.author, p.kind, p.text, p.edited, p.meta, p.deleted) == (
        1, "민수", "ai", "첫 문단\n\t둘째 줄", True, {"model": "m"}, False
    )
    assert store.head(free_story.id) == p


def test_paragraphs_get_consecutive_seqs_in_timeline_order(store, free_story):
    added = [store.add_paragraph(free_story.id, f"p{i}", "a") for i in range(5)]
    assert store.timeline(free_story.id) == added
    assert [p.seq for p in added] == [1, 2, 3, 4, 5]
    assert store.get_story(free_story.id).paragraph_count == 5


def test_expected_head_zero_means_the_story_is_still_empty(store, free_story):
    p = store.add_paragraph(free_story.id, "first", "a", expected_head=0)
    with pytest.raises(StaleHeadError) as err:
        store.add_paragraph(free_story.id, "also first", "b", expected_head=0)
    assert err.value.head == p


def test_stale_expected_head_carries_the_current_head_and_writes_nothing(store, free_story):
    first = store.add_paragraph(free_story.id, "one", "a")
    second = store.add_paragraph(free_story.id, "two", "b", expected_head=first.id)
    before = store.version(free_story.id)
    with pytest.raises(StaleHeadError) as err:
        store.add_paragraph(free_story.id, "late", "c", expected_head=first.id)
    assert err.value.head == second
    assert "moved on" in str(err.value)
    assert store.timeline(free_story.id) == [first, second]
    assert store.version(free_story.id) == before


def test_version_changes_with_every_write_and_not_with_reads(store, relay_story):
    sid = relay_story.id
    seen = [store.version(sid)]

    def changed():
        v = store.version(sid)
        assert v not in seen
        seen.append(v)

    p = store.add_paragraph(sid, "사람", "a")
    changed()
    store.claim_ai_turn(sid, "a")
    changed()
    cid = store.add_candidate(sid, "a", "모델", {})
    assert store.version(sid) == seen[-1]  # the paragraphs did not change (the change token does)
    store.accept_candidate(cid, "a")
    changed()
    store.release_ai_turn(sid, "a")  # accepting already freed the turn: nothing to release
    assert store.version(sid) == seen[-1]
    store.claim_ai_turn(sid, "a")
    changed()
    store.release_ai_turn(sid, "a")
    changed()
    store.undo_last(sid, "a")
    changed()
    store.timeline(sid), store.head(sid), store.export(sid, "json"), store.list_stories(), store.get_story(sid)
    store.fork(sid, p.id, "f", "b")
    assert store.version(sid) == seen[-1]
    assert store.get_story(sid).version == seen[-1]


def test_writing_to_one_story_leaves_other_versions_alone(store):
    a = store.create_story("A", "x", turn_rule="free")
    b = store.create_story("B", "x", turn_rule="free")
    vb = store.version(b.id)
    store.add_paragraph(a.id, "text", "x")
    assert store.version(b.id) == vb


# --- turn rules ---------------------------------------------------------------------------------


def test_alternate_story_starts_with_a_person(store, relay_story):
    with pytest.raises(TurnError, match="person"):
        store.add_paragraph(relay_story.id, "모델이 먼저", "a", kind="ai")
    assert store.timeline(relay_story.id) == []


def test_alternate_story_refuses_two_human_paragraphs_in_a_row_saying_it_is_the_models_turn(store, relay_story):
    store.add_paragraph(relay_story.id, "하나", "a")
    with pytest.raises(TurnError, match="model's turn"):
        store.add_paragraph(relay_story.id, "둘", "b")
    assert len(store.timeline(relay_story.id)) == 1


def test_alternate_story_refuses_two_ai_paragraphs_in_a_row_saying_it_is_a_persons_turn(store, relay_story):
    store.add_paragraph(relay_story.id, "하나", "a")
    store.add_paragraph(relay_story.id, "둘", "a", kind="ai")
    with pytest.raises(TurnError, match="person's turn"):
        store.add_paragraph(relay_story.id, "셋", "a", kind="ai")
    kinds = [p.kind for p in store.timeline(relay_story.id)]
    assert kinds == ["human", "ai"]


def test_alternate_story_alternates(store, relay_story):
    for i in range(6):
        store.add_paragraph(relay_story.id, f"p{i}", "a", kind=("human", "ai")[i % 2])
    assert [p.kind for p in store.timeline(relay_story.id)] == ["human", "ai"] * 3


def test_free_story_takes_any_kind_in_any_order(store, free_story):
    for kind in ["ai", "ai", "human", "human", "ai"]:
        store.add_paragraph(free_story.id, "t", "a", kind=kind)
    assert [p.kind for p in store.timeline(free_story.id)] == ["ai", "ai", "human", "human", "ai"]


def test_stale_head_is_reported_before_the_turn_rule(store, relay_story):
    first = store.add_paragraph(relay_story.id, "하나", "a")
    with pytest.raises(StaleHeadError):
        store.add_paragraph(relay_story.id, "둘", "b", expected_head=0)
    with pytest.raises(TurnError):
        store.add_paragraph(relay_story.id, "둘", "b", expected_head=first.id)


# --- undo ---------------------------------------------------------------------------------------


def test_undo_hides_the_last_paragraph_but_keeps_it(store, free_story):
    keep = store.add_paragraph(free_story.id, "keep", "a")
    gone = store.add_paragraph(free_story.id, "gone", "a")
    undone = store.undo_last(free_story.id, "a")
    assert undone.id == gone.id and undone.deleted and undone.text == "gone"
    assert store.timeline(free_story.id) == [keep]
    assert store.head(free_story.id) == keep
    assert store.get_story(free_story.id).paragraph_count == 1
    exported = json.loads(store.export(free_story.id, "json"))["paragraphs"]
    assert [(p["text"], p["deleted"]) for p in exported] == [("keep", False), ("gone", True)]
    assert "gone" not in store.export(free_story.id, "txt")


def test_undo_of_someone_elses_paragraph_is_not_allowed(store, free_story):
    p = store.add_paragraph(free_story.id, "mine", "지영")
    with pytest.raises(NotAllowed, match="지영"):
        store.undo_last(free_story.id, "민수")
    assert store.timeline(free_story.id) == [p]


def test_an_ai_paragraph_is_undone_by_the_person_who_accepted_it(store, relay_story):
    store.add_paragraph(relay_story.id, "시작", "민수")
    cid = store.add_candidate(relay_story.id, "민수", "모델의 글", {})
    store.accept_candidate(cid, "지영")
    with pytest.raises(NotAllowed):
        store.undo_last(relay_story.id, "민수")
    assert store.undo_last(relay_story.id, "지영").kind == "ai"


def test_undo_on_an_empty_story_says_there_is_nothing_to_undo(store, free_story):
    with pytest.raises(NotFound, match="nothing to undo"):
        store.undo_last(free_story.id, "a")
    store.add_paragraph(free_story.id, "t", "a")
    store.undo_last(free_story.id, "a")
    with pytest.raises(NotFound, match="nothing to undo"):
        store.undo_last(free_story.id, "a")


def test_undo_repeatedly_walks_back_through_the_authors_paragraphs(store, free_story):
    ps = [store.add_paragraph(free_story.id, f"p{i}", "a") for i in range(3)]
    assert [store.undo_last(free_story.id, "a").id for _ in range(3)] == [ps[2].id, ps[1].id, ps[0].id]
    assert store.timeline(free_story.id) == []


def test_the_next_paragraph_after_an_undo_takes_the_freed_place(store, free_story):
    store.add_paragraph(free_story.id, "one", "a")
    store.add_paragraph(free_story.id, "two", "a")
    store.undo_last(free_story.id, "a")
    again = store.add_paragraph(free_story.id, "two again", "a")
    assert again.seq == 2
    assert [(p.seq, p.text) for p in store.timeline(free_story.id)] == [(1, "one"), (2, "two again")]


def test_undo_with_a_stale_expected_head_undoes_nothing(store, free_story):
    mine = store.add_paragraph(free_story.id, "mine", "a")
    newer = store.add_paragraph(free_story.id, "also mine, from another tab", "a")
    with pytest.raises(StaleHeadError) as err:
        store.undo_last(free_story.id, "a", expected_head=mine.id)
    assert err.value.head == newer
    assert len(store.timeline(free_story.id)) == 2


def test_turn_rule_follows_the_timeline_after_an_undo(store, relay_story):
    store.add_paragraph(relay_story.id, "사람", "a")
    store.add_paragraph(relay_story.id, "모델", "a", kind="ai")
    store.undo_last(relay_story.id, "a")
    with pytest.raises(TurnError):
        store.add_paragraph(relay_story.id, "사람 또", "a")
    store.add_paragraph(relay_story.id, "모델 다시", "a", kind="ai")


# --- fork ---------------------------------------------------------------------------------------


def test_fork_copies_the_timeline_up_to_and_including_the_paragraph(store):
    original = store.create_story("원작", "민수", turn_rule="alternate", settings={"top_p": 0.8})
    ps = [store.add_paragraph(original.id, f"p{i}", "민수", kind=("human", "ai")[i % 2], meta={"i": i}) for i in range(4)]
    fork = store.fork(original.id, ps[1].id, " 다른 결말 ", " 지영 ")
    assert (fork.title, fork.created_by) == ("다른 결말", "지영")
    assert fork.forked_from == (original.id, ps[1].id)
    assert (fork.turn_rule, fork.settings) == ("alternate", {"top_p": 0.8})
    copied = store.timeline(fork.id)
    assert [(p.seq, p.author, p.kind, p.text, p.meta, p.created_at) for p in copied] == [
        (p.seq, p.author, p.kind, p.text, p.meta, p.created_at) for p in ps[:2]
    ]
    assert all(p.story_id == fork.id for p in copied)
    assert fork.paragraph_count == 2
    # The fork continues on its own; the original is untouched.
    store.add_paragraph(fork.id, "새 갈래", "지영")
    assert store.timeline(original.id) == ps


def test_fork_leaves_out_undone_paragraphs_and_refuses_to_fork_at_one(store, free_story):
    a = store.add_paragraph(free_story.id, "a", "x")
    b = store.add_paragraph(free_story.id, "b", "x")
    store.undo_last(free_story.id, "x")
    c = store.add_paragraph(free_story.id, "c", "x")
    with pytest.raises(NotFound, match="undone"):
        store.fork(free_story.id, b.id, "t", "x")
    fork = store.fork(free_story.id, c.id, "t", "x")
    assert [p.text for p in store.timeline(fork.id)] == [a.text, c.text]


def test_fork_at_a_paragraph_of_another_story_is_not_found(store):
    one = store.create_story("one", "x", turn_rule="free")
    two = store.create_story("two", "x", turn_rule="free")
    p = store.add_paragraph(two.id, "elsewhere", "x")
    with pytest.raises(NotFound):
        store.fork(one.id, p.id, "t", "x")
    with pytest.raises(NotFound):
        store.fork(one.id, 123456, "t", "x")
    assert len(store.list_stories()) == 2


# --- the AI-turn lease --------------------------------------------------------------------------


def test_ai_turn_is_held_by_one_person_at_a_time_and_names_them(store, relay_story):
    assert store.ai_turn_holder(relay_story.id) is None
    store.claim_ai_turn(relay_story.id, "민수")
    assert store.ai_turn_holder(relay_story.id) == "민수"
    with pytest.raises(TurnBusy, match="민수") as err:
        store.claim_ai_turn(relay_story.id, "지영")
    assert err.value.holder == "민수"
    store.release_ai_turn(relay_story.id, "민수")
    assert store.ai_turn_holder(relay_story.id) is None
    store.claim_ai_turn(relay_story.id, "지영")
    assert store.ai_turn_holder(relay_story.id) == "지영"


def test_reclaiming_ones_own_ai_turn_refreshes_it(store, relay_story):
    # Wide margins: a commit on a loaded machine can take a good part of a second.
    store.claim_ai_turn(relay_story.id, "민수", ttl=2.0)
    time.sleep(1.2)
    store.claim_ai_turn(relay_story.id, "민수", ttl=2.0)
    time.sleep(1.2)  # 2.4 s after the first claim: only the refresh keeps it
    assert store.ai_turn_holder(relay_story.id) == "민수"


def test_releasing_someone_elses_ai_turn_does_nothing(store, relay_story):
    store.claim_ai_turn(relay_story.id, "민수")
    v = store.version(relay_story.id)
    store.release_ai_turn(relay_story.id, "지영")
    assert store.ai_turn_holder(relay_story.id) == "민수"
    assert store.version(relay_story.id) == v


def test_an_expired_ai_turn_is_free_for_anyone(store, relay_story):
    store.claim_ai_turn(relay_story.id, "민수", ttl=0.05)
    time.sleep(0.1)
    assert store.ai_turn_holder(relay_story.id) is None
    store.claim_ai_turn(relay_story.id, "지영")
    assert store.ai_turn_holder(relay_story.id) == "지영"


def test_ai_turns_of_different_stories_are_independent(store):
    a = store.create_story("A", "x")
    b = store.create_story("B", "x")
    store.claim_ai_turn(a.id, "민수")
    store.claim_ai_turn(b.id, "지영")
    assert (store.ai_turn_holder(a.id), store.ai_turn_holder(b.id)) == ("민수", "지영")


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "60", None])
def test_ai_turn_needs_a_positive_finite_ttl(store, relay_story, ttl):
    with pytest.raises(InvalidInput):
        store.claim_ai_turn(relay_story.id, "a", ttl=ttl)
    assert store.ai_turn_holder(relay_story.id) is None


# --- candidates ---------------------------------------------------------------------------------


def test_an_accepted_candidate_becomes_an_ai_paragraph_of_the_accepting_person(store, relay_story):
    first = store.add_paragraph(relay_story.id, "옛날 옛적에", "민수")
    meta = {"model": "kogpt2", "seed": 7, "tokens": 31}
    cid = store.add_candidate(relay_story.id, "민수", "호랑이가 살았다.", meta)
    candidate = store.get_candidate(cid)
    assert (candidate.story_id, candidate.author, candidate.text, candidate.meta, candidate.used) == (
        relay_story.id, "민수", "호랑이가 살았다.", meta, False
    )
    p = store.accept_candidate(cid, "민수", expected_head=first.id)
    assert (p.kind, p.author, p.text, p.edited, p.seq) == ("ai", "민수", "호랑이가 살았다.", False, 2)
    assert p.meta == {**meta, "candidate_id": cid}
    assert store.timeline(relay_story.id) == [first, p]
    assert store.get_candidate(cid).used


def test_an_edited_candidate_is_marked_edited_and_keeps_the_original(store, relay_story):
    store.add_paragraph(relay_story.id, "시작", "민수")
    cid = store.add_candidate(relay_story.id, "민수", "원래 문장", {"model": "m"})
    p = store.accept_candidate(cid, "민수", text="고친 문장")
    assert (p.text, p.edited) == ("고친 문장", True)
    assert p.meta == {"model": "m", "candidate_id": cid, "original_text": "원래 문장"}


def test_accepting_a_candidate_with_its_own_text_is_not_an_edit(store, relay_story):
    store.add_paragraph(relay_story.id, "시작", "민수")
    cid = store.add_candidate(relay_story.id, "민수", "같은 문장", {})
    p = store.accept_candidate(cid, "민수", text="같은 문장")
    assert not p.edited and "original_text" not in p.meta


def test_a_candidate_can_be_accepted_only_once(store, relay_story):
    store.add_paragraph(relay_story.id, "시작", "민수")
    cid = store.add_candidate(relay_story.id, "민수", "모델", {})
    store.accept_candidate(cid, "민수")
    store.add_paragraph(relay_story.id, "다음", "민수")
    with pytest.raises(NotAllowed, match="already"):
        store.accept_candidate(cid, "민수")
    assert len(store.timeline(relay_story.id)) == 3


@pytest.mark.parametrize("cid", ["no-such-candidate", "", None, 17])
def test_unknown_candidates_are_not_found(store, cid):
    with pytest.raises(NotFound):
        store.accept_candidate(cid, "a")
    with pytest.raises(NotFound):
        store.get_candidate(cid)


def test_candidate_ids_are_long_random_and_distinct(store, relay_story):
    ids = {store.add_candidate(relay_story.id, "a", "t", {}) for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) >= 20 for i in ids)


def test_a_candidate_lands_in_its_own_story(store):
    a = store.create_story("A", "x", turn_rule="free")
    b = store.create_story("B", "x", turn_rule="free")
    cid = store.add_candidate(a.id, "x", "for A", {})
    store.accept_candidate(cid, "x")
    assert [p.text for p in store.timeline(a.id)] == ["for A"]
    assert store.timeline(b.id) == []


def test_accepting_a_candidate_obeys_turn_rule_and_expected_head_and_leaves_it_unused(store, relay_story):
    cid = store.add_candidate(relay_story.id, "민수", "모델", {})
    with pytest.raises(TurnError):
        store.accept_candidate(cid, "민수")
    first = store.add_paragraph(relay_story.id, "사람", "민수")
    with pytest.raises(StaleHeadError) as err:
        store.accept_candidate(cid, "민수", expected_head=0)
    assert err.value.head == first
    assert not store.get_candidate(cid).used
    assert store.timeline(relay_story.id) == [first]
    store.accept_candidate(cid, "민수", expected_head=first.id)


@pytest.mark.parametrize("text", ["", "   ", "a\x00b", "x" * (MAX_TEXT_CHARS + 1)])
def test_edited_candidate_text_is_validated_like_any_paragraph(store, relay_story, text):
    store.add_paragraph(relay_story.id, "시작", "민수")
    cid = store.add_candidate(relay_story.id, "민수", "모델", {})
    with pytest.raises(InvalidInput):
        store.accept_candidate(cid, "민수", text=text)
    assert not store.get_candidate(cid).used and len(store.timeline(relay_story.id)) == 1


def test_candidates_older_than_a_day_are_pruned(store, relay_story, db):
    old = store.add_candidate(relay_story.id, "a", "old", {})
    db.execute("UPDATE candidates SET created_unix = created_unix - 2 * 86400 WHERE id = :id", {"id": old})
    fresh = store.add_candidate(relay_story.id, "a", "fresh", {})
    with pytest.raises(NotFound, match="expired"):
        store.get_candidate(old)
    assert store.get_candidate(fresh).text == "fresh"


def test_candidate_text_is_validated(store, relay_story):
    with pytest.raises(InvalidInput):
        store.add_candidate(relay_story.id, "a", "\x1b[31m", {})


# --- export and import --------------------------------------------------------------------------


def _sample_story(store):
    story = store.create_story("비 오는 날", "민수", settings={"temperature": 0.8})
    store.add_paragraph(story.id, "비가 그쳤다.", "민수")
    cid = store.add_candidate(story.id, "지영", "우산을 접었다", {"model": "skt/kogpt2-base-v2", "seed": 1})
    store.accept_candidate(cid, "지영", text="우산을 접었다.")
    store.add_paragraph(story.id, "*별*이 떴다.\n둘째 줄", "지영")
    store.add_paragraph(story.id, "지워질 문장", "지영", kind="ai")
    store.undo_last(story.id, "지영")
    return story


def test_txt_export_is_the_novel_with_blank_lines_between_paragraphs(store):
    story = _sample_story(store)
    assert store.export(story.id, "txt") == "비 오는 날\n\n비가 그쳤다.\n\n우산을 접었다.\n\n*별*이 떴다.\n둘째 줄\n"


def test_md_export_names_title_writers_and_marks_ai_paragraphs(store):
    story = _sample_story(store)
    md = store.export(story.id, "md")
    assert md.startswith("# 비 오는 날\n")
    assert "Writers: 민수, 지영" in md
    assert "skt/kogpt2" in md
    assert "**1. 민수**" in md and "**2. 지영 · AI, edited**" in md and "**3. 지영**" in md
    assert "지워질 문장" not in md
    # Paragraph text reads the same but cannot become markup: emphasis escaped, the line break kept.
    assert "\\*별\\*이 떴다.  \n둘째 줄" in md


def test_json_export_is_tagged_and_holds_everything(store):
    story = _sample_story(store)
    data = json.loads(store.export(story.id, "json"))
    assert (data["format"], data["version"]) == ("relay-story", 2)
    assert data["story"]["settings"] == {"temperature": 0.8}
    assert data["paragraphs"][1]["meta"]["original_text"] == "우산을 접었다"
    assert [p["deleted"] for p in data["paragraphs"]] == [False, False, False, True]


def test_import_restores_a_json_export_exactly_as_a_new_story(store):
    story = _sample_story(store)
    p = store.timeline(story.id)[1]
    fork = store.fork(story.id, p.id, "갈래", "지영")
    for source in (story, fork):
        exported = store.export(source.id, "json")
        for data in (exported, json.loads(exported), exported.encode()):
            copy = store.import_json(data)
            assert copy.id not in (story.id, fork.id)
            original = store.get_story(source.id)
            for name in ("title", "created_by", "created_at", "turn_rule", "settings", "forked_from", "paragraph_count"):
                assert getattr(copy, name) == getattr(original, name)
            again = json.loads(store.export(copy.id, "json"))
            first = json.loads(exported)
            strip = lambda ps: [{k: v for k, v in p.items() if k != "id"} for p in ps]  # noqa: E731
            assert strip(again["paragraphs"]) == strip(first["paragraphs"])


def test_an_imported_story_goes_on_where_the_original_stopped(store):
    story = _sample_story(store)
    copy = store.import_json(store.export(story.id, "json"))
    with pytest.raises(TurnError):
        store.add_paragraph(copy.id, "사람 또", "민수")
    p = store.add_paragraph(copy.id, "모델 차례", "민수", kind="ai", expected_head=store.head(copy.id).id)
    assert p.seq == 4


def test_unknown_export_format_is_refused(store, free_story):
    with pytest.raises(InvalidInput, match="pdf"):
        store.export(free_story.id, "pdf")


def _valid_export(store):
    return json.loads(store.export(_sample_story(store).id, "json"))


def _broken(change):
    def apply(data):
        change(data)
        return data

    return apply


MALFORMED = {
    "not json": lambda d: "{not json",
    "not an object": lambda d: "[1, 2]",
    "wrong format": _broken(lambda d: d.update(format="something-else")),
    "future version": _broken(lambda d: d.update(version=3)),
    "no story": _broken(lambda d: d.pop("story")),
    "no paragraphs": _broken(lambda d: d.pop("paragraphs")),
    "paragraphs not a list": _broken(lambda d: d.update(paragraphs={"a": 1})),
    "empty title": _broken(lambda d: d["story"].update(title="  ")),
    "bad turn rule": _broken(lambda d: d["story"].update(turn_rule="chaos")),
    "bad created_at": _broken(lambda d: d["story"].update(created_at="yesterday")),
    "naive created_at": _broken(lambda d: d["story"].update(created_at="2026-01-01T00:00:00")),
    "bad forked_from": _broken(lambda d: d["story"].update(forked_from=[1])),
    "settings not a dict": _broken(lambda d: d["story"].update(settings=[1])),
    "paragraph not an object": _broken(lambda d: d["paragraphs"].append("text")),
    "control char in text": _broken(lambda d: d["paragraphs"][-1].update(text="a\x00b")),
    "empty text": _broken(lambda d: d["paragraphs"][0].update(text="")),
    "missing author": _broken(lambda d: d["paragraphs"][0].pop("author")),
    "bad kind": _broken(lambda d: d["paragraphs"][0].update(kind="robot")),
    "edited not bool": _broken(lambda d: d["paragraphs"][0].update(edited="yes")),
    "seq gap": _broken(lambda d: d["paragraphs"][2].update(seq=9)),
    "seq repeated": _broken(lambda d: d["paragraphs"][1].update(seq=1)),
    "seq zero": _broken(lambda d: d["paragraphs"][0].update(seq=0)),
    "meta not a dict": _broken(lambda d: d["paragraphs"][0].update(meta="x")),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_imports_are_refused_and_write_nothing(store, name):
    data = MALFORMED[name](_valid_export(store))
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        store.import_json(data)
    assert snapshot(store) == before


# --- bad input ----------------------------------------------------------------------------------

BAD_TEXTS = {
    "empty": "",
    "spaces": "   ",
    "only newlines and tabs": "\n\t\n",
    "ideographic space only": "\u3000",
    "zero-width only": "\u200b\u200b",
    "too long": "가" * (MAX_TEXT_CHARS + 1),
    "NUL": "문장\x00끝",
    "bell": "a\x07b",
    "escape": "\x1b[31mred",
    "carriage return": "line\r\nline",
    "C1 control": "a\x85b",
    "DEL": "a\x7fb",
    "lone high surrogate": "a\ud800b",
    "lone low surrogate": "\udc00",
    "not a string": 42,
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_text_is_refused_and_changes_nothing(store, free_story, name):
    store.add_paragraph(free_story.id, "existing", "a")
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        store.add_paragraph(free_story.id, BAD_TEXTS[name], "a")
    assert snapshot(store) == before


def test_text_up_to_the_limit_with_newlines_and_tabs_is_accepted(store, free_story):
    text = ("가\t나\n" * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]
    assert store.add_paragraph(free_story.id, text, "a").text == text


BAD_NAMES = {
    "empty": "",
    "spaces": "  \t ",
    "too long": "이" * (MAX_AUTHOR_CHARS + 1),
    "newline": "민\n수",
    "tab": "민\t수",
    "NUL": "민\x00수",
    "line separator": "민\u2028수",
    "right-to-left override": "\u202e수민",
    "lone surrogate": "\ud800",
    "not a string": None,
}


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_author_names_are_refused_everywhere_and_change_nothing(store, relay_story, name):
    bad = BAD_NAMES[name]
    before = snapshot(store)
    calls = [
        lambda: store.create_story("t", bad),
        lambda: store.add_paragraph(relay_story.id, "t", bad),
        lambda: store.undo_last(relay_story.id, bad),
        lambda: store.fork(relay_story.id, 1, "t", bad),
        lambda: store.claim_ai_turn(relay_story.id, bad),
        lambda: store.add_candidate(relay_story.id, bad, "t", {}),
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    assert snapshot(store) == before


def test_names_at_the_limit_after_stripping_are_accepted(store):
    name = "  " + "이" * MAX_AUTHOR_CHARS + "  "
    title = "제" * MAX_TITLE_CHARS
    story = store.create_story(title, name)
    assert (story.title, story.created_by) == (title, "이" * MAX_AUTHOR_CHARS)


@pytest.mark.parametrize("title", ["", "   ", "제" * (MAX_TITLE_CHARS + 1), "두\n줄", "a\x00", 3])
def test_bad_titles_are_refused_and_change_nothing(store, relay_story, title):
    store.add_paragraph(relay_story.id, "t", "a")
    before = snapshot(store)
    with pytest.raises(InvalidInput):
        store.create_story(title, "a")
    with pytest.raises(InvalidInput):
        store.fork(relay_story.id, store.head(relay_story.id).id, title, "a")
    assert snapshot(store) == before


def test_unknown_kind_and_turn_rule_are_refused(store, free_story):
    with pytest.raises(InvalidInput, match="robot"):
        store.add_paragraph(free_story.id, "t", "a", kind="robot")
    with pytest.raises(InvalidInput, match="random"):
        store.create_story("t", "a", turn_rule="random")
    assert len(store.list_stories()) == 1 and store.timeline(free_story.id) == []


@pytest.mark.parametrize("settings", [[1, 2], "x", {"f": float("nan")}, {"o": object()}, {"s": "\ud800"}])
def test_settings_and_meta_must_be_plain_json_objects(store, free_story, settings):
    with pytest.raises(InvalidInput):
        store.create_story("t", "a", settings=settings)
    with pytest.raises(InvalidInput):
        store.add_paragraph(free_story.id, "t", "a", meta=settings)
    assert len(store.list_stories()) == 1 and store.timeline(free_story.id) == []


@pytest.mark.parametrize("head", [-1, "3", 1.5])
def test_expected_head_must_be_zero_or_a_paragraph_id(store, free_story, head):
    with pytest.raises(InvalidInput):
        store.add_paragraph(free_story.id, "t", "a", expected_head=head)


# --- errors and threads -------------------------------------------------------------------------


def test_every_error_is_a_story_error_and_survives_pickling(store, free_story):
    p = store.add_paragraph(free_story.id, "t", "a")
    for cls in (InvalidInput, NotFound, StaleHeadError, TurnError, NotAllowed, TurnBusy, TurnLost):
        assert issubclass(cls, StoryError) and cls.__doc__
    stale = pickle.loads(pickle.dumps(StaleHeadError("moved", p)))
    assert (str(stale), stale.head) == ("moved", p)
    busy = pickle.loads(pickle.dumps(TurnBusy("busy", "민수", "pending", 12.5)))
    assert (str(busy), busy.holder, busy.status, busy.expires_at) == ("busy", "민수", "pending", 12.5)
    lost = pickle.loads(pickle.dumps(TurnLost("lost", "지영")))
    assert (str(lost), lost.holder) == ("lost", "지영")


def test_threads_sharing_one_store_never_lose_a_paragraph(store, free_story):
    errors = []

    def write(name):
        try:
            for i in range(40):
                store.add_paragraph(free_story.id, f"{name}:{i}", name)
        except Exception as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    timeline = store.timeline(free_story.id)
    assert [p.seq for p in timeline] == list(range(1, 241))
    for n in range(6):
        assert [p.text for p in timeline if p.author == f"t{n}"] == [f"t{n}:{i}" for i in range(40)]


def test_md_export_keeps_markup_in_names_from_changing_the_page(store):
    story = store.create_story("*굵게* [링크]", "_민수_", turn_rule="free")
    store.add_paragraph(story.id, "본문", "_민수_")
    md = store.export(story.id, "md")
    assert md.startswith("# \\*굵게\\* \\[링크\\]\n")
    assert "**1. \\_민수\\_**" in md


def test_retrying_an_add_whose_paragraph_was_undone_says_so_instead_of_success(store, free_story):
    first = store.add_paragraph(free_story.id, "한 번 쓴 글", "민수", client_id="draft-7")
    store.undo_last(free_story.id, "민수")
    with pytest.raises(NotFound, match="undone"):
        store.add_paragraph(free_story.id, "한 번 쓴 글", "민수", client_id="draft-7")
    assert store.timeline(free_story.id) == [] and first.id
