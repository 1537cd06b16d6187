"""The story's memory, author's note and story cards in the store, on SQLite and PostgreSQL: shared by every
writer of the story, every change a version with who and when, capped in size with a message naming what is
too long, lockable by the creator, closed to blocked writers, live (the change token moves), carried by forks
and by the JSON export and import exactly.
"""

from __future__ import annotations

import json

import pytest

from relay.story_store import (
    MAX_CARDS_PER_STORY,
    MAX_MEMORY_CHARS,
    InvalidInput,
    NotAllowed,
    NotFound,
    SteeringChanged,
    SteeringLimit,
    SteeringLocked,
    StoryStore,
)

pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL

MINJI = {"name": "민지", "keys": ["민지", "민지야"], "text": "민지는 열일곱 살, 우체국 집 딸이다.", "priority": 70}


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def keys(store):
    return {name: store.new_writer_key() for name in ("민지", "준호", "하린")}


@pytest.fixture
def story(store, keys):
    return store.create_story("달빛 아래", "민지", turn_rule="free", writer_key=keys["민지"])


def test_a_new_story_has_no_memory_note_or_cards_and_default_depths(store, story):
    s = store.steering(story.id)
    assert (s.memory, s.memory_version, s.note, s.note_depth, s.scan_depth, s.locked, s.cards) == ("", 0, "", 3, 4,
                                                                                                  False, [])


def test_memory_is_shared_and_every_change_is_a_version_with_who_and_when(store, story, keys):
    store.set_memory(story.id, "배경은 1970년대 부산.", "민지", writer_key=keys["민지"])
    after = store.set_memory(story.id, "배경은 1970년대 부산. 주인공은 민지.", "준호", writer_key=keys["준호"])
    assert (after.memory, after.memory_version, after.memory_by) == ("배경은 1970년대 부산. 주인공은 민지.", 2, "준호")
    with StoryStore() as other:  # another process sees the same
        assert other.steering(story.id).memory == after.memory
    versions = store.steering_versions(story.id, "memory")
    assert [(v.version, v.data["text"], v.editor) for v in versions] == [
        (1, "배경은 1970년대 부산.", "민지"), (2, "배경은 1970년대 부산. 주인공은 민지.", "준호")]
    assert versions[1].editor_id == store.writer_id(keys["준호"]) and versions[1].edited_at == after.memory_at


def test_the_note_keeps_its_depth_and_its_versions(store, story, keys):
    store.set_note(story.id, "짧은 문장으로.", 2, "민지", writer_key=keys["민지"])
    s = store.set_note(story.id, "", 0, "준호", writer_key=keys["준호"])
    assert (s.note, s.note_depth, s.note_version, s.note_by) == ("", 0, 2, "준호")
    assert [v.data for v in store.steering_versions(story.id, "note")] == [{"text": "짧은 문장으로.", "depth": 2},
                                                                         {"text": "", "depth": 0}]


def test_cards_are_created_changed_disabled_and_deleted_with_their_versions(store, story, keys):
    card = store.save_card(story.id, MINJI, "민지", writer_key=keys["민지"])
    assert (card.name, card.keys, card.priority, card.version, card.enabled) == ("민지", ["민지", "민지야"], 70, 1, True)
    changed = store.save_card(story.id, {**MINJI, "id": card.id, "enabled": False, "keys": " 민지 , 미니, 민지"},
                              "준호", writer_key=keys["준호"])
    assert (changed.keys, changed.enabled, changed.version, changed.updated_by) == (["민지", "미니"], False, 2, "준호")
    assert store.steering(story.id).cards == [changed]
    store.delete_card(story.id, card.id, "하린", writer_key=keys["하린"])
    assert store.steering(story.id).cards == []
    history = store.steering_versions(story.id, "card", card.id)
    assert [(v.version, v.editor, v.data["deleted"]) for v in history] == [(1, "민지", False), (2, "준호", False),
                                                                             (3, "하린", True)]
    with pytest.raises(NotFound):
        store.save_card(story.id, {**MINJI, "id": card.id}, "민지", writer_key=keys["민지"])


