"""What a person reads when something goes wrong: one language, a writer's words, the allowed range."""

from __future__ import annotations

import re

import pytest

from relay import story_store
from relay.settings import SEED_MAX, SamplingSettings, SettingsError
from relay.ui.controls import range_error, settings_from_values
from relay.ui.messages import STORE_ERRORS, error_text, settings_error_text, with_topic_particle
from relay.ui_text import TEXT

# ASCII words a Korean sentence may contain: names of things people know by these letters.
ALLOWED_ASCII = {"AI", "JSON", "MB"}
# Programmer names of settings ("min_new_tokens"); "temperature" or "seed" are also plain English words.
FIELD_NAMES = {s.name for s in SamplingSettings.specs() if "_" in s.name}


def ascii_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z][A-Za-z_\-]*", text)) - ALLOWED_ASCII


def hangul(text: str) -> list[str]:
    return re.findall(r"[\uac00-\ud7a3\u3131-\u318e]", text)


def store_error(name: str) -> Exception:
    """An instance of the store's error class `name` as the store raises it (English programmer text),
    or of a stand-in subclass for a class the store does not have yet (they are looked up by name)."""
    cls = getattr(story_store, name, None)
    message = f"{name}: Only someone can do that with min_new_tokens=3 (programmer text)"
    if cls is None:
        base = story_store.NotAllowed if name == "NameTaken" else story_store.StoryError
        cls = type(name, (base,), {})
    if name in ("TurnBusy", "TurnLost"):
        error = cls(message, "Juno")
        error.holder = "Juno"
        return error
    return cls(message)


def every_settings_error() -> list[SettingsError]:
    """One SettingsError per setting, made the way the app meets them (typed values, bad values,
    a min length over the max), plus the engine's errors about other arguments."""
    errors = []
    bad = {"float": 99.0, "int": 9999, "seed": -1, "choice": "nowhere", "bool": "yes"}
    for spec in SamplingSettings.specs():
        with pytest.raises(SettingsError) as caught:
            SamplingSettings(**{spec.name: bad[spec.kind]})
        errors.append(caught.value)
        if spec.kind in ("int", "float"):
            errors.append(range_error(spec, 99999))
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(max_new_tokens=5, min_new_tokens=50)
    errors.append(caught.value)
    with pytest.raises(SettingsError) as caught:
        settings_from_values(["seed"], ["12.5"])  # what a person typed is echoed as typed
    errors.append(caught.value)
    errors += [
        SettingsError("max_new_tokens", "최대 길이가 모델 창(256토큰)에 비해 너무 깁니다 / max_new_tokens=300 leaves no room "
                                        "for the story in this model's 256-token window; use at most 240."),
        SettingsError("n", "후보 수는 1~4 사이여야 합니다 / n must be a whole number from 1 to 4; got 7"),
        SettingsError("temperature", "온도가 0이면 후보가 모두 같습니다 / with temperature 0 every candidate is the same; "
                                     "raise the temperature to get alternatives."),
        SettingsError("adapter", "알 수 없는 어댑터 'x' / unknown adapter 'x'; available: none"),
        SettingsError("settings", "settings must be SamplingSettings, got dict"),
        SettingsError("colour", "알 수 없는 설정: 'colour' / unknown setting 'colour'"),
    ]
    return errors


ALL_ERRORS = [store_error(name) for name in STORE_ERRORS] + every_settings_error() + [KeyError("x"), RuntimeError("boom")]


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'field', '')}")
def test_every_error_reads_as_korean_only_on_a_korean_page(error):
    text = error_text("ko", error)
    assert hangul(text), text
    assert not ascii_words(text.replace("Juno", "")), text
    assert not FIELD_NAMES & set(re.findall(r"\w+", text)), text


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda e: f"{type(e).__name__}-{getattr(e, 'field', '')}")
def test_every_error_reads_as_english_only_on_an_english_page(error):
    text = error_text("en", error)
    assert not hangul(text), text
    assert not FIELD_NAMES & set(re.findall(r"\w+", text)), text


@pytest.mark.parametrize("action", ["undo", "redo", "edit", "fork", "import", "accept"])
@pytest.mark.parametrize("name", STORE_ERRORS)
def test_action_specific_wording_is_in_one_language_too(action, name):
    for lang in ("ko", "en"):
        text = error_text(lang, store_error(name), action=action)
        assert bool(hangul(text)) == (lang == "ko"), text
        if lang == "ko":
            assert not ascii_words(text.replace("Juno", "")), text


def test_the_catalogue_has_a_sentence_for_every_store_error_class_in_both_languages():
    for name in STORE_ERRORS:
        ko, en = TEXT[f"err.{name}"]
        assert hangul(ko) and not hangul(en)


def test_an_undo_refusal_says_what_the_person_can_do_without_the_stores_english():
    text = error_text("ko", story_store.NotAllowed("Only 준호 can undo the last paragraph: they wrote it."), action="undo")
    assert text == "마지막 문단을 내가 쓰거나 채택했을 때만 되돌릴 수 있습니다."


def test_a_range_message_names_the_setting_by_its_label_and_its_allowed_range():
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(temperature=5.0)
    assert error_text("ko", caught.value) == "온도는 0~2 사이의 숫자여야 합니다."
    assert error_text("en", caught.value) == "Temperature must be a number from 0 to 2."
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(seed=SEED_MAX + 1)
    assert f"0~{SEED_MAX}" in error_text("ko", caught.value)


def test_a_typed_value_outside_the_models_window_names_the_narrower_range_and_the_value():
    with pytest.raises(SettingsError) as caught:
        settings_from_values(["max_new_tokens"], [400], {"max_new_tokens": (1, 224)})
    assert error_text("ko", caught.value) == "최대 길이는 1~224 사이의 정수여야 합니다. (입력한 값: 400)"
    assert error_text("en", caught.value) == "Max length must be a whole number from 1 to 224. (you typed 400)"


def test_a_min_length_over_the_max_names_the_max_without_field_names():
    with pytest.raises(SettingsError) as caught:
        SamplingSettings(max_new_tokens=20, min_new_tokens=50)
    assert settings_error_text("ko", caught.value) == "최소 길이는 최대 길이(20) 이하여야 합니다."


def test_names_in_a_message_are_escaped_because_toasts_render_html():
    error = story_store.TurnBusy("busy", "<img src=x onerror=alert(1)>")
    assert "<img" not in error_text("ko", error)
    assert "&lt;img" in error_text("en", error)


@pytest.mark.parametrize("word, expected", [("온도", "온도는"), ("누적 확률", "누적 확률은"), ("멈출 곳", "멈출 곳은"),
                                            ("시드", "시드는"), ("Seed", "Seed은(는)")])
def test_the_topic_particle_follows_the_last_syllable(word, expected):
    assert with_topic_particle(word) == expected


def test_the_english_catalogue_has_no_korean_except_the_bilingual_title():
    from relay.ui.controls import setting_translations

    for key, (_, en) in {**TEXT, **setting_translations()}.items():
        if key != "app_title":
            assert not hangul(en), (key, en)


def test_every_message_and_toast_text_in_korean_has_no_english_word():
    prefixes = ("err.", "toast.", "history_", "need_", "bad_seq", "import_not", "import_too", "imported", "redone",
                "undone", "forked", "rewrite_opened", "setting_clamped", "active_preset", "lab_need", "lab_applied")
    for key, (ko, _) in TEXT.items():
        if key.startswith(prefixes):
            assert not ascii_words(re.sub(r"\{[^}]*\}", "", ko)), (key, ko)
