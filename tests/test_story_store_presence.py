"""Who is here, and taking over a suggestion whose writer left (relay/store/presence.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from relay.story_store import NotFound, StoryStore, TurnBusy, TurnLost, writer_id_of

pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL
GRACE = 0.3  # seconds a suggestion waits for its writer to come back, short for the tests
IDLE = 60.0
WEB1, WEB2 = "web1:101", "web2:202"


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


@pytest.fixture
def writers(store):
    """민지 and 준호, each with a writer key, on a story where the model's turn comes next."""
    minji, junho = store.new_writer_key(), store.new_writer_key()
    story = store.create_story("등대", "민지", writer_key=minji)
    store.add_paragraph(story.id, "등대지기는 밤마다 불을 켰다.", "민지", writer_key=minji)
    return story.id, minji, junho


def suggestion(store, sid, key, name="민지") -> str:
    """A finished suggestion waiting in `name`'s model turn."""
    store.claim_ai_turn(sid, name, writer_key=key)
    return store.add_candidate(sid, name, "파도가 높았다.", {"seed": 7}, writer_key=key, idle_ttl=IDLE)


def take_over(store, sid, key, name="준호"):
    return store.take_over_ai_turn(sid, name, grace=GRACE, idle_ttl=IDLE, writer_key=key)


def test_a_writer_is_here_while_a_tab_is_open_on_any_process_and_gone_when_the_last_closes(store, writers):
    sid, minji, junho = writers
    a, b = writer_id_of(minji), writer_id_of(junho)
    store.join_story(sid, a, process=WEB1)
    store.join_story(sid, a, process=WEB2)  # a second tab, served by another process
    store.join_story(sid, b, process=WEB1)
    assert store.here(sid) == [(a, "민지"), (b, "")]  # 준호 has not written here yet: no name
    store.leave_story(sid, a, process=WEB1)
    assert [w for w, _ in store.here(sid)] == [a, b]
    store.leave_story(sid, a, process=WEB2)
    assert [w for w, _ in store.here(sid)] == [b]


def test_arriving_and_leaving_wake_the_live_views_but_a_second_tab_does_not(store, writers):
    sid, minji, _ = writers
    a = writer_id_of(minji)
    token = store.change_token()
    store.join_story(sid, a, process=WEB1)
    assert store.changed_stories(token)[1] == [sid]
    token = store.change_token()
    store.join_story(sid, a, process=WEB1)
    assert store.change_token() == token
    store.leave_story(sid, a, process=WEB1)
    assert store.change_token() == token
    store.leave_story(sid, a, process=WEB1)
    assert store.changed_stories(token)[1] == [sid]


def test_a_dead_processes_tabs_stop_counting_when_another_process_refreshes(store, writers, monkeypatch):
    from relay.store import presence

    sid, minji, _ = writers
    a = writer_id_of(minji)
    store.join_story(sid, a, process=WEB2)
    monkeypatch.setattr(presence, "PRESENCE_STALE_S", 0.2)
    time.sleep(0.3)
    assert store.here(sid) == []
    assert store.refresh_presence(process=WEB1) == [sid]  # its story is told the writer left


def test_while_its_writer_is_here_nobody_can_take_over_the_suggestion(store, writers):
    sid, minji, junho = writers
    store.join_story(sid, writer_id_of(minji), process=WEB1)
    suggestion(store, sid, minji)
    time.sleep(GRACE + 0.1)
    assert store.takeover_at(sid, GRACE) is None
    with pytest.raises(TurnBusy, match="민지"):
        take_over(store, sid, junho)


def test_after_its_writer_left_for_the_grace_period_a_co_writer_takes_over_and_both_are_credited(store, writers):
    sid, minji, junho = writers
    a = writer_id_of(minji)
    store.join_story(sid, a, process=WEB1)
    cid = suggestion(store, sid, minji)
    store.leave_story(sid, a, process=WEB1)  # 민지 closed the tab
    at = store.takeover_at(sid, GRACE)
    assert at is not None and at > time.time()
    with pytest.raises(TurnBusy):
        take_over(store, sid, junho)  # too soon: 민지 may be reloading
    time.sleep(GRACE + 0.1)
    take_over(store, sid, junho)

    turn = store.ai_turn(sid)
    assert (turn.holder, turn.status, [c.id for c in turn.candidates]) == ("준호", "pending", [cid])
    paragraph = store.accept_candidate(cid, "준호", text="파도가 아주 높았다.", writer_key=junho)
    assert paragraph.author == "준호" and paragraph.edited
    assert (paragraph.meta["asked_by"], paragraph.meta["chosen_by"]) == ("민지", "준호")
    assert store.ai_turn(sid) is None


def test_the_writer_who_left_is_told_their_suggestion_was_taken(store, writers):
    sid, minji, junho = writers
    cid = suggestion(store, sid, minji)  # never had a tab open (asked through the API)
    time.sleep(GRACE + 0.1)
    take_over(store, sid, junho)
    with pytest.raises(TurnLost, match="준호"):
        store.touch_ai_turn(sid, "민지", IDLE, writer_key=minji)
    with pytest.raises(Exception):
        store.accept_candidate(cid, "민지", writer_key=minji)


def test_the_taker_may_regenerate_or_discard_as_if_they_had_asked(store, writers):
    sid, minji, junho = writers
    suggestion(store, sid, minji)
    time.sleep(GRACE + 0.1)
    take_over(store, sid, junho)
    store.claim_ai_turn(sid, "준호", writer_key=junho)  # another suggestion, in the same turn
    store.add_candidate(sid, "준호", "바람이 불었다.", {}, writer_key=junho, idle_ttl=IDLE)
    assert len(store.ai_turn(sid).candidates) == 2
    assert store.discard_ai_turn(sid, "준호", writer_key=junho) == 2
    assert store.ai_turn(sid) is None


def test_nothing_to_take_over_while_the_model_writes_or_when_nothing_waits(store, writers):
    sid, minji, junho = writers
    with pytest.raises(NotFound):
        take_over(store, sid, junho)
    store.claim_ai_turn(sid, "민지", writer_key=minji)
    time.sleep(GRACE + 0.1)
    assert store.takeover_at(sid, GRACE) is None
    with pytest.raises(TurnBusy):
        take_over(store, sid, junho)
