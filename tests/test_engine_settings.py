"""Sampling settings: one declaration drives validation, UI specs, presets and what the store saves."""

from __future__ import annotations

import json
import math

import pytest

from relay.engine import PRESET_LABELS, PRESETS, SamplingSettings, SettingsError, SettingSpec

SPECS = SamplingSettings.specs()


def _bad_values(spec: SettingSpec) -> list:
    """Values a person or a buggy caller could send that must be refused for this field."""
    if spec.kind == "bool":
        return [1, 0, "true", None, 1.0]
    if spec.kind == "choice":
        return ["nowhere", "", spec.choices[0].upper(), 1, None, True]
    wrong_types = ["7", True, False, [1]]
    if spec.kind == "float":
        return wrong_types + [None, math.nan, math.inf, -math.inf, spec.minimum - 0.001, spec.maximum + 0.001]
    if spec.kind == "int":
        return wrong_types + [None, 2.5, float(spec.minimum), spec.minimum - 1, spec.maximum + 1]
    assert spec.kind == "seed"
    return wrong_types + [1.5, -1, spec.maximum + 1]


BAD_CASES = [pytest.param(spec.name, bad, id=f"{spec.name}={bad!r}") for spec in SPECS for bad in _bad_values(spec)]


@pytest.mark.parametrize("name, bad", BAD_CASES)
def test_every_setting_refuses_out_of_range_or_wrongly_typed_values_naming_the_field(name, bad):
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(**{name: bad})
    assert caught.value.field == name
    assert name in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_setting_accepts_its_default_and_both_ends_of_its_range(spec):
    edges = [spec.default]
    if spec.kind in ("float", "int", "seed"):
        edges += [spec.minimum, spec.maximum]
    elif spec.kind == "choice":
        edges += list(spec.choices)
    else:
        edges += [True, False]
    for value in edges:
        changes = {spec.name: value}
        if spec.name == "min_new_tokens":
            changes["max_new_tokens"] = max(value, 1)
        if spec.name == "max_new_tokens":
            changes["min_new_tokens"] = 0
        assert getattr(SamplingSettings(**changes), spec.name) == value


def test_specs_list_every_field_once_with_bilingual_labels_and_help():
    names = [spec.name for spec in SPECS]
    assert names == list(SamplingSettings().to_dict())
    for name in ("temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "no_repeat_ngram_size",
                 "max_new_tokens", "min_new_tokens", "seed", "stop_at", "trim_incomplete"):
        assert name in names
    for spec in SPECS:
        assert spec.kind in ("float", "int", "seed", "choice", "bool")
        assert spec.label_ko and spec.label_en and spec.help_ko and spec.help_en
        if spec.kind == "choice":
            assert set(spec.choice_labels) == set(spec.choices)
    assert next(s for s in SPECS if s.name == "stop_at").choices == ("paragraph", "sentence", "length")


def test_min_new_tokens_above_max_new_tokens_is_refused():
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(max_new_tokens=20, min_new_tokens=21)
    assert caught.value.field == "min_new_tokens"


def test_a_whole_number_for_a_float_setting_is_kept_as_a_float():
    settings = SamplingSettings(temperature=1, top_p=1)
    assert settings.temperature == 1.0 and isinstance(settings.temperature, float)
    assert isinstance(settings.top_p, float)


def test_settings_survive_a_json_round_trip_through_the_store():
    settings = SamplingSettings(temperature=0.65, top_k=0, seed=1234, stop_at="sentence", trim_incomplete=False)
    again = SamplingSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert again == settings


def test_from_dict_fills_missing_keys_with_defaults_and_refuses_unknown_ones():
    assert SamplingSettings.from_dict({"top_k": 7}) == SamplingSettings(top_k=7)
    with pytest.raises(SettingsError) as caught:
        SamplingSettings.from_dict({"top_k": 7, "temprature": 0.5})
    assert caught.value.field == "temprature"
    with pytest.raises(SettingsError):
        SamplingSettings.from_dict([("top_k", 7)])


def test_replace_validates_the_result():
    base = SamplingSettings()
    assert base.replace(top_k=3).top_k == 3
    assert base.top_k != 3  # frozen: the original is unchanged
    with pytest.raises(SettingsError):
        base.replace(top_k=-3)
    with pytest.raises(SettingsError):
        base.replace(not_a_setting=1)


def test_presets_are_valid_distinct_and_labelled_in_korean_and_english():
    assert {"careful", "balanced", "adventurous"} <= set(PRESETS)
    assert set(PRESET_LABELS) == set(PRESETS)
    for name, preset in PRESETS.items():
        assert SamplingSettings.from_dict(preset.to_dict()) == preset
        ko, en = PRESET_LABELS[name]
        assert ko and en
    assert len({p for p in PRESETS.values()}) == len(PRESETS)
    assert PRESETS["careful"].temperature < PRESETS["balanced"].temperature < PRESETS["adventurous"].temperature
