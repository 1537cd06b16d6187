"""The lab's columns: per column a preset, every knob the engine supports, samples n and the model (base or an
adapter); a measured run writes every column's samples together (relay/lab_runs.py) and streams them side by
side; then each column shows its measures (best marked, explained) and can be used in the story: its settings
("use these settings") or one sample's text as the writer's suggestion ("use this text")."""

from __future__ import annotations

import html
import time

import gradio as gr

from relay.lab_measures import MEASURES, formatted
from relay.lab_runs import LabColumn, LabRun, LabTooBig, lab_allowance, max_lab_samples
from relay.limits import LimitExceeded, client_ip
from relay.settings import PRESET_LABELS, PRESETS, EngineError, SamplingSettings, SettingsError
from relay.store.presets import MAX_PRESET_NAME_CHARS, story_presets
from relay.story_store import StoryError
from relay.ui.common import _need_name, _need_story, ui_error
from relay.ui.controls import (_setting_component, i18n_key, setting_limits, settings_from_values, settings_to_values,
                               wire_range_checks)
from relay.ui.lab_story import lab_writer_id, offer_sample
from relay.ui.messages import info, user_error, warn
from relay.ui.limit_text import limit_message
from relay.ui.token_view import legend_html, token_html, tokens_of
from relay.ui_text import say

LAB_COLUMNS = 4
UI_MAX_SAMPLES = 4  # samples per column the page offers (the API allows relay.lab_runs.MAX_SAMPLES)
SHOW_EVERY_S = 0.1  # streamed text reaches the browser at most this often
STORY_PRESET = "story:"  # a preset choice naming one of the open story's presets
SYNC_TURN_JS = "() => { document.querySelector('#relay-turn-sync')?.click(); }"  # the desk loads the suggestion


