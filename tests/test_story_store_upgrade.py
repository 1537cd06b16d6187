"""A SQLite database written by the Relay before Alembic opens and upgrades in place, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from relay.story_store import NotAllowed, StoryStore, TurnBusy
from store_legacy_schema import build_legacy_database

T0 = "2026-11-20T09:00:00.000000+00:00"


def _fill_like_the_old_relay(raw: sqlite3.Connection) -> dict:
    """Rows exactly as the old code wrote them: two stories (one a fork), an undone paragraph,
    an accepted and a waiting candidate, and a live AI-turn lease."""
    raw.execute(
        "INSERT INTO stories (id, title, created_by, created_at, turn_rule, settings, paragraph_count, last_activity,"
        " version, ai_turn_holder, ai_turn_expires) VALUES (1, '비 오는 날', '민수', ?, 'alternate', ?, 2, ?, 5, '지영', ?)",
        (T0, json.dumps({"temperature": 0.8}), T0, time.time() + 600),
    )
    rows = [
        (1, 1, 1, "민수", "human", "비가 그쳤다.", T0, 0, "{}", 0),
        (2, 1, 2, "지영", "ai", "우산을 접었다.", T0, 1,
         json.dumps({"model": "kogpt2", "candidate_id": "c-used", "original_text": "우산을 접었다"}), 0),
        (3, 1, 3, "지영", "human", "지워진 문장", T0, 0, "{}", 1),
    ]
    raw.executemany(
        "INSERT INTO paragraphs (id, story_id, seq, author, kind, text, created_at, edited, meta, deleted)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
    )
    raw.execute(
        "INSERT INTO stories (id, title, created_by, created_at, turn_rule, settings, forked_from_story,"
        " forked_from_paragraph, paragraph_count, last_activity, version) VALUES (2, '갈래', '준호', ?, 'free', '{}',"
        " 1, 1, 1, ?, 1)", (T0, T0),
    )
    raw.execute(
        "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, edited, meta, deleted)"
        " VALUES (2, 1, '민수', 'human', '비가 그쳤다.', ?, 0, '{}', 0)", (T0,),
    )
    now = time.time()
    raw.executemany(
        "INSERT INTO candidates (id, story_id, author, text, meta, created_at, created_unix, used)"
        " VALUES (?, 1, '지영', ?, '{}', ?, ?, ?)",
        [("c-used", "우산을 접었다", T0, now - 60, 1), ("c-waiting", "바람이 불었다.", T0, now - 30, 0)],
    )
    return {"paragraphs": rows}


@pytest.fixture
def legacy_db(relay_db):
    raw = build_legacy_database(relay_db)
    expected = _fill_like_the_old_relay(raw)
    raw.close()
    return relay_db, expected


def test_an_old_database_opens_with_every_story_paragraph_and_setting_kept(legacy_db):
    path, expected = legacy_db
    with StoryStore(path) as store:
        by_id = {s.id: s for s in store.list_stories()}
        assert set(by_id) == {1, 2}
        one, fork = by_id[1], by_id[2]
        assert (one.title, one.created_by, one.turn_rule, one.settings, one.paragraph_count, one.version) == (
            "비 오는 날", "민수", "alternate", {"temperature": 0.8}, 2, 5
        )
        assert (fork.forked_from, fork.paragraph_count) == ((1, 1), 1)
        exported = json.loads(store.export(1, "json"))["paragraphs"]
        assert [
            (p["id"], p["seq"], p["author"], p["kind"], p["text"], p["created_at"], p["edited"], p["meta"], p["deleted"])
            for p in exported
        ] == [
            (i, seq, a, k, t, c, bool(e), json.loads(m), bool(d))
            for i, _, seq, a, k, t, c, e, m, d in expected["paragraphs"]
        ]
        assert [p.text for p in store.timeline(2)] == ["비가 그쳤다."]


def test_an_old_lease_and_candidates_keep_working_after_the_upgrade(legacy_db):
    path, _ = legacy_db
    with StoryStore(path) as store:
        assert store.ai_turn_holder(1) == "지영"  # the live lease became a turn
        with pytest.raises(TurnBusy):
            store.claim_ai_turn(1, "민수")
        assert store.get_candidate("c-used").status == "accepted"
        with pytest.raises(NotAllowed, match="already"):
            store.accept_candidate("c-used", "지영")
        # The waiting candidate (made before turns had records) can still be accepted.
        store.release_ai_turn(1, "지영")
        store.add_paragraph(1, "해가 났다.", "민수", expected_head=2)
        p = store.accept_candidate("c-waiting", "지영")
        assert (p.seq, p.kind, p.text) == (4, "ai", "바람이 불었다.")


def test_the_upgrade_is_recorded_once_and_the_old_record_is_kept(legacy_db):
    path, _ = legacy_db
    for _ in range(2):
        StoryStore(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [("m008",)]
        assert sorted(r[0] for r in raw.execute("SELECT name FROM _migrations")) == [
            "m001_initial", "m002_ai_turns_and_candidates"
        ]
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        columns = {r[1] for r in raw.execute("PRAGMA table_info(stories)")}
        assert {"change_seq", "ai_turn_id"} <= columns and "ai_turn_holder" not in columns


def test_a_database_upgraded_by_the_sqlite3_code_of_part_one_is_taken_as_it_is(relay_db):
    # The first cut of the live turn ran m003 as a plain sqlite3 migration recorded in
    # `_migrations`: the same schema as Alembic's m003, so it is stamped there and upgraded on.
    from alembic import command

    from relay.store.schema import _alembic_config, create_engine

    engine = create_engine(relay_db)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "m003")
        conn.exec_driver_sql(
            "INSERT INTO stories (title, created_by, created_at, turn_rule, settings, paragraph_count,"
            " last_activity, version, change_seq) VALUES ('이미 새 것', '민수', '%s', 'free', '{}', 0, '%s', 0, 0)"
            % (T0, T0)
        )
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name in ("m001_initial", "m002_ai_turns_and_candidates", "m003_live_turns_and_change_feed"):
            conn.exec_driver_sql("INSERT INTO _migrations VALUES ('%s', '%s')" % (name, T0))
    engine.dispose()
    with StoryStore(relay_db) as store:
        (story,) = store.list_stories()
        assert story.title == "이미 새 것"
        assert store.add_paragraph(story.id, "이어서", "민수", writer_key=store.new_writer_key()).writer_id is not None


_OLD_RELAY_SCRIPT = r"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("old_story_store", sys.argv[1])
old = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = old
spec.loader.exec_module(old)
with old.StoryStore(sys.argv[2]) as store:
    story = store.create_story("옛 릴레이", "민수", settings={"temperature": 0.7})
    first = store.add_paragraph(story.id, "비가 그쳤다.", "민수")
    cid = store.add_candidate(story.id, "지영", "우산을 접었다", {"model": "kogpt2", "seed": 3})
    store.accept_candidate(cid, "지영", text="우산을 접었다.", expected_head=first.id)
    store.add_paragraph(story.id, "지워질 문장", "민수")
    store.undo_last(story.id, "민수")
    store.add_paragraph(story.id, "별이 떴다.", "민수")
    fork = store.fork(story.id, first.id, "갈래", "준호")
    waiting = store.add_candidate(story.id, "민수", "기다리는 글", {})
    store.claim_ai_turn(story.id, "민수", ttl=600)
    print(waiting)
    print(store.export(story.id, "json"))
"""


