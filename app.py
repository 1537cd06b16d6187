"""Relay (릴레이 소설): people and KoGPT-2 write one Korean novel together, live in the browser.

    python app.py                      # skt/kogpt2-base-v2 from the Hub, http://127.0.0.1:7860
    python app.py --model tiny         # a tiny random model: try the interface without the Hub
    python app.py --model ./kogpt2 --adapter fiction=./outputs/lora --db ./relay.db

`build_demo(engine, store)` returns the Gradio Blocks; importing this module loads no model and
starts nothing. State has three homes: the story store (shared by every browser), `gr.State`
(one browser tab: the open story, the last version seen, the pending AI candidate) and
`gr.BrowserState` (one browser: the writer's name).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
from gradio.i18n import I18nData

from relay.engine import PRESETS, EngineError, ModelLoadError, SamplingSettings, SettingsError
from relay.story_store import (
    NotFound,
    StaleHeadError,
    StoryError,
    StoryStore,
    TurnBusy,
    TurnError,
)
from relay.ui_text import pick_lang, say, translations

DEFAULT_MODEL = "skt/kogpt2-base-v2"
POLL_SECONDS = 2.0  # how often every open browser asks the store whether its story changed
AI_TURN_TTL = 90.0  # seconds an AI-turn lease lives without a refresh (a crashed worker frees it)
LAB_COLUMNS = 4
LAB_FIELDS = ("temperature", "top_k", "top_p", "repetition_penalty", "seed")
EXPORT_FORMATS = ("txt", "md", "json")

CSS = """
.relay-timeline { display: flex; flex-direction: column; gap: 0.6rem; }
.relay-para { border-left: 4px solid #8aa4c8; padding: 0.4rem 0.8rem; border-radius: 6px; background: var(--block-background-fill); }
.relay-para.kind-ai { border-left-color: #c88ab8; }
.relay-meta { font-size: 0.8rem; opacity: 0.75; margin-bottom: 0.2rem; }
.relay-badge { display: inline-block; padding: 0 0.4rem; border-radius: 4px; font-size: 0.75rem; border: 1px solid currentColor; }
.relay-text { white-space: pre-wrap; line-height: 1.7; font-size: 1.02rem; }
.relay-novel p { white-space: pre-wrap; line-height: 1.9; text-indent: 1em; margin: 0 0 0.8rem 0; }
.relay-details pre { white-space: pre-wrap; font-size: 0.75rem; }
.relay-status { min-height: 1.5rem; }
.relay-stories table { width: 100%; }
"""


# ---------------------------------------------------------------------------------------------
# Rendering: every piece of user text goes through html.escape, so HTML or script stays inert.


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(iso: str) -> str:
    """'2026-11-25T03:21:11.123+00:00' -> '2026-11-25 03:21 UTC'."""
    return iso[:16].replace("T", " ") + " UTC" if iso else ""


def render_story_list(stories, lang: str) -> str:
    """The story list as an HTML table whose titles link to `?story=ID`."""
    if not stories:
        return f"<p>{_esc(say(lang, 'no_stories'))}</p>"
    head = "".join(f"<th>{_esc(say(lang, k))}</th>" for k in ("col_title", "col_paragraphs", "col_activity", "col_by"))
    rows = []
    for s in stories:
        rows.append(
            f'<tr><td><a class="relay-story-link" href="?story={s.id}">{_esc(s.title)}</a> <small>#{s.id}</small></td>'
            f"<td>{s.paragraph_count}</td><td>{_esc(_when(s.last_activity))}</td><td>{_esc(s.created_by)}</td></tr>"
        )
    return f'<div class="relay-stories"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def render_header(story, lang: str, base_url: str = "", fork_seq: int | None = None) -> str:
    """Title, turn rule and the story's shareable link; for a fork, where it came from (`fork_seq`:
    the number of the paragraph it was forked at, when that paragraph is still in the original)."""
    link = f"{base_url}?story={story.id}"
    rule = say(lang, "rule_alternate" if story.turn_rule == "alternate" else "rule_free")
    fork = ""
    if story.forked_from:
        source = story.forked_from[0]
        origin = (say(lang, "forked_from", story=source, seq=fork_seq) if fork_seq is not None
                  else say(lang, "forked_from_story", story=source))
        fork = f'<br><small><a href="{_esc(base_url)}?story={source}">{_esc(origin)}</a></small>'
    return (
        f'<h2 class="relay-title">{_esc(story.title)} <small>#{story.id}</small></h2>'
        f"<p><small>{_esc(rule)} · {_esc(say(lang, 'share_link'))}: "
        f'<a class="relay-share" href="{_esc(link)}">{_esc(link)}</a></small>{fork}</p>'
    )


def _meta_summary(meta: dict) -> str:
    keep = {k: meta[k] for k in ("model", "adapter", "seed", "prompt_tokens", "output_tokens", "seconds", "stopped_by") if k in meta}
    keep["settings"] = meta.get("settings", {})
    return json.dumps(keep, ensure_ascii=False, indent=1)


def render_timeline(paragraphs, lang: str, reading: bool = False) -> str:
    """The timeline: each paragraph with writer, kind, edit mark and time; or just the novel."""
    if not paragraphs:
        return f"<p><em>{_esc(say(lang, 'empty_timeline'))}</em></p>"
    if reading:
        body = "".join(f"<p>{_esc(p.text)}</p>" for p in paragraphs)
        return f'<div class="relay-novel">{body}</div>'
    cards = []
    for p in paragraphs:
        badge = say(lang, "kind_ai" if p.kind == "ai" else "kind_human")
        who = say(lang, "ai_for", author=p.author) if p.kind == "ai" else p.author
        edited = f' <span class="relay-badge relay-edited">{_esc(say(lang, "edited_mark"))}</span>' if p.edited else ""
        details = ""
        if p.kind == "ai" and p.meta:
            details = (
                f'<details class="relay-details"><summary>{_esc(say(lang, "ai_details"))}</summary>'
                f"<pre>{_esc(_meta_summary(p.meta))}</pre></details>"
            )
        cards.append(
            f'<div class="relay-para kind-{p.kind}" data-seq="{p.seq}" data-id="{p.id}">'
            f'<div class="relay-meta">#{p.seq} · <b class="relay-author">{_esc(who)}</b> · '
            f'<span class="relay-badge">{_esc(badge)}</span>{edited} · {_esc(_when(p.created_at))}</div>'
            f'<div class="relay-text">{_esc(p.text)}</div>{details}</div>'
        )
    return f'<div class="relay-timeline">{"".join(cards)}</div>'


def render_status(story, head, holder: str | None, lang: str) -> str:
    """Whose turn it is, and whom the model is writing for right now."""
    if holder:
        return f"<p>{say(lang, 'ai_busy_status', holder=_esc(holder))}</p>"
    if story.turn_rule != "alternate":
        return f"<p>{say(lang, 'turn_free')}</p>"
    return f"<p>{say(lang, 'turn_next_ai' if head is not None and head.kind == 'human' else 'turn_next_human')}</p>"


# ---------------------------------------------------------------------------------------------
# Sampling settings <-> controls. The controls are generated from SamplingSettings.specs(), so a
# new knob in the engine shows up here with its range and explanation without touching this file.


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
    from relay.engine import PRESET_LABELS

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


# ---------------------------------------------------------------------------------------------


class _Cancels:
    """Stop buttons: one threading.Event per browser session, set by the stop button."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            event = self._events[session] = threading.Event()
            return event

    def cancel(self, session: str) -> None:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()

    def done(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]


def _lang(request: gr.Request | None) -> str:
    return pick_lang(request.headers.get("accept-language") if request is not None else None)


def _fail(message: str):
    """A user-facing error (no server traceback: it is the user's mistake, not ours)."""
    return gr.Error(message, print_exception=False)


def _need_name(writer: str | None, lang: str) -> str:
    name = (writer or "").strip()
    if not name:
        raise _fail(say(lang, "need_name"))
    return name


def _need_story(story_id, lang: str) -> int:
    if story_id in (None, ""):
        raise _fail(say(lang, "need_story"))
    return int(story_id)


class AITurn:
    """The model's turn on a story: holds the story's AI-turn lease while the engine writes.

    Shared by the browser handlers and the API so both follow the same rules: the turn rule is
    checked first, one model turn per story at a time (the lease), and the finished text is kept
    as a server-side candidate; only candidates can become AI paragraphs.
    """

    def __init__(self, engine, store: StoryStore, *, escape_names: bool):
        self.engine = engine
        self.store = store
        self.name = _esc if escape_names else str  # browser toasts render HTML; API messages are plain

    def check_ai_may_write(self, story_id: int, lang: str):
        story = self.store.get_story(story_id)
        head = self.store.head(story_id)
        if story.turn_rule == "alternate" and (head is None or head.kind == "ai"):
            raise _fail(say(lang, "not_ai_turn"))
        return story, head

    @contextlib.contextmanager
    def _turn(self, story_id: int, author: str, lang: str):
        """Check the turn rule and hold the story's AI-turn lease; yields (head, paragraph texts)."""
        _, head = self.check_ai_may_write(story_id, lang)
        try:
            self.store.claim_ai_turn(story_id, author, ttl=AI_TURN_TTL)
        except TurnBusy as e:
            raise _fail(say(lang, "ai_busy", holder=self.name(e.holder))) from None
        try:
            yield head, [p.text for p in self.store.timeline(story_id)]
        except (SettingsError, EngineError) as e:
            raise _fail(say(lang, "generation_failed", detail=str(e))) from None
        finally:
            self.store.release_ai_turn(story_id, author)

    def stream(self, story_id: int, author: str, settings: SamplingSettings, adapter: str | None,
               cancel: threading.Event | None, lang: str) -> Iterator[tuple[str, dict | None]]:
        """Yields (text so far, None) while writing, then (final text, candidate info)."""
        with self._turn(story_id, author, lang) as (head, paragraphs):
            continuation = self.engine.continue_story(paragraphs, settings, adapter=adapter, cancel=cancel)
            text, refreshed = "", time.monotonic()
            try:
                for chunk in continuation:
                    text += chunk
                    if time.monotonic() - refreshed > AI_TURN_TTL / 3:  # keep the lease while writing
                        self.store.claim_ai_turn(story_id, author, ttl=AI_TURN_TTL)
                        refreshed = time.monotonic()
                    yield text, None
            finally:
                continuation.close()
            text, meta = continuation.text, dict(continuation.meta)
            if not text.strip():
                raise _fail(say(lang, "empty_output"))
            candidate_id = self.store.add_candidate(story_id, author, text, meta)
            self.store.release_ai_turn(story_id, author)  # before the last render, so it shows the turn is over
            yield text, {"candidate_id": candidate_id, "meta": meta, "expected_head": head.id if head else 0}

    def alternatives(self, story_id: int, author: str, settings: SamplingSettings, n: int,
                     adapter: str | None, lang: str) -> tuple[list[str], list[str], int, dict]:
        """n candidates from one batched call: (texts, candidate ids, expected head, meta)."""
        with self._turn(story_id, author, lang) as (head, paragraphs):
            texts = self.engine.alternatives(paragraphs, settings, n, adapter=adapter)
            meta = dict(texts.meta)
            kept = [(i, t) for i, t in enumerate(texts) if t.strip()]
            if not kept:
                raise _fail(say(lang, "empty_output"))
            ids = [self.store.add_candidate(story_id, author, t, {**meta, "alternative": i}) for i, t in kept]
            return [t for _, t in kept], ids, (head.id if head else 0), meta


def build_demo(engine, store: StoryStore, *, tiny: bool = False, poll_seconds: float = POLL_SECONDS) -> gr.Blocks:
    """The Relay web app (UI and API) over one engine and one story store."""
    specs = SamplingSettings.specs()
    names = [s.name for s in specs]
    defaults = SamplingSettings()
    ai_turn = AITurn(engine, store, escape_names=True)
    cancels = _Cancels()
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
        _register_api(engine, store, AITurn(engine, store, escape_names=False))

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

            with gr.Tab(i18n_key("tab_lab"), id="lab"):
                gr.Markdown(i18n_key("lab_intro"))
                lab_context = gr.Textbox(label=i18n_key("lab_context"), lines=8, max_lines=30, elem_id="relay-lab-context")
                with gr.Row():
                    lab_from_story = gr.Button(i18n_key("lab_from_story"), size="sm")
                    lab_n = gr.Slider(2, LAB_COLUMNS, value=2, step=1, label=i18n_key("lab_columns"))
                    lab_run = gr.Button(i18n_key("lab_run"), variant="primary", elem_id="relay-lab-run")
                lab_columns, lab_controls, lab_presets, lab_outputs, lab_seeds, lab_use = [], [], [], [], [], []
                lab_specs = [s for s in specs if s.name in LAB_FIELDS]
                start_presets = list(PRESETS)
                with gr.Row():
                    for i in range(LAB_COLUMNS):
                        p0 = start_presets[i % len(start_presets)]
                        with gr.Column(visible=i < 2, min_width=200) as col:
                            gr.Markdown(f"**#{i + 1}**")
                            lab_presets.append(gr.Dropdown(choices=[(i18n_key(f"preset.{p}"), p) for p in PRESETS],
                                                           value=p0, label=i18n_key("preset")))
                            lab_controls.append([_setting_component(s, getattr(PRESETS[p0], s.name)) for s in lab_specs])
                            lab_outputs.append(gr.Textbox(label=i18n_key("lab_output"), lines=8, interactive=False,
                                                          elem_id=f"relay-lab-out-{i}"))
                            lab_seeds.append(gr.Markdown())
                            lab_use.append(gr.Button(i18n_key("lab_use"), size="sm"))
                        lab_columns.append(col)

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

        def _seed_line(meta: dict, lang: str) -> str:
            return say(lang, "last_seed", seed=meta.get("seed"), tokens=meta.get("output_tokens", 0),
                       seconds=float(meta.get("seconds", 0.0)), stopped=say(lang, f"stopped_{meta.get('stopped_by', 'length')}"))

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
                        yield (text, info, _seed_line(done["meta"], lang), hide_alts, *view(sid, lang, reading_on, base))
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
            return (alts, gr.Row(visible=True), _seed_line(meta, lang), "", None, *boxes, *picks,
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

        def lab_show(n):
            return [gr.Column(visible=i < int(n)) for i in range(LAB_COLUMNS)]

        lab_n.change(lab_show, [lab_n], lab_columns, **private)

        def lab_take_story(story_id, lang):
            sid = _need_story(story_id, lang)
            return "\n".join(p.text for p in store.timeline(sid))

        lab_from_story.click(lab_take_story, [story_state, lang_state], [lab_context], **private)

        lab_names = [s.name for s in lab_specs]
        per_column = 1 + len(lab_names)  # preset + its controls
        lab_used = gr.State([None] * LAB_COLUMNS)  # per column: the settings (with seed) of its last output

        def lab_settings(preset_name, values) -> SamplingSettings:
            base_settings = PRESETS.get(preset_name, defaults)
            merged = {**base_settings.to_dict(), **dict(zip(lab_names, values))}
            return settings_from_values(list(merged), list(merged.values()))

        def lab_generate(request: gr.Request, context, n, adapter_name, lang, *flat):
            paragraphs = [line for line in (context or "").split("\n") if line.strip()]
            if not paragraphs:
                raise _fail(say(lang, "lab_need_context"))
            n = int(n)
            columns = [flat[i * per_column:(i + 1) * per_column] for i in range(LAB_COLUMNS)]
            try:
                settings = [lab_settings(col[0], col[1:]) for col in columns[:n]]
            except SettingsError as e:
                raise _fail(say(lang, "settings_error", detail=str(e))) from None
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
                    seeds[i] = _seed_line(continuation.meta, lang)
                    used[i] = continuation.meta["settings"]
                    yield *outputs, *seeds, used
            except EngineError as e:
                raise _fail(say(lang, "generation_failed", detail=str(e))) from None
            finally:
                cancels.done(request.session_hash or "", cancel)

        lab_inputs = [lab_context, lab_n, adapter, lang_state]
        for i in range(LAB_COLUMNS):
            lab_inputs += [lab_presets[i], *lab_controls[i]]
        lab_run.click(lab_generate, lab_inputs, [*lab_outputs, *lab_seeds, lab_used], **model_queue, **private)

        def lab_preset(name):
            return settings_to_values(lab_names, PRESETS[name]) if name in PRESETS else [gr.skip()] * len(lab_names)

        for i in range(LAB_COLUMNS):
            lab_presets[i].input(lab_preset, [lab_presets[i]], lab_controls[i], **private)

        def lab_use_column(i):
            def use(lang, used, preset_name, *values):
                """The column's settings as they produced its output (seed included), else as set now."""
                try:
                    s = SamplingSettings.from_dict(used[i]) if used and used[i] else lab_settings(preset_name, values)
                except SettingsError as e:
                    raise _fail(say(lang, "settings_error", detail=str(e))) from None
                gr.Info(say(lang, "lab_applied", n=i + 1))
                return (gr.Tabs(selected="story"), *settings_to_values(names, s))
            return use

        for i in range(LAB_COLUMNS):
            lab_use[i].click(lab_use_column(i), [lang_state, lab_used, lab_presets[i], *lab_controls[i]], [tabs, *controls],
                             **private)

    return demo


def _register_api(engine, store: StoryStore, ai_turn: AITurn) -> None:
    """Named endpoints for gradio_client; errors come back as gr.Error messages."""

    def api_error(e: Exception):
        return gr.Error(str(e), print_exception=False)

    def list_stories() -> list[dict]:
        """All stories, most recently active first."""
        return [s.to_dict() for s in store.list_stories()]

    def create_story(title: str, author: str, turn_rule: str = "alternate") -> dict:
        """Create a story; turn_rule is "alternate" or "free"."""
        try:
            return store.create_story(title, author, turn_rule=turn_rule).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    def timeline(story_id: int) -> list[dict]:
        """The story's paragraphs in order."""
        try:
            return [p.to_dict() for p in store.timeline(int(story_id))]
        except StoryError as e:
            raise api_error(e) from None

    def add_paragraph(story_id: int, text: str, author: str, expected_head: int | None = None) -> dict:
        """Append a human paragraph; expected_head is the id of the last paragraph you saw (0: empty story)."""
        try:
            return store.add_paragraph(int(story_id), text, author, kind="human", expected_head=expected_head).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    def continue_story(story_id: int, author: str, settings: dict | None = None, adapter: str | None = None) -> Iterator[dict]:
        """Stream a model continuation: {"text", "done": false} chunks, then the candidate to accept."""
        try:
            sampling = SamplingSettings.from_dict(settings or {})
            name = (author or "").strip()
            if not name:
                raise api_error(ValueError("author is required"))
            for text, done in ai_turn.stream(int(story_id), name, sampling, adapter or None, None, "en"):
                if done is None:
                    yield {"text": text, "done": False}
                else:
                    yield {"text": text, "done": True, **done}
        except (StoryError, SettingsError) as e:
            raise api_error(e) from None

    def accept(candidate_id: str, author: str, text: str | None = None, expected_head: int | None = None) -> dict:
        """Store a generated candidate as the story's next AI paragraph, optionally edited."""
        try:
            return store.accept_candidate(candidate_id, author, text=text, expected_head=expected_head).to_dict()
        except StoryError as e:
            raise api_error(e) from None

    gr.api(list_stories, api_name="list_stories")
    gr.api(create_story, api_name="create_story")
    gr.api(timeline, api_name="timeline")
    gr.api(add_paragraph, api_name="add_paragraph")
    gr.api(continue_story, api_name="continue_story", concurrency_id="model", concurrency_limit=1)
    gr.api(accept, api_name="accept")


# ---------------------------------------------------------------------------------------------
# Launching


def launch(demo: gr.Blocks, **kwargs):
    """Queue and launch the demo with Relay's translations and style; returns what launch returns."""
    demo.queue(default_concurrency_limit=4, max_size=64)
    kwargs.setdefault("ssr_mode", False)
    return demo.launch(i18n=make_i18n(), css=CSS, **kwargs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Relay: write a Korean novel together with KoGPT-2.")
    parser.add_argument("--model", default=env.get("RELAY_MODEL", DEFAULT_MODEL),
                        help='Hub id or local folder of the base model, or "tiny" for a tiny random model (env RELAY_MODEL)')
    parser.add_argument("--adapter", action="append", default=None, metavar="NAME=PATH",
                        help="a LoRA adapter folder or Hub id; repeatable (env RELAY_ADAPTERS: NAME=PATH,NAME=PATH)")
    parser.add_argument("--db", default=env.get("RELAY_DB"), help="SQLite database file (env RELAY_DB; default ./relay-data/relay.db)")
    parser.add_argument("--host", default=env.get("RELAY_HOST", env.get("GRADIO_SERVER_NAME", "127.0.0.1")),
                        help="address to listen on (env RELAY_HOST; 0.0.0.0 on Spaces)")
    parser.add_argument("--port", type=int, default=int(env.get("RELAY_PORT", env.get("GRADIO_SERVER_PORT", "7860"))),
                        help="port (env RELAY_PORT)")
    parser.add_argument("--share", action="store_true", default=env.get("RELAY_SHARE", "") in ("1", "true", "yes"),
                        help="also create a public gradio.live link (env RELAY_SHARE=1)")
    args = parser.parse_args(argv)
    pairs = args.adapter if args.adapter is not None else [p for p in env.get("RELAY_ADAPTERS", "").split(",") if p.strip()]
    adapters = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            parser.error(f"--adapter needs NAME=PATH, got {pair!r}")
        adapters[name.strip()] = path.strip()
    args.adapters = adapters
    return args


def load_engine(model: str, adapters: dict[str, str]):
    """The engine for `model` ("tiny" builds a tiny random model in a cache folder)."""
    from relay.engine import Engine

    tiny = model == "tiny"
    if tiny:
        from relay.tiny import tiny_model_folder

        model = str(tiny_model_folder(Path(tempfile.gettempdir()) / "relay-tiny"))
    return Engine.from_pretrained(model=model, adapters=adapters or None), tiny


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        engine, tiny = load_engine(args.model, args.adapters)
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        print("hint: pass --model with a local folder that holds the model (config.json, weights, tokenizer), "
              "or --model tiny to try the interface with a tiny random model.", file=sys.stderr)
        return 2
    try:
        store = StoryStore(args.db)
    except StoryError as e:
        print(f"error: cannot open the story database: {e}", file=sys.stderr)
        return 2
    demo = build_demo(engine, store, tiny=tiny)
    launch(demo, server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