def test_cards_come_highest_priority_first(store, story, keys):
    for name, priority in (("낮음", 10), ("높음", 90), ("중간", 50)):
        store.save_card(story.id, {"name": name, "keys": [name], "text": "글.", "priority": priority}, "민지",
                        writer_key=keys["민지"])
    assert [c.name for c in store.steering(story.id).cards] == ["높음", "중간", "낮음"]


def test_sizes_are_capped_with_an_error_naming_what_is_too_long(store, story, keys):
    with pytest.raises(SteeringLimit) as memory:
        store.set_memory(story.id, "가" * (MAX_MEMORY_CHARS + 1), "민지", writer_key=keys["민지"])
    assert (memory.value.what, memory.value.limit, memory.value.got) == ("memory", 500, 501)
    with pytest.raises(SteeringLimit) as note:
        store.set_note(story.id, "가" * 501, 3, "민지", writer_key=keys["민지"])
    assert note.value.what == "note"
    with pytest.raises(SteeringLimit) as text:
        store.save_card(story.id, {**MINJI, "text": "가" * 501}, "민지", writer_key=keys["민지"])
    assert text.value.what == "card_text"
    with pytest.raises(SteeringLimit) as many_keys:
        store.save_card(story.id, {**MINJI, "keys": [f"키{i}" for i in range(11)]}, "민지", writer_key=keys["민지"])
    assert many_keys.value.what == "keys"
    with pytest.raises(InvalidInput):
        store.set_note(story.id, "짧게.", 51, "민지", writer_key=keys["민지"])
    assert store.steering(story.id).memory_version == 0 and store.steering(story.id).cards == []


def test_a_story_holds_at_most_a_hundred_cards(store, story, keys):
    for i in range(MAX_CARDS_PER_STORY):
        store.save_card(story.id, {"name": f"카드{i}", "keys": [f"키{i}"], "text": "글."}, "민지",
                        writer_key=keys["민지"])
    with pytest.raises(SteeringLimit) as full:
        store.save_card(story.id, {"name": "하나 더", "keys": [], "text": "글."}, "민지", writer_key=keys["민지"])
    assert full.value.what == "cards" and full.value.limit == 100


def test_a_save_over_a_newer_version_is_refused_and_writes_nothing(store, story, keys):
    store.set_memory(story.id, "처음.", "민지", writer_key=keys["민지"])
    store.set_memory(story.id, "준호가 고침.", "준호", writer_key=keys["준호"], expected_version=1)
    with pytest.raises(SteeringChanged) as stale:
        store.set_memory(story.id, "민지가 고침.", "민지", writer_key=keys["민지"], expected_version=1)
    assert stale.value.version == 2 and store.steering(story.id).memory == "준호가 고침."


def test_the_creator_locks_steering_and_blocked_writers_never_edit(store, story, keys):
    store.lock_steering(story.id, True, writer_key=keys["민지"])
    with pytest.raises(SteeringLocked):
        store.set_memory(story.id, "준호의 기억.", "준호", writer_key=keys["준호"])
    with pytest.raises(SteeringLocked):
        store.lock_steering(story.id, False, writer_key=keys["준호"])
    assert store.set_memory(story.id, "민지의 기억.", "민지", writer_key=keys["민지"]).memory == "민지의 기억."
    store.lock_steering(story.id, False, writer_key=keys["민지"])
    store.block_writer(story.id, store.writer_id(keys["하린"]), writer_key=keys["민지"])
    with pytest.raises(NotAllowed):
        store.save_card(story.id, MINJI, "하린", writer_key=keys["하린"])
    assert store.set_memory(story.id, "준호의 기억.", "준호", writer_key=keys["준호"]).memory_by == "준호"


def test_every_change_moves_the_change_token_for_live_tabs(store, story, keys):
    before = store.change_token()
    store.set_memory(story.id, "기억.", "민지", writer_key=keys["민지"])
    token, changed = store.changed_stories(before)
    assert token > before and changed == [story.id]


def test_a_fork_starts_with_the_memory_note_and_cards(store, story, keys):
    first = store.add_paragraph(story.id, "밤이 깊었다.", "민지", writer_key=keys["민지"])
    store.set_memory(story.id, "배경은 부산.", "민지", writer_key=keys["민지"])
    store.set_note(story.id, "짧게.", 1, "민지", writer_key=keys["민지"])
    store.save_card(story.id, MINJI, "민지", writer_key=keys["민지"])
    fork = store.fork(story.id, first.id, "갈래", "준호", writer_key=keys["준호"])
    s = store.steering(fork.id)
    assert (s.memory, s.note, s.note_depth, [c.name for c in s.cards]) == ("배경은 부산.", "짧게.", 1, ["민지"])
    assert store.set_memory(fork.id, "갈래의 기억.", "준호", writer_key=keys["준호"]).memory_version == 2
    assert store.steering(story.id).memory == "배경은 부산."  # the original is untouched


