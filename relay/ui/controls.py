"""Sampling settings <-> Gradio controls, and the translations of their labels.

The controls are generated from SamplingSettings.specs(), so a new knob in the engine shows up in
the UI with its range and explanation without touching the UI code. `build_settings_panel(ui)`
lays out the story's settings (preset, reset, the controls and the "active settings" line); its preset
choice lists the built-in presets and, once a story is open, the story's own (saved from the sampling lab).
"""

from __future__ import annotations

import math
import re

import gradio as gr
from gradio.i18n import I18nData

from relay.settings import PRESET_LABELS, PRESETS, SamplingSettings, SettingsError
from relay.store.presets import story_presets
from relay.story_store import StoryError
from relay.ui.messages import error_text, warn
from relay.ui_text import say, translations

LENGTH_SETTINGS = ("max_new_tokens", "min_new_tokens")
WINDOW_MARGIN = 32  # tokens of story the model always keeps in view beside the longest allowed continuation
CUSTOM = "custom"  # the "active settings" line's name for settings that match no preset
STORY_PRESET = "story:"  # a preset choice naming one of the open story's presets (as in the lab's columns)


# The number a person typed into a slider's box, exactly as typed. The slider hands a typed value to
# Gradio a moment after the keystroke and clamps it into range when the box loses focus, so the value
# its release event carries can be the old one or the clamped one. This head script records each
# keystroke's value per control (capture phase, so before the slider's own handlers), and the release
# event's js (TYPED_VALUE_JS) sends that record to the server instead, once.
SETTINGS_HEAD_JS = r"""
document.addEventListener("input", (event) => {
  const box = event.target;
  if (!box.matches || !box.matches('input[type="number"]')) return;
  const host = box.closest('[id^="relay-"]');
  if (host) (window.__relayTyped = window.__relayTyped || {})[host.id] = box.value;
}, true);
"""
TYPED_VALUE_JS = """(lang, value) => {
  const typed = (window.__relayTyped || {})["%(id)s"];
  if (typed === undefined || typed === "") return [lang, value];
  delete window.__relayTyped["%(id)s"];
  return [lang, Number(typed)];
}"""


def checked_slider(**kwargs) -> gr.Slider:
    """A gr.Slider whose value reaches the server as the person typed it.

    Gradio's slider answers an out-of-range value with its own English error on the server (and clamps
    a typed number when its box loses focus). This one lets the raw value through, so
    `settings_from_values` and the release check can name the allowed range in the page's language.
    The raw pass-through is set on this instance rather than in a gr.Slider subclass, because Gradio
    writes a .pyi stub next to the module of every component subclass when it is imported.
    """
    slider = gr.Slider(**kwargs)
    slider.preprocess = _as_typed
    return slider


def _as_typed(payload):
    return payload


def setting_limits(engine) -> dict[str, tuple[float, float]]:
    """Ranges narrower than SamplingSettings' own, set by the model: the length settings follow its
    window (`engine.max_new_tokens_limit` when the engine says, else its context window minus a margin)."""
    limit = getattr(engine, "max_new_tokens_limit", None)
    if limit is None:
        window = getattr(engine, "context_window", None)
        limit = window - WINDOW_MARGIN if window else None
    if not limit:
        return {}
    specs = {s.name: s for s in SamplingSettings.specs()}
    return {name: (specs[name].minimum, max(specs[name].minimum, min(specs[name].maximum, int(limit))))
            for name in LENGTH_SETTINGS}


def _range(spec, limits: dict | None) -> tuple:
    return (limits or {}).get(spec.name, (spec.minimum, spec.maximum))


