"""History you can trust: edits keep earlier versions, redo undoes an undo, a turn's swipes are kept."""

from __future__ import annotations

import json

import pytest

from relay.story_store import (
    InvalidInput,
    NameTaken,
    NotAllowed,
    NotFound,
    StaleHeadError,
    StoryStore,
)

pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def keys(store):
    return {name: store.new_writer_key() for name in ("alice", "bob", "carol")}


# --- editing ---------------------------------------------------------------------------------------


def test_editing_keeps_every_earlier_version_with_who_and_when(store, keys):
    s = store.create_story("릴레이", "민수", writer_key=keys["alice"])
    p = store.add_paragraph(s.id, "첫 문장", "민수", writer_key=keys["alice"])
    assert [v.text for v in store.paragraph_versions(p.id)] == ["첫 문장"]
    version = store.version(s.id)
    edited = store.edit_paragraph(s.id, p.id, "고친 문장", "민수", writer_key=keys["alice"])
    assert (edited.text, edited.edited, edited.seq) == ("고친 문장", True, 1)
    store.edit_paragraph(s.id, p.id, "다시 고친 문장", "민수", writer_key=keys["alice"])
    versions = store.paragraph_versions(p.id)
    assert [(v.version, v.text, v.editor) for v in versions] == [
        (1, "첫 문장", "민수"), (2, "고친 문장", "민수"), (3, "다시 고친 문장", "민수")
    ]
    assert versions[0].edited_at == p.created_at and versions[1].edited_at <= versions[2].edited_at
    assert store.timeline(s.id)[0].text == "다시 고친 문장"
    assert store.version(s.id) > version


def test_only_the_writer_edits_unless_the_story_is_free(store, keys):
    s = store.create_story("릴레이", "민수", writer_key=keys["alice"])
    p = store.add_paragraph(s.id, "민수의 글", "민수", writer_key=keys["alice"])
    with pytest.raises(NotAllowed, match="Only 민수"):
        store.edit_paragraph(s.id, p.id, "남이 고침", "준호", writer_key=keys["bob"])
    with pytest.raises(NameTaken):
        store.edit_paragraph(s.id, p.id, "이름을 빌림", "민수", writer_key=keys["bob"])
    with pytest.raises(NotAllowed):
        store.edit_paragraph(s.id, p.id, "키 없이", "민수")
    assert store.timeline(s.id)[0].text == "민수의 글"
    free = store.create_story("자유", "민수", turn_rule="free", writer_key=keys["alice"])
    q = store.add_paragraph(free.id, "민수의 글", "민수", writer_key=keys["alice"])
    assert store.edit_paragraph(free.id, q.id, "누구나 고침", "준호", writer_key=keys["bob"]).text == "누구나 고침"
    assert store.paragraph_versions(q.id)[-1].editor == "준호"


def test_an_accepted_ai_paragraph_can_be_edited_by_who_accepted_it(store):
    s = store.create_story("릴레이", "민수")
    store.add_paragraph(s.id, "시작", "민수")
    cid = store.add_candidate(s.id, "민수", "모델의 글", {})
    p = store.accept_candidate(cid, "민수")
    assert store.edit_paragraph(s.id, p.id, "다듬은 글", "민수").kind == "ai"


def test_undone_missing_or_bad_edits_change_nothing(store):
    s = store.create_story("자유", "a", turn_rule="free")
    p = store.add_paragraph(s.id, "글", "a")
    store.undo_last(s.id, "a")
    with pytest.raises(NotFound, match="undone"):
        store.edit_paragraph(s.id, p.id, "새 글", "a")
    with pytest.raises(NotFound):
        store.edit_paragraph(s.id, 999, "새 글", "a")
    with pytest.raises(InvalidInput):
        store.edit_paragraph(s.id, p.id, "", "a")
    with pytest.raises(NotFound):
        store.paragraph_versions(999)


# --- redo ------------------------------------------------------------------------------------------


def test_redo_restores_what_this_writer_undid(store, keys):
    s = store.create_story("자유", "민수", turn_rule="free", writer_key=keys["alice"])
    a = store.add_paragraph(s.id, "하나", "민수", writer_key=keys["alice"])
    b = store.add_paragraph(s.id, "둘", "민수", writer_key=keys["alice"])
    store.undo_last(s.id, "민수", writer_key=keys["alice"])
    store.undo_last(s.id, "민수", writer_key=keys["alice"])
    assert store.timeline(s.id) == []
    assert store.redo_last(s.id, "민수", writer_key=keys["alice"]) == a
    assert store.redo_last(s.id, "민수", writer_key=keys["alice"]) == b
    assert store.timeline(s.id) == [a, b]
    with pytest.raises(NotFound, match="nothing of yours to redo"):
        store.redo_last(s.id, "민수", writer_key=keys["alice"])


