"""Writers are keys, not typed names; retries never duplicate; creators moderate; faults end in messages."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from relay.story_store import (
    InvalidInput,
    NameTaken,
    NotAllowed,
    StoreUnavailable,
    StoryError,
    StoryStore,
    UnknownWriterKey,
)

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def keys(store):
    return {name: store.new_writer_key() for name in ("alice", "bob", "carol")}


@pytest.fixture
def story(store, keys):
    return store.create_story("함께 쓰는 이야기", "민수", turn_rule="free", writer_key=keys["alice"])


# --- keys --------------------------------------------------------------------------------------


def test_a_writer_key_is_stored_only_as_its_hash_and_has_a_short_public_id(store, db, keys):
    key = keys["alice"]
    assert len(key) >= 32
    wid = store.writer_id(key)
    assert wid == hashlib.sha256(key.encode()).hexdigest()[:16]
    rows = db.execute("SELECT id, key_sha256 FROM writers WHERE id = :id", {"id": wid})
    assert [tuple(r) for r in rows] == [(wid, hashlib.sha256(key.encode()).hexdigest())]
    assert not db.execute("SELECT id FROM writers WHERE key_sha256 = :k OR id = :k", {"k": key})


@pytest.mark.parametrize("bad", ["short", "가" * 32, "a" * 32 + " ", None, 5, b"a" * 32])
def test_a_malformed_key_is_refused_with_a_message(store, story, bad):
    with pytest.raises(InvalidInput, match="writer key"):
        store.writer_id(bad)
    if bad is not None:
        with pytest.raises(InvalidInput, match="writer key"):
            store.add_paragraph(story.id, "글", "민수", writer_key=bad)
    assert store.timeline(story.id) == []


def test_a_well_formed_key_the_site_never_issued_is_refused_and_nothing_is_written(store, story):
    made_up = "k" * 40  # right shape, but nobody issued it: it would escape every per-key limit and block
    with pytest.raises(UnknownWriterKey, match="/writer_key"):
        store.add_paragraph(story.id, "처음 쓰는 글", "준호", writer_key=made_up)
    assert store.timeline(story.id) == [] and not store.writer_key_issued(made_up)
    account_key = "a" * 43  # a signed-in account's key is derived by the server, then registered
    store.register_writer_key(account_key)
    assert store.add_paragraph(story.id, "계정으로 쓴 글", "준호", writer_key=account_key).writer_id == store.writer_id(
        account_key)


@pytest.mark.parametrize("twin", ["민지\u200b", "민지\u2060", "민\u00ad지", "\ufeff민지"])
def test_a_name_with_invisible_characters_is_refused(store, story, keys, twin):
    with pytest.raises(InvalidInput, match="invisible"):
        store.add_paragraph(story.id, "글", twin, writer_key=keys["bob"])
    assert store.timeline(story.id) == []


@pytest.mark.parametrize("twin", ["\u1106\u1175\u11ab\u110c\u1175", "민 지", "ＭＩＮＪＩ", "minji"])
def test_a_look_alike_of_a_name_another_writer_holds_is_refused(store, story, keys, twin):
    holder = "Minji" if twin.isascii() or twin.startswith("Ｍ") else "민지"
    store.add_paragraph(story.id, "먼저 쓴 글", holder, writer_key=keys["alice"])
    with pytest.raises(NameTaken) as taken:
        store.add_paragraph(story.id, "흉내 낸 글", twin, writer_key=keys["bob"])
    assert taken.value.name == holder
    assert [p.author for p in store.timeline(story.id)] == [holder]
    assert store.add_paragraph(story.id, "내 이름으로", twin, writer_key=keys["alice"]).author  # its holder may


# --- names bound to keys ---------------------------------------------------------------------------


def test_a_name_belongs_to_the_first_key_that_writes_it_in_a_story(store, story, keys):
    first = store.add_paragraph(story.id, "나는 민수다.", "민수", writer_key=keys["alice"])
    assert first.writer_id == store.writer_id(keys["alice"])
    with pytest.raises(NameTaken, match="민수") as err:
        store.add_paragraph(story.id, "나도 민수다.", "민수", writer_key=keys["bob"])
    assert err.value.name == "민수" and isinstance(err.value, NotAllowed)
    assert store.timeline(story.id) == [first]
    store.add_paragraph(story.id, "나는 준호.", "준호", writer_key=keys["bob"])
    other = store.create_story("다른 이야기", "준호", turn_rule="free", writer_key=keys["bob"])
    store.add_paragraph(other.id, "여기선 내가 민수.", "민수", writer_key=keys["bob"])


def test_undo_checks_the_key_not_the_name(store, story, keys):
    p = store.add_paragraph(story.id, "진짜 민수의 글", "민수", writer_key=keys["alice"])
    with pytest.raises(NotAllowed):
        store.undo_last(story.id, "민수")  # the right name without the key
    with pytest.raises(NameTaken):
        store.undo_last(story.id, "민수", writer_key=keys["bob"])
    with pytest.raises(NotAllowed, match="Only 민수"):
        store.undo_last(story.id, "준호", writer_key=keys["bob"])
    assert store.timeline(story.id) == [p]
    assert store.undo_last(story.id, "민수", writer_key=keys["alice"]).id == p.id


def test_accept_discard_and_release_check_the_key(store, keys):
    s = store.create_story("릴레이", "민수", writer_key=keys["alice"])
    store.add_paragraph(s.id, "시작", "민수", writer_key=keys["alice"])
    store.claim_ai_turn(s.id, "민수", writer_key=keys["alice"])
    cid = store.add_candidate(s.id, "민수", "모델의 글", {}, writer_key=keys["alice"])
    assert store.get_candidate(cid).writer_id == store.writer_id(keys["alice"])
    store.release_ai_turn(s.id, "준호", writer_key=keys["bob"])  # not theirs: nothing happens
    assert store.ai_turn_holder(s.id) == "민수"
    with pytest.raises(NotAllowed):
        store.discard_ai_turn(s.id, "준호", writer_key=keys["bob"])
    with pytest.raises(NotAllowed):
        store.accept_candidate(cid, "준호", writer_key=keys["bob"])
    with pytest.raises(NotAllowed):
        store.accept_candidate(cid, "민수")  # the name alone is not enough
    p = store.accept_candidate(cid, "민수", writer_key=keys["alice"])
    assert p.writer_id == store.writer_id(keys["alice"])


def test_without_keys_the_name_only_rules_stay(store):
    s = store.create_story("스크립트", "a", turn_rule="free")
    store.add_paragraph(s.id, "글", "a")
    assert store.undo_last(s.id, "a").writer_id is None


# --- idempotent adds -------------------------------------------------------------------------------


def test_a_retried_add_with_the_same_client_id_stores_one_paragraph(store, story, keys):
    first = store.add_paragraph(story.id, "한 번만", "민수", writer_key=keys["alice"], client_id="draft-1")
    version = store.version(story.id)
    again = store.add_paragraph(story.id, "한 번만", "민수", writer_key=keys["alice"], client_id="draft-1")
    assert again == first
    assert store.version(story.id) == version and len(store.timeline(story.id)) == 1
    # A retry whose first answer was lost still finds it after the story moved on.
    store.add_paragraph(story.id, "다음", "준호", writer_key=keys["bob"])
    assert store.add_paragraph(story.id, "한 번만", "민수", expected_head=first.id, client_id="draft-1") == first


def test_a_client_id_reused_for_other_text_is_refused(store, story):
    store.add_paragraph(story.id, "원래 글", "민수", client_id="draft-1")
    with pytest.raises(InvalidInput, match="already used"):
        store.add_paragraph(story.id, "다른 글", "민수", client_id="draft-1")
    other = store.create_story("다른", "민수", turn_rule="free")
    assert store.add_paragraph(other.id, "다른 글", "민수", client_id="draft-1").text == "다른 글"


@pytest.mark.parametrize("bad", ["", "a b", "x" * 101, 5, "줄"])
def test_a_malformed_client_id_is_refused(store, story, bad):
    with pytest.raises(InvalidInput, match="client_id"):
        store.add_paragraph(story.id, "글", "민수", client_id=bad)


# --- moderation -----------------------------------------------------------------------------------


def test_the_creator_hides_a_paragraph_which_leaves_the_timeline_but_not_the_creators_export(store, story, keys):
    a = store.add_paragraph(story.id, "좋은 글", "민수", writer_key=keys["alice"])
    spam = store.add_paragraph(story.id, "광고 <a href=//x>", "스팸", writer_key=keys["bob"])
    c = store.add_paragraph(story.id, "이어지는 글", "민수", writer_key=keys["alice"])
    with pytest.raises(NotAllowed, match="creator"):
        store.hide_paragraph(story.id, a.id, writer_key=keys["bob"])
    version = store.version(story.id)
    assert store.hide_paragraph(story.id, spam.id, writer_key=keys["alice"]).hidden
    assert store.version(story.id) > version
    assert [p.id for p in store.timeline(story.id)] == [a.id, c.id]
    assert store.get_story(story.id).paragraph_count == 2
    assert "광고" not in store.export(story.id, "txt") and "광고" not in store.export(story.id, "md")
    assert "광고" not in store.export(story.id, "json")  # nor anyone's JSON but the creator's
    data = json.loads(store.export(story.id, "json", writer_key=keys["alice"]))
    assert [(p["text"], p["hidden"]) for p in data["paragraphs"]] == [
        ("좋은 글", False), ("광고 <a href=//x>", True), ("이어지는 글", False)
    ]
    copy = store.import_json(data)
    assert [p.text for p in store.timeline(copy.id)] == ["좋은 글", "이어지는 글"]
    # The story goes on after a hidden paragraph.
    assert store.add_paragraph(story.id, "계속", "민수", expected_head=c.id).seq == 4


def test_a_hidden_last_paragraph_cannot_be_undone_and_the_head_is_the_last_visible_one(store, story, keys):
    a = store.add_paragraph(story.id, "좋은 글", "민수", writer_key=keys["alice"])
    spam = store.add_paragraph(story.id, "광고", "스팸", writer_key=keys["bob"])
    store.hide_paragraph(story.id, spam.id, writer_key=keys["alice"])
    assert store.head(story.id) == a
    with pytest.raises(StoryError, match="hidden"):
        store.undo_last(story.id, "스팸", writer_key=keys["bob"])


def test_a_blocked_key_cannot_write_to_that_story_only(store, story, keys):
    bob = store.writer_id(keys["bob"])
    store.add_paragraph(story.id, "처음", "준호", writer_key=keys["bob"])
    with pytest.raises(NotAllowed, match="creator"):
        store.block_writer(story.id, bob, writer_key=keys["carol"])
    store.block_writer(story.id, bob, writer_key=keys["alice"])
    for attempt in (
        lambda: store.add_paragraph(story.id, "또", "준호", writer_key=keys["bob"]),
        lambda: store.claim_ai_turn(story.id, "준호", writer_key=keys["bob"]),
        lambda: store.add_candidate(story.id, "준호", "후보", {}, writer_key=keys["bob"]),
        lambda: store.undo_last(story.id, "준호", writer_key=keys["bob"]),
    ):
        with pytest.raises(NotAllowed, match="blocked"):
            attempt()
    assert [p.text for p in store.timeline(story.id)] == ["처음"]
    elsewhere = store.create_story("다른", "준호", turn_rule="free", writer_key=keys["bob"])
    store.add_paragraph(elsewhere.id, "여기는 괜찮다", "준호", writer_key=keys["bob"])
    with pytest.raises(InvalidInput, match="yourself"):
        store.block_writer(story.id, store.writer_id(keys["alice"]), writer_key=keys["alice"])
    with pytest.raises(InvalidInput, match="writer_id"):
        store.block_writer(story.id, "bob", writer_key=keys["alice"])


def test_a_story_records_its_creators_writer_id(store, story, keys):
    assert story.creator_id == store.writer_id(keys["alice"])
    p = store.add_paragraph(story.id, "글", "민수", writer_key=keys["alice"])
    fork = store.fork(story.id, p.id, "갈래", "준호", writer_key=keys["bob"])
    assert fork.creator_id == store.writer_id(keys["bob"])
    assert store.timeline(fork.id)[0].writer_id == p.writer_id


@pytest.mark.parametrize("bad", [True, 1.0, "1", None, 2**70])
def test_ids_are_strict_and_the_message_names_the_argument(store, story, keys, bad):
    p = store.add_paragraph(story.id, "글", "민수", writer_key=keys["alice"])
    with pytest.raises(InvalidInput, match="story_id"):
        store.add_paragraph(bad, "글", "민수")
    with pytest.raises(InvalidInput, match="paragraph_id"):
        store.hide_paragraph(story.id, bad, writer_key=keys["alice"])
    with pytest.raises(InvalidInput, match="at_paragraph_id"):
        store.fork(story.id, bad, "t", "a")
    assert store.timeline(story.id) == [p]


# --- faults --------------------------------------------------------------------------------------

_READ_ONLY_SCRIPT = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from relay.story_store import StoryStore, StoryError, StoreUnavailable
import alembic.command, alembic.config, alembic.script, alembic.runtime.migration  # imported before dropping root
folder = sys.argv[1]
db = os.path.join(folder, "relay.db")
running = StoryStore(db)
story = running.create_story("t", "a", turn_rule="free")
running.add_paragraph(story.id, "before", "a")
if os.geteuid() == 0:
    # Root ignores file permissions: become `nobody` (who owns the folder) for the rest. The
    # interpreter's own files may be out of nobody's reach, so everything is imported above.
    for name in os.listdir(folder):
        os.chown(os.path.join(folder, name), 65534, 65534)
    os.setgid(65534)
    os.setuid(65534)
# The operator makes the database and its folder read-only while the server runs.
for name in os.listdir(folder):
    os.chmod(os.path.join(folder, name), 0o444)
os.chmod(folder, 0o555)
try:
    restarted = StoryStore(db)  # what a new process (or a new connection) meets
    print("opened")
    restarted.add_paragraph(story.id, "after", "a")
    print("WROTE")
except StoreUnavailable as exc:
    print("StoreUnavailable:", exc)
print("alive", [p.text for p in running.timeline(story.id)])
"""


