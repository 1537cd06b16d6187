"""The story list and the story tab: read a story live, add paragraphs, and take the model's turn.

What the story shows (header, whose turn, the timeline, the model's text as it is written) comes
from the live stream (relay/live.py + live.js), not from these handlers: a handler changes the
store, and every tab on the story, this one included, sees the change through the stream. The
handlers here only fill this tab's own boxes (the composer, the suggestion being chosen).
"""

from __future__ import annotations

import contextlib
import time

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.settings import SamplingSettings, SettingsError
from relay.story_store import (InvalidInput, NotAllowed, NotFound, StaleHeadError, StoryError, TurnError, TurnLost,
                               writer_id_of)
from relay.ui.common import _lang, _need_name, _need_story, export_path, page_writer, ui_error
from relay.ui.controls import build_settings_panel, i18n_key, setting_limits, settings_from_values, settings_to_values
from relay.ui.history import HOST_ID, build_history_panel
from relay.ui.messages import info, user_error, warn
from relay.ui.render import LIVE_SLOTS, _esc, render_story_list, seed_line
from relay.ui_text import say

EXPORT_FORMATS = ("txt", "md", "json")
SHOW_EVERY_S = 0.08  # streamed text reaches the browser at most this often (a paint per token is wasted work)
DISCARD_WAIT_S = 2.0  # a discarded generation stops within a token; wait at most this long for it
TOUCH_EVERY_S = 60  # while a suggestion is being edited, its turn's idle timer is refreshed this often

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
# A second tab (or a reload) of the writer whose suggestions wait: load them into this tab's preview.
SYNC_TURN_JS = """() => {
  relayLive.onTurnChange((ts) => {
    const preview = document.querySelector('#relay-preview textarea');
    if (ts && ts.status === 'pending' && preview && !preview.value && window.__relayMe && ts.holder_id === window.__relayMe) {
      document.getElementById('relay-turn-sync')?.click();
    }
  });
}"""