def test_redo_is_refused_once_the_story_moved_on_or_for_someone_else(store, keys):
    s = store.create_story("자유", "민수", turn_rule="free", writer_key=keys["alice"])
    store.add_paragraph(s.id, "하나", "민수", writer_key=keys["alice"])
    store.undo_last(s.id, "민수", writer_key=keys["alice"])
    with pytest.raises(NotFound):
        store.redo_last(s.id, "준호", writer_key=keys["bob"])
    c = store.add_paragraph(s.id, "다른 사람의 글", "준호", writer_key=keys["bob"])
    with pytest.raises(StaleHeadError) as err:
        store.redo_last(s.id, "민수", writer_key=keys["alice"])
    assert err.value.head == c
    assert store.timeline(s.id) == [c]


# --- a turn's candidates -----------------------------------------------------------------------------


def test_every_candidate_of_a_turn_is_kept_and_the_accepted_one_lists_the_others(store):
    s = store.create_story("릴레이", "민수")
    store.add_paragraph(s.id, "시작", "민수")
    turn = store.claim_ai_turn(s.id, "민수")
    ids = []
    for text in ("첫째", "둘째", "셋째"):
        store.claim_ai_turn(s.id, "민수")  # regenerate: a new swipe in the same turn
        ids.append(store.add_candidate(s.id, "민수", text, {"seed": len(ids)}))
    assert [c.id for c in store.turn_candidates(turn)] == ids
    p = store.accept_candidate(ids[1], "민수")
    assert p.meta["other_versions"] == ["첫째", "셋째"]
    assert [(c.text, c.status) for c in store.turn_candidates(turn)] == [
        ("첫째", "not_chosen"), ("둘째", "accepted"), ("셋째", "not_chosen")
    ]
    assert store.turn_candidates("no-such-turn") == []


# --- export v2 ---------------------------------------------------------------------------------------


def test_json_export_carries_versions_and_hidden_flags_and_imports_back(store, keys):
    s = store.create_story("자유", "민수", turn_rule="free", writer_key=keys["alice"])
    p = store.add_paragraph(s.id, "처음", "민수", writer_key=keys["alice"])
    store.edit_paragraph(s.id, p.id, "나중", "민수", writer_key=keys["alice"])
    spam = store.add_paragraph(s.id, "광고", "스팸", writer_key=keys["bob"])
    store.hide_paragraph(s.id, spam.id, writer_key=keys["alice"])
    data = json.loads(store.export(s.id, "json", writer_key=keys["alice"]))  # the creator's export
    assert data["version"] == 2
    first, second = data["paragraphs"]
    assert [(v["version"], v["text"]) for v in first["versions"]] == [(1, "처음"), (2, "나중")]
    assert (second["hidden"], second["versions"]) == (True, [])
    copy = store.import_json(data)
    (restored,) = store.timeline(copy.id)
    assert [v.text for v in store.paragraph_versions(restored.id)] == ["처음", "나중"]
    again = json.loads(store.export(copy.id, "json"))  # the copy has no creator: nobody's export shows hidden text
    strip = lambda d: [{k: v for k, v in p.items() if k != "id"} for p in d["paragraphs"]]  # noqa: E731
    assert strip(again) == strip(data)[:1]


def test_hidden_paragraphs_are_left_out_of_every_export_but_the_creators(store, keys):
    s = store.create_story("숨김", "민수", turn_rule="free", writer_key=keys["alice"])
    store.add_paragraph(s.id, "보이는 글", "민수", writer_key=keys["alice"])
    phone = store.add_paragraph(s.id, "내 번호는 010-1234-5678", "준호", writer_key=keys["bob"])
    store.hide_paragraph(s.id, phone.id, writer_key=keys["alice"])
    for fmt in ("json", "md", "txt"):
        for reader in (None, keys["bob"], keys["carol"]):
            assert "010-1234-5678" not in store.export(s.id, fmt, writer_key=reader)
    assert "010-1234-5678" in store.export(s.id, "json", writer_key=keys["alice"])


