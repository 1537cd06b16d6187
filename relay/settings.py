"""Sampling settings for the model's turn: every knob declared once, with its range, default and meaning.

The one declaration below drives validation (`SamplingSettings.__post_init__`), the UI's controls and
help text (`SamplingSettings.specs()`), and what the store saves with each AI paragraph (`to_dict`).
Re-exported by `relay.engine`; import from there.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

SEED_MAX = 2**31 - 1
STOP_CHOICES = ("paragraph", "sentence", "length")
STORY_PRESETS_KEY = "presets"  # in a story's settings JSON: its named presets (relay/store/presets.py)


class EngineError(Exception):
    """Something went wrong while loading a model or generating text."""


class SettingsError(EngineError, ValueError):
    """A sampling setting or a generation argument is out of range or of the wrong type."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SettingSpec:
    """How one setting is shown and checked: its kind, range, default and one-line help in Korean and English."""

    name: str
    kind: str  # "float" | "int" | "seed" | "choice" | "bool"
    default: Any
    minimum: float | int | None
    maximum: float | int | None
    step: float | int | None
    choices: tuple[str, ...] | None
    label_ko: str
    label_en: str
    help_ko: str
    help_en: str
    # (Korean, English) label per choice, for choice settings only.
    choice_labels: dict[str, tuple[str, str]] | None = None


