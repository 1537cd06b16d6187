"""The Relay page: `build_demo(engine, store)` lays out the stories and story tabs and wires them.

State has three homes: the story store (shared by every browser), `gr.State` (one browser tab: the
open story, the last version seen, the pending AI candidate) and `gr.BrowserState` (one browser:
the writer's name). The lab tab lives in relay/ui/lab.py, the named API in relay/ui/api.py.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from relay.settings import PRESETS, SamplingSettings, SettingsError
from relay.story_store import NotFound, StaleHeadError, StoryError, StoryStore, TurnError
from relay.turns import AITurn
from relay.ui.api import register_api
from relay.ui.common import Cancels, _fail, _lang, _need_name, _need_story
from relay.ui.render import _esc
from relay.ui.controls import _setting_component, i18n_key, settings_from_values, settings_to_values
from relay.ui.lab import build_lab_tab
from relay.ui.render import render_header, render_status, render_story_list, render_timeline, seed_line
from relay.ui_text import say

POLL_SECONDS = 2.0  # how often every open browser asks the store whether its story changed
EXPORT_FORMATS = ("txt", "md", "json")


def build_demo(engine, store: StoryStore, *, tiny: bool = False, poll_seconds: float = POLL_SECONDS) -> gr.Blocks:
    """The Relay web app (UI and API) over one engine and one story store."""
    specs = SamplingSettings.specs()
    names = [s.name for s in specs]
    defaults = SamplingSettings()
    ai_turn = AITurn(engine, store, escape_names=True)
    cancels = Cancels()
    adapter_choices = [(say("ko", "base_model"), "")] + [(a, a) for a in engine.adapter_names]

    def story_defaults(story) -> SamplingSettings:
        try:
            return SamplingSettings.from_dict(story.settings or {})
        except SettingsError:
            return defaults

    def view(story_id: int, lang: str, reading: bool, base_url: str = ""):
        """Everything the story tab shows: header, status, timeline, version seen, head seen."""
        story = store.get_story(story_id)
        paragraphs = store.timeline(story_id)
        head = paragraphs[-1] if paragraphs else None
        holder = store.ai_turn_holder(story_id)
        return (
            render_header(story, lang, base_url, fork_point(story)),
            render_status(story, head, holder, lang),
            render_timeline(paragraphs, lang, reading),
            seen_key(story_id, holder),
            head.id if head else 0,
        )

    def fork_point(story) -> int | None:
        """The number (seq) of the paragraph a fork was made at, if it is still in the original."""
        if not story.forked_from:
            return None
        source, paragraph_id = story.forked_from
        try:
            return next((p.seq for p in store.timeline(source) if p.id == paragraph_id), None)
        except NotFound:
            return None

    def seen_key(story_id: int, holder: str | None = None) -> str:
        """What a tab compares to decide whether to re-render: the story's version and who holds
        the AI turn (a lease that merely expires writes nothing, so the version alone misses it)."""
        return f"{store.version(story_id)}|{holder or ''}"

    with gr.Blocks(title="릴레이 소설 · Relay") as demo:
        # The API first, so its endpoints get the plain names (private UI handlers get suffixes).
        register_api(engine, store, AITurn(engine, store, escape_names=False))

        # per browser / per tab state
        writer_saved = gr.BrowserState("", storage_key="relay-writer-name", secret="relay-writer-name-v1")
        story_state = gr.State(None)  # open story id
        seen_version = gr.State("")  # seen_key() when this tab last rendered the story
        seen_head = gr.State(0)  # id of the last paragraph this tab showed (0: none)
        candidate = gr.State(None)  # {"candidate_id", "expected_head"} of the text in the preview
        alt_candidates = gr.State([])
        lang_state = gr.State("ko")
        base_url = gr.State("")

        gr.Markdown(i18n_key("app_title"))
        gr.Markdown(i18n_key("app_intro"))
        gr.Markdown(i18n_key("tiny_banner"), visible=tiny, elem_id="relay-tiny-banner")
        with gr.Row():
            writer = gr.Textbox(label=i18n_key("writer_name"), info=i18n_key("writer_name_info"), max_length=40,
                                elem_id="relay-writer", scale=3)
            if os.environ.get("SPACE_ID"):
                gr.LoginButton(scale=1)

        with gr.Tabs(selected="stories") as tabs:
            with gr.Tab(i18n_key("tab_stories"), id="stories"):
                stories_html = gr.HTML(elem_id="relay-stories")
                refresh_btn = gr.Button(i18n_key("refresh"), size="sm")
                gr.Markdown(i18n_key("new_story"))
                with gr.Group():
                    new_title = gr.Textbox(label=i18n_key("new_title"), max_length=100, elem_id="relay-new-title")
                    new_rule = gr.Radio(choices=[(i18n_key("rule_alternate"), "alternate"), (i18n_key("rule_free"), "free")],
                                        value="alternate", label=i18n_key("turn_rule"))
                    create_btn = gr.Button(i18n_key("create"), variant="primary", elem_id="relay-create")

            with gr.Tab(i18n_key("tab_story"), id="story"):
                header = gr.HTML(i18n_key("no_story_open"), elem_id="relay-header")
                status = gr.HTML(elem_id="relay-status", elem_classes=["relay-status"])
                reading = gr.Checkbox(label=i18n_key("reading_view"), value=False, elem_id="relay-reading")
                timeline = gr.HTML(elem_id="relay-timeline")
                composer = gr.Textbox(label=i18n_key("composer"), placeholder=i18n_key("composer_ph"), lines=4,
                                      max_lines=20, elem_id="relay-composer")
                add_btn = gr.Button(i18n_key("add"), variant="primary", elem_id="relay-add")
                with gr.Group():
                    with gr.Row():
                        ai_btn = gr.Button(i18n_key("ai_continue"), variant="primary", elem_id="relay-ai")
                        stop_btn = gr.Button(i18n_key("stop"), variant="stop", elem_id="relay-stop")
                        n_alts = gr.Slider(2, 4, value=3, step=1, label=i18n_key("n_alternatives"))
                        alts_btn = gr.Button(i18n_key("alternatives"), elem_id="relay-alts")
                    preview = gr.Textbox(label=i18n_key("preview"), lines=5, max_lines=20, interactive=True,
                                         elem_id="relay-preview")
                    seed_info = gr.Markdown(elem_id="relay-seed-info")
                    with gr.Row():
                        accept_btn = gr.Button(i18n_key("accept"), variant="primary", elem_id="relay-accept")
                        regen_btn = gr.Button(i18n_key("regenerate"), elem_id="relay-regen")
                        discard_btn = gr.Button(i18n_key("discard"), elem_id="relay-discard")
                        use_seed_btn = gr.Button(i18n_key("use_seed"), size="sm")
                    with gr.Row(visible=False) as alts_row:
                        alt_boxes, pick_btns = [], []
                        for i in range(4):
                            with gr.Column(min_width=160):
                                alt_boxes.append(gr.Textbox(label=f"#{i + 1}", lines=6, interactive=False,
                                                            elem_id=f"relay-alt-{i}"))
                                pick_btns.append(gr.Button(i18n_key("pick"), size="sm", elem_id=f"relay-pick-{i}"))

                with gr.Accordion(i18n_key("sampling"), open=False, elem_id="relay-sampling"):
                    adapter = gr.Dropdown(choices=adapter_choices, value="", label=i18n_key("adapter"),
                                          visible=bool(engine.adapter_names))
                    with gr.Row():
                        preset = gr.Radio(choices=[(i18n_key(f"preset.{p}"), p) for p in PRESETS], label=i18n_key("preset"))
                        reset_btn = gr.Button(i18n_key("reset_defaults"), size="sm")
                    controls = [_setting_component(s, getattr(defaults, s.name)) for s in specs]

                with gr.Accordion(i18n_key("more"), open=False):
                    undo_btn = gr.Button(i18n_key("undo"), elem_id="relay-undo")
                    with gr.Row():
                        fork_seq = gr.Number(label=i18n_key("fork_seq"), precision=0, minimum=1)
                        fork_title = gr.Textbox(label=i18n_key("fork_title"), max_length=100)
                        fork_btn = gr.Button(i18n_key("fork"))
                    with gr.Row():
                        export_fmt = gr.Radio(choices=list(EXPORT_FORMATS), value="txt", label=i18n_key("export_fmt"))
                        export_btn = gr.Button(i18n_key("export"))
                        export_file = gr.File(interactive=False, elem_id="relay-export-file")

            with gr.Tab(i18n_key("tab_lab"), id="lab") as lab_tab:
                pass

        timer = gr.Timer(poll_seconds)
        story_outputs = [header, status, timeline, seen_version, seen_head]
        private = dict(api_visibility="private")

        # -- page load, writer name, story list --------------------------------------------

        def on_load(saved_name, reading_on, request: gr.Request):
            lang = _lang(request)
            referer = request.headers.get("referer", "") or ""
            base = referer.split("?")[0].split("#")[0]
            stories = render_story_list(store.list_stories(), lang)
            raw = request.query_params.get("story")
            if raw:
                try:
                    sid = int(raw)
                    story = store.get_story(sid)
                except (ValueError, NotFound):
                    gr.Warning(say(lang, "story_not_found", story=_esc(raw)))
                else:
                    return (lang, base, saved_name or gr.skip(), stories, gr.Tabs(selected="story"), sid,
                            *view(sid, lang, reading_on, base), *settings_to_values(names, story_defaults(story)))
            return (lang, base, saved_name or gr.skip(), stories, gr.skip(), gr.skip(),
                    gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), *[gr.skip()] * len(names))

        demo.load(on_load, [writer_saved, reading],
                  [lang_state, base_url, writer, stories_html, tabs, story_state, *story_outputs, *controls], **private)

        if os.environ.get("SPACE_ID"):
            def fill_name_from_login(current, profile: gr.OAuthProfile | None):
                if profile is not None and not (current or "").strip():
                    return profile.name or profile.username
                return gr.skip()

            demo.load(fill_name_from_login, [writer], [writer], **private)

        def remember_name(name):
            return (name or "").strip()

        writer.change(remember_name, [writer], [writer_saved], **private)

        def refresh_list(lang):
            return render_story_list(store.list_stories(), lang)

        refresh_btn.click(refresh_list, [lang_state], [stories_html], **private)

        def create(title, rule, name, lang, base, *values):
            name = _need_name(name, lang)
            try:
                # The story's defaults are the current controls, but never a fixed seed: every
                # "regenerate" on the story would otherwise write the same text.
                settings = settings_from_values(names, values).replace(seed=None)
                story = store.create_story(title, name, turn_rule=rule, settings=settings.to_dict())
            except (StoryError, SettingsError) as e:
                raise _fail(say(lang, "cannot_save", detail=str(e))) from None
            return (render_story_list(store.list_stories(), lang), "", gr.Tabs(selected="story"), story.id,
                    *view(story.id, lang, False, base))

        create_btn.click(create, [new_title, new_rule, writer, lang_state, base_url, *controls],
                         [stories_html, new_title, tabs, story_state, *story_outputs], **private)

        # -- live updates ------------------------------------------------------------------

        def poll(story_id, version, reading_on, lang, base):
            if story_id is None:
                return [gr.skip()] * len(story_outputs)
            try:
                current = seen_key(story_id, store.ai_turn_holder(story_id))
            except NotFound:
                return [gr.skip()] * len(story_outputs)
            if current == version:
                return [gr.skip()] * len(story_outputs)
            return view(story_id, lang, reading_on, base)

        timer.tick(poll, [story_state, seen_version, reading, lang_state, base_url], story_outputs,
                   concurrency_limit=None, show_progress="hidden", **private)

        def rerender(story_id, reading_on, lang, base):
            if story_id is None:
                return [gr.skip()] * len(story_outputs)
            return view(story_id, lang, reading_on, base)

        reading.change(rerender, [story_state, reading, lang_state, base_url], story_outputs, **private)

        # -- a human turn ------------------------------------------------------------------

        def add(story_id, text, name, head, reading_on, lang, base):
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            try:
                store.add_paragraph(sid, text, name, kind="human", expected_head=head)
            except StaleHeadError:
                gr.Warning(say(lang, "stale_head"))
                return (gr.skip(), *view(sid, lang, reading_on, base))  # the draft stays in the box
            except TurnError:
                raise _fail(say(lang, "not_human_turn")) from None
            except StoryError as e:
                raise _fail(say(lang, "cannot_save", detail=str(e))) from None
            return ("", *view(sid, lang, reading_on, base))

        add_btn.click(add, [story_state, composer, writer, seen_head, reading, lang_state, base_url],
                      [composer, *story_outputs], **private)

        # -- the model's turn --------------------------------------------------------------

        def turn_inputs(story_id, name, values, lang) -> tuple[int, str, SamplingSettings]:
            """The open story, the writer and validated settings for a model turn, or a message why not."""
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            try:
                return sid, name, settings_from_values(names, values)
            except SettingsError as e:
                raise _fail(say(lang, "settings_error", detail=str(e))) from None

        def generate(request: gr.Request, story_id, name, adapter_name, reading_on, lang, base, *values):
            sid, name, settings = turn_inputs(story_id, name, values, lang)
            cancel = cancels.fresh(request.session_hash or "")
            hide_alts = gr.Row(visible=False)
            try:
                for text, done in ai_turn.stream(sid, name, settings, adapter_name or None, cancel, lang):
                    if done is None:
                        # No candidate until it is finished: accepting mid-stream must not store half a text
                        # under the previous candidate's id.
                        yield text, None, gr.skip(), hide_alts, *[gr.skip()] * len(story_outputs)
                    else:
                        info = {"candidate_id": done["candidate_id"], "expected_head": done["expected_head"]}
                        yield (text, info, seed_line(done["meta"], lang), hide_alts, *view(sid, lang, reading_on, base))
            finally:
                cancels.done(request.session_hash or "", cancel)

        gen_inputs = [story_state, writer, adapter, reading, lang_state, base_url, *controls]
        gen_outputs = [preview, candidate, seed_info, alts_row, *story_outputs]
        model_queue = dict(concurrency_id="model", concurrency_limit=1)
        def may_start(story_id, name, lang):
            """Refuse at once (outside the model queue) a model turn that could not run: wrong turn, or the
            model is already writing on this story for someone else."""
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            ai_turn.check_ai_may_write(sid, lang)
            holder = store.ai_turn_holder(sid)
            if holder and holder != name:
                raise _fail(say(lang, "ai_busy", holder=_esc(holder)))

        # Queued (an unqueued event's gr.Error shows no message) but not in the model's concurrency group,
        # so the refusal comes at once instead of after whoever the model is writing for.
        precheck = dict(fn=may_start, inputs=[story_state, writer, lang_state], outputs=None,
                        concurrency_limit=None, **private)
        for button in (ai_btn, regen_btn):
            button.click(**precheck).success(generate, gen_inputs, gen_outputs, **model_queue, **private)

        def stop(request: gr.Request):
            cancels.cancel(request.session_hash or "")

        stop_btn.click(stop, None, None, queue=False, **private)

        def alternatives(story_id, name, n, adapter_name, reading_on, lang, base, *values):
            sid, name, settings = turn_inputs(story_id, name, values, lang)
            texts, ids, expected, meta = ai_turn.alternatives(sid, name, settings, int(n), adapter_name or None, lang)
            boxes = [gr.Textbox(value=texts[i], visible=True, label=say(lang, "candidate_n", n=i + 1)) if i < len(texts)
                     else gr.Textbox(value="", visible=False) for i in range(4)]
            picks = [gr.Button(visible=i < len(texts)) for i in range(4)]
            alts = [{"candidate_id": c, "expected_head": expected, "text": t} for c, t in zip(ids, texts)]
            return (alts, gr.Row(visible=True), seed_line(meta, lang), "", None, *boxes, *picks,
                    *view(sid, lang, reading_on, base))

        alts_btn.click(**precheck).success(alternatives, [story_state, writer, n_alts, adapter, reading, lang_state, base_url, *controls],
                       [alt_candidates, alts_row, seed_info, preview, candidate, *alt_boxes, *pick_btns, *story_outputs],
                       **model_queue, **private)

        def pick(i):
            def choose(alts):
                if i >= len(alts):
                    return gr.skip(), gr.skip()
                chosen = alts[i]
                return chosen["text"], {"candidate_id": chosen["candidate_id"], "expected_head": chosen["expected_head"]}
            return choose

        for i, button in enumerate(pick_btns):
            button.click(pick(i), [alt_candidates], [preview, candidate], **private)

        def accept(story_id, cand, text, name, reading_on, lang, base):
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            if not cand:
                raise _fail(say(lang, "no_candidate"))
            if not (text or "").strip():
                raise _fail(say(lang, "empty_candidate"))
            try:
                store.accept_candidate(cand["candidate_id"], name, text=text, expected_head=cand["expected_head"])
            except StaleHeadError:
                gr.Warning(say(lang, "stale_candidate"))
                return (gr.skip(), gr.skip(), gr.skip(), *view(sid, lang, reading_on, base))
            except TurnError:
                raise _fail(say(lang, "not_ai_turn")) from None
            except StoryError as e:
                raise _fail(say(lang, "cannot_save", detail=str(e))) from None
            gr.Info(say(lang, "accepted"))
            return ("", None, gr.Row(visible=False), *view(sid, lang, reading_on, base))

        accept_btn.click(accept, [story_state, candidate, preview, writer, reading, lang_state, base_url],
                         [preview, candidate, alts_row, *story_outputs], **private)

        def discard():
            return "", None, gr.Row(visible=False), [], ""

        discard_btn.click(discard, None, [preview, candidate, alts_row, alt_candidates, seed_info], **private)

        # -- sampling controls -------------------------------------------------------------

        def apply_preset(name):
            """Set the controls to a preset and clear the choice, so choosing it again applies it again."""
            if name not in PRESETS:
                return [gr.skip()] * len(names) + [None]
            return [*settings_to_values(names, PRESETS[name]), None]

        preset.input(apply_preset, [preset], [*controls, preset], **private)

        def reset(story_id):
            if story_id is None:
                return settings_to_values(names, defaults)
            return settings_to_values(names, story_defaults(store.get_story(story_id)))

        reset_btn.click(reset, [story_state], controls, **private)

        def reuse_seed(cand):
            if not cand:
                return gr.skip()
            seed = store.get_candidate(cand["candidate_id"]).meta.get("seed")
            return "" if seed is None else str(seed)

        seed_control = controls[names.index("seed")]
        use_seed_btn.click(reuse_seed, [candidate], [seed_control], **private)

        # -- undo, fork, export ------------------------------------------------------------

        def undo(story_id, name, reading_on, lang, base):
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            try:
                store.undo_last(sid, name)
            except StoryError as e:
                raise _fail(say(lang, "cannot_save", detail=str(e))) from None
            gr.Info(say(lang, "undone"))
            return view(sid, lang, reading_on, base)

        undo_btn.click(undo, [story_state, writer, reading, lang_state, base_url], story_outputs, **private)

        def fork(story_id, seq, title, name, reading_on, lang, base):
            sid = _need_story(story_id, lang)
            name = _need_name(name, lang)
            if seq is None:
                raise _fail(say(lang, "need_seq"))
            target = next((p for p in store.timeline(sid) if p.seq == int(seq)), None)
            if target is None:
                raise _fail(say(lang, "bad_seq", seq=int(seq)))
            try:
                new = store.fork(sid, target.id, title, name)
            except StoryError as e:
                raise _fail(say(lang, "cannot_save", detail=str(e))) from None
            gr.Info(say(lang, "forked", story=new.id))
            return (new.id, render_story_list(store.list_stories(), lang), *view(new.id, lang, reading_on, base))

        fork_btn.click(fork, [story_state, fork_seq, fork_title, writer, reading, lang_state, base_url],
                       [story_state, stories_html, *story_outputs], **private)

        def export(story_id, fmt, lang):
            sid = _need_story(story_id, lang)
            story = store.get_story(sid)
            folder = Path(tempfile.mkdtemp(prefix="relay-export-"))
            path = folder / f"relay-story-{story.id}.{fmt}"
            path.write_text(store.export(sid, fmt), encoding="utf-8")
            return str(path)

        export_btn.click(export, [story_state, export_fmt, lang_state], [export_file], **private)

        # -- sampling lab ------------------------------------------------------------------

        ui = SimpleNamespace(engine=engine, store=store, cancels=cancels, defaults=defaults, story_state=story_state,
                             lang_state=lang_state, adapter=adapter, tabs=tabs, controls=controls, names=names,
                             private=private, model_queue=model_queue)
        with lab_tab:
            build_lab_tab(ui)

    return demo
