"""The sampling lab tab, wiring only: one context (typed, or what the open story's next model turn reads), the
measured columns (relay/ui/lab_columns.py) and the sweep (relay/ui/lab_sweep.py)."""

from __future__ import annotations

import gradio as gr

from relay.limits import LimitExceeded
from relay.settings import SamplingSettings, SettingsError
from relay.ui.common import ui_error
from relay.ui.controls import i18n_key
from relay.ui.lab_columns import LAB_COLUMNS, LabColumns, lab_paragraphs  # noqa: F401  (lab_paragraphs: its old home)
from relay.ui.lab_sweep import LabSweep
from relay.ui.messages import user_error, warn
from relay.ui_text import say

LAB_CSS = """
.relay-lab-table { width: 100%; border-collapse: collapse; font-size: 0.85rem; }
.relay-lab-table th, .relay-lab-table td { border-bottom: 1px solid var(--border-color-primary, #ddd);
  padding: 0.2rem 0.3rem; text-align: left; vertical-align: top; }
.relay-lab-table td.relay-lab-value { white-space: nowrap; font-variant-numeric: tabular-nums; }
.relay-lab-table th { font-weight: 600; }
.relay-lab-table .relay-lab-help { font-size: 0.75rem; font-weight: 400; opacity: 0.8; margin-top: 0.1rem; }
.relay-lab-best { color: #15803d; }
/* The lab's token view shows whether or not the story's "show probabilities" toggle is on. */
body:not(.relay-probs-on) .relay-lab-tokens .relay-tokens { display: block !important; }
"""


def assembled_context(engine, store, ai_turn, story_id: int) -> str:
    """The text the story's next model turn reads (relay/context.py) as the lab's context, a blank line between
    paragraphs: the memory, the cards, the story's paragraphs in the window as written, the note where it goes.
    The story's own settings give the room left to write."""
    story = store.get_story(story_id)
    try:
        settings = SamplingSettings.of_story(story.settings)
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
    gr.HTML(f"<style>{LAB_CSS}</style>", padding=False, visible=True)
    gr.Markdown(i18n_key("lab_intro2"))
    context = gr.Textbox(label=i18n_key("lab_context"), lines=6, max_lines=30, elem_id="relay-lab-context")
    with gr.Row():
        from_story = gr.Button(i18n_key("lab_from_story"), size="sm")
        n_columns = gr.Slider(2, LAB_COLUMNS, value=2, step=1, label=i18n_key("lab_columns"),
                              elem_id="relay-lab-columns")
        run_btn = gr.Button(i18n_key("lab_run"), variant="primary", elem_id="relay-lab-run")
        stop_btn = gr.Button(i18n_key("lab_stop"), variant="stop", elem_id="relay-lab-stop")
    columns = LabColumns(ui)
    columns.build()
    sweep = LabSweep(ui, columns)
    sweep.build()

    def paragraphs_of(text, lang) -> list[str]:
        paragraphs = lab_paragraphs(text)
        if not paragraphs:
            raise user_error(lang, say(lang, "lab_need_context"))
        ui.limits.check_context(text)  # LimitExceeded -> the caller's message
        return paragraphs

    def checked_paragraphs(text, lang) -> list[str]:
        try:
            return paragraphs_of(text, lang)
        except LimitExceeded as e:
            raise ui_error(lang, e, length=len(text or "")) from None

    def take_story(story_id, lang):
        """What the model reads of the open story next turn, one paragraph per block of lines."""
        if story_id in (None, ""):
            warn(lang, say(lang, "need_story"))
            return gr.skip()
        return assembled_context(ui.engine, ui.store, ui.ai_turn, int(story_id))

    from_story.click(take_story, [ui.story_state, ui.lang_state], [context], **ui.private)
    columns.wire(context, n_columns, run_btn, stop_btn, checked_paragraphs)
    sweep.wire(context, checked_paragraphs)
