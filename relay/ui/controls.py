"""Sampling settings <-> Gradio controls, and the translations of their labels.

The controls are generated from SamplingSettings.specs(), so a new knob in the engine shows up in
the UI with its range and explanation without touching the UI code.
"""

from __future__ import annotations

import gradio as gr
from gradio.i18n import I18nData

from relay.settings import PRESET_LABELS, SamplingSettings, SettingsError
from relay.ui_text import translations

def _setting_component(spec, value):
    label, info = f"setting.{spec.name}", f"setting_help.{spec.name}"
    if spec.kind == "bool":
        return gr.Checkbox(value=value, label=i18n_key(label), info=i18n_key(info))
    if spec.kind == "choice":
        choices = [(i18n_key(f"choice.{spec.name}.{c}"), c) for c in spec.choices]
        return gr.Radio(choices=choices, value=value, label=i18n_key(label), info=i18n_key(info))
    if spec.kind == "seed":
        # A textbox, not gr.Number: Number shows an empty value as 0 and sends 0 back, which
        # would silently fix every "random" seed. Empty = a random seed; SamplingSettings checks the range.
        return gr.Textbox(value="" if value is None else str(value), label=i18n_key(label), info=i18n_key(info),
                          placeholder=i18n_key("seed_placeholder"), max_lines=1, elem_classes=["relay-seed"])
    step = spec.step or (1 if spec.kind == "int" else 0.01)
    return gr.Slider(minimum=spec.minimum, maximum=spec.maximum, step=step, value=value, label=i18n_key(label), info=i18n_key(info))


def i18n_key(key: str) -> I18nData:
    """A translation key for a static label; the browser shows it in its language (see make_i18n)."""
    return I18nData(key)


def settings_from_values(names: list[str], values) -> SamplingSettings:
    """Build validated settings from control values (sliders give floats; seeds may be empty)."""
    specs = {s.name: s for s in SamplingSettings.specs()}
    data = {}
    for name, value in zip(names, values):
        kind = specs[name].kind
        if kind == "int" and value is not None:
            value = int(round(value))
        elif kind == "seed":
            value = _parse_seed(name, value)
        elif kind == "float" and value is not None:
            value = float(value)
        data[name] = value
    return SamplingSettings.from_dict(data)


def _parse_seed(name: str, value) -> int | None:
    """The seed box's text as an int; empty means "pick a random seed"."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SettingsError(name, f"{name} must be a whole number, or empty for a random one (got {text!r})") from None


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
    return out


def make_i18n() -> gr.I18n:
    return gr.I18n(**translations(setting_translations()))

