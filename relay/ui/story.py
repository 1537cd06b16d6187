"""The story list and the story tab's layout, and the wiring of their events to the handlers.

What the story shows (header, whose turn, the timeline, the model's text as it is written) comes
from the live stream (relay/live.py + live.js), not from the handlers: a handler changes the
store, and every tab on the story, this one included, sees the change through the stream. The
handlers only fill this tab's own boxes (the composer, the suggestion being chosen). They live by
what the writer does: relay/ui/story_list.py (list, new story), relay/ui/composer.py (a human
paragraph), relay/ui/desk.py (the model's turn and its suggestions), relay/ui/export.py and
relay/ui/page_load.py (language, writer, the story in the address); relay/ui/story_services.py
holds the services they share.
"""

from __future__ import annotations

import functools

import gradio as gr

from relay.ui.branch import Branch
from relay.ui.composer import Composer
from relay.ui.controls import build_settings_panel, i18n_key
from relay.ui.desk import DESK_SLOTS, MAX_ALTERNATIVES, TOUCH_EVERY_S, Desk
from relay.ui.export import EXPORT_FORMATS, Export
from relay.ui.history import HOST_ID, build_history_panel
from relay.ui.page_load import PageLoad, remember_name
from relay.ui.render import LIVE_SLOTS
from relay.ui.story_list import StoryList
from relay.ui.steering import build_steering_panel
from relay.ui.story_services import StoryServices
from relay.ui.token_view import legend_html
from relay.ui_text import say

__all__ = ["TOUCH_EVERY_S", "build_story_tabs"]  # demo.py takes the touch timer's period from here

# The page script follows the open story: (re)connect its live stream whenever the story changes.
# (The page script picks the language the server picked: the browser's first language.)
OPEN_LIVE_JS = "(story, writer) => { window.__relayMe = writer; window.relayLive && relayLive.open(story, null, writer); }"
# A human paragraph is checked against the last paragraph this tab actually shows.
# and carries one id per draft, so a retried add is stored once.
WITH_SEEN_HEAD_JS = """(...args) => {
  args[args.length - 2] = window.relayLive ? relayLive.head() : 0;
  args[args.length - 1] = window.relayLive ? relayLive.draftId() : "";
  return args;
}"""
# "Next" on the last suggestion (or the only one) writes a new one: the page presses 다시 쓰기 (which
# checks the turn and the limits as ever); the flip handler leaves the desk as it is then.
SWIPE_PAST_LAST_JS = """(...args) => {
  const info = (document.getElementById('relay-swipe-info')?.innerText || '').match(/(\\d+)\\s*\\/\\s*(\\d+)/);
  if (!info || info[1] === info[2]) document.getElementById('relay-regen')?.click();
  return args;
}"""
# A second tab (or a reload) of the writer whose suggestions wait: load them into this tab's preview.
SYNC_TURN_JS = """() => {
  relayLive.onTurnChange((ts) => {
    const preview = document.querySelector('#relay-preview textarea');
    if (ts && ts.status === 'pending' && preview && !preview.value && window.__relayMe && ts.holder_id === window.__relayMe
        && !window.__relayTakingOver) {
      document.getElementById('relay-turn-sync')?.click();
    }
  });
}"""
# "이어받기" fills this tab's desk itself: while its answer is on the way, the turn changing hands must not also
# ask SYNC_TURN_JS to fill it, or that second, later answer could overwrite what the writer typed meanwhile.
TAKING_OVER_JS = "(...args) => { window.__relayTakingOver = true; return args; }"
TAKEN_OVER_JS = "() => { setTimeout(() => { window.__relayTakingOver = false; }, 0); }"
# A reload (or another tab of the same writer) while the model writes for them: follow that turn in the box.
# Asked once per story the tab opens: the tab that started the turn follows it already.
FOLLOW_TURN_JS = """() => {
  let checked = null;
  relayLive.onTurnChange((ts) => {
    const story = relayLive.story();
    if (checked === story) return;
    checked = story;
    if (ts && ts.status === 'writing' && window.__relayMe && ts.holder_id === window.__relayMe) {
      document.getElementById('relay-turn-follow')?.click();
    }
  });
}"""
# A new toast replaces the ones shown before (closed as if by their ×), so messages never pile up over the desk.
ONE_TOAST_JS = """() => {
  const seen = new WeakSet();
  new MutationObserver(() => {
    const toasts = [...document.querySelectorAll('[data-testid="toast-body"]')];
    const fresh = toasts.filter((t) => !seen.has(t));
    if (!fresh.length) return;
    toasts.filter((t) => seen.has(t)).forEach((t) => t.querySelector('[data-testid="toast-close"]')?.click());
    fresh.forEach((t) => seen.add(t));
  }).observe(document.body, { childList: true, subtree: true });
}"""
# The model's turn changing hands: "이어받기" shows for co-writers once a waiting suggestion may be taken over
# (its writer left for the grace period); the holder's tab, when its turn was taken or expired, shows why in
# place of the suggestion at once, without a click.
TURN_HANDOVER_JS = """() => {
  let mine = false, story = null;
  relayLive.onTurnChange((ts) => {
    const me = window.__relayMe;
    const take = document.getElementById('relay-takeover');
    if (take) take.classList.toggle('relay-hidden', !(ts && ts.status === 'pending' && ts.takeover && me && ts.holder_id !== me));
    const nowMine = !!(ts && me && ts.holder_id === me);
    const preview = document.querySelector('#relay-preview textarea');
    const same = story === relayLive.story();
    story = relayLive.story();
    if (same && mine && !nowMine && preview && preview.value) document.getElementById('relay-turn-ended')?.click();
    mine = nowMine;
  });
}"""