def test_the_creator_can_purge_a_hidden_paragraph_or_an_earlier_version_for_good(store, keys, db):
    s = store.create_story("지우기", "민수", turn_rule="free", writer_key=keys["alice"])
    kept = store.add_paragraph(s.id, "첫 글", "민수", writer_key=keys["alice"])
    store.edit_paragraph(s.id, kept.id, "고친 글", "민수", writer_key=keys["alice"])
    phone = store.add_paragraph(s.id, "010-1234-5678", "준호", writer_key=keys["bob"])
    with pytest.raises(NotAllowed):
        store.purge(s.id, phone.id, writer_key=keys["bob"])
    with pytest.raises(InvalidInput, match="hide it first"):
        store.purge(s.id, phone.id, writer_key=keys["alice"])
    with pytest.raises(InvalidInput, match="earlier version"):
        store.purge(s.id, kept.id, 2, writer_key=keys["alice"])
    store.hide_paragraph(s.id, phone.id, writer_key=keys["alice"])
    store.purge(s.id, phone.id, writer_key=keys["alice"])
    store.purge(s.id, kept.id, 1, writer_key=keys["alice"])
    everything = store.export(s.id, "json", writer_key=keys["alice"])
    assert "010-1234-5678" not in everything and "첫 글" not in everything and "고친 글" in everything
    assert not db.execute("SELECT id FROM paragraphs WHERE text LIKE '%010-1234%'")
    assert not db.execute("SELECT paragraph_id FROM paragraph_versions WHERE text = '첫 글'")
    assert [p.text for p in store.timeline(s.id)] == ["고친 글"]
    assert store.import_json(everything).paragraph_count == 1  # a purged export still imports


def test_a_version_1_export_still_imports(store):
    v1 = {
        "format": "relay-story", "version": 1, "exported_at": "2026-11-20T00:00:00+00:00",
        "story": {"id": 3, "title": "옛 내보내기", "created_by": "민수", "created_at": "2026-11-20T00:00:00+00:00",
                  "turn_rule": "free", "settings": {}, "forked_from": None, "last_activity": "2026-11-20T00:00:00+00:00"},
        "paragraphs": [{"id": 9, "seq": 1, "author": "민수", "kind": "human", "text": "옛 글",
                        "created_at": "2026-11-20T00:00:00+00:00", "edited": False, "meta": {}, "deleted": False}],
    }
    copy = store.import_json(v1)
    assert [p.text for p in store.timeline(copy.id)] == ["옛 글"]


def test_malformed_versions_in_an_import_are_refused(store):
    s = store.create_story("자유", "민수", turn_rule="free")
    p = store.add_paragraph(s.id, "처음", "민수")
    store.edit_paragraph(s.id, p.id, "나중", "민수")
    data = json.loads(store.export(s.id, "json"))
    data["paragraphs"][0]["versions"][1]["version"] = 5
    before = len(store.list_stories())
    with pytest.raises(InvalidInput, match="versions"):
        store.import_json(data)
    assert len(store.list_stories()) == before


def test_the_markdown_export_speaks_the_readers_language(store, keys):
    s = store.create_story("언어", "민수", turn_rule="free", writer_key=keys["alice"])
    store.add_paragraph(s.id, "첫 글", "민수", writer_key=keys["alice"])
    korean, english = store.export(s.id, "md", lang="ko"), store.export(s.id, "md", lang="en")
    assert "*작가: 민수*" in korean and "Writers" not in korean
    assert "*Writers: 민수*" in english


def test_an_export_never_shows_the_server_folder_an_old_ai_paragraph_names_as_its_model(store, keys):
    s = store.create_story("옛 문단", "민수", turn_rule="free", writer_key=keys["alice"])
    store.add_paragraph(s.id, "옛날 AI 글", "민수", kind="ai", meta={"model": "/srv/relay/models/kogpt2", "backend": "x"},
                        writer_key=keys["alice"])
    store.add_paragraph(s.id, "허브 모델 글", "민수", kind="ai", meta={"model": "skt/kogpt2-base-v2"},
                        writer_key=keys["alice"])
    for fmt in ("json", "md"):
        text = store.export(s.id, fmt, writer_key=keys["alice"])
        assert "/srv/relay" not in text and "local model" in text and "skt/kogpt2-base-v2" in text