class LabColumns:
    """The columns' components and handlers; `inputs` are every column's controls, flat, in column order."""

    def __init__(self, ui):
        self.ui = ui
        engine = ui.engine
        unsupported = frozenset(getattr(engine, "unsupported_settings", frozenset()))
        self.specs = [s for s in SamplingSettings.specs() if s.name not in unsupported]
        self.names = [s.name for s in self.specs]
        self.range = setting_limits(engine)
        self.per_column = 3 + len(self.names)  # preset, samples, adapter, knobs

    # -- layout ------------------------------------------------------------------------------------

    def build(self) -> None:
        """Lay out the columns inside the current container."""
        ui, engine = self.ui, self.ui.engine
        adapters = [(i18n_key("lab_base_model"), "")] + [(name, name) for name in engine.adapter_names]
        self.columns, self.presets, self.outputs, self.tables, self.picks = [], [], [], [], []
        self.use_settings, self.use_text, self.inputs, self.token_views = [], [], [], []
        self.preset_names, self.save_presets = [], []
        presets = list(PRESETS)
        with gr.Row(equal_height=False):
            for i in range(LAB_COLUMNS):
                p0 = presets[i % len(presets)]
                with gr.Column(visible=i < 2, min_width=260) as column:
                    gr.Markdown(f"**#{i + 1}**")
                    preset = gr.Dropdown(choices=[(i18n_key(f"preset.{p}"), p) for p in PRESETS], value=p0,
                                         label=i18n_key("preset"), elem_id=f"relay-lab-preset-{i}")
                    samples = gr.Slider(1, UI_MAX_SAMPLES, value=2, step=1, label=i18n_key("lab_samples"),
                                        elem_id=f"relay-lab-samples-{i}")
                    adapter = gr.Dropdown(choices=adapters, value="", label=i18n_key("lab_adapter"),
                                          visible=bool(engine.adapter_names), elem_id=f"relay-lab-adapter-{i}")
                    with gr.Accordion(i18n_key("lab_knobs"), open=False):
                        knobs = [_setting_component(s, getattr(PRESETS[p0], s.name), self.range,
                                                    elem_id=f"relay-lab-{s.name}-{i}") for s in self.specs]
                    self.outputs.append(gr.Textbox(label=i18n_key("lab_output"), lines=10, max_lines=24,
                                                   interactive=False, elem_id=f"relay-lab-out-{i}"))
                    self.tables.append(gr.HTML(elem_id=f"relay-lab-measures-{i}", padding=False))
                    self.picks.append(gr.Dropdown(choices=[], label=i18n_key("lab_pick_sample"), interactive=True,
                                                  elem_id=f"relay-lab-pick-{i}"))
                    with gr.Accordion(i18n_key("lab_tokens"), open=False):
                        self.token_views.append(gr.HTML(elem_id=f"relay-lab-tokens-{i}", padding=False,
                                                        elem_classes=["relay-lab-tokens"]))
                    with gr.Row():
                        self.use_text.append(gr.Button(i18n_key("lab_use_text"), size="sm",
                                                       elem_id=f"relay-lab-use-text-{i}"))
                        self.use_settings.append(gr.Button(i18n_key("lab_use"), size="sm",
                                                           elem_id=f"relay-lab-use-{i}"))
                    with gr.Row():
                        self.preset_names.append(gr.Textbox(label=i18n_key("lab_preset_name"), max_lines=1,
                                                            max_length=40, elem_id=f"relay-lab-preset-name-{i}",
                                                            scale=2, min_width=120))
                        self.save_presets.append(gr.Button(i18n_key("lab_save_preset"), size="sm", scale=1,
                                                           min_width=100, elem_id=f"relay-lab-save-preset-{i}"))
                self.columns.append(column)
                self.presets.append(preset)
                self.inputs += [preset, samples, adapter, *knobs]
                preset.input(self._preset_values, [preset, ui.story_state], knobs, **ui.private)
                wire_range_checks(self.specs, knobs, ui.lang_state, self.range, ui.private)
        self.summary = gr.Markdown(elem_id="relay-lab-summary")
        self.result = gr.State(None, time_to_live=2 * 3600)  # the last run's samples: what "use" buttons take

    def _preset_values(self, name, story_id):
        """The knobs of a built-in preset, or of one of the open story's presets ("story:<name>")."""
        if name in PRESETS:
            return settings_to_values(self.names, PRESETS[name])
        saved = self._story_presets(story_id).get(str(name or "").removeprefix(STORY_PRESET))
        try:
            return settings_to_values(self.names, SamplingSettings.from_dict(saved)) if saved else \
                [gr.skip()] * len(self.names)
        except SettingsError:
            return [gr.skip()] * len(self.names)

    def _story_presets(self, story_id) -> dict:
        if story_id in (None, ""):
            return {}
        try:
            return story_presets(self.ui.store.get_story(int(story_id)).settings)
        except StoryError:
            return {}

    def preset_choices(self, story_id, lang) -> list:
        """Every column's preset choice: the built-in presets, then the open story's (shared by its writers)."""
        built_in = [(PRESET_LABELS[p][0 if lang == "ko" else 1], p) for p in PRESETS]
        mine = [(say(lang, "lab_story_preset", name=n), STORY_PRESET + n) for n in self._story_presets(story_id)]
        return [gr.Dropdown(choices=built_in + mine) for _ in range(LAB_COLUMNS)]

    # -- reading the controls ----------------------------------------------------------------------

    def column(self, flat, i: int) -> LabColumn:
        """Column i's settings, samples and adapter from the flat control values (SettingsError if invalid)."""
        return self.column_of(flat[i * self.per_column:(i + 1) * self.per_column])

    def column_of(self, values) -> LabColumn:
        """A column from its own controls' values: preset, samples, adapter, knobs."""
        preset, samples, adapter, knobs = values[0], values[1], values[2], values[3:]
        base = PRESETS.get(preset, self.ui.defaults)
        merged = {**base.to_dict(), **dict(zip(self.names, knobs))}
        settings = settings_from_values(list(merged), list(merged.values()), self.range)
        return LabColumn(settings, int(samples or 1), adapter or None)

    def checked(self, n, lang, flat) -> list[LabColumn]:
        try:
            return [self.column(flat, i) for i in range(int(n))]
        except SettingsError as e:
            raise user_error(lang, e) from None

    # -- wiring ------------------------------------------------------------------------------------

    def wire(self, context_box, n_columns, run_btn, stop_btn, paragraphs_of) -> None:
        """Run, stop, show/hide columns and the use buttons; `paragraphs_of(context, lang)` checks the context."""
        ui = self.ui
        private = ui.private
        n_columns.change(lambda n: [gr.Column(visible=i < int(n)) for i in range(LAB_COLUMNS)], [n_columns],
                         self.columns, **private)
        inputs = [context_box, n_columns, ui.writer_key, ui.lang_state, *self.inputs]

        def check(context, n, key, lang, *flat):
            """Refuse a run that cannot start, from a step without outputs (no output keeps an error badge)."""
            paragraphs_of(context, lang)
            columns = self.checked(n, lang, flat)
            allowed = max_lab_samples(ui.limits)
            total = sum(c.samples for c in columns)
            if total > allowed:
                raise user_error(lang, say(lang, "lab_too_big", samples=total, allowed=allowed))

        outputs = [*self.outputs, *self.tables, *self.picks, *self.token_views, self.summary, self.result]
        run_btn.click(check, inputs, None, **private).success(self.run, inputs, outputs, **ui.model_queue, **private)
        stop_btn.click(self.stop, None, None, queue=False, **private)
        ui.story_state.change(self.preset_choices, [ui.story_state, ui.lang_state], self.presets, **private)
        for i in range(LAB_COLUMNS):
            column_controls = self.inputs[i * self.per_column:(i + 1) * self.per_column]
            self.save_presets[i].click(self._save_preset(i), [ui.story_state, ui.writer, ui.writer_key, ui.lang_state,
                                                              self.preset_names[i], *column_controls], None,
                                       **private).success(self.preset_choices, [ui.story_state, ui.lang_state],
                                                          self.presets, **private).then(
                ui.story_preset_choices, [ui.story_state, ui.lang_state], [ui.preset], **private)
            self.picks[i].input(self._show_tokens(i), [ui.lang_state, self.result, self.picks[i]],
                                [self.token_views[i]], **private)
            self.use_settings[i].click(self._use_settings(i), [ui.lang_state, self.result, self.picks[i],
                                                               *column_controls], [ui.tabs, *ui.controls], **private)
            self.use_text[i].click(self._use_text(i), [ui.story_state, ui.writer, ui.writer_key, ui.lang_state,
                                                       self.result, self.picks[i]], None, **private).success(
                lambda: gr.Tabs(selected="story"), None, [ui.tabs], **private).then(None, js=SYNC_TURN_JS)

    def stop(self, request: gr.Request):
        """Stop this tab's lab run (or sweep) within a token; what was written is measured."""
        self.ui.cancels.cancel(request.session_hash or "")

    def run(self, request: gr.Request, context, n, key, lang, *flat):
        """Write every column's samples together, streaming them side by side; then measure each column."""
        ui = self.ui
        paragraphs = lab_paragraphs(context)
        columns = self.checked(n, lang, flat)
        session = request.session_hash or ""
        cancel = ui.cancels.fresh(session)
        hidden = [gr.skip()] * LAB_COLUMNS
        try:
            with lab_allowance(ui.limits, lab_writer_id(ui.store, key), client_ip(request),
                               sum(c.samples for c in columns)):
                run = LabRun(ui.engine, paragraphs, columns, cancel=cancel)
                shown = 0.0
                for samples in run:
                    if time.monotonic() - shown < SHOW_EVERY_S:
                        continue
                    shown = time.monotonic()
                    yield (*self._texts(samples, lang), *hidden, *hidden, *hidden, gr.skip(), gr.skip())
                result = run.results()
        except (LimitExceeded, LabTooBig, EngineError) as e:  # a rate used up since the check step, or the model
            warn(lang, lab_failure(lang, e))  # failed: say so, keep the page
            return
        finally:
            ui.cancels.done(session, cancel)
        if cancel.is_set():
            info(lang, say(lang, "lab_stopped"))
        result["samples"] = [[{"seed": s.seed, "text": s.text, "meta": s.meta} for s in column]
                             for column in run.samples]
        tables = [measures_html(c["measures"], result["best"], i, lang) for i, c in enumerate(result["columns"])]
        picks = [gr.Dropdown(choices=[(say(lang, "lab_sample_head", i=k + 1, seed=s["seed"]), k)
                                      for k, s in enumerate(column["samples"])], value=0)
                 for column in result["columns"]]
        pad = LAB_COLUMNS - len(columns)
        total = sum(len(c["samples"]) for c in result["columns"])
        summary = say(lang, "lab_summary", n=total, seconds=f"{result['seconds']:.1f}", seed=result["seed"])
        views = [sample_tokens_html(column[0]["meta"], lang) for column in result["samples"]]
        yield (*self._texts(run.samples, lang), *tables, *[""] * pad, *picks, *[gr.skip()] * pad, *views,
               *[""] * pad, summary, result)

    def _texts(self, samples, lang) -> list[str]:
        texts = [column_text(column, lang) for column in samples]
        return texts + [gr.skip()] * (LAB_COLUMNS - len(texts))

    def _sample(self, result, i: int, pick):
        """Column i's picked sample of the last run (from server-side state: the page sends only indexes)."""
        if not result or i >= len(result.get("samples", [])) or not result["samples"][i]:
            return None
        k = pick if isinstance(pick, int) and 0 <= pick < len(result["samples"][i]) else 0
        return k, result["samples"][i][k]

    def _show_tokens(self, i: int):
        def show(lang, result, pick):
            """The picked sample's token probabilities."""
            picked = self._sample(result, i, pick)
            return sample_tokens_html(picked[1]["meta"], lang) if picked else ""
        return show

    def _save_preset(self, i: int):
        def save(request: gr.Request, story_id, name, key, lang, preset_name, *values):
            """Column i's settings (as set now, seed included) as a named preset of the open story."""
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            preset_name = (preset_name or "").strip()
            if not preset_name or len(preset_name) > MAX_PRESET_NAME_CHARS:
                raise user_error(lang, say(lang, "lab_preset_need_name"))
            try:
                settings = self.column_of(values).settings
            except SettingsError as e:
                raise user_error(lang, e) from None
            ui = self.ui
            try:
                with ui.limits.counted("paragraph", lab_writer_id(ui.store, key), client_ip(request)):
                    ui.store.save_story_preset(sid, preset_name, settings.to_dict(), name, writer_key=key)
            except (LimitExceeded, StoryError) as e:
                raise ui_error(lang, e, name=name) from None
            info(lang, say(lang, "lab_preset_saved", name=html.escape(preset_name)))
        return save

    def _use_settings(self, i: int):
        def use(lang, result, pick, *values):
            """The column's settings with the picked sample's seed (it writes that text again), else as set now."""
            picked = self._sample(result, i, pick)
            try:
                if picked is not None:
                    settings = SamplingSettings.from_dict(result["columns"][i]["settings"]).replace(
                        seed=picked[1]["seed"])
                else:
                    settings = self.column_of(values).settings
            except SettingsError as e:
                raise user_error(lang, e) from None
            info(lang, say(lang, "lab_applied", n=i + 1))
            return (gr.Tabs(selected="story"), *settings_to_values(self.ui.names, settings))
        return use

    def _use_text(self, i: int):
        def use(request: gr.Request, story_id, name, key, lang, result, pick):
            """Column i's picked sample as the writer's suggestion in the open story (the turn rule applies)."""
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            picked = self._sample(result, i, pick)
            if picked is None or not picked[1]["text"].strip():
                raise user_error(lang, say(lang, "lab_no_text"))
            ui = self.ui
            try:
                with ui.limits.counted("paragraph", lab_writer_id(ui.store, key), client_ip(request)):
                    offer_sample(ui.ai_turn, sid, name, picked[1], lang, writer_key=key)
            except LimitExceeded as e:
                raise ui_error(lang, e) from None
            info(lang, say(lang, "lab_use_text_done", n=i + 1, k=picked[0] + 1, seed=picked[1]["seed"]))
        return use


