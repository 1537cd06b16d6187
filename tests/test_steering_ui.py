"""The steering panel's handlers, the live part and the API, called without a browser: a real store, the tiny model.

What matters: the "what the model reads" view shows exactly the ids the model then generates from (the same
function builds both); saves are shared, versioned and refuse sizes and stale versions with a sentence naming
what; the live stream carries the shared part; every model entry point (continue, regenerate, alternatives,
the lab's "take the open story", the API) reads the assembled context.
"""

from __future__ import annotations

import json
from html import escape

import gradio as gr
import pytest

from relay.context import Steering
from relay.settings import SamplingSettings
from relay.turns import AITurn
from relay.ui.api import api_functions
from relay.ui.desk import Desk
from relay.ui.lab import assembled_context
from relay.ui.steering import EDITOR_SLOTS, SteeringPanel, render_shared
from test_ui_story_handlers import SHORT, browser, new_story, services  # noqa: F401  (fixtures)

@pytest.fixture(scope="module")
def engine(kogpt2_tiny_model_dir):
    """A tiny random model with the real KoGPT-2 tokenizer and window (1,024): the text reads as written."""
    from relay.engine import Engine

    return Engine.from_pretrained(model=str(kogpt2_tiny_model_dir))


def values(**changes) -> list:
    """The sampling controls' values: SHORT with some settings changed."""
    out = list(SHORT)
    names = [s.name for s in SamplingSettings.specs()]
    for name, value in changes.items():
        out[names.index(name)] = value
    return out


CARD = {"name": "민지", "keys": "민지, 민지야", "text": "민지는 우체국 집 딸이다.", "priority": 70}


def story_with_steering(services):
    """민지's story (turns alternate) with a memory, a note at depth 1, a card for 민지, three paragraphs: the
    model's turn."""
    story_id, key = new_story(services)
    store = services.store
    for n, text in enumerate(["비가 그친 저녁이었다.", "골목 끝에서 휘파람 소리가 났다.", "민지는 편지를 꺼냈다."]):
        store.add_paragraph(story_id, text, "민지", kind="human" if n % 2 == 0 else "ai", writer_key=key)
    store.set_memory(story_id, "배경은 부산.", "민지", writer_key=key)
    store.set_note(story_id, "짧게.", 1, "민지", writer_key=key)
    store.save_card(story_id, {**CARD, "keys": ["민지", "민지야"]}, "민지", writer_key=key)
    return story_id, key


def record_prompts(engine, monkeypatch) -> list:
    prompts = []
    generate = engine.backend.generate

    def recording(request):
        prompts.append(list(request.prompt))
        return generate(request)

    monkeypatch.setattr(engine.backend, "generate", recording)
    return prompts


def test_the_ids_the_view_shows_are_the_ids_the_model_generates_from(services, engine, monkeypatch):
    story_id, key = story_with_steering(services)
    panel = SteeringPanel(services)
    settings = SamplingSettings(min_new_tokens=4, max_new_tokens=12)
    shown, _ = panel.assembly(story_id, settings, "비가 다시 온다.")
    html = panel.reads(story_id, "ko", "비가 다시 온다.", *SHORT)
    assert f'data-tokens="{len(shown.ids)}"' in html
    for block in shown.blocks:  # every block's exact text, in reading order
        assert escape(engine.block_text(block.ids)) in html
    assert "[작가의 말: 짧게.]\n[작가의 말: 비가 다시 온다.]" in html
    prompts = record_prompts(engine, monkeypatch)
    *_, final = Desk(services).generate(browser(), story_id, "민지", key, None, "", "ko", *SHORT, "비가 다시 온다.")
    assert prompts == [shown.ids]
    [candidate] = services.store.turn_candidates(services.store.ai_turn(story_id).turn_id)
    context = candidate.meta["context"]
    assert (context["memory_version"], context["note_version"], context["turn_note"]) == (1, 1, True)
    assert [c["key"] for c in context["cards"]] == ["민지"]


def test_regenerate_and_alternatives_read_the_assembled_context_too(services, engine, monkeypatch):
    story_id, key = story_with_steering(services)
    shown, _ = SteeringPanel(services).assembly(story_id, SamplingSettings(min_new_tokens=4, max_new_tokens=12))
    prompts = record_prompts(engine, monkeypatch)
    desk = Desk(services)
    *_, first = desk.generate(browser(), story_id, "민지", key, None, "", "ko", *SHORT)
    *_, again = desk.generate(browser(), story_id, "민지", key, first[1], "", "ko", *SHORT)  # "다시 쓰기"
    services.store.discard_ai_turn(story_id, "민지", writer_key=key)
    list(desk.alternatives(browser(), story_id, "민지", key, None, 2, "", "ko", *values(temperature=1.0)))
    assert prompts == [shown.ids] * 3