# A branch from the token popover (token_view.js put {"candidate", "at", "choice"} in window.__relayBranch).
WITH_BRANCH_JS = """(...args) => {
  args[args.length - 1] = window.__relayBranch || "";
  window.__relayBranch = "";
  return args;
}"""
PROBS_TOGGLE_JS = "(on) => { window.relayTokens && relayTokens.setOn(on); }"
PROBS_REMEMBERED_JS = "() => !!(window.relayTokens && relayTokens.remembered())"


def _both(ko: str, en: str) -> str:
    return f'<span class="relay-ko">{ko}</span><span class="relay-en">{en}</span>'


DESK_TOGGLE_HTML = (
    '<button type="button" id="relay-desk-toggle" aria-controls="relay-desk" aria-expanded="true">'
    f'<span class="relay-fold-open">{_both("▾ 쓰기 창 접기", "▾ Fold the desk")}</span>'
    f'<span class="relay-fold-closed">{_both("▴ 쓰기 창 펼치기", "▴ Open the desk")}</span></button>'
)


def build_story_tabs(ui) -> None:
    """The "stories" and "story" tabs inside the page's gr.Tabs, with their events; fills ui.controls/ui.adapter."""
    engine, names, private = ui.engine, ui.names, ui.private
    adapter_choices = [(say("ko", "base_model"), "")] + [(a, a) for a in engine.adapter_names]
    turn_view = ui.turn_view
    touch_timer = ui.touch_timer
    seen_head = ui.seen_head  # replaced by the page script with the last paragraph the tab shows

    with gr.Tab(i18n_key("tab_stories"), id="stories") as stories_tab:
        stories_html = gr.HTML(elem_id="relay-stories")
        refresh_btn = gr.Button(i18n_key("refresh"), size="sm")
        gr.Markdown(i18n_key("new_story"))
        with gr.Group():
            new_title = gr.Textbox(label=i18n_key("new_title"), max_length=100, elem_id="relay-new-title")
            new_rule = gr.Radio(choices=[(i18n_key("rule_alternate"), "alternate"), (i18n_key("rule_free"), "free")],
                                value="alternate", label=i18n_key("turn_rule"))
            create_btn = gr.Button(i18n_key("create"), variant="primary", elem_id="relay-create")

    with gr.Tab(i18n_key("tab_story"), id="story"):
        no_story = gr.Markdown(i18n_key("no_story_open"), elem_id="relay-no-story")
        with gr.Row():
            reading = gr.Checkbox(label=i18n_key("reading_view"), value=False, elem_id="relay-reading")
            # Colours every model-written token by its probability (relay/ui/token_view.py, token_view.js).
            probs = gr.Checkbox(label=i18n_key("probs_toggle"), value=False, elem_id="relay-probs")
        gr.HTML(f'<div class="relay-tk-key">{_both(legend_html("ko"), legend_html("en"))}</div>', padding=False,
                elem_id="relay-probs-key")
        gr.HTML(LIVE_SLOTS, elem_id="relay-live-root")
        gr.HTML('<div id="relay-presence"></div>', elem_id="relay-presence-root")  # who is here (live.js fills it)
        # The writing desk sticks to the bottom of the window: the newest paragraphs, the suggestion being
        # chosen and the composer stay on screen together at any story length, on a phone too.
        with gr.Column(elem_id="relay-desk"):
            # The writer folds the desk down to this bar and opens it again (live.js; remembered in the browser).
            gr.HTML(DESK_TOGGLE_HTML, elem_id="relay-desk-toggle-root", padding=False)
            # Shown only while its box holds a suggestion (CSS in render.py: an empty box shows its placeholder).
            with gr.Group(elem_id="relay-suggestion"):
                preview = gr.Textbox(label=i18n_key("preview"), lines=3, max_lines=10, interactive=True,
                                     placeholder="…", elem_id="relay-preview")
                # The suggestion's tokens coloured by probability, when the page's toggle is on (branch.py).
                preview_tokens = gr.HTML(elem_id="relay-preview-tokens", padding=False)
                with gr.Row(elem_classes=["relay-swipe"]):
                    prev_btn = gr.Button(i18n_key("swipe_prev"), size="sm", elem_id="relay-swipe-prev",
                                         interactive=False, min_width=60)
                    swipe_info = gr.Markdown(elem_id="relay-swipe-info")
                    next_btn = gr.Button(i18n_key("swipe_next"), size="sm", elem_id="relay-swipe-next",
                                         interactive=False, min_width=60)
                with gr.Row(visible=False) as alts_row:
                    alt_boxes, alt_tokens, pick_btns = [], [], []
                    for i in range(MAX_ALTERNATIVES):
                        with gr.Column(min_width=120):
                            alt_boxes.append(gr.Textbox(label=f"#{i + 1}", lines=4, interactive=False,
                                                        elem_id=f"relay-alt-{i}"))
                            alt_tokens.append(gr.HTML(elem_id=f"relay-alt-tokens-{i}", padding=False))
                            pick_btns.append(gr.Button(i18n_key("pick"), size="sm", elem_id=f"relay-pick-{i}"))
                seed_info = gr.Markdown(elem_id="relay-seed-info")
                with gr.Row():
                    accept_btn = gr.Button(i18n_key("accept"), variant="primary", elem_id="relay-accept", min_width=80)
                    regen_btn = gr.Button(i18n_key("regenerate"), elem_id="relay-regen", min_width=80)
                    extend_btn = gr.Button(i18n_key("extend"), elem_id="relay-extend", min_width=80)
                    discard_btn = gr.Button(i18n_key("discard"), elem_id="relay-discard", min_width=80)
                    use_seed_btn = gr.Button(i18n_key("use_seed"), size="sm", min_width=80)
            with gr.Group():
                composer = gr.Textbox(label=i18n_key("composer"), placeholder=i18n_key("composer_ph"), lines=2,
                                      max_lines=10, elem_id="relay-composer")
                with gr.Row():
                    add_btn = gr.Button(i18n_key("add"), variant="primary", elem_id="relay-add", min_width=80)
                    ai_btn = gr.Button(i18n_key("ai_continue"), variant="primary", elem_id="relay-ai", min_width=80)
                    alts_btn = gr.Button(i18n_key("alternatives"), elem_id="relay-alts", min_width=80)
                    stop_btn = gr.Button(i18n_key("stop"), variant="stop", elem_id="relay-stop", min_width=60)
                    # Shown by the page script when a co-writer's waiting suggestion may be taken over.
                    takeover_btn = gr.Button(i18n_key("take_over"), elem_id="relay-takeover", min_width=80,
                                             elem_classes=["relay-hidden"])
                # Why "AI 이어쓰기" is disabled now, if it is (the page script fills it from the live stream).
                gr.HTML('<div id="relay-ai-reason" class="relay-ai-reason"></div>', elem_id="relay-ai-reason-root",
                        padding=False)
        # Clicked by the page script (never by a person): in the page but not shown, unlike visible=False.
        sync_btn = gr.Button("sync", elem_id="relay-turn-sync", elem_classes=["relay-hidden"])
        follow_btn = gr.Button("follow", elem_id="relay-turn-follow", elem_classes=["relay-hidden"])
        ended_btn = gr.Button("ended", elem_id="relay-turn-ended", elem_classes=["relay-hidden"])
        branch_btn = gr.Button("branch", elem_id="relay-branch-go", elem_classes=["relay-hidden"])
        branch_request = gr.Textbox(visible=False)  # replaced by WITH_BRANCH_JS with what the popover asked

        with gr.Accordion(i18n_key("sampling"), open=False, elem_id="relay-sampling"):
            adapter = gr.Dropdown(choices=adapter_choices, value="", label=i18n_key("adapter"),
                                  visible=bool(engine.adapter_names))
            controls = build_settings_panel(ui)
            n_alts = gr.Slider(2, MAX_ALTERNATIVES, value=3, step=1, label=i18n_key("n_alternatives"))

        # Memory, author's note, story cards and what the model reads (relay/ui/steering.py).
        steer = build_steering_panel(ui, controls)

        with gr.Accordion(i18n_key("more"), open=False, elem_id=HOST_ID):
            build_history_panel(ui)
            with gr.Row():
                export_fmt = gr.Radio(choices=list(EXPORT_FORMATS), value="txt", label=i18n_key("export_fmt"))
                export_btn = gr.Button(i18n_key("export"))
                export_file = gr.File(label=i18n_key("export_file"), interactive=False, elem_id="relay-export-file")

    ui.adapter, ui.controls = adapter, controls
    story_state, lang_state, writer, writer_key, writer_id = (ui.story_state, ui.lang_state, ui.writer, ui.writer_key,
                                                              ui.writer_id)
    desk_outputs = [preview, turn_view, swipe_info, prev_btn, next_btn, seed_info, touch_timer, accept_btn]
    assert len(desk_outputs) == DESK_SLOTS
    services = StoryServices.from_ui(ui)
    page, stories, human, desk, export = (PageLoad(services), StoryList(services), Composer(services), Desk(services),
                                          Export(services))
    branch = Branch(desk)

    # -- page load, writer, story list -------------------------------------------------------

    ui_load = [lang_state, writer, writer_key, writer_id, stories_html, ui.tabs, story_state, no_story, *controls,
               *desk_outputs]
    ui.demo.load(page.on_load, [ui.writer_saved, writer_key], ui_load, **private)
    ui.demo.load(None, None, None, js=SYNC_TURN_JS)
    ui.demo.load(None, None, None, js=FOLLOW_TURN_JS)
    ui.demo.load(None, None, None, js=TURN_HANDOVER_JS)
    ui.demo.load(None, None, None, js=ONE_TOAST_JS)
    writer.change(remember_name, [writer], [ui.writer_saved], **private)

    story_state.change(None, [story_state, writer_id], None, js=OPEN_LIVE_JS)
    reading.change(None, [reading], None, js="(on) => { window.relayLive && relayLive.setReading(on); }")
    ui.demo.load(None, None, [probs], js=PROBS_REMEMBERED_JS)
    probs.change(None, [probs], None, js=PROBS_TOGGLE_JS)

    refresh_btn.click(stories.refresh_list, [lang_state], [stories_html], **private)
    stories_tab.select(stories.refresh_list, [lang_state], [stories_html], show_progress="hidden", **private)
    create_btn.click(stories.create, [new_title, new_rule, writer, writer_key, lang_state, *controls],
                     [stories_html, new_title, ui.tabs, story_state, no_story, *desk_outputs], **private)

    # -- a human turn --------------------------------------------------------------------------

    add_btn.click(human.add, [story_state, composer, writer, writer_key, lang_state, seen_head, ui.draft_id],
                  [composer], js=WITH_SEEN_HEAD_JS, **private).success(
        None, js="() => { if (window.relayLive) { relayLive.hold(false); relayLive.newDraft(); } }").then(
        None, js="() => { window.relayLive && relayLive.hold(false); }")

    # -- the model's turn ----------------------------------------------------------------------

    gen_inputs = [story_state, writer, writer_key, turn_view, adapter, lang_state, *controls, steer.turn_note]
    precheck = dict(fn=desk.may_start, inputs=[story_state, writer, writer_key, lang_state], outputs=None,
                    concurrency_limit=None, **private)
    for button in (ai_btn, regen_btn):
        button.click(**precheck).success(desk.generate, gen_inputs, desk_outputs, **ui.model_queue, **private)

    # Branching a suggestion at a token, and 더 쓰기 (relay/ui/branch.py): new swipes of the same turn.
    branch_btn.click(**precheck).success(branch.branch, [*gen_inputs, branch_request], desk_outputs, js=WITH_BRANCH_JS,
                                         **ui.model_queue, **private)
    extend_btn.click(**precheck).success(branch.extend, gen_inputs, desk_outputs, **ui.model_queue, **private)
    token_outputs = dict(outputs=[preview_tokens, *alt_tokens], show_progress="hidden", **private)
    turn_view.change(branch.token_panels_for_view, [turn_view, lang_state], **token_outputs)
    preview.blur(branch.token_panels, [turn_view, preview, lang_state], **token_outputs)  # an edit gets its note

    stop_btn.click(desk.stop_generation, [story_state, writer, writer_key], None, queue=False, **private)

    alts_btn.click(**precheck).success(desk.alternatives, [story_state, writer, writer_key, turn_view, n_alts, adapter,
                                                           lang_state, *controls, steer.turn_note],
                                       [*desk_outputs, alts_row, *alt_boxes, *pick_btns],
                                       **ui.model_queue, **private)

    for i, button in enumerate(pick_btns):
        button.click(_bound(desk.pick, i), [turn_view, lang_state], desk_outputs, **private)
    prev_btn.click(_bound(desk.flip, -1), [turn_view, lang_state], desk_outputs, **private)
    next_btn.click(_bound(desk.flip, +1), [turn_view, lang_state], desk_outputs, js=SWIPE_PAST_LAST_JS, **private)

    sync_btn.click(desk.sync_turn, [story_state, writer, writer_key, lang_state], desk_outputs, **private)
    follow_btn.click(desk.follow, [story_state, writer, writer_key, lang_state], desk_outputs, **ui.model_queue,
                     **private)
    ended_btn.click(desk.turn_ended, [story_state, writer, writer_key, turn_view, lang_state], desk_outputs,
                    show_progress="hidden", **private)
    takeover_btn.click(desk.take_over, [story_state, writer, writer_key, lang_state], desk_outputs, js=TAKING_OVER_JS,
                       **private).then(None, js=TAKEN_OVER_JS)

    accept_btn.click(desk.accept, [story_state, turn_view, preview, writer, writer_key, lang_state], desk_outputs,
                     **private).success(lambda: gr.Row(visible=False), None, [alts_row], **private)
    discard_btn.click(desk.discard, [story_state, writer, writer_key, lang_state], desk_outputs, **private).then(
        lambda: gr.Row(visible=False), None, [alts_row], **private)

    touch_timer.tick(desk.touch, [story_state, writer, writer_key, turn_view, preview], [touch_timer, turn_view],
                     show_progress="hidden", **private)

    # -- sampling controls (the panel wires its own presets and reset: relay/ui/controls.py) -------

    use_seed_btn.click(desk.reuse_seed, [turn_view], [controls[names.index("seed")]], **private)

    # -- export (undo, redo, edit, fork and import live in relay/ui/history.py) ---------------------

    export_btn.click(export.export, [story_state, export_fmt, lang_state, ui.writer_key], [export_file], **private)


def _bound(handler, *first):
    """`handler` with its first arguments fixed, under its own name (Gradio names an event after its function).

    Only for handlers without gr.Request or other injected parameters: Gradio reads those from the type
    hints of a function or method, which a functools.partial hides.
    """
    bound = functools.partial(handler, *first)
    bound.__name__ = handler.__name__
    return bound