def test_a_read_only_database_gives_a_clear_message_and_the_process_lives(db):
    if db.backend != "sqlite":
        pytest.skip("file permissions are SQLite's concern; PostgreSQL's read-only mode is covered below")
    folder = Path(tempfile.mkdtemp(prefix="relay-readonly-"))
    try:
        if os.geteuid() == 0:
            os.chown(folder, 65534, 65534)
        done = subprocess.run(
            [sys.executable, "-c", _READ_ONLY_SCRIPT, str(folder), str(REPO)],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, f"the process died ({done.returncode}): {done.stderr[-2000:]}"
    assert "WROTE" not in done.stdout
    assert "StoreUnavailable: The story database" in done.stdout, done.stdout
    assert "alive ['before']" in done.stdout


def test_a_read_only_postgresql_session_gives_a_clear_message(store, db):
    if db.backend != "postgresql":
        pytest.skip("PostgreSQL only")
    s = store.create_story("t", "a", turn_rule="free")
    # A server switched to read-only (e.g. a hot standby): every transaction of the session is.
    with StoryStore(db.target + "%20-cdefault_transaction_read_only%3Don") as again:
        with pytest.raises(StoreUnavailable):
            again.add_paragraph(s.id, "글", "a")
        assert again.timeline(s.id) == []


_FULL_DISK_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[2])
from relay.story_store import StoryStore, StoreUnavailable
store = StoryStore(sys.argv[1] + "/relay.db")
story = store.create_story("t", "a", turn_rule="free")
written = 0
try:
    for i in range(100000):
        store.add_paragraph(story.id, f"{i} " + "가" * 3990, "a")
        written += 1
    print("NEVER FULL")
