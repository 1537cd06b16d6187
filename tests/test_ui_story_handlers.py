"""The story tab's handlers called directly, without building the page: a real store, the tiny model."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from relay.limits import Limits
from relay.settings import SamplingSettings
from relay.turn_jobs import job_key
from relay.turns import AITurn, Stops
from relay.ui.composer import Composer
from relay.ui.controls import setting_limits, settings_to_values
from relay.ui.desk import Desk
from relay.ui.export import Export
from relay.ui.page_load import PageLoad
from relay.ui.story_list import StoryList
from relay.ui.story_services import StoryServices

NAMES = tuple(s.name for s in SamplingSettings.specs())
SHORT = settings_to_values(NAMES, SamplingSettings(min_new_tokens=4, max_new_tokens=12))  # controls: a short one


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from relay.engine import Engine

    return Engine.from_pretrained(model=str(tiny_model_dir))


@pytest.fixture
def services(engine, tmp_path) -> StoryServices:
    from relay.story_store import StoryStore

    store = StoryStore(tmp_path / "relay.db")
    return StoryServices(engine=engine, store=store, ai_turn=AITurn(engine, store, escape_names=True), stops=Stops(),
                         limits=Limits(), names=NAMES, defaults=SamplingSettings(), setting_range=setting_limits(engine))


def browser(tab="tab-1", story=None):
    """What a handler reads of a gr.Request: the tab's session, the address, the language, the query."""
    return SimpleNamespace(session_hash=tab, client=SimpleNamespace(host="127.0.0.1"),
                           headers={"accept-language": "ko-KR,ko"},
                           query_params={} if story is None else {"story": str(story)})


def new_story(services):
    """민지's new story, where a human and the model take turns; and 민지's writer key."""
    key = services.store.new_writer_key()
    outputs = StoryList(services).create(browser(), "비 오는 밤", "alternate", "민지", key, "ko", *SHORT)
    return outputs[3], key  # the story the page opens


def story_for_the_model(services):
    """A story with its first paragraph written: the model's turn, for 민지."""
    story_id, key = new_story(services)
    Composer(services).add(browser(), story_id, "첫 문단.", "민지", key, "ko", 0, "draft-1")
    return story_id, key


def suggest(services, story_id, key, view=None):
    """The desk once the model has written a suggestion (after the turn's earlier ones in `view`)."""
    *_, final = Desk(services).generate(browser(), story_id, "민지", key, view, "", "ko", *SHORT)
    return final


def test_a_new_story_opens_and_shows_in_the_list(services):
    story_id, _ = new_story(services)
    listing = StoryList(services).refresh_list("ko")
    assert "비 오는 밤" in listing
    assert services.store.get_story(story_id).title == "비 오는 밤"


def test_an_added_paragraph_is_stored_under_the_writers_key_and_the_composer_empties(services):
    story_id, key = new_story(services)
    left = Composer(services).add(browser(), story_id, "창밖으로 비가 내렸다.", "민지", key, "ko", 0, "draft-1")
    assert left == ""
    [paragraph] = services.store.timeline(story_id)
    assert paragraph.text == "창밖으로 비가 내렸다." and paragraph.author == "민지"
    assert paragraph.writer_id == services.store.writer_id(key)


def test_adding_out_of_turn_says_so_in_a_korean_warning_keeps_the_draft_and_stores_nothing(services):
    story_id, key = story_for_the_model(services)
    head = services.store.timeline(story_id)[-1].id
    with pytest.warns(UserWarning, match="지금은 AI 차례입니다"):  # a warning toast, not an error over the box
        left = Composer(services).add(browser(), story_id, "차례가 아닌 문단.", "민지", key, "ko", head, "draft-2")
    assert left == gr.skip()  # the draft stays in the composer
    assert [p.text for p in services.store.timeline(story_id)] == ["첫 문단."]


def test_swipes_flip_between_the_turns_suggestions_and_stop_at_either_end(services):
    story_id, key = story_for_the_model(services)
    first = suggest(services, story_id, key)
    second = suggest(services, story_id, key, view=first[1])  # "regenerate": a second swipe
    view, desk = second[1], Desk(services)
    assert len(view["ids"]) == 2 and second[2] == "후보 2/2"

    back = desk.flip(-1, view, "ko")
    assert back[0] == services.store.get_candidate(view["ids"][0]).text and back[2] == "후보 1/2"
    assert desk.flip(-1, back[1], "ko")[2] == "후보 1/2"  # the first stays first
    ahead = desk.flip(+1, back[1], "ko")
    assert ahead[0] == second[0] and ahead[2] == "후보 2/2"


def test_the_suggestion_shown_is_accepted_as_edited(services):
    story_id, key = story_for_the_model(services)
    shown = suggest(services, story_id, key)
    cleared = Desk(services).accept(story_id, shown[1], "민지가 고친 AI 문단.", "민지", key, "ko")
    assert cleared[0] == "" and cleared[1] is None
    assert [p.text for p in services.store.timeline(story_id)] == ["첫 문단.", "민지가 고친 AI 문단."]