def _steered_story(store, keys, story):
    store.add_paragraph(story.id, "밤이 깊었다.", "민지", writer_key=keys["민지"])
    store.set_memory(story.id, "배경은 부산.", "민지", writer_key=keys["민지"])
    store.set_memory(story.id, "배경은 1970년대 부산.", "준호", writer_key=keys["준호"])
    store.set_note(story.id, "긴장감 있게.", 2, "민지", writer_key=keys["민지"])
    kept = store.save_card(story.id, MINJI, "민지", writer_key=keys["민지"])
    store.save_card(story.id, {**MINJI, "id": kept.id, "always_on": True}, "준호", writer_key=keys["준호"])
    gone = store.save_card(story.id, {"name": "달", "keys": ["달"], "text": "달은 붉다.", "inside_words": True}, "하린",
                           writer_key=keys["하린"])
    store.delete_card(story.id, gone.id, "하린", writer_key=keys["하린"])
    store.set_scan_depth(story.id, 6, "민지", writer_key=keys["민지"])


def _steering_keys(export: str) -> dict:
    data = json.loads(export)
    return {k: data[k] for k in ("memory", "note", "cards")}


def test_the_json_export_carries_memory_note_and_cards_and_imports_back_exactly(store, story, keys):
    _steered_story(store, keys, story)
    exported = store.export(story.id, "json")
    steering = _steering_keys(exported)
    assert [v["text"] for v in steering["memory"]["versions"]] == ["배경은 부산.", "배경은 1970년대 부산."]
    assert [(c["name"], c["deleted"], len(c["versions"])) for c in steering["cards"]["items"]] == [
        ("민지", False, 2), ("달", True, 2)]
    restored = store.import_json(exported)
    assert _steering_keys(store.export(restored.id, "json")) == steering
    s = store.steering(restored.id)
    assert (s.memory_version, s.note_depth, s.scan_depth, [c.always_on for c in s.cards]) == (2, 2, 6, [True])


def test_an_import_by_a_writer_keeps_the_editors_names_but_not_the_files_writer_ids(store, story, keys):
    _steered_story(store, keys, story)
    mine = store.import_json(store.export(story.id, "json"), "하린", writer_key=keys["하린"])
    versions = store.steering_versions(mine.id, "memory")
    assert [v.editor for v in versions] == ["민지", "준호"] and {v.editor_id for v in versions} == {None}


def test_a_damaged_steering_export_is_refused_naming_the_problem_and_writes_nothing(store, story, keys):
    _steered_story(store, keys, story)
    data = json.loads(store.export(story.id, "json"))
    data["cards"]["items"][0]["text"] = "가" * 501
    count = len(store.list_stories())
    with pytest.raises(InvalidInput, match="Card 1"):
        store.import_json(data)
    assert len(store.list_stories()) == count


def test_an_export_from_before_steering_imports_with_none(store, story, keys):
    data = json.loads(store.export(story.id, "json"))
    for key in ("memory", "note", "cards"):
        del data[key]
    restored = store.import_json(data)
    assert store.steering(restored.id).memory_version == 0


def test_txt_and_md_exports_say_which_cards_existed(store, story, keys):
    _steered_story(store, keys, story)
    txt = store.export(story.id, "txt")
    assert "Story memory: 배경은 1970년대 부산." in txt and "Story cards: 민지 (민지, 민지야)" in txt
    assert "달" not in txt.split("Story cards:")[1]  # the deleted card is not listed
    md = store.export(story.id, "md")
    assert "*Story cards: 민지 (민지, 민지야)*" in md and "Author's note (2 paragraphs before the end)" in md
    korean = store.export(story.id, "md", lang="ko")  # the reader's page language
    assert "*설정 카드: 민지 (민지, 민지야)*" in korean and "작가의 말 (끝에서 2문단 앞)" in korean
