"""The lab's sweep: one knob over a range (from, to, points), k samples per point written in batches
(relay/lab_runs.py Sweep), progress while it runs, a line plot of a measure (or every 0-1 ratio) against the
knob, and the sampled texts of every point one click away. Uses column 1's other settings and model."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from relay.lab_measures import MEASURE_BY_KEY, MEASURES
from relay.lab_runs import (MAX_SWEEP_POINTS, SWEEP_KNOBS, LabTooBig, Sweep, lab_allowance, max_lab_samples,
                             sweep_values)
from relay.limits import LimitExceeded, client_ip
from relay.settings import EngineError, SamplingSettings, SettingsError
from relay.ui.controls import i18n_key
from relay.ui.lab_columns import lab_failure, lab_paragraphs
from relay.ui.lab_story import lab_writer_id
from relay.ui.messages import info, user_error, warn
from relay.ui_text import say

RATIOS = "ratios"  # the plot choice that draws every measure between 0 and 1 together
RATIO_KEYS = ("distinct_1", "distinct_2", "repeated_ngrams", "cut_share")
UI_MAX_SAMPLES = 4
DEFAULT_RANGES = {"temperature": (0.4, 1.4), "top_p": (0.5, 1.0), "top_k": (0, 100), "typical_p": (0.5, 1.0),
                  "repetition_penalty": (1.0, 1.6), "no_repeat_ngram_size": (0, 6), "min_new_tokens": (0, 60),
                  "max_new_tokens": (20, 140)}


def knob_label(name: str, lang: str) -> str:
    spec = next(s for s in SamplingSettings.specs() if s.name == name)
    return spec.label_ko if lang == "ko" else spec.label_en


def plot_frame(rows: list[dict], measure: str, lang: str) -> pd.DataFrame:
    """The plot's rows for one measure (or every 0-1 ratio): point, value, the measure's name in `lang`."""
    keys = RATIO_KEYS if measure == RATIOS else (measure,)
    picked = [{"point": r["point"], "value": r["value"], "measure": MEASURE_BY_KEY[r["measure"]].label(lang)}
              for r in rows or [] if r["measure"] in keys]
    frame = pd.DataFrame(picked, columns=["point", "value", "measure"])
    return frame.astype({"point": float, "value": float, "measure": str})  # numbers, so the axes are numeric


def texts_frame(points: list[dict], knob: str, lang: str) -> pd.DataFrame:
    """Every sampled text, one row per sample: the knob's value, the seed, the text (headers in `lang`)."""
    seed, text = say(lang, "lab_seed"), say(lang, "lab_text")
    rows = [{knob: p["value"], seed: s["seed"], text: s["text"]} for p in points for s in p["samples"]]
    return pd.DataFrame(rows, columns=[knob, seed, text])