def _setting_component(spec, value, limits: dict | None = None, **kwargs):
    """The control for one setting; `limits` narrows a number's range (see setting_limits)."""
    label, info = f"setting.{spec.name}", f"setting_help.{spec.name}"
    kwargs.setdefault("elem_id", f"relay-setting-{spec.name}")
    if spec.kind == "bool":
        return gr.Checkbox(value=value, label=i18n_key(label), info=i18n_key(info), **kwargs)
    if spec.kind == "choice":
        choices = [(i18n_key(f"choice.{spec.name}.{c}"), c) for c in spec.choices]
        return gr.Radio(choices=choices, value=value, label=i18n_key(label), info=i18n_key(info), **kwargs)
    if spec.kind == "seed":
        # A textbox, not gr.Number: Number shows an empty value as 0 and sends 0 back, which
        # would silently fix every "random" seed. Empty = a random seed; SamplingSettings checks the range.
        return gr.Textbox(value="" if value is None else str(value), label=i18n_key(label), info=i18n_key(info),
                          placeholder=i18n_key("seed_placeholder"), max_lines=1, elem_classes=["relay-seed"], **kwargs)
    low, high = _range(spec, limits)
    step = spec.step or (1 if spec.kind == "int" else 0.01)
    return checked_slider(minimum=low, maximum=high, step=step, value=min(max(value, low), high), label=i18n_key(label),
                          info=i18n_key(info), **kwargs)


def i18n_key(key: str) -> I18nData:
    """A translation key for a static label; the browser shows it in its language (see make_i18n)."""
    return I18nData(key)


def settings_from_values(names: list[str], values, limits: dict | None = None) -> SamplingSettings:
    """Build validated settings from control values (sliders give floats, as typed; seeds may be empty).

    A number outside its range (SamplingSettings' own, or the narrower `limits`) raises SettingsError
    with `.minimum`, `.maximum` and `.value`, so the message can name the allowed range; nothing is clamped.
    """
    specs = {s.name: s for s in SamplingSettings.specs()}
    data = {}
    for name, value in zip(names, values):
        spec = specs[name]
        if spec.kind in ("int", "float"):
            value = _checked_number(spec, value, limits)
        elif spec.kind == "seed":
            value = _parse_seed(name, value)
        data[name] = value
    return SamplingSettings.from_dict(data)


def range_error(spec, value, limits: dict | None = None) -> SettingsError | None:
    """The error for a typed number outside `spec`'s range (or not a number), else None."""
    low, high = _range(spec, limits)
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is not None and math.isfinite(number) and low <= number <= high:
        return None
    error = SettingsError(spec.name, f"{spec.name} must be from {low} to {high}; got {value!r}")
    error.minimum, error.maximum, error.value = low, high, value
    return error


def _checked_number(spec, value, limits):
    error = range_error(spec, value, limits)
    if error is not None:
        raise error
    return int(round(value)) if spec.kind == "int" else float(value)


def _parse_seed(name: str, value) -> int | None:
    """The seed box's text as an int; empty means "pick a random seed"."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        error = SettingsError(name, f"{name} must be a whole number, or empty for a random one (got {text!r})")
        error.value = text
        raise error from None


def settings_to_values(names: list[str], settings: SamplingSettings) -> list:
    """Control values for `settings`, in the order of `names` (the seed as text, empty when random)."""
    d = settings.to_dict()
    kinds = {s.name: s.kind for s in SamplingSettings.specs()}
    return [("" if d[n] is None else str(d[n])) if kinds[n] == "seed" else d[n] for n in names]


def setting_translations() -> dict[str, tuple[str, str]]:
    """Label and help text of every sampling knob and preset, for gr.I18n."""
    out = {}
    for spec in SamplingSettings.specs():
        out[f"setting.{spec.name}"] = (spec.label_ko, spec.label_en)
        out[f"setting_help.{spec.name}"] = (spec.help_ko, spec.help_en)
        for choice, pair in (spec.choice_labels or {}).items():
            out[f"choice.{spec.name}.{choice}"] = tuple(pair)
    for name, pair in PRESET_LABELS.items():
        out[f"preset.{name}"] = tuple(pair)
        out[f"active_preset.{name}"] = tuple(say(lang, "active_preset", name=pair[i]) for i, lang in enumerate(("ko", "en")))
    out[f"active_preset.{CUSTOM}"] = tuple(say(lang, "active_preset_custom") for lang in ("ko", "en"))
    for spec in SamplingSettings.specs():
        out[f"unsupported.{spec.name}"] = (say("ko", "unsupported_setting", label=spec.label_ko),
                                           say("en", "unsupported_setting", label=spec.label_en))
    return out


def make_i18n() -> gr.I18n:
    return gr.I18n(**translations(setting_translations()))



def preset_of(settings: SamplingSettings, mine: dict[str, SamplingSettings] | None = None) -> str | None:
    """The name of the preset `settings` match, or None ("custom"): one of the open story's presets `mine`
    first (as "story:<name>"), then the built-in ones. The seed is left out: a fixed seed picks one text among
    many the same preset writes, it does not change how the model writes."""
    unseeded = {**settings.to_dict(), "seed": None}
    for name, preset in (mine or {}).items():
        if {**preset.to_dict(), "seed": None} == unseeded:
            return STORY_PRESET + name
    for name, preset in PRESETS.items():
        if {**preset.to_dict(), "seed": None} == unseeded:
            return name
    return None


def active_preset_line(lang: str, name: str | None) -> str:
    """The "active settings" line: the preset's name, or "custom" once a control left every preset."""
    if name in PRESET_LABELS:
        return say(lang, "active_preset", name=PRESET_LABELS[name][0 if lang == "ko" else 1])
    if isinstance(name, str) and name.startswith(STORY_PRESET):
        label = story_preset_label(lang, name.removeprefix(STORY_PRESET))
        return say(lang, "active_preset", name=_markdown_text(label))
    return say(lang, "active_preset_custom")


