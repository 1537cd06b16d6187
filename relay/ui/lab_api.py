"""Named API endpoints of the sampling lab for scripts and notebooks: `/lab_run` (measured columns) and `/lab_sweep`
(one knob over a range), returning the numbers (relay/lab_measures.py) and, on request, every sample's recorded
token probabilities.

Keyed and limited like the model endpoints: a writer key is needed, the context is capped like any text given to
the model, and a run counts one model request and its samples against the writer's lab samples per minute while
holding one model slot (relay/lab_runs.py `lab_allowance`). `lab_endpoints(...)` is called from
`relay.ui.api.api_functions` with its helpers, so refusals read the same.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from relay.lab_runs import LabColumn, LabRun, Sweep, check_columns, lab_allowance, sweep_values
from relay.settings import SEED_MAX, SamplingSettings
from relay.ui.lab_columns import lab_paragraphs

LAB_ENDPOINTS = ("lab_run", "lab_sweep")  # model jobs: registered outside Gradio's queue group, like continue_story


def lab_endpoints(engine, limits, *, guarded: Callable, writer: Callable, text_arg: Callable,
                  refusal: type[Exception], got: Callable) -> dict[str, Callable]:
    """The endpoint functions by API name; `guarded`, `writer`, ... are relay/ui/api.py's own helpers."""

    def refuse(lang, ko: str, en: str):
        return refusal(ko if lang == "ko" else en)

    def context_of(context, lang) -> list[str]:
        text_arg(context, "context", lang)
        limits.check_context(context)
        paragraphs = lab_paragraphs(context)
        if not paragraphs:
            raise refuse(lang, "맥락(context)이 비어 있습니다.", "context is empty: give the text the model continues.")
        return paragraphs

    def whole(value, what: str, lang: str, low: int, high: int) -> int:
        if type(value) is not int or not low <= value <= high:
            raise refuse(lang, f"{what}은(는) {low}~{high} 사이의 정수여야 합니다 (받은 값: {got(value)}).",
                         f"{what} must be a whole number from {low} to {high} (got {got(value)}).")
        return value

    def number(value, what: str, lang: str) -> float:
        if type(value) not in (int, float):
            raise refuse(lang, f"{what}은(는) 숫자여야 합니다 (받은 값: {got(value)}).",
                         f"{what} must be a number (got {got(value)}).")
        return float(value)

    def seed_of(seed, lang) -> int | None:
        return None if seed is None else whole(seed, "seed", lang, 0, SEED_MAX)

    def settings_of(value, lang) -> SamplingSettings:
        if value is not None and not isinstance(value, dict):
            raise refuse(lang, "settings는 객체(dict)여야 합니다.", "settings must be an object (dict) or null.")
        return SamplingSettings.from_dict(value or {})

    def adapter_of(value, lang) -> str | None:
        text_arg(value, "adapter", lang, optional=True, max_chars=200)
        return value or None

    def column_of(value, lang) -> LabColumn:
        if not isinstance(value, dict) or set(value) - {"settings", "samples", "adapter"}:
            raise refuse(lang, "열(column)은 {\"settings\", \"samples\", \"adapter\"} 객체여야 합니다.",
                         'each column must be an object {"settings": {...}, "samples": n, "adapter": null}.')
        samples = value.get("samples", 1)
        return LabColumn(settings_of(value.get("settings"), lang), samples, adapter_of(value.get("adapter"), lang))

    @guarded
    def _lab_run(lang, ip, context, columns, seed, writer_key, with_tokens):
        paragraphs = context_of(context, lang)
        if not isinstance(columns, list) or not columns:
            raise refuse(lang, "columns는 열 객체의 목록이어야 합니다.", "columns must be a list of column objects.")
        parsed = [column_of(c, lang) for c in columns[:5]]
        seed = seed_of(seed, lang)
        check_columns(parsed, engine)
        _, wid = writer(writer_key, lang)
        with lab_allowance(limits, wid, ip, sum(c.samples for c in parsed)):
            run = LabRun(engine, paragraphs, parsed, seed=seed).run()
        return run.results(with_tokens=with_tokens is True)

    def lab_run(context: str, columns: list[dict], seed: int | None = None, writer_key: str | None = None,
                with_tokens: bool = False, request: gr.Request = None) -> dict:
        """A measured lab run: every column ({"settings", "samples" 1-8, "adapter"}, 1-4 columns) writes its samples
        (seeds seed, seed+1, ...; all columns share them) together; returns per column its samples and measures,
        and the best column per measure. with_tokens adds each sample's token probabilities."""
        return _lab_run(context, columns, seed, writer_key, with_tokens, request=request)

    @guarded
    def _lab_sweep(lang, ip, context, knob, start, stop, points, samples, settings, adapter, seed, writer_key,
                   with_tokens):
        paragraphs = context_of(context, lang)
        text_arg(knob, "knob", lang, max_chars=40)
        values = sweep_values(knob, number(start, "start", lang), number(stop, "stop", lang),
                              whole(points, "points", lang, 2, 10))
        samples = whole(samples, "samples", lang, 1, 8)
        base, adapter, seed = settings_of(settings, lang), adapter_of(adapter, lang), seed_of(seed, lang)
        check_columns([LabColumn(base, samples, adapter)], engine)
        _, wid = writer(writer_key, lang)
        with lab_allowance(limits, wid, ip, len(values) * samples):
            sweep = Sweep(engine, paragraphs, base, knob, values, samples, adapter=adapter, seed=seed,
                          with_tokens=with_tokens is True).run()
        return sweep.results()

    def lab_sweep(context: str, knob: str, start: float, stop: float, points: int = 5, samples: int = 4,
                  settings: dict | None = None, adapter: str | None = None, seed: int | None = None,
                  writer_key: str | None = None, with_tokens: bool = False, request: gr.Request = None) -> dict:
        """A sweep: `knob` (temperature, top_p, top_k, typical_p, repetition_penalty, no_repeat_ngram_size,
        min_new_tokens, max_new_tokens) at `points` values from start to stop, `samples` samples each (the same
        seeds at every point) over `settings`; returns the points with their samples and measures, and rows
        {"point", "measure", "value"} for a plot."""
        return _lab_sweep(context, knob, start, stop, points, samples, settings, adapter, seed, writer_key,
                          with_tokens, request=request)

    return {"lab_run": lab_run, "lab_sweep": lab_sweep}