class LabSweep:
    """The sweep section's components and handlers; the base settings come from the lab's column 1."""

    def __init__(self, ui, columns):
        self.ui, self.lab = ui, columns
        unsupported = frozenset(getattr(ui.engine, "unsupported_settings", frozenset()))
        self.knobs = [k for k in SWEEP_KNOBS if k not in unsupported]

    def build(self) -> None:
        with gr.Accordion(i18n_key("lab_sweep_title"), open=True, elem_id="relay-sweep"):
            gr.Markdown(i18n_key("lab_sweep_intro"))
            with gr.Row():
                self.knob = gr.Dropdown(choices=[(i18n_key(f"setting.{k}"), k) for k in self.knobs],
                                        value="temperature", label=i18n_key("lab_sweep_knob"),
                                        elem_id="relay-sweep-knob", min_width=160)
                self.start = gr.Number(value=DEFAULT_RANGES["temperature"][0], label=i18n_key("lab_sweep_from"),
                                       elem_id="relay-sweep-from", min_width=90)
                self.stop_at = gr.Number(value=DEFAULT_RANGES["temperature"][1], label=i18n_key("lab_sweep_to"),
                                         elem_id="relay-sweep-to", min_width=90)
                self.points = gr.Slider(2, MAX_SWEEP_POINTS, value=5, step=1, label=i18n_key("lab_sweep_points"),
                                        elem_id="relay-sweep-points", min_width=160)
                self.samples = gr.Slider(1, UI_MAX_SAMPLES, value=3, step=1, label=i18n_key("lab_sweep_samples"),
                                         elem_id="relay-sweep-samples", min_width=160)
            with gr.Row():
                self.run_btn = gr.Button(i18n_key("lab_sweep_run"), variant="primary", elem_id="relay-sweep-run")
                self.stop_btn = gr.Button(i18n_key("lab_stop"), variant="stop", elem_id="relay-sweep-stop")
            self.progress = gr.Markdown(elem_id="relay-sweep-progress")
            choices = [(i18n_key("lab_sweep_ratios"), RATIOS)] + [(i18n_key(f"measure.{m.key}"), m.key) for m in MEASURES]
            self.measure = gr.Dropdown(choices=choices, value=RATIOS, label=i18n_key("lab_sweep_measure"),
                                       elem_id="relay-sweep-measure")
            # Empty until a sweep ends: a plot that starts from an empty frame never draws its lines (Gradio 6.31).
            self.plot = gr.LinePlot(value=None, x="point", y="value", color="measure", x_title=" ", y_title=" ",
                                    color_title=" ", height=320, elem_id="relay-sweep-plot")
            with gr.Accordion(i18n_key("lab_sweep_texts"), open=False, elem_id="relay-sweep-texts"):
                self.texts = gr.Dataframe(value=texts_frame([], " ", "ko"), wrap=True, interactive=False,
                                          elem_id="relay-sweep-table")
        self.rows = gr.State(None, time_to_live=2 * 3600)

    def wire(self, context_box, paragraphs_of) -> None:
        ui, private = self.ui, self.ui.private
        self.knob.input(lambda k: list(DEFAULT_RANGES.get(k, (None, None))), [self.knob], [self.start, self.stop_at],
                        **private)
        self.measure.change(self.replot, [self.rows, self.measure, ui.lang_state], [self.plot], **private)
        inputs = [context_box, self.knob, self.start, self.stop_at, self.points, self.samples, self.measure,
                  ui.writer_key, ui.lang_state, *self.lab.inputs[:self.lab.per_column]]

        def check(context, knob, start, stop, points, samples, measure, key, lang, *column):
            paragraphs_of(context, lang)
            self._plan(knob, start, stop, points, samples, lang, column)

        self.run_btn.click(check, inputs, None, **private).success(
            self.run, inputs, [self.progress, self.plot, self.texts, self.rows], **ui.model_queue, **private)
        self.stop_btn.click(self.lab.stop, None, None, queue=False, **private)

    def _plan(self, knob, start, stop, points, samples, lang, column):
        """(values, base column) of a sweep that may start, else a message (from the check step, no badge)."""
        try:
            if start is None or stop is None:
                raise SettingsError("range", say(lang, "lab_sweep_need_range"))
            values = sweep_values(knob, float(start), float(stop), int(points))
            base = self.lab.column_of(column)
        except SettingsError as e:
            raise user_error(lang, e) from None
        total = len(values) * int(samples)
        allowed = max_lab_samples(self.ui.limits)
        if total > allowed:
            raise user_error(lang, say(lang, "lab_too_big", samples=total, allowed=allowed))
        return values, base

    def run(self, request: gr.Request, context, knob, start, stop, points, samples, measure, key, lang, *column):
        """Run the sweep in batches, with progress; then plot and list the texts."""
        ui = self.ui
        paragraphs = lab_paragraphs(context)
        values, base = self._plan(knob, start, stop, points, samples, lang, column)
        session = request.session_hash or ""
        cancel = ui.cancels.fresh(session)
        shown_points = ", ".join(str(v) for v in values)
        try:
            with lab_allowance(ui.limits, lab_writer_id(ui.store, key), client_ip(request), len(values) * int(samples)):
                sweep = Sweep(ui.engine, paragraphs, base.settings, knob, values, int(samples), adapter=base.adapter,
                              cancel=cancel)
                last = -1
                for done, total, _ in sweep:
                    if done != last:
                        last = done
                        yield (say(lang, "lab_sweep_progress", done=done, total=total, knob=knob_label(knob, lang),
                                   points=shown_points), gr.skip(), gr.skip(), gr.skip())
        except (LimitExceeded, LabTooBig, EngineError) as e:  # a rate used up since the check step, or the model
            warn(lang, lab_failure(lang, e))  # failed: say so, keep the page
            return
        finally:
            ui.cancels.done(session, cancel)
        if cancel.is_set():
            info(lang, say(lang, "lab_stopped"))
        result = {"knob": knob, "rows": sweep.rows(), "points": sweep.points}
        label = knob_label(knob, lang)
        plot = gr.LinePlot(value=plot_frame(result["rows"], measure, lang), x_title=label,
                           y_title=self._y_title(measure, lang), color_title=say(lang, "lab_measure"))
        done = say(lang, "lab_sweep_done", total=sum(len(p["samples"]) for p in sweep.points),
                   seconds=f"{sweep.seconds:.1f}")
        yield done, plot, texts_frame(sweep.points, label, lang), result

    def replot(self, result, measure, lang):
        if not result:
            return gr.skip()
        return gr.LinePlot(value=plot_frame(result["rows"], measure, lang), y_title=self._y_title(measure, lang))

    @staticmethod
    def _y_title(measure, lang) -> str:
        return say(lang, "lab_ratio_axis") if measure == RATIOS else MEASURE_BY_KEY[measure].label(lang)