def test_a_database_written_by_the_old_code_itself_upgrades_with_nothing_lost(tmp_path, relay_db):
    # The pre-Alembic store module, run from git as it was at commit 9966435.
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", "9966435:relay/story_store.py"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        pytest.skip(f"needs the git history with commit 9966435: {shown.stderr.strip()}")
    module = tmp_path / "old_story_store.py"
    module.write_text(shown.stdout)
    done = subprocess.run(
        [sys.executable, "-c", _OLD_RELAY_SCRIPT, str(module), str(relay_db)], capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    waiting, exported = done.stdout.split("\n", 1)
    before = json.loads(exported)
    assert before["version"] == 1

    with StoryStore(relay_db) as store:
        after = json.loads(store.export(before["story"]["id"], "json"))
        assert after["story"] == {**before["story"], "last_activity": after["story"]["last_activity"]}
        assert after["story"]["last_activity"] == before["story"]["last_activity"]
        old_fields = ("id", "seq", "author", "kind", "text", "created_at", "edited", "meta", "deleted")
        assert [{k: p[k] for k in old_fields} for p in after["paragraphs"]] == before["paragraphs"]
        assert [s.title for s in store.list_stories()] == ["갈래", "옛 릴레이"]
        story_id = before["story"]["id"]
        assert store.ai_turn_holder(story_id) == "민수"
        with pytest.raises(TurnBusy):
            store.claim_ai_turn(story_id, "지영")
        assert store.ai_turn(story_id).candidates == []  # made before turns had records: joined none
        store.release_ai_turn(story_id, "민수")
        p = store.accept_candidate(waiting, "민수", expected_head=store.head(story_id).id)
        assert (p.seq, p.kind, p.text) == (4, "ai", "기다리는 글")