def test_the_labs_open_story_context_is_what_the_model_reads(services, engine):
    story_id, _ = story_with_steering(services)
    text = assembled_context(engine, services.store, services.ai_turn, story_id)
    assert text.split("\n\n") == ["배경은 부산.", "민지는 우체국 집 딸이다.", "비가 그친 저녁이었다.",
                                  "골목 끝에서 휘파람 소리가 났다.", "[작가의 말: 짧게.]", "민지는 편지를 꺼냈다."]


def test_the_view_shows_a_card_only_once_its_key_appears_with_a_particle(services):
    story_id, key = new_story(services)
    store, panel = services.store, SteeringPanel(services)
    store.add_paragraph(story_id, "비가 그친 저녁이었다.", "민지", writer_key=key)
    store.save_card(story_id, {**CARD, "keys": ["준호"], "name": "준호"}, "민지", writer_key=key)
    before = panel.reads(story_id, "ko", "", *SHORT)
    assert "relay-read-card" not in before and "키가 아직 최근 4문단에 없는 카드: 준호" in before
    store.add_paragraph(story_id, "준호는 우산을 접었다.", "민지", kind="ai", writer_key=key)
    after = panel.reads(story_id, "en", "", *SHORT)
    assert 'class="relay-read relay-read-card"' in after and "key “준호” in “준호는” (paragraph 2)" in after


def test_saving_memory_is_shared_versioned_and_a_stale_save_is_refused(services, monkeypatch):
    story_id, key = new_story(services)
    other = services.store.new_writer_key()
    panel = SteeringPanel(services)
    warnings = []
    monkeypatch.setattr("relay.ui.steering.warn", lambda lang, text: warnings.append(text))
    seen = panel.load(story_id, "ko")[EDITOR_SLOTS]  # the memory box's: what it was filled with, which version
    seen, _ = panel.save_memory(browser(), story_id, "배경은 부산.", "민지", key, "ko", seen, "", *SHORT)
    assert seen == {"text": "배경은 부산.", "version": 1}
    theirs = panel.load(story_id, "ko")[EDITOR_SLOTS]
    panel.save_memory(browser("tab-2"), story_id, "배경은 서울.", "준호", other, "ko", theirs, "", *SHORT)
    assert panel.save_memory(browser(), story_id, "배경은 대구.", "민지", key, "ko", seen, "", *SHORT) == (
        gr.skip(), gr.skip())
    assert warnings[-1].startswith("그사이 다른 작가가 이것을 고쳤습니다")
    assert services.store.steering(story_id).memory == "배경은 서울."
    panel.save_memory(browser(), story_id, "가" * 501, "민지", key, "en", None, "", *SHORT)
    assert "at most 500 characters (it has 501)" in warnings[-1]


def test_an_unedited_box_follows_a_co_writers_save_and_an_edited_one_keeps_its_text(services):
    story_id, key = new_story(services)
    panel = SteeringPanel(services)
    loaded = panel.load(story_id, "ko")
    seen = loaded[EDITOR_SLOTS:]  # memory, note, card
    services.store.set_memory(story_id, "준호가 쓴 기억.", "준호", writer_key=services.store.new_writer_key())
    synced = panel.sync(story_id, "ko", *seen, "", "", 3, 0, *loaded[6:EDITOR_SLOTS])
    assert synced[0] == "준호가 쓴 기억." and synced[EDITOR_SLOTS] == {"text": "준호가 쓴 기억.", "version": 1}
    assert synced[1] == gr.skip()  # the note did not change
    kept = panel.sync(story_id, "ko", *seen, "내가 쓰던 기억", "", 3, 0, *loaded[6:EDITOR_SLOTS])
    assert kept[0] == gr.skip() and kept[EDITOR_SLOTS] == gr.skip()  # its save will say someone changed it