def lab_failure(lang: str, error: Exception) -> str:
    """What a lab run or sweep that could not finish tells the writer: a used-up rate in the page's words, else the
    refusal's or the engine's own message."""
    return limit_message(lang, error) if isinstance(error, LimitExceeded) else str(error)


def lab_paragraphs(context: str | None) -> list[str]:
    """The lab's context as paragraphs: a blank line separates them, single newlines stay inside one."""
    import re

    return [p.strip("\n") for p in re.split(r"\n[ \t\u3000]*\n\s*", context or "") if p.strip()]


def sample_tokens_html(meta: dict, lang: str) -> str:
    """A sample's token probability view (relay/ui/token_view.py), with its colour key."""
    return legend_html(lang) + token_html(tokens_of(meta) or {}, lang, branchable=False)


def column_text(samples, lang: str) -> str:
    """One column's samples as its box shows them: a head line (number, seed; "writing…" until done), the text."""
    parts = []
    for s in samples:
        head = say(lang, "lab_sample_head", i=s.index + 1, seed=s.seed)
        parts.append(f"{head}{'' if s.done else ' · ' + say(lang, 'lab_running')}\n{s.shown}")
    return "\n\n".join(parts)


def measures_html(measures: dict, best: dict, column: int, lang: str) -> str:
    """A column's measures table: each measure's name with what it means under it, and its value (★ when this
    column is the best). Two columns, so it stays readable in a narrow lab column or on a phone."""
    rows = []
    for m in MEASURES:
        star = column in best.get(m.key, [])
        value = html.escape(formatted(m.key, measures.get(m.key)))
        mark = f'<br><b class="relay-lab-best">{html.escape(say(lang, "lab_best"))}</b>' if star else ""
        rows.append(f'<tr data-measure="{m.key}"><th>{html.escape(m.label(lang))}'
                    f'<div class="relay-lab-help">{html.escape(m.help(lang))}</div></th>'
                    f'<td class="relay-lab-value">{value}{mark}</td></tr>')
    head = "".join(f"<th>{html.escape(say(lang, k))}</th>" for k in ("lab_measure", "lab_value"))
    return f'<table class="relay-lab-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