def test_a_reload_on_the_storys_address_opens_it_with_the_waiting_suggestion(services):
    story_id, key = story_for_the_model(services)
    shown = suggest(services, story_id, key)
    outputs = PageLoad(services).on_load("민지", key, browser(tab="tab-2", story=story_id))
    lang, name, kept_key, _, _, _, opened = outputs[:7]
    assert (lang, name, kept_key, opened) == ("ko", "민지", key, story_id)
    assert outputs[-8] == shown[0]  # the desk's box holds the suggestion again


def test_an_export_is_a_file_with_the_story_text(services):
    story_id, key = new_story(services)
    Composer(services).add(browser(), story_id, "창밖으로 비가 내렸다.", "민지", key, "ko", 0, "draft-1")
    path = Path(Export(services).export(story_id, "txt", "ko"))
    assert path.suffix == ".txt"
    assert "창밖으로 비가 내렸다." in path.read_text(encoding="utf-8")


def test_the_models_turn_runs_to_its_end_when_the_tab_that_asked_goes_away(services):
    story_id, key = story_for_the_model(services)
    desk = Desk(services)
    stream = desk.generate(browser(), story_id, "민지", key, None, "", "ko", *SHORT)
    next(stream)  # the first text reaches the box, then the tab is closed
    stream.close()
    job = services.jobs.running(job_key(story_id, "민지", key))
    assert job is None or job.wait(30)
    turn = services.store.ai_turn(story_id)
    assert turn.status == "pending" and len(turn.candidates) == 1
    assert turn.candidates[0].meta.get("stopped_by") != "disconnect"


def test_another_tab_of_the_same_writer_stops_the_turn(services):
    story_id, key = story_for_the_model(services)
    desk = Desk(services)
    long = settings_to_values(NAMES, SamplingSettings(min_new_tokens=200, max_new_tokens=200, stop_at="length"))
    stream = desk.generate(browser("tab-1"), story_id, "민지", key, None, "", "ko", *long)
    next(stream)
    desk.stop_generation(story_id, "민지", key)  # pressed in tab-2: same writer, same story
    *_, final = stream
    assert services.store.get_candidate(final[1]["ids"][-1]).meta["stopped_by"] == "cancel"


def test_a_suggestion_discarded_while_written_leaves_the_box_empty_at_the_streams_end(services):
    story_id, key = story_for_the_model(services)
    desk = Desk(services)
    long = settings_to_values(NAMES, SamplingSettings(min_new_tokens=200, max_new_tokens=200, stop_at="length"))
    stream = desk.generate(browser("tab-1"), story_id, "민지", key, None, "", "ko", *long)
    assert next(stream)[0]  # half a suggestion is in the box
    assert desk.discard(story_id, "민지", key, "ko")[0] == ""
    *_, last = stream  # what the page shows last: no half-written text poured back over the cleared box
    assert last[0] == "" and last[1] is None
    assert services.store.ai_turn(story_id) is None


def test_a_co_writer_takes_over_a_suggestion_whose_writer_left_and_the_writers_tab_is_told(services, monkeypatch):
    monkeypatch.setenv("RELAY_TURN_GRACE_S", "0.1")
    story_id, key = story_for_the_model(services)
    shown = suggest(services, story_id, key)  # 민지 asked, then closed her tab (she has none open)
    time.sleep(0.2)
    junho = services.store.new_writer_key()
    taken = Desk(services).take_over(story_id, "준호", junho, "ko")
    assert taken[0] == shown[0] and taken[1]["ids"] == shown[1]["ids"]
    ended = Desk(services).turn_ended(story_id, "민지", key, shown[1], "ko")
    assert "준호님이 이 후보를 이어받았습니다" in ended[0] and ended[1] is None  # no live-looking 채택 left


def test_nobody_takes_over_a_suggestion_while_its_writer_is_here(services, monkeypatch):
    monkeypatch.setenv("RELAY_TURN_GRACE_S", "0.1")
    story_id, key = story_for_the_model(services)
    suggest(services, story_id, key)
    services.store.join_story(story_id, services.store.writer_id(key))  # 민지's tab is open
    time.sleep(0.2)
    refused = Desk(services).take_over(story_id, "준호", services.store.new_writer_key(), "ko")
    assert all(isinstance(o, type(gr.skip())) for o in refused)  # a warning; every box stays as it was
    assert services.store.ai_turn(story_id).holder == "민지"


def test_regenerating_with_a_fixed_seed_uses_the_next_seed_and_says_so(services, monkeypatch):
    import relay.ui.desk

    said = []
    monkeypatch.setattr(relay.ui.desk, "info", lambda lang, text: said.append(text))
    story_id, key = story_for_the_model(services)
    fixed = settings_to_values(NAMES, SamplingSettings(min_new_tokens=4, max_new_tokens=12, seed=41))
    desk = Desk(services)
    *_, first = desk.generate(browser(), story_id, "민지", key, None, "", "ko", *fixed)
    *_, second = desk.generate(browser(), story_id, "민지", key, first[1], "", "ko", *fixed)
    assert any("시드 42(41+1)" in text for text in said)
    seeds = [services.store.get_candidate(i).meta["seed"] for i in second[1]["ids"]]
    assert seeds == [41, 42] and "`42`" in second[5]  # the seed line shows the seed used
