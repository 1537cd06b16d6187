"""Backups: `python -m relay.backup` copies a live database consistently, and a restore gives back every story."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from relay.story_store import StoryStore
from servers import REPO, new_database, postgres_cluster, psql, skip_when_unavailable, store_on_postgres


def run_backup(*args: str) -> subprocess.CompletedProcess:
    """The command a cron job or a person runs."""
    return subprocess.run([sys.executable, "-m", "relay.backup", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def exports(store: StoryStore) -> dict[str, dict]:
    """Every story's JSON export keyed by title, without the one field that names the moment of export."""
    result = {}
    for story in store.list_stories():
        data = json.loads(store.export(story.id, "json"))
        data.pop("exported_at")
        result[story.title] = data
    return result


def fill(store: StoryStore) -> None:
    """Stories with everything an export carries: human and AI paragraphs, edits, undos, forks, settings."""
    night = store.create_story("달빛 아래", "민지", settings={"temperature": 0.8, "top_p": 0.95})
    first = store.add_paragraph(night.id, "밤이 깊었다. 골목 끝에서 누군가 휘파람을 불었다.", "민지", expected_head=0)
    cid = store.add_candidate(night.id, "준호", "휘파람 소리가 멎자 가로등이 하나씩 꺼졌다.", {"seed": 7, "model": "tiny"})
    ai = store.accept_candidate(cid, "준호", text="휘파람 소리가 멎자, 가로등이 하나씩 꺼졌다.", expected_head=first.id)
    store.add_paragraph(night.id, "이 문단은 곧 지워진다 😀 \t탭도.", "민지", expected_head=ai.id)
    store.undo_last(night.id, "민지")
    store.fork(night.id, first.id, "갈림길", "준호")
    free = store.create_story("자유 <b>형식</b> & \"따옴표\"", "Alex", turn_rule="free")
    for i in range(5):
        store.add_paragraph(free.id, f"{i}번째 문단\n두 줄.", "Alex")


# --- SQLite ---------------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from relay.story_store import StoryStore
    store = StoryStore(sys.argv[1]); story_id = int(sys.argv[2]); stop = Path(sys.argv[3])
    i = 0
    while not stop.exists():
        i += 1
        store.add_paragraph(story_id, f"{i}번째 문단: 쉬지 않고 쓰는 작가.", "작가")