def build_story_tabs(ui) -> None:
    """The "stories" and "story" tabs inside the page's gr.Tabs, with their events; fills ui.controls/ui.adapter."""
    engine, store, ai_turn, stops, names, defaults = ui.engine, ui.store, ui.ai_turn, ui.cancels, ui.names, ui.defaults
    private = ui.private
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
        reading = gr.Checkbox(label=i18n_key("reading_view"), value=False, elem_id="relay-reading")
        gr.HTML(LIVE_SLOTS, elem_id="relay-live-root")
        # The writing desk sticks to the bottom of the window: the newest paragraphs, the suggestion being
        # chosen and the composer stay on screen together at any story length, on a phone too.
        with gr.Column(elem_id="relay-desk"):
            # Shown only while its box holds a suggestion (CSS in render.py: an empty box shows its placeholder).
            with gr.Group(elem_id="relay-suggestion"):
                preview = gr.Textbox(label=i18n_key("preview"), lines=3, max_lines=10, interactive=True,
                                     placeholder="…", elem_id="relay-preview")
                with gr.Row(elem_classes=["relay-swipe"]):
                    prev_btn = gr.Button(i18n_key("swipe_prev"), size="sm", elem_id="relay-swipe-prev",
                                         interactive=False, min_width=60)
                    swipe_info = gr.Markdown(elem_id="relay-swipe-info")
                    next_btn = gr.Button(i18n_key("swipe_next"), size="sm", elem_id="relay-swipe-next",
                                         interactive=False, min_width=60)
                with gr.Row(visible=False) as alts_row:
                    alt_boxes, pick_btns = [], []
                    for i in range(4):
                        with gr.Column(min_width=120):
                            alt_boxes.append(gr.Textbox(label=f"#{i + 1}", lines=4, interactive=False,
                                                        elem_id=f"relay-alt-{i}"))
                            pick_btns.append(gr.Button(i18n_key("pick"), size="sm", elem_id=f"relay-pick-{i}"))
                seed_info = gr.Markdown(elem_id="relay-seed-info")
                with gr.Row():
                    accept_btn = gr.Button(i18n_key("accept"), variant="primary", elem_id="relay-accept", min_width=80)
                    regen_btn = gr.Button(i18n_key("regenerate"), elem_id="relay-regen", min_width=80)
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
        # Clicked by the page script (never by a person): in the page but not shown, unlike visible=False.
        sync_btn = gr.Button("sync", elem_id="relay-turn-sync", elem_classes=["relay-hidden"])

        with gr.Accordion(i18n_key("sampling"), open=False, elem_id="relay-sampling"):
            adapter = gr.Dropdown(choices=adapter_choices, value="", label=i18n_key("adapter"),
                                  visible=bool(engine.adapter_names))
            controls = build_settings_panel(ui)
            n_alts = gr.Slider(2, 4, value=3, step=1, label=i18n_key("n_alternatives"))

        with gr.Accordion(i18n_key("more"), open=False, elem_id=HOST_ID):
            build_history_panel(ui)
            with gr.Row():
                export_fmt = gr.Radio(choices=list(EXPORT_FORMATS), value="txt", label=i18n_key("export_fmt"))
                export_btn = gr.Button(i18n_key("export"))
                export_file = gr.File(interactive=False, elem_id="relay-export-file")

    ui.adapter, ui.controls = adapter, controls
    story_state, lang_state, writer, writer_key, writer_id = (ui.story_state, ui.lang_state, ui.writer, ui.writer_key,
                                                              ui.writer_id)
    limits, setting_range = ui.limits, setting_limits(engine)
    desk_outputs = [preview, turn_view, swipe_info, prev_btn, next_btn, seed_info, touch_timer, accept_btn]

    def story_defaults(story) -> SamplingSettings:
        try:
            return SamplingSettings.from_dict(story.settings or {})
        except SettingsError:
            return defaults

    def desk(lang: str, view: dict | None, text: str | None = None, meta: dict | None = None):
        """This tab's suggestion box for `view` (the turn's suggestions and which one shows), as outputs."""
        if not view or not view.get("ids"):
            return ("", None, "", gr.Button(interactive=False), gr.Button(interactive=False), "", gr.Timer(active=False),
                    gr.Button(interactive=True))
        ids, i = view["ids"], view["index"]
        if text is None:
            candidate = store.get_candidate(ids[i])
            text, meta = candidate.text, candidate.meta
        info = say(lang, "swipe_of", i=i + 1, n=len(ids)) if len(ids) > 1 else ""
        view = {**view, "seen_text": text}
        return (text, view, info, gr.Button(interactive=i > 0), gr.Button(interactive=i < len(ids) - 1),
                seed_line(meta, lang) if meta else "", gr.Timer(active=True), gr.Button(interactive=True))

    def my_turn_view(sid: int, name: str, key: str) -> dict | None:
        """The suggestions waiting in this writer's model turn on the story (after a reload or in a second tab)."""
        turn = store.ai_turn(sid)
        if turn is None or not turn.candidates or turn.status != "pending":
            return None
        if turn.holder_id is not None and (not key or writer_id_of(key) != turn.holder_id):
            return None
        if turn.holder_id is None and turn.holder != name:
            return None
        head = store.head(sid)
        return {"ids": [c.id for c in turn.candidates], "index": len(turn.candidates) - 1,
                "expected_head": head.id if head else 0}

    # -- page load, writer, story list -------------------------------------------------------

    def on_load(saved_name, saved_key, request: gr.Request, profile: gr.OAuthProfile | None = None):
        lang = _lang(request)
        key, account_name = page_writer(store, saved_key, profile)
        saved_name = account_name or saved_name
        stories = render_story_list(store.list_stories(), lang)
        raw = request.query_params.get("story")
        sid, tab, values, view = gr.skip(), gr.skip(), [gr.skip()] * len(names), None
        if raw:
            try:
                sid = _story_id(raw)
                story = store.get_story(sid)
            except (InvalidInput, NotFound):
                gr.Warning(say(lang, "story_not_found", story=_esc(raw)))
                sid = gr.skip()
            else:
                tab, values = gr.Tabs(selected="story"), settings_to_values(names, story_defaults(story))
                view = my_turn_view(sid, (saved_name or "").strip(), key)
        hint = gr.Markdown(visible=raw is None or sid is gr.skip())
        return (lang, saved_name or gr.skip(), key, writer_id_of(key), stories, tab, sid, hint, *values,
                *desk(lang, view))

    ui_load = [lang_state, writer, writer_key, writer_id, stories_html, ui.tabs, story_state, no_story, *controls,
               *desk_outputs]
    ui.demo.load(on_load, [ui.writer_saved, writer_key], ui_load, **private)
    ui.demo.load(None, None, None, js=SYNC_TURN_JS)

    def remember_name(name):
        return (name or "").strip()

    writer.change(remember_name, [writer], [ui.writer_saved], **private)

    story_state.change(None, [story_state, writer_id], None, js=OPEN_LIVE_JS)
    reading.change(None, [reading], None, js="(on) => { window.relayLive && relayLive.setReading(on); }")

    def refresh_list(lang):
        return render_story_list(store.list_stories(), lang)

    refresh_btn.click(refresh_list, [lang_state], [stories_html], **private)
    stories_tab.select(refresh_list, [lang_state], [stories_html], show_progress="hidden", **private)

    def create(request: gr.Request, title, rule, name, key, lang, *values):
        name = _need_name(name, lang)
        try:
            limits.check("story", store.writer_id(key), client_ip(request))
            # The story's defaults are the current controls, but never a fixed seed: every
            # "regenerate" on the story would otherwise write the same text.
            settings = settings_from_values(names, values, setting_range).replace(seed=None)
            story = store.create_story(title, name, turn_rule=rule, settings=settings.to_dict(), writer_key=key)
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        except (StoryError, SettingsError) as e:
            raise user_error(lang, e) from None
        return (render_story_list(store.list_stories(), lang), "", gr.Tabs(selected="story"), story.id,
                gr.Markdown(visible=False), *desk(lang, None))

    create_btn.click(create, [new_title, new_rule, writer, writer_key, lang_state, *controls],
                     [stories_html, new_title, ui.tabs, story_state, no_story, *desk_outputs], **private)

    # -- a human turn --------------------------------------------------------------------------

    def add(request: gr.Request, story_id, text, name, key, lang, head, draft_id):
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        try:
            limits.check("paragraph", store.writer_id(key), client_ip(request))
            store.add_paragraph(sid, text, name, kind="human", expected_head=int(head or 0), writer_key=key,
                                client_id=draft_id or None)
        except StaleHeadError:
            warn(lang, say(lang, "stale_head"))
            return gr.skip()  # the draft stays in the box; the live view shows the new paragraph
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        except TurnError:
            raise user_error(lang, say(lang, "not_human_turn")) from None  # says whose turn it is
        except StoryError as e:
            raise user_error(lang, e) from None
        return ""

    add_btn.click(add, [story_state, composer, writer, writer_key, lang_state, seen_head, ui.draft_id], [composer],
                  js=WITH_SEEN_HEAD_JS, **private).success(
        None, js="() => { if (window.relayLive) { relayLive.hold(false); relayLive.newDraft(); } }").then(
        None, js="() => { window.relayLive && relayLive.hold(false); }")

    # -- the model's turn ----------------------------------------------------------------------

    def turn_inputs(story_id, name, values, lang) -> tuple[int, str, SamplingSettings]:
        """The open story, the writer and validated settings for a model turn, or a message why not."""
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        try:
            return sid, name, settings_from_values(names, values, setting_range)
        except SettingsError as e:
            raise user_error(lang, e) from None

    def generate(request: gr.Request, story_id, name, key, view, adapter_name, lang, *values):
        sid, name, settings = turn_inputs(story_id, name, values, lang)
        session = request.session_hash or ""
        stop = stops.fresh(session)
        ids = list(view["ids"]) if view and view.get("ids") else []
        shown = 0.0
        with contextlib.ExitStack() as held:
            held.callback(stops.done, session, stop)
            try:  # at most a few model jobs per writer and per address, waiting or running
                held.enter_context(limits.model_slot(store.writer_id(key), client_ip(request)))
            except LimitExceeded as e:
                raise ui_error(lang, e) from None
            for text, done in ai_turn.stream(sid, name, settings, adapter_name or None, stop, lang, writer_key=key):
                if done is None:
                    # Nothing to accept until the text is finished and kept as a suggestion.
                    if time.monotonic() - shown < SHOW_EVERY_S:
                        continue
                    shown = time.monotonic()
                    # Nor can it be accepted while it is half written: the button waits for the end.
                    yield (text, None, "", gr.Button(interactive=False), gr.Button(interactive=False), "", gr.skip(),
                           gr.Button(interactive=False))
                else:
                    ids.append(done["candidate_id"])
                    new_view = {"ids": ids, "index": len(ids) - 1, "expected_head": done["expected_head"]}
                    yield desk(lang, new_view, text, done["meta"])

    gen_inputs = [story_state, writer, writer_key, turn_view, adapter, lang_state, *controls]

    def may_start(request: gr.Request, story_id, name, key, lang):
        """Refuse at once a model turn that could not run (wrong turn, someone else's turn, over a limit)."""
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        try:
            limits.check("model_turn", store.writer_id(key), client_ip(request))
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        ai_turn.check_ai_may_write(sid, name, lang, writer_key=key)

    precheck = dict(fn=may_start, inputs=[story_state, writer, writer_key, lang_state], outputs=None,
                    concurrency_limit=None, **private)
    for button in (ai_btn, regen_btn):
        button.click(**precheck).success(generate, gen_inputs, desk_outputs, **ui.model_queue, **private)

    def stop_generation(request: gr.Request):
        stops.cancel(request.session_hash or "", "stop")

    stop_btn.click(stop_generation, None, None, queue=False, **private)

    def alternatives(request: gr.Request, story_id, name, key, view, n, adapter_name, lang, *values):
        """2-4 suggestions stream side by side, each a column; all become swipes of the turn."""
        sid, name, settings = turn_inputs(story_id, name, values, lang)
        wid, ip, n = store.writer_id(key), client_ip(request), int(n)
        session = request.session_hash or ""
        stop = stops.fresh(session)
        labels = [say(lang, "candidate_n", n=i + 1) for i in range(4)]
        picks_hidden = [gr.Button(visible=False)] * 4
        shown = 0.0
        with contextlib.ExitStack() as held:
            held.callback(stops.done, session, stop)
            try:
                limits.check("candidates", wid, ip, cost=n)
                held.enter_context(limits.model_slot(wid, ip))
            except LimitExceeded as e:
                raise ui_error(lang, e) from None
            for texts, done in ai_turn.alternatives(sid, name, settings, n, adapter_name or None, lang,
                                                    writer_key=key, stop=stop):
                boxes = [gr.Textbox(value=texts[i], visible=True, label=labels[i]) if i < len(texts)
                         else gr.Textbox(value="", visible=False) for i in range(4)]
                if done is None:
                    if time.monotonic() - shown < SHOW_EVERY_S:
                        continue  # coalesce: a browser cannot paint every token of four columns
                    shown = time.monotonic()
                    yield (texts[0], None, "", gr.Button(interactive=False), gr.Button(interactive=False), "",
                           gr.skip(), gr.Button(interactive=False), gr.Row(visible=True), *boxes, *picks_hidden)
                    continue
                new_ids = done["candidate_ids"]
                ids = (list(view["ids"]) if view and view.get("ids") else []) + new_ids
                new_view = {"ids": ids, "index": len(ids) - len(new_ids), "expected_head": done["expected_head"],
                            "alts": new_ids}
                picks = [gr.Button(visible=i < len(texts)) for i in range(4)]
                yield (*desk(lang, new_view, texts[0], done["meta"]), gr.Row(visible=True), *boxes, *picks)

    alts_btn.click(**precheck).success(alternatives, [story_state, writer, writer_key, turn_view, n_alts, adapter,
                                                      lang_state, *controls],
                                       [*desk_outputs, alts_row, *alt_boxes, *pick_btns],
                                       **ui.model_queue, **private)

    def pick(i):
        def choose(view, lang):
            if not view or i >= len(view.get("alts", [])) or view["alts"][i] not in view["ids"]:
                return [gr.skip()] * len(desk_outputs)
            return desk(lang, {**view, "index": view["ids"].index(view["alts"][i])})
        return choose

    for i, button in enumerate(pick_btns):
        button.click(pick(i), [turn_view, lang_state], desk_outputs, **private)

    def flip(step):
        def go(view, lang):
            if not view or not view.get("ids"):
                return desk(lang, None)
            index = min(max(view["index"] + step, 0), len(view["ids"]) - 1)
            return desk(lang, {**view, "index": index})
        return go

    prev_btn.click(flip(-1), [turn_view, lang_state], desk_outputs, **private)
    next_btn.click(flip(+1), [turn_view, lang_state], desk_outputs, **private)

    def sync_turn(story_id, name, key, lang):
        if story_id is None:
            return [gr.skip()] * len(desk_outputs)
        return desk(lang, my_turn_view(story_id, (name or "").strip(), key))

    sync_btn.click(sync_turn, [story_state, writer, writer_key, lang_state], desk_outputs, **private)

    def accept(story_id, view, text, name, key, lang):
        _need_story(story_id, lang)
        name = _need_name(name, lang)
        if not view or not view.get("ids"):
            raise user_error(lang, say(lang, "no_candidate"))
        if not (text or "").strip():
            raise user_error(lang, say(lang, "empty_candidate"))
        turn = store.ai_turn(story_id)
        if turn is not None and turn.status == "writing":
            # A new suggestion is being written: what the box shows is half of it, not the one to accept.
            raise user_error(lang, say(lang, "still_writing"))
        candidate_id = view["ids"][view["index"]]
        try:
            store.accept_candidate(candidate_id, name, text=text, expected_head=view["expected_head"], writer_key=key)
        except StaleHeadError as e:
            # Read the new paragraph, then accept again: this time after it.
            warn(lang, say(lang, "stale_moved"))
            return [gr.skip(), {**view, "expected_head": e.head.id if e.head else 0}] + [gr.skip()] * 6
        except TurnLost as e:
            warn(lang, say(lang, "turn_lost", holder=_esc(e.holder)))
            return desk(lang, None)
        except StoryError as e:
            raise user_error(lang, e, action="accept") from None
        info(lang, say(lang, "accepted"))
        return desk(lang, None)

    accept_btn.click(accept, [story_state, turn_view, preview, writer, writer_key, lang_state], desk_outputs,
                     **private).success(lambda: gr.Row(visible=False), None, [alts_row], **private)

    def discard(request: gr.Request, story_id, name, key, lang):
        session = request.session_hash or ""
        stops.cancel(session, "discard")
        # Let a running generation end first, so none of its text reaches the box after it is cleared.
        stops.wait_stopped(session, DISCARD_WAIT_S)
        if story_id is not None and (name or "").strip():
            try:
                store.discard_ai_turn(story_id, name.strip(), writer_key=key)
            except (NotFound, NotAllowed):
                pass  # nothing of this writer's to throw away: the box is simply cleared
        return desk(lang, None)

    discard_btn.click(discard, [story_state, writer, writer_key, lang_state], desk_outputs, **private).then(
        lambda: gr.Row(visible=False), None, [alts_row], **private)

    def touch(story_id, name, key, view, text):
        """While the writer edits a suggestion, keep its turn from timing out; an untouched one still times out."""
        if story_id is None or not view:
            return gr.Timer(active=False), gr.skip()
        if view.get("seen_text") == text:
            return gr.skip(), gr.skip()  # no edit since the last tick: idle
        try:
            store.touch_ai_turn(story_id, (name or "").strip(), ai_turn.idle_s, writer_key=key)
        except StoryError:
            return gr.Timer(active=False), gr.skip()
        return gr.skip(), {**view, "seen_text": text}

    touch_timer.tick(touch, [story_state, writer, writer_key, turn_view, preview], [touch_timer, turn_view],
                     show_progress="hidden", **private)

    # -- sampling controls (the panel wires its own presets and reset: relay/ui/controls.py) -------

    def reuse_seed(view):
        if not view or not view.get("ids"):
            return gr.skip()
        seed = store.get_candidate(view["ids"][view["index"]]).meta.get("seed")
        return "" if seed is None else str(seed)

    use_seed_btn.click(reuse_seed, [turn_view], [controls[names.index("seed")]], **private)

    # -- export (undo, redo, edit, fork and import live in relay/ui/history.py) ---------------------

    def export(story_id, fmt, lang):
        sid = _need_story(story_id, lang)
        path = export_path(sid, fmt)
        path.write_text(store.export(sid, fmt), encoding="utf-8")
        return str(path)

    export_btn.click(export, [story_state, export_fmt, lang_state], [export_file], **private)


def _story_id(raw: str) -> int:
    """A story id from the address bar: digits only (no signs, spaces or decimals)."""
    if not isinstance(raw, str) or not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise InvalidInput("not a story number")
    return int(raw)