def test_memory_that_crowds_out_the_story_is_named_when_saved_and_when_the_model_is_asked(services, monkeypatch):
    story_id, key = new_story(services)
    for n in range(24):  # a story longer than the quarter of the window it always keeps
        services.store.add_paragraph(story_id, f"{n}번째 문단: 비가 그친 저녁, 골목 끝에서 누군가 휘파람을 불었다.", "민지",
                                     kind="ai" if n % 2 else "human", writer_key=key)
    services.store.add_paragraph(story_id, "마지막 문단.", "민지", writer_key=key)  # the model's turn now
    warnings = []
    monkeypatch.setattr("relay.ui.steering.warn", lambda lang, text: warnings.append(text))
    services.store.set_note(story_id, "짧은 문장으로, 긴장감 있게. " * 12, 3, "민지", writer_key=key)
    long_memory = "할머니는 부엌에서 된장찌개를 끓이고 계셨다. " * 19  # ~470 characters
    panel = SteeringPanel(services)
    seen = panel.load(story_id, "en")[EDITOR_SLOTS]
    longest = values(max_new_tokens=512)  # the model's room to write: 512 of its 1,024 tokens
    _, view = panel.save_memory(browser(), story_id, long_memory, "민지", key, "en", seen, "", *longest)
    assert warnings and warnings[-1].startswith("The story memory is too long")
    assert 'class="relay-reads-problem" data-block="memory"' in view
    with pytest.raises(gr.Error, match="story memory is too long"):
        list(Desk(services).generate(browser(), story_id, "민지", key, None, "", "en", *longest))
    assert services.store.ai_turn(story_id) is None  # the turn was given back


def test_the_live_stream_carries_the_shared_memory_note_and_cards(services):
    from relay.ui.demo import story_parts

    story_id, key = story_with_steering(services)
    parts = story_parts(services.store, story_id, "ko")
    assert "배경은 부산." in parts["steering"] and "민지는 우체국 집 딸이다." in parts["steering"]
    assert "<script>" not in render_shared(services.store.set_memory(story_id, "<script>x</script>", "민지",
                                                                      writer_key=key), "ko")


@pytest.fixture
def api(services, engine):
    return api_functions(engine, services.store, AITurn(engine, services.store, escape_names=False), services.limits)


def test_the_api_sets_and_reads_memory_note_and_cards(api, services):
    fns = api
    key = fns["writer_key"](request=None)
    story = fns["create_story"]("달빛 아래", "민지", "free", key)
    fns["add_paragraph"](story["id"], "민지는 창밖을 보았다.", "민지", 0, key)
    fns["set_memory"](story["id"], "배경은 부산.", "민지", key)
    fns["set_note"](story["id"], "짧게.", 0, "민지", key)
    card = fns["save_card"](story["id"], {"name": "민지", "keys": ["민지"], "text": "민지는 열일곱 살."}, "민지", key)
    steering = fns["steering"](story["id"])
    assert (steering["memory"], steering["note_depth"], steering["cards"][0]["id"]) == ("배경은 부산.", 0, card["id"])
    reads = fns["what_the_model_reads"](story["id"], {"max_new_tokens": 20})
    assert [b["kind"] for b in reads["blocks"]] == ["memory", "card", "story", "note"]
    assert reads["blocks"][1]["word"] == "민지는" and reads["tokens"] == len(reads["ids"])
    assert [v["editor"] for v in fns["steering_versions"](story["id"], "card", card["id"])] == ["민지"]
    fns["delete_card"](story["id"], card["id"], "민지", key)
    assert fns["steering"](story["id"])["cards"] == []
    with pytest.raises(gr.Error, match="/writer_key"):
        fns["set_memory"](story["id"], "열쇠 없이.", "민지", None)
    with pytest.raises(gr.Error, match="at most 500 characters|too long"):
        fns["set_memory"](story["id"], "가" * 501, "민지", key)
    with pytest.raises(gr.Error, match="whole number"):
        fns["set_note"](story["id"], "짧게.", "3", "민지", key)
    json.dumps(reads, ensure_ascii=False)  # plain JSON for gradio_client


def test_the_api_model_turn_reads_the_context_and_a_turn_note(api, services, engine, monkeypatch):
    fns = api
    key = fns["writer_key"](request=None)
    story = fns["create_story"]("달빛 아래", "민지", "free", key)
    fns["add_paragraph"](story["id"], "민지는 창밖을 보았다.", "민지", 0, key)
    fns["set_memory"](story["id"], "배경은 부산.", "민지", key)
    settings = {"max_new_tokens": 12, "min_new_tokens": 2, "seed": 3}
    shown = fns["what_the_model_reads"](story["id"], settings, "편지를 꺼낸다.")
    prompts = record_prompts(engine, monkeypatch)
    *_, final = fns["continue_story"](story["id"], "민지", settings, None, key, "편지를 꺼낸다.")
    assert prompts == [shown["ids"]] and final["meta"]["context"]["turn_note"] is True


def test_a_steering_change_moves_the_live_token_for_every_tab(services):
    story_id, key = new_story(services)
    before = services.store.change_token()
    SteeringPanel(services).save_card(browser(), story_id, 0, "민지", "민지", "민지는 열일곱.", 50, False, True, False,
                                      "민지", key, "ko", {}, "", *SHORT)
    assert services.store.changed_stories(before)[1] == [story_id]
    assert Steering.from_record(services.store.steering(story_id)).cards[0].keys == ("민지",)