def _knob(kind, default, minimum, maximum, step, label_ko, label_en, help_ko, help_en, choices=None, choice_labels=None):
    """A dataclass field carrying its SettingSpec (without the name, which the field supplies)."""
    spec = dict(kind=kind, default=default, minimum=minimum, maximum=maximum, step=step, choices=choices,
                label_ko=label_ko, label_en=label_en, help_ko=help_ko, help_en=help_en, choice_labels=choice_labels)
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class SamplingSettings:
    """How the model writes one turn. Frozen and validated on creation; defaults are the "balanced" preset."""

    temperature: float = _knob(
        "float", 0.8, 0.0, 2.0, 0.05, "온도", "Temperature",
        "높을수록 대담하고 낮을수록 무난한 글 (0이면 항상 가장 그럴듯한 단어)",
        "Higher is bolder, lower is safer; 0 always takes the likeliest word.")
    top_k: int = _knob(
        "int", 50, 0, 200, 1, "후보 수 (top-k)", "Top-k",
        "매번 가장 그럴듯한 k개 단어 중에서만 고릅니다 (0이면 제한 없음)",
        "Pick only among the k likeliest tokens each step (0 = no limit).")
    top_p: float = _knob(
        "float", 0.92, 0.01, 1.0, 0.01, "누적 확률 (top-p)", "Top-p",
        "확률을 더해 이 값에 이를 때까지의 단어만 후보로 둡니다 (1이면 제한 없음)",
        "Keep the likeliest tokens whose probabilities add up to this (1 = no limit).")
    typical_p: float = _knob(
        "float", 1.0, 0.01, 1.0, 0.01, "전형성 (typical-p)", "Typical-p",
        "너무 뻔하거나 너무 엉뚱한 단어를 걸러냅니다 (1이면 끔)",
        "Filter out tokens that are too predictable or too surprising (1 = off).")
    repetition_penalty: float = _knob(
        "float", 1.15, 1.0, 2.0, 0.05, "반복 억제", "Repetition penalty",
        "이야기에 이미 나온 단어를 덜 쓰게 합니다 (1이면 끔)",
        "Make tokens already in the story less likely (1 = off).")
    no_repeat_ngram_size: int = _knob(
        "int", 3, 0, 10, 1, "구절 반복 금지", "No-repeat n-gram",
        "이어 쓴 글 안에서 같은 n토큰 구절을 되풀이하지 않습니다 (0이면 끔)",
        "Never repeat an n-token phrase within the continuation (0 = off).")
    max_new_tokens: int = _knob(
        "int", 140, 1, 512, 1, "최대 길이 (토큰)", "Max length (tokens)",
        "한 번에 쓰는 최대 토큰 수 (한국어 1토큰 ≈ 2~3글자)",
        "Most tokens written in one turn (a Korean token is about 2-3 characters).")
    min_new_tokens: int = _knob(
        "int", 10, 0, 512, 1, "최소 길이 (토큰)", "Min length (tokens)",
        "이만큼 쓰기 전에는 멈추지 않습니다 (최대 길이 이하)",
        "Don't stop before this many tokens (at most the max length).")
    seed: int | None = _knob(
        "seed", None, 0, SEED_MAX, 1, "시드", "Seed",
        "같은 시드와 설정, 같은 이야기면 같은 글이 나옵니다 (비우면 무작위로 정해 알려줌)",
        "Same seed, settings and story give the same text (empty = random, reported back).")
    stop_at: str = _knob(
        "choice", "paragraph", None, None, None, "멈출 곳", "Stop at",
        "문단 끝, 첫 문장 끝, 또는 최대 길이에서만 멈춥니다",
        "Stop at the end of the paragraph, the first sentence, or only at the max length.",
        choices=STOP_CHOICES,
        choice_labels={"paragraph": ("문단 끝", "End of paragraph"), "sentence": ("문장 끝", "End of sentence"),
                       "length": ("최대 길이", "Max length")})
    trim_incomplete: bool = _knob(
        "bool", True, None, None, None, "끊긴 문장 버리기", "Drop unfinished sentence",
        "길이 제한이나 중지로 끊긴 마지막 문장을 지웁니다",
        "Drop a last sentence cut off by the length limit or a stop.")

    def __post_init__(self):
        for spec in self.specs():
            value = _checked(spec, getattr(self, spec.name))
            object.__setattr__(self, spec.name, value)
        if self.min_new_tokens > self.max_new_tokens:
            raise SettingsError(
                "min_new_tokens",
                f"최소 길이(min_new_tokens={self.min_new_tokens})는 최대 길이(max_new_tokens={self.max_new_tokens}) "
                f"이하여야 합니다 / min_new_tokens must not exceed max_new_tokens ({self.max_new_tokens}).")

    @classmethod
    def specs(cls) -> list[SettingSpec]:
        """One SettingSpec per field, in display order."""
        return [SettingSpec(name=f.name, **f.metadata["spec"]) for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SamplingSettings":
        """Settings from a dict such as `to_dict()` saved; missing keys take defaults, unknown keys are refused."""
        if not isinstance(d, Mapping):
            raise SettingsError("settings", f"settings must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in names:
                raise SettingsError(str(key), f"알 수 없는 설정: {key!r} / unknown setting {key!r}; "
                                              f"known: {', '.join(sorted(names))}")
        return cls(**d)

    @classmethod
    def of_story(cls, saved: Mapping[str, Any] | None) -> "SamplingSettings":
        """A story's own settings from its saved settings JSON; the named presets kept beside them
        (STORY_PRESETS_KEY, saved from the lab) are not settings and are set aside."""
        return cls.from_dict({k: v for k, v in (saved or {}).items() if k != STORY_PRESETS_KEY})

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "SamplingSettings":
        """A copy with `changes` applied, validated like a new instance."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _checked(spec: SettingSpec, value):
    """Return `value` normalized for `spec` (ints accepted for floats), or raise SettingsError naming the range."""
    name = spec.name
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise SettingsError(name, f"{spec.label_ko}({name})은(는) 참/거짓이어야 합니다 / "
                                      f"{name} must be true or false; got {value!r}")
        return value
    if spec.kind == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise SettingsError(name, f"{spec.label_ko}({name})은(는) {', '.join(spec.choices)} 중 하나여야 합니다 / "
                                      f"{name} must be one of {', '.join(spec.choices)}; got {value!r}")
        return value
    if spec.kind == "seed" and value is None:
        return None
    if spec.kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        kind_ko, kind_en = "숫자", "a number"
    else:  # int, seed
        ok = isinstance(value, int) and not isinstance(value, bool)
        kind_ko, kind_en = "정수", "a whole number"
    if not ok or not spec.minimum <= value <= spec.maximum:
        empty = " (또는 비움 / or empty)" if spec.kind == "seed" else ""
        raise SettingsError(name, f"{spec.label_ko}({name})은(는) {spec.minimum}~{spec.maximum} 사이의 {kind_ko}여야 "
                                  f"합니다 / {name} must be {kind_en} from {spec.minimum} to {spec.maximum}"
                                  f"{empty}; got {value!r}")
    return float(value) if spec.kind == "float" else value


# Why these values: see docs/engine.md ("Presets").
PRESETS: dict[str, SamplingSettings] = {
    "careful": SamplingSettings(temperature=0.6, top_k=40, top_p=0.9, typical_p=1.0, repetition_penalty=1.2,
                                no_repeat_ngram_size=3, max_new_tokens=100, min_new_tokens=10),
    "balanced": SamplingSettings(),
    "adventurous": SamplingSettings(temperature=1.0, top_k=0, top_p=0.95, typical_p=0.95, repetition_penalty=1.1,
                                    no_repeat_ngram_size=4, max_new_tokens=180, min_new_tokens=10),
}
PRESET_LABELS: dict[str, tuple[str, str]] = {
    "careful": ("신중하게", "Careful"),
    "balanced": ("균형 있게", "Balanced"),
    "adventurous": ("과감하게", "Adventurous"),
}