def story_preset_label(lang: str, name: str) -> str:
    """How a story's own preset is named in a preset choice ("이 이야기: name"), as in the lab."""
    return say(lang, "lab_story_preset", name=name)


def _markdown_text(text: str) -> str:
    """A writer's text shown literally inside Markdown (no markup, no HTML)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>&])", r"\\\1", text)


def story_presets_of(store, story_id) -> dict[str, SamplingSettings]:
    """The open story's presets, read from the store by the page's story id (never from the client); presets
    that no longer validate are left out, and no story (or an unknown one) has none."""
    if story_id in (None, ""):
        return {}
    try:
        saved = story_presets(store.get_story(int(story_id)).settings)
    except (StoryError, TypeError, ValueError, OverflowError):
        return {}
    out = {}
    for name, values in saved.items():
        try:
            out[name] = SamplingSettings.from_dict(values)
        except SettingsError:
            continue
    return out


def preset_choices(lang: str, mine: dict[str, SamplingSettings]) -> list[tuple[str, str]]:
    """The preset choice's entries: the built-in presets, then the open story's ("story:<name>")."""
    return ([(PRESET_LABELS[p][0 if lang == "ko" else 1], p) for p in PRESETS]
            + [(story_preset_label(lang, n), STORY_PRESET + n) for n in mine])


def build_settings_panel(ui) -> list:
    """The story's sampling settings, laid out inside the current container (the settings accordion).

    Creates the preset choice (#relay-preset), the reset button (#relay-reset-settings), the
    "active settings" line (#relay-active-preset), a note on settings this model cannot use
    (#relay-unsupported-note) and one control per setting (#relay-setting-<name>), and wires them.
    Uses ui.engine, ui.store, ui.story_state, ui.lang_state, ui.private and (optionally) ui.defaults.
    Returns the controls in SamplingSettings.specs() order, like the `names` list the page keeps.
    """
    engine, store, story_state, lang_state = ui.engine, ui.store, ui.story_state, ui.lang_state
    private = getattr(ui, "private", {"api_visibility": "private"})
    defaults = getattr(ui, "defaults", None) or SamplingSettings()
    specs = SamplingSettings.specs()
    names = [s.name for s in specs]
    limits = setting_limits(engine)
    unsupported = frozenset(getattr(engine, "unsupported_settings", frozenset()))
    start = preset_of(defaults) or CUSTOM

    with gr.Row():
        preset = gr.Radio(choices=[(i18n_key(f"preset.{p}"), p) for p in PRESETS], value=preset_of(defaults),
                          label=i18n_key("preset"), elem_id="relay-preset", scale=3)
        reset_btn = gr.Button(i18n_key("reset_defaults"), size="sm", elem_id="relay-reset-settings", scale=1)
    active = gr.Markdown(i18n_key(f"active_preset.{start}"), elem_id="relay-active-preset")
    if unsupported:  # hidden below; say which and why, so a missing knob is not a mystery
        with gr.Column(elem_id="relay-unsupported-note"):
            for spec in specs:
                if spec.name in unsupported:
                    gr.Markdown(i18n_key(f"unsupported.{spec.name}"))
    controls = [_setting_component(s, getattr(defaults, s.name), limits, visible=s.name not in unsupported)
                for s in specs]

    def show_active(story_id, lang, *values):
        """The active line and the preset choice for the controls' current values."""
        try:
            settings = settings_from_values(names, values, limits)
        except SettingsError:
            return active_preset_line(lang, None), None
        name = preset_of(settings, story_presets_of(store, story_id))
        return active_preset_line(lang, name), name

    for control in controls:
        control.change(show_active, [story_state, lang_state, *controls], [active, preset], trigger_mode="always_last",
                       show_progress="hidden", queue=False, **private)

    def apply_preset(name, story_id):
        """A built-in preset's values, or the open story's preset's as the store has them now (a name the
        story no longer has changes nothing)."""
        if name in PRESETS:
            return settings_to_values(names, PRESETS[name])
        mine = story_presets_of(store, story_id)
        if isinstance(name, str) and name.startswith(STORY_PRESET) and name.removeprefix(STORY_PRESET) in mine:
            return settings_to_values(names, mine[name.removeprefix(STORY_PRESET)])
        return [gr.skip()] * len(names)

    preset.input(apply_preset, [preset, story_state], controls, show_progress="hidden", **private)

    def story_choices(story_id, lang):
        """The preset choice for the story now open: the built-in presets and the story's own."""
        return gr.Radio(choices=preset_choices(lang, story_presets_of(store, story_id)))

    story_state.change(story_choices, [story_state, lang_state], [preset], show_progress="hidden", **private)
    ui.preset, ui.story_preset_choices = preset, story_choices  # the lab refreshes it when it saves a preset

    def reset(story_id):
        settings = defaults
        if story_id is not None:
            try:
                settings = SamplingSettings.of_story(store.get_story(int(story_id)).settings)
            except SettingsError:  # a story whose saved defaults no longer validate gets the app's
                settings = defaults
        return settings_to_values(names, settings)

    reset_btn.click(reset, [story_state], controls, show_progress="hidden", **private)

    wire_range_checks(specs, controls, lang_state, limits, private)
    return controls


def wire_range_checks(specs, controls, lang_state, limits: dict | None, private: dict) -> None:
    """Tell the person when a number they typed is out of range (naming the range), as they leave the box.

    The slider then shows the nearest allowed value (Gradio's front end clamps on blur), so the message
    says so; a seed that is not a whole number in range gets the seed's message. No outputs: nothing
    on the page is marked with an error badge.
    """
    def check_typed(spec):
        def check(lang, value):
            if spec.kind == "seed":
                try:
                    SamplingSettings(seed=_parse_seed(spec.name, value))
                except SettingsError as e:
                    warn(lang, error_text(lang, e))
                return
            error = range_error(spec, value, limits)
            if error is None:
                return
            low, high = _range(spec, limits)
            typed = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            if typed is None or not math.isfinite(typed):
                warn(lang, error_text(lang, error))
                return
            nearest = min(max(typed, low), high)
            warn(lang, say(lang, "setting_clamped", message=error_text(lang, _without_value(error)),
                           typed=_show(typed), value=_show(nearest)))
        return check

    # always_last: a click into the box also sends a release; the one from leaving it must not be dropped.
    for spec, control in zip(specs, controls):
        if spec.kind in ("int", "float"):
            control.release(check_typed(spec), [lang_state, control], None, show_progress="hidden",
                            trigger_mode="always_last", js=TYPED_VALUE_JS % {"id": control.elem_id}, **private)
        elif spec.kind == "seed":
            control.blur(check_typed(spec), [lang_state, control], None, show_progress="hidden",
                         trigger_mode="always_last", **private)


def _without_value(error: SettingsError) -> SettingsError:
    error.value = None
    return error


def _show(number) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
