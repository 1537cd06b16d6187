"""Settings you can read: the active preset, ranges that follow the model, nothing clamped in silence."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from relay.settings import PRESETS, SamplingSettings, SettingsError
from relay.ui.controls import (active_preset_line, preset_of, setting_limits, settings_from_values,
                               settings_to_values)
from relay.ui.lab import lab_paragraphs

NAMES = [s.name for s in SamplingSettings.specs()]


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_is_recognised_from_its_values_even_with_a_fixed_seed(name):
    assert preset_of(PRESETS[name]) == name
    assert preset_of(PRESETS[name].replace(seed=42)) == name


def test_changing_any_control_away_from_a_preset_makes_the_settings_custom():
    assert preset_of(PRESETS["careful"].replace(temperature=0.65)) is None
    assert active_preset_line("ko", None) == "**현재 설정:** 사용자 설정 (프리셋에서 바꿈)"
    assert active_preset_line("en", "careful") == "**Active settings:** Careful"
    assert active_preset_line("ko", "adventurous") == "**현재 설정:** 과감하게"


def test_a_typed_value_out_of_range_is_refused_with_its_range_not_clamped():
    values = settings_to_values(NAMES, SamplingSettings())
    values[NAMES.index("temperature")] = 5
    with pytest.raises(SettingsError) as caught:
        settings_from_values(NAMES, values)
    assert (caught.value.field, caught.value.minimum, caught.value.maximum, caught.value.value) == ("temperature", 0.0, 2.0, 5)


def test_the_length_limit_follows_the_models_window():
    small = SimpleNamespace(context_window=256)
    assert setting_limits(small)["max_new_tokens"] == (1, 224)
    assert setting_limits(SimpleNamespace(context_window=1024))["max_new_tokens"] == (1, 512)  # the setting's own max
    assert setting_limits(SimpleNamespace(context_window=1024, max_new_tokens_limit=300))["max_new_tokens"] == (1, 300)
    values = settings_to_values(NAMES, SamplingSettings(max_new_tokens=300))
    with pytest.raises(SettingsError):
        settings_from_values(NAMES, values, setting_limits(small))
    assert settings_from_values(NAMES, values, setting_limits(SimpleNamespace(context_window=1024))).max_new_tokens == 300


def test_slider_floats_become_whole_numbers_and_an_empty_seed_stays_random():
    values = settings_to_values(NAMES, SamplingSettings())
    values[NAMES.index("top_k")] = 40.0
    values[NAMES.index("seed")] = " "
    settings = settings_from_values(NAMES, values)
    assert settings.top_k == 40 and isinstance(settings.top_k, int) and settings.seed is None


def test_the_lab_keeps_a_multi_line_paragraph_and_splits_only_at_blank_lines():
    context = "첫 문단 첫 줄\n첫 문단 둘째 줄\n\n둘째 문단\n  \n\n셋째 문단"
    assert lab_paragraphs(context) == ["첫 문단 첫 줄\n첫 문단 둘째 줄", "둘째 문단", "셋째 문단"]
    assert lab_paragraphs("\n\n  \n") == []


def test_settings_the_engine_cannot_honour_are_hidden_and_named_in_a_note(tmp_path):
    import gradio as gr

    from relay.story_store import StoryStore
    from relay.ui.controls import build_settings_panel, setting_translations

    engine = SimpleNamespace(context_window=1024, unsupported_settings=frozenset({"typical_p", "no_repeat_ngram_size"}))
    with gr.Blocks() as demo:
        ui = SimpleNamespace(engine=engine, store=StoryStore(tmp_path / "r.db"), story_state=gr.State(None),
                             lang_state=gr.State("ko"), private={})
        controls = build_settings_panel(ui)
    hidden = {name for name, control in zip(NAMES, controls) if not control.visible}
    assert hidden == {"typical_p", "no_repeat_ngram_size"}
    notes = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "unsupported." in str(b.value)]
    assert len(notes) == 2
    assert setting_translations()["unsupported.typical_p"][0].startswith("*전형성 (typical-p)*: 이 모델을 돌리는")


def test_a_story_preset_saved_in_the_lab_is_offered_and_applied_in_the_story_panel(tmp_path):
    import gradio as gr

    from relay.story_store import StoryStore
    from relay.ui.controls import build_settings_panel

    store = StoryStore(tmp_path / "r.db")
    key = store.new_writer_key()
    story = store.create_story("밤의 정원", "민지", settings=SamplingSettings().to_dict(), writer_key=key)
    slow = PRESETS["careful"].replace(temperature=0.45, top_k=25, max_new_tokens=60)
    store.save_story_preset(story.id, "느린 밤", slow.to_dict(), "민지", writer_key=key)
    with gr.Blocks() as demo:
        ui = SimpleNamespace(engine=SimpleNamespace(context_window=1024), store=store, story_state=gr.State(None),
                             lang_state=gr.State("ko"), private={})
        build_settings_panel(ui)
    handlers = {block_fn.fn.__name__: block_fn.fn for block_fn in demo.fns.values() if block_fn.fn}

    choices = handlers["story_choices"](story.id, "ko").choices  # opening the story lists its preset
    assert ("이 이야기: 느린 밤", "story:느린 밤") in choices and ("신중하게", "careful") in choices
    assert all(not value.startswith("story:") for _, value in handlers["story_choices"](None, "ko").choices)

    values = handlers["apply_preset"]("story:느린 밤", story.id)  # read from the store by the page's story id
    assert settings_from_values(NAMES, values) == slow
    assert handlers["show_active"](story.id, "ko", *values) == ("**현재 설정:** 이 이야기: 느린 밤", "story:느린 밤")
    assert handlers["apply_preset"]("story:지운 것", story.id) == [gr.skip()] * len(NAMES)  # gone: nothing changes
    assert handlers["apply_preset"]("story:느린 밤", None) == [gr.skip()] * len(NAMES)  # no story open
    assert handlers["apply_preset"]("careful", story.id) == settings_to_values(NAMES, PRESETS["careful"])
