"""The sampling lab tab: one context, 2-4 settings side by side, each with its seed; copy the best into the story."""

from __future__ import annotations

import re

import gradio as gr

from relay.settings import PRESETS, SamplingSettings, SettingsError
from relay.settings import EngineError
from relay.ui.controls import (_setting_component, i18n_key, setting_limits, settings_from_values, settings_to_values,
                               wire_range_checks)
from relay.ui.messages import info, user_error, warn
from relay.ui.render import seed_line
from relay.ui_text import say

LAB_COLUMNS = 4
LAB_FIELDS = ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "stop_at", "seed")
PARAGRAPH_BREAK = re.compile(r"\n[ \t\u3000]*\n\s*")  # a blank line; a single newline stays inside a paragraph


def lab_paragraphs(context: str | None) -> list[str]:
    """The lab's context as paragraphs: a blank line separates them, single newlines stay inside one."""
    return [p.strip("\n") for p in PARAGRAPH_BREAK.split(context or "") if p.strip()]


def assembled_context(engine, store, ai_turn, story_id: int) -> str:
    """The text the story's next model turn reads (relay/context.py) as the lab's context, a blank line between
    paragraphs: the memory, the cards, the story's paragraphs in the window as written, the note where it goes.
    The story's own settings give the room left to write."""
    story = store.get_story(story_id)
    try:
        settings = SamplingSettings.from_dict(story.settings or {})
    except SettingsError:
        settings = SamplingSettings()
    timeline = store.timeline(story_id)
    assembly = engine.assemble([p.text for p in timeline], settings, ai_turn.steering(story_id))
    parts = []
    for block in assembly.blocks:
        if block.kind == "story" and block.paragraphs is None:
            continue  # an empty story: nothing to read yet
        if block.kind == "story" and not block.cut:  # whole paragraphs: as written (a line break stays inside)
            first, last = block.paragraphs
            parts += [p.text.strip("\n") for p in timeline[first:last + 1]]
        else:
            parts.append(engine.block_text(block.ids).strip("\n"))
    return "\n\n".join(parts)