""")


def test_a_backup_taken_while_another_process_keeps_writing_is_one_consistent_snapshot(tmp_path):
    live = tmp_path / "live.db"
    store = StoryStore(live)
    story = store.create_story("끝없는 이야기", "작가", turn_rule="free")
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(story.id), str(stop)], cwd=REPO,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while store.get_story(story.id).paragraph_count < 20:
            assert writer.poll() is None, writer.stderr.read()
            assert time.monotonic() < deadline, "the writer process did not get going"
            time.sleep(0.02)
        result = run_backup(tmp_path / "backup.db", "--db", live)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file
        with sqlite3.connect(tmp_path / "backup.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        copied = StoryStore(tmp_path / "backup.db").get_story(story.id).paragraph_count
        while store.get_story(story.id).paragraph_count < copied + 5:  # still writing after the backup
            assert writer.poll() is None, writer.stderr.read()
            time.sleep(0.02)
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert writer.returncode == 0, writer.stderr.read()

    backup = StoryStore(tmp_path / "backup.db")
    saved = backup.timeline(story.id)
    current = store.timeline(story.id)
    assert 20 <= len(saved) < len(current)
    # A snapshot: the story's counters agree with its rows, and the rows are exactly the live
    # timeline's first paragraphs, with no gap and no half-written paragraph.
    assert backup.get_story(story.id).paragraph_count == len(saved)
    assert [p.seq for p in saved] == list(range(1, len(saved) + 1))
    assert saved == current[:len(saved)]


def test_backup_then_restore_into_a_new_file_gives_back_every_story_exactly(tmp_path):
    original = StoryStore(tmp_path / "relay.db")
    fill(original)
    backup = tmp_path / "백업 #1?.db"  # names are names, not URI syntax
    assert run_backup(backup, "--db", tmp_path / "relay.db").returncode == 0
    result = run_backup("--restore", backup, "--db", tmp_path / "restored" / "relay.db")
    assert result.returncode == 0, result.stderr
    restored = StoryStore(tmp_path / "restored" / "relay.db")
    assert len(exports(original)) == 3
    assert exports(restored) == exports(original)


def test_the_database_defaults_to_RELAY_DB_like_the_app(tmp_path, relay_db):
    fill(StoryStore(relay_db))  # the autouse fixture set RELAY_DB for this process and its children
    assert run_backup(tmp_path / "backup.db").returncode == 0
    assert exports(StoryStore(tmp_path / "backup.db")) == exports(StoryStore(relay_db))


def test_a_restore_never_overwrites_a_database_with_stories_unless_forced(tmp_path):
    fill(StoryStore(tmp_path / "old.db"))
    assert run_backup(tmp_path / "backup.db", "--db", tmp_path / "old.db").returncode == 0
    current = StoryStore(tmp_path / "current.db")
    current.create_story("오늘 쓴 이야기", "민지")
    current.close()

    refused = run_backup("--restore", tmp_path / "backup.db", "--db", tmp_path / "current.db")
    assert refused.returncode == 2
    assert "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert [s.title for s in StoryStore(tmp_path / "current.db").list_stories()] == ["오늘 쓴 이야기"]

    forced = run_backup("--restore", tmp_path / "backup.db", "--db", tmp_path / "current.db", "--force")
    assert forced.returncode == 0, forced.stderr
    assert exports(StoryStore(tmp_path / "current.db")) == exports(StoryStore(tmp_path / "old.db"))


def test_mistakes_exit_2_with_one_line_that_says_what_is_wrong(tmp_path):
    StoryStore(tmp_path / "relay.db").create_story("하나", "민지")
    assert run_backup(tmp_path / "good.db", "--db", tmp_path / "relay.db").returncode == 0
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / "gone.db-wal").write_bytes(b"\0" * 64)  # left over from a deleted database
    cases = [
        (["--restore", tmp_path / "good.db", "--db", tmp_path / "gone.db"], "left over"),
        (["--db", tmp_path / "missing.db", tmp_path / "b1.db"], "missing.db"),
        (["--restore", tmp_path / "nothing-here.db", "--db", tmp_path / "x.db"], "nothing-here.db"),
        (["--restore", tmp_path / "notes.txt", "--db", tmp_path / "x.db"], "not a SQLite backup"),
        (["--db", tmp_path / "relay.db", tmp_path / "no-such-folder" / "b.db"], "does not exist"),
        (["--db", "postgresql://postgres:s3cret@127.0.0.1:9/relay", tmp_path / "b.dump"], "postgres:***@"),
    ]
    for args, words in cases:
        result = run_backup(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and "s3cret" not in result.stderr + result.stdout
    assert not list(tmp_path.glob("*.partial"))  # nothing half-written is left behind


def test_a_backup_never_replaces_an_existing_file_unless_forced(tmp_path):
    fill(StoryStore(tmp_path / "relay.db"))
    (tmp_path / "backup.db").write_text("yesterday's backup")
    result = run_backup(tmp_path / "backup.db", "--db", tmp_path / "relay.db")
    assert result.returncode == 2 and "--force" in result.stderr
    assert (tmp_path / "backup.db").read_text() == "yesterday's backup"
    assert run_backup(tmp_path / "backup.db", "--db", tmp_path / "relay.db", "--force").returncode == 0
    assert exports(StoryStore(tmp_path / "backup.db")) == exports(StoryStore(tmp_path / "relay.db"))


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_server():
    """One throwaway cluster for this module; each test makes its own database on it."""
    with skip_when_unavailable(), postgres_cluster() as url:
        yield url


def test_a_postgres_backup_and_restore_round_trip_with_the_pg_tools(pg_server, tmp_path):
    url = new_database(pg_server, "tools")
    psql(url, "CREATE TABLE t (id serial PRIMARY KEY, text text); INSERT INTO t (text) VALUES ('밤이 깊었다'), ('달')")
    dump = tmp_path / "relay.dump"
    # SQLAlchemy's spelling, and a password (passed to pg_dump through PGPASSWORD; trust auth ignores it).
    result = run_backup(dump, "--db", url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:p%40ss@"))
    assert result.returncode == 0, result.stderr
    psql(url, "INSERT INTO t (text) VALUES ('사라질 문단'); UPDATE t SET text = '해' WHERE id = 2")
    result = run_backup("--restore", dump, "--db", url)
    assert result.returncode == 0, result.stderr
    assert psql(url, "SELECT string_agg(text, ',' ORDER BY id) FROM t") == "밤이 깊었다,달"
    assert psql(url, "SELECT nextval('t_id_seq')") == "3"  # sequences come back too
    # A restore is all or nothing: an archive that is not one changes nothing.
    (tmp_path / "bad.dump").write_bytes(b"PGDMP" + b"\0" * 100)
    assert run_backup("--restore", tmp_path / "bad.dump", "--db", url).returncode == 1
    assert psql(url, "SELECT count(*) FROM t") == "2"


def test_a_postgres_backup_restores_every_story_exactly_into_a_new_or_the_same_database(pg_server, tmp_path):
    url = new_database(pg_server, "stories")
    original = store_on_postgres(url)
    fill(original)
    before = exports(original)
    assert len(before) == 3
    dump = tmp_path / "relay.dump"
    result = run_backup(dump, "--db", url)
    assert result.returncode == 0, result.stderr
    assert dump.read_bytes().startswith(b"PGDMP")

    # Into a fresh database on the same server.
    other = new_database(pg_server, "restored")
    result = run_backup("--restore", dump, "--db", other)
    assert result.returncode == 0, result.stderr
    assert exports(store_on_postgres(other)) == before

    # Over the live database, after more writing: --clean puts it back as it was.
    later = original.create_story("백업 뒤에 쓴 이야기", "민지")
    original.add_paragraph(later.id, "사라질 문단.", "민지")
    original.close()
    result = run_backup("--restore", dump, "--db", url)
    assert result.returncode == 0, result.stderr
    assert exports(store_on_postgres(url)) == before