except StoreUnavailable as exc:
    print("StoreUnavailable:", exc)
print("alive", written, len(store.timeline(story.id)) == written)
"""


@pytest.mark.sqlite_only
def test_a_full_disk_gives_a_clear_message_keeps_what_was_written_and_the_process_lives(db):
    folder = Path(tempfile.mkdtemp(prefix="relay-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"needs to mount a small tmpfs (root): {mounted.stderr.decode().strip()}")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _FULL_DISK_SCRIPT, str(folder), str(REPO)], capture_output=True, text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, f"the process died ({done.returncode}): {done.stderr[-2000:]}"
    assert "StoreUnavailable: The disk holding the story database is full" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("True") and " 0 " not in done.stdout


@pytest.mark.sqlite_only
def test_a_database_path_that_cannot_be_used_says_what_to_do(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoryError, match="folder cannot be created.*writable folder"):
        StoryStore(blocker / "relay.db")
    with pytest.raises(StoryError, match="it is a folder"):
        StoryStore(tmp_path)


def test_an_unreachable_postgresql_server_says_what_to_do(db):
    if db.backend != "postgresql":
        pytest.skip("PostgreSQL only")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once the socket closes
    with pytest.raises(StoreUnavailable, match="PostgreSQL server is running"):
        StoryStore(f"postgresql://relay@127.0.0.1:{port}/relay")