def build_lab_tab(ui) -> None:
    """Lay out the lab inside the current gr.Tab and wire its events; `ui` is the page's shared UIContext."""
    engine, store, cancels, defaults = ui.engine, ui.store, ui.cancels, ui.defaults
    story_state, lang_state, adapter, tabs, controls, names = (ui.story_state, ui.lang_state, ui.adapter, ui.tabs,
                                                               ui.controls, ui.names)
    specs = SamplingSettings.specs()
    private, model_queue = ui.private, ui.model_queue
    gr.Markdown(i18n_key("lab_intro"))
    lab_context = gr.Textbox(label=i18n_key("lab_context"), lines=8, max_lines=30, elem_id="relay-lab-context")
    with gr.Row():
        lab_from_story = gr.Button(i18n_key("lab_from_story"), size="sm")
        lab_n = gr.Slider(2, LAB_COLUMNS, value=2, step=1, label=i18n_key("lab_columns"))
        lab_run = gr.Button(i18n_key("lab_run"), variant="primary", elem_id="relay-lab-run")
    lab_columns, lab_controls, lab_presets, lab_outputs, lab_seeds, lab_use = [], [], [], [], [], []
    unsupported = frozenset(getattr(engine, "unsupported_settings", frozenset()))
    lab_specs = [s for s in specs if s.name in LAB_FIELDS and s.name not in unsupported]
    limits = setting_limits(engine)
    start_presets = list(PRESETS)
    with gr.Row():
        for i in range(LAB_COLUMNS):
            p0 = start_presets[i % len(start_presets)]
            with gr.Column(visible=i < 2, min_width=200) as col:
                gr.Markdown(f"**#{i + 1}**")
                lab_presets.append(gr.Dropdown(choices=[(i18n_key(f"preset.{p}"), p) for p in PRESETS],
                                               value=p0, label=i18n_key("preset")))
                lab_controls.append([_setting_component(s, getattr(PRESETS[p0], s.name), limits,
                                                        elem_id=f"relay-lab-{s.name}-{i}") for s in lab_specs])
                lab_outputs.append(gr.Textbox(label=i18n_key("lab_output"), lines=8, interactive=False,
                                              elem_id=f"relay-lab-out-{i}"))
                lab_seeds.append(gr.Markdown())
                lab_use.append(gr.Button(i18n_key("lab_use"), size="sm"))
            lab_columns.append(col)

    def lab_show(n):
        return [gr.Column(visible=i < int(n)) for i in range(LAB_COLUMNS)]

    lab_n.change(lab_show, [lab_n], lab_columns, **private)

    def lab_take_story(story_id, lang):
        """What the model reads of the open story next turn (memory, cards, story window, note, as the story's
        own model turn assembles them), one paragraph per block of lines."""
        if story_id in (None, ""):
            warn(lang, say(lang, "need_story"))
            return gr.skip()
        return assembled_context(engine, store, ui.ai_turn, int(story_id))

    lab_from_story.click(lab_take_story, [story_state, lang_state], [lab_context], **private)

    lab_names = [s.name for s in lab_specs]
    per_column = 1 + len(lab_names)  # preset + its controls
    lab_used = gr.State([None] * LAB_COLUMNS)  # per column: the settings (with seed) of its last output

    def lab_settings(preset_name, values) -> SamplingSettings:
        base_settings = PRESETS.get(preset_name, defaults)
        merged = {**base_settings.to_dict(), **dict(zip(lab_names, values))}
        return settings_from_values(list(merged), list(merged.values()), limits)

    def lab_inputs_checked(context, n, lang, flat) -> tuple[list[str], list[SamplingSettings]]:
        paragraphs = lab_paragraphs(context)
        if not paragraphs:
            raise user_error(lang, say(lang, "lab_need_context"))
        columns = [flat[i * per_column:(i + 1) * per_column] for i in range(LAB_COLUMNS)]
        try:
            return paragraphs, [lab_settings(col[0], col[1:]) for col in columns[:int(n)]]
        except SettingsError as e:
            raise user_error(lang, e) from None

    def lab_check(context, n, adapter_name, lang, *flat):
        """Refuse a run that cannot start, from a step without outputs (so no output keeps an error badge)."""
        lab_inputs_checked(context, n, lang, flat)

    def lab_generate(request: gr.Request, context, n, adapter_name, lang, *flat):
        paragraphs, settings = lab_inputs_checked(context, n, lang, flat)
        outputs = [""] * LAB_COLUMNS
        seeds = [""] * LAB_COLUMNS
        used = [None] * LAB_COLUMNS
        cancel = cancels.fresh(request.session_hash or "")
        try:
            for i, s in enumerate(settings):
                continuation = engine.continue_story(paragraphs, s, adapter=adapter_name or None, cancel=cancel)
                try:
                    for chunk in continuation:
                        outputs[i] += chunk
                        yield *outputs, *seeds, used
                finally:
                    continuation.close()
                outputs[i] = continuation.text
                seeds[i] = seed_line(continuation.meta, lang)
                used[i] = continuation.meta["settings"]
                yield *outputs, *seeds, used
        except EngineError as e:
            raise user_error(lang, e) from None
        finally:
            cancels.done(request.session_hash or "", cancel)

    lab_inputs = [lab_context, lab_n, adapter, lang_state]
    for i in range(LAB_COLUMNS):
        lab_inputs += [lab_presets[i], *lab_controls[i]]
    lab_run.click(lab_check, lab_inputs, None, **private).success(
        lab_generate, lab_inputs, [*lab_outputs, *lab_seeds, lab_used], **model_queue, **private)

    def lab_preset(name):
        return settings_to_values(lab_names, PRESETS[name]) if name in PRESETS else [gr.skip()] * len(lab_names)

    for i in range(LAB_COLUMNS):
        lab_presets[i].input(lab_preset, [lab_presets[i]], lab_controls[i], **private)
        wire_range_checks(lab_specs, lab_controls[i], lang_state, limits, private)

    def lab_use_column(i):
        def use(lang, used, preset_name, *values):
            """The column's settings as they produced its output (seed included), else as set now."""
            try:
                s = SamplingSettings.from_dict(used[i]) if used and used[i] else lab_settings(preset_name, values)
            except SettingsError as e:
                raise user_error(lang, e) from None
            info(lang, say(lang, "lab_applied", n=i + 1))
            return (gr.Tabs(selected="story"), *settings_to_values(names, s))
        return use

    for i in range(LAB_COLUMNS):
        lab_use[i].click(lab_use_column(i), [lang_state, lab_used, lab_presets[i], *lab_controls[i]], [tabs, *controls],
                         **private)
