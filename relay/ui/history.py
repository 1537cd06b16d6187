"""History you can trust: edit an accepted paragraph and read its earlier versions, undo and redo,
fork here / continue from here, import a JSON export, and times shown in the reader's time zone.

`build_history_panel(ui)` lays the panel out inside the story tab's "more" accordion and wires it.
Timeline cards reach it through `paragraph_actions_html` (buttons on each card) and the head script
`HISTORY_HEAD_JS` (a click on such a button fills the panel's paragraph number and runs the action).
The panel never renders the timeline: the store's change feed makes every open page re-render.
"""

from __future__ import annotations

import difflib
import html
import inspect
import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.story_store import StoryError, UnknownWriterKey
from relay.ui.controls import i18n_key
from relay.ui.limit_text import limit_message
from relay.ui.messages import error_text, info, warn
from relay.ui_text import say

log = logging.getLogger(__name__)

MAX_IMPORT_BYTES = 2 * 1024 * 1024  # a story export at the paragraph cap fits; the browser refuses larger files
# A larger export is read (up to this size) and sent without its token probabilities (meta "tokens", ~20 KB an AI
# paragraph), which the import does not need to restore the story; if it still does not fit, it is refused.
MAX_IMPORT_READ_BYTES = 40 * 1024 * 1024
IMPORT_TOO_BIG = "relay:too-big"  # what the page script sends instead of a file over MAX_IMPORT_BYTES
TITLE_MAX = 100  # the store's title limit

SEQ_ID = "relay-history-seq"
LOAD_ID = "relay-history-load"
FORK_ID = "relay-history-fork"
REWRITE_ID = "relay-history-rewrite"
PANEL_ID = "relay-history"
HOST_ID = "relay-more"  # elem_id the page should give the accordion the panel sits in

# After a fork, a "continue from here" or an import: show the new story's address, so sharing the
# address bar shares the story on screen. `opened` is the new story's id, or "" when nothing opened.
OPEN_STORY_URL_JS = """(opened) => {
  if (opened === null || opened === undefined || opened === "") return;
  const url = new URL(window.location.href);
  url.searchParams.set("story", String(opened));
  window.history.replaceState(window.history.state, "", url.toString());
}"""

# Rewrites every <time class="relay-time"> (see render_time) to the browser's time zone, once each.
# Call it after each live update (as an event's js=), or rely on HISTORY_HEAD_JS, which does it on its own.
LOCAL_TIME_JS = """() => {
  const pad = (n) => String(n).padStart(2, "0");
  document.querySelectorAll("time.relay-time:not([data-local])").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) return;
    el.title = el.textContent;
    el.textContent = `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
                     `${pad(when.getHours())}:${pad(when.getMinutes())}`;
    el.setAttribute("data-local", "1");
  });
}"""

# A click on a timeline card's <button class="relay-act" data-act="edit|fork|rewrite" data-seq="N">
# puts N into the history panel's number box and presses the matching button (load for "edit").
# Gradio renders a closed accordion's content only once it is opened, so the panel may not exist yet:
# the accordion with elem_id "relay-more" is opened (else each closed accordion is tried in turn).
PARAGRAPH_ACTIONS_JS = """(() => {
  const buttons = {edit: "%(load)s", fork: "%(fork)s", rewrite: "%(rewrite)s"};
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const seqBox = () => document.querySelector("#%(seq)s input");
  const appears = async () => {
    for (let i = 0; i < 40 && !seqBox(); i++) await sleep(50);
    return seqBox();
  };
  const reveal = async () => {
    if (seqBox()) return seqBox();
    const host = document.getElementById("%(host)s");
    const named = host && host.querySelector(":scope > button.label-wrap");
    const toggles = named ? [named] : [...document.querySelectorAll("button.label-wrap:not(.open)")];
    for (const toggle of toggles) {
      if (!toggle.classList.contains("open")) toggle.click();
      if (await appears()) return seqBox();
      if (!named) toggle.click();  // not this one: close it again
    }
    return null;
  };
  document.addEventListener("click", async (event) => {
    const act = event.target.closest && event.target.closest("button.relay-act");
    if (!act || !buttons[act.dataset.act]) return;
    event.preventDefault();
    const box = await reveal();
    if (!box) return;
    box.value = act.dataset.seq;
    box.dispatchEvent(new Event("input", {bubbles: true}));
    await sleep(200);  // let the number box hand its value to Gradio before the button reads it
    const panel = document.getElementById("%(panel)s");
    if (panel) panel.scrollIntoView({block: "start"});
    const button = document.getElementById(buttons[act.dataset.act]);
    if (button) button.click();
  });
})();""" % {"load": LOAD_ID, "fork": FORK_ID, "rewrite": REWRITE_ID, "seq": SEQ_ID, "panel": PANEL_ID,
            "host": HOST_ID}

# Everything this module needs in the page head: the card actions and local times (kept local as
# the page changes). The integrator puts it in `head=` as <script>...</script>.


def _both(key: str) -> str:
    """A catalogue text in both languages; the page shows the one of its language (CSS on html[data-relay-lang])."""
    return (f'<span class="relay-ko">{html.escape(say("ko", key))}</span>'
            f'<span class="relay-en">{html.escape(say("en", key))}</span>')


IMPORT_INPUT_HTML = (
    f'<label class="relay-import"><span class="relay-import-title">{_both("import_label")}</span>'
    f'<span class="relay-import-button">{_both("import_choose")}</span>'
    '<input type="file" accept=".json,application/json" id="relay-import-input"></label>'
)
# Import: the browser reads the chosen file and sends its text through a hidden box and button; a file
# over the limit is not read (its place is taken by a marker the server answers with the size message).
IMPORT_JS = """
(() => {  // the page's language, as the server picks it: the browser's first language (for html[data-relay-lang])
  const first = ((navigator.languages && navigator.languages[0]) || navigator.language || "").toLowerCase();
  document.documentElement.dataset.relayLang = !first || first.startsWith("ko") ? "ko" : "en";
})();
function withoutTokens(text) {  // an export over the limit, less its token probabilities; the marker if still too big
  try {
    const data = JSON.parse(text);
    const strip = (meta) => {
      if (!meta || typeof meta !== "object") return;
      delete meta.tokens;
      for (const candidate of Array.isArray(meta.candidates) ? meta.candidates : []) {
        if (candidate && typeof candidate === "object") delete candidate.tokens;
      }
    };
    for (const p of Array.isArray(data.paragraphs) ? data.paragraphs : []) {
      if (!p || typeof p !== "object") continue;
      strip(p.meta);
      for (const v of Array.isArray(p.versions) ? p.versions : []) if (v && typeof v === "object") strip(v.meta);
    }
    const smaller = JSON.stringify(data);
    return new Blob([smaller]).size > %(max)d ? "%(too_big)s" : smaller;
  } catch (error) {
    return "%(too_big)s";
  }
}
document.addEventListener("change", async (event) => {
  const input = event.target;
  if (!input || input.id !== "relay-import-input" || !input.files || !input.files[0]) return;
  const file = input.files[0];
  let text = file.size > %(read_max)d ? "%(too_big)s" : await file.text();
  if (file.size > %(max)d && text !== "%(too_big)s") text = withoutTokens(text);
  input.value = "";
  const box = document.querySelector("#relay-import-text textarea, #relay-import-text input");
  if (!box) return;
  box.value = text;
  box.dispatchEvent(new Event("input", {bubbles: true}));
  setTimeout(() => document.getElementById("relay-import-go")?.click(), 50);
});
""" % {"max": MAX_IMPORT_BYTES, "read_max": MAX_IMPORT_READ_BYTES, "too_big": IMPORT_TOO_BIG}

HISTORY_HEAD_JS = PARAGRAPH_ACTIONS_JS + IMPORT_JS + """
(() => {
  const localize = %(local)s;
  let queued = false;
  const later = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; localize(); });
  };
  const start = () => {
    localize();
    new MutationObserver(later).observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();""" % {"local": LOCAL_TIME_JS}

CSS = """
html:not([data-relay-lang="en"]) .relay-en, html[data-relay-lang="en"] .relay-ko { display: none; }
.relay-import { display: flex; flex-wrap: wrap; align-items: center; gap: 0.6rem; padding: 0.6rem 0; cursor: pointer; }
.relay-import-title { color: var(--body-text-color-subdued); font-size: var(--text-sm); }
.relay-import-button { min-height: 44px; display: inline-flex; align-items: center; padding: 0 1rem; border-radius: 6px;
                       border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill); }
.relay-import input[type=file] { position: absolute; width: 1px; height: 1px; opacity: 0; }
.relay-import:focus-within .relay-import-button { outline: 2px solid var(--color-accent); }
.relay-acts { display: inline-flex; gap: 0.3rem; }
.relay-act { font-size: 0.75rem; padding: 0 0.4rem; border: 1px solid var(--border-color-primary); border-radius: 4px;
             background: var(--button-secondary-background-fill); cursor: pointer; }
.relay-versions { display: flex; flex-direction: column; gap: 0.5rem; }
.relay-version { border-left: 3px solid var(--border-color-primary); padding-left: 0.6rem; }
.relay-version .relay-text { white-space: pre-wrap; }
.relay-version ins { background: #d4f7d4; text-decoration: none; }
.relay-version del { background: #f7d4d4; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_time(iso: str) -> str:
    """A stored time as `<time class="relay-time" datetime="ISO">YYYY-MM-DD HH:MM UTC</time>`;
    LOCAL_TIME_JS turns the text into the browser's time zone."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return _esc(iso)
    if when.tzinfo is None:  # the store writes UTC
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return f'<time class="relay-time" datetime="{_esc(when.isoformat())}">{when:%Y-%m-%d %H:%M} UTC</time>'


def paragraph_actions_html(paragraph, lang: str) -> str:
    """The edit / fork-here / continue-from-here buttons for one timeline card (HISTORY_HEAD_JS runs them)."""
    seq = int(paragraph.seq)
    buttons = []
    for act in ("edit", "fork", "rewrite"):
        buttons.append(f'<button type="button" class="relay-act" data-act="{act}" data-seq="{seq}" '
                       f'title="{_esc(say(lang, f"act_{act}_title"))}">{_esc(say(lang, f"act_{act}"))}</button>')
    return f'<span class="relay-acts">{"".join(buttons)}</span>'


def render_versions(versions, lang: str) -> str:
    """A paragraph's versions, newest first: who changed it, when, and what changed since the one before."""
    if not versions:
        return f"<p><em>{_esc(say(lang, 'history_pick'))}</em></p>"
    if len(versions) == 1:
        only = versions[0]
        return (f'<div class="relay-versions"><p><em>{_esc(say(lang, "history_never_edited"))}</em></p>'
                f'{_version_card(only, None, lang)}</div>')
    cards = [_version_card(v, versions[i - 1] if i else None, lang) for i, v in enumerate(versions)]
    return f'<div class="relay-versions">{"".join(reversed(cards))}</div>'


def _version_card(version, before, lang: str) -> str:
    key = "history_version" if before is not None else "history_first_version"
    head = say(lang, key, version=int(version.version), editor=_esc(version.editor))
    body = _diff_html(before.text, version.text) if before is not None else _esc(version.text)
    return (f'<div class="relay-version" data-version="{int(version.version)}">'
            f'<div class="relay-meta">{head} · {render_time(version.edited_at)}</div>'
            f'<div class="relay-text">{body}</div></div>')


def _diff_html(old: str, new: str) -> str:
    """`new` with the words added since `old` in <ins> and the words removed in <del> (all escaped)."""
    a, b = old.split(" "), new.split(" ")
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(_esc(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{_esc(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{_esc(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def _attempt(lang: str, action: str, fn, *args, **kwargs):
    """Run a store call; on failure show the catalogue's sentence for it and return None.

    Store errors are the person's situation (someone else's paragraph, a stale head...); anything
    else is our bug: it is logged with its traceback and the person gets the generic sentence.
    """
    try:
        return True, fn(*args, **kwargs)
    except StoryError as e:
        warn(lang, error_text(lang, e, action=action))
    except Exception as e:  # noqa: BLE001 - the edge where every failure becomes a sentence
        log.exception("history action %s failed", action)
        warn(lang, error_text(lang, e, action=action))
    return False, None


def _keyed(method, *args, writer_key: str | None = None, **kwargs):
    """Call a store method with the writer's key (the page always has one: a call without is forged)."""
    if not writer_key:
        raise UnknownWriterKey("This page has no writer key.")
    if "writer_key" in inspect.signature(method).parameters:
        kwargs["writer_key"] = writer_key
    return method(*args, **kwargs)


def _new_story_allowed(limits, key: str | None, request, lang: str) -> bool:
    """Count one new story (a fork, a continue-from-here, an import) against the writer's and the address's
    rate; False after saying why when it is over."""
    if limits is None:
        return True
    try:
        limits.check("story", _public_id(key), client_ip(request))
    except LimitExceeded as e:
        warn(lang, limit_message(lang, e))
        return False
    return True


def _public_id(key: str | None) -> str | None:
    from relay.story_store import writer_id_of

    try:
        return writer_id_of(key) if key else None
    except StoryError:
        return None


def build_history_panel(ui) -> SimpleNamespace:
    """Lay out the history panel (#relay-history) in the current container and wire it.

    `ui` needs .store, .story_state, .lang_state, .writer (name textbox), .writer_key (gr.BrowserState
    with the writer's key), .base_url, .tabs and .private. Returns a namespace with the components
    and `opened`: the event steps after which a new story is open in `ui.story_state` (fork, continue
    from here, import), for the page to chain its own rendering with `.then(...)` if it needs to.
    """
    store, story_state, lang_state, tabs = ui.store, ui.story_state, ui.lang_state, ui.tabs
    limits = getattr(ui, "limits", None)
    writer, writer_key = ui.writer, getattr(ui, "writer_key", None)
    private = getattr(ui, "private", {"api_visibility": "private"})
    key_input = [writer_key] if writer_key is not None else []

    with gr.Column(elem_id=PANEL_ID):
        gr.Markdown(i18n_key("history_title"))
        with gr.Row():
            seq = gr.Number(label=i18n_key("history_seq"), precision=0, elem_id=SEQ_ID, scale=1)
            load_btn = gr.Button(i18n_key("history_load"), size="sm", elem_id=LOAD_ID, scale=1)
        text = gr.Textbox(label=i18n_key("history_text"), lines=4, max_lines=20, elem_id="relay-history-text")
        save_btn = gr.Button(i18n_key("history_save"), elem_id="relay-history-save")
        versions = gr.HTML(elem_id="relay-history-versions")
        with gr.Row():
            restore_number = gr.Number(value=None, label=i18n_key("history_restore_number"), precision=0,
                                       elem_id="relay-history-restore-number", scale=1)
            restore_btn = gr.Button(i18n_key("history_restore"), size="sm", elem_id="relay-history-restore", scale=1)
        with gr.Row():
            undo_btn = gr.Button(i18n_key("undo"), size="sm", elem_id="relay-history-undo")
            redo_btn = gr.Button(i18n_key("redo"), size="sm", elem_id="relay-history-redo")
        with gr.Row():
            fork_title = gr.Textbox(label=i18n_key("fork_title"), placeholder=i18n_key("fork_title_ph"),
                                    max_length=TITLE_MAX, elem_id="relay-history-fork-title", scale=2)
            fork_btn = gr.Button(i18n_key("fork"), size="sm", elem_id=FORK_ID, scale=1)
            rewrite_btn = gr.Button(i18n_key("rewrite"), size="sm", elem_id=REWRITE_ID, scale=1)
        # The file is read by the browser and its text sent (IMPORT_JS): the server never takes a file
        # path from the page, so nobody can make it import a file it did not just receive.
        import_box = gr.HTML(IMPORT_INPUT_HTML, elem_id="relay-history-import")
        import_text = gr.Textbox(elem_id="relay-import-text", elem_classes=["relay-hidden"], max_lines=1)
        import_go = gr.Button("import", elem_id="relay-import-go", elem_classes=["relay-hidden"])
        # The story a fork or an import just opened ("" when none): a hidden component, not a gr.State,
        # because the browser's address-bar script reads it and a State never reaches the browser.
        opened = gr.Textbox(visible=False, elem_id="relay-history-opened")

    def who(name, lang) -> str | None:
        name = (name or "").strip()
        if not name:
            warn(lang, say(lang, "need_name"))
            return None
        return name

    def story_of(story_id, lang) -> int | None:
        if story_id in (None, ""):
            warn(lang, say(lang, "need_story"))
            return None
        return int(story_id)

    def paragraph_at(sid: int, number, lang):
        """The live paragraph numbered `number` in the story, or None (after saying why)."""
        if number in (None, ""):
            warn(lang, say(lang, "history_need_seq"))
            return None
        found = next((p for p in store.timeline(sid) if p.seq == int(number)), None)
        if found is None:
            warn(lang, say(lang, "bad_seq", seq=int(number)))
        return found

    # -- look at a paragraph and edit it -----------------------------------------------------

    def load(story_id, number, lang):
        sid = story_of(story_id, lang)
        paragraph = paragraph_at(sid, number, lang) if sid is not None else None
        if paragraph is None:
            return gr.skip(), gr.skip()
        return paragraph.text, render_versions(store.paragraph_versions(paragraph.id), lang)

    load_btn.click(load, [story_state, seq, lang_state], [text, versions], **private)
    seq.submit(load, [story_state, seq, lang_state], [text, versions], **private)

    def save(story_id, number, new_text, name, lang, *key):
        sid = story_of(story_id, lang)
        name = who(name, lang) if sid is not None else None
        paragraph = paragraph_at(sid, number, lang) if name else None
        if paragraph is None:
            return gr.skip()
        ok, _ = _attempt(lang, "edit", _keyed, store.edit_paragraph, sid, paragraph.id, new_text, name,
                         writer_key=(key or [None])[0])
        if not ok:  # the edited text stays in the box
            return gr.skip()
        info(lang, say(lang, "history_saved", seq=paragraph.seq))
        return render_versions(store.paragraph_versions(paragraph.id), lang)

    save_btn.click(save, [story_state, seq, text, writer, lang_state, *key_input], [versions], **private)

    def restore(story_id, number, version, name, lang, *key):
        """Bring an earlier version back as the paragraph's text: a new version, the history kept."""
        sid = story_of(story_id, lang)
        name = who(name, lang) if sid is not None else None
        paragraph = paragraph_at(sid, number, lang) if name else None
        if paragraph is None:
            return gr.skip(), gr.skip()
        earlier = {v.version: v for v in store.paragraph_versions(paragraph.id)}
        if version in (None, "") or int(version) not in earlier:
            warn(lang, say(lang, "history_no_such_version", version=version if version not in (None, "") else "?"))
            return gr.skip(), gr.skip()
        old_text = earlier[int(version)].text
        ok, _ = _attempt(lang, "edit", _keyed, store.edit_paragraph, sid, paragraph.id, old_text, name,
                         writer_key=(key or [None])[0])
        if not ok:
            return gr.skip(), gr.skip()
        info(lang, say(lang, "history_restored", seq=paragraph.seq, version=int(version)))
        return old_text, render_versions(store.paragraph_versions(paragraph.id), lang)

    restore_btn.click(restore, [story_state, seq, restore_number, writer, lang_state, *key_input], [text, versions],
                      **private)

    # -- undo and redo -------------------------------------------------------------------------

    def undo_or_redo(action):
        def run(story_id, name, lang, *key):
            sid = story_of(story_id, lang)
            name = who(name, lang) if sid is not None else None
            if name is None:
                return
            method = store.undo_last if action == "undo" else store.redo_last
            ok, _ = _attempt(lang, action, _keyed, method, sid, name, writer_key=(key or [None])[0])
            if not ok:
                return
            info(lang, say(lang, "undone" if action == "undo" else "redone"))
        return run

    undo_btn.click(undo_or_redo("undo"), [story_state, writer, lang_state, *key_input], None, **private)
    redo_btn.click(undo_or_redo("redo"), [story_state, writer, lang_state, *key_input], None, **private)

    # -- fork here, continue from here, import ------------------------------------------------------

    nothing = ("", gr.skip(), gr.skip())  # opened, story_state, tabs

    def fork_at(rewrite: bool):
        def run(story_id, number, title, name, lang, *key, request: gr.Request = None):
            key = (key or [None])[0]
            sid = story_of(story_id, lang)
            name = who(name, lang) if sid is not None else None
            paragraph = paragraph_at(sid, number, lang) if name else None
            if paragraph is None or not _new_story_allowed(limits, key, request, lang):
                return nothing
            story = store.get_story(sid)
            title = (title or "").strip() or say(lang, "fork_default_title", title=story.title)[:TITLE_MAX]
            before = [p for p in store.timeline(sid) if p.seq < paragraph.seq]
            if not rewrite:
                ok, new = _attempt(lang, "fork", _keyed, store.fork, sid, paragraph.id, title, name, writer_key=key)
            elif before:  # continue from here = a fork at the paragraph before, ready for a new one
                ok, new = _attempt(lang, "fork", _keyed, store.fork, sid, before[-1].id, title, name, writer_key=key)
            else:  # rewriting from the first paragraph: a new, empty story with the same rule and defaults
                ok, new = _attempt(lang, "fork", _keyed, store.create_story, title, name, turn_rule=story.turn_rule,
                                   settings=story.settings, writer_key=key)
            if not ok:
                return nothing
            info(lang, say(lang, "rewrite_opened", story=new.id, seq=paragraph.seq) if rewrite
                 else say(lang, "forked", story=new.id))
            return str(new.id), new.id, gr.Tabs(selected="story")
        return run

    fork_inputs = [story_state, seq, fork_title, writer, lang_state, *key_input]
    fork_step = fork_btn.click(fork_at(False), fork_inputs, [opened, story_state, tabs], **private)
    rewrite_step = rewrite_btn.click(fork_at(True), fork_inputs, [opened, story_state, tabs], **private)

    def import_story(text, name, lang, *key, request: gr.Request = None):
        key = (key or [None])[0]
        if not text:
            return (*nothing, "")
        if text == IMPORT_TOO_BIG or len(text) > MAX_IMPORT_BYTES:
            warn(lang, say(lang, "import_too_big", mb=MAX_IMPORT_BYTES // (1024 * 1024)))
            return (*nothing, "")
        name = who(name, lang)
        if name is None or not _new_story_allowed(limits, key, request, lang):
            return (*nothing, "")
        ok, new = _attempt(lang, "import", _keyed, store.import_json, text, name, writer_key=key)
        if not ok:
            return (*nothing, "")
        info(lang, say(lang, "imported", story=new.id, title=_esc(new.title)))
        return str(new.id), new.id, gr.Tabs(selected="story"), ""

    import_step = import_go.click(import_story, [import_text, writer, lang_state, *key_input],
                                  [opened, story_state, tabs, import_text], **private)

    opened_steps = []
    for step in (fork_step, rewrite_step, import_step):
        opened_steps.append(step.then(None, [opened], None, js=OPEN_STORY_URL_JS, **private))

    return SimpleNamespace(seq=seq, text=text, versions=versions, fork_title=fork_title, import_box=import_box,
                           opened=opened_steps)


def head_scripts() -> str:
    """The <script> tags the desk needs in `launch(head=...)`: Korean words for Gradio's own toast titles
    and progress text, typed values of setting boxes, timeline card actions, and local times."""
    from relay.ui.controls import SETTINGS_HEAD_JS
    from relay.ui.messages import GRADIO_KOREAN_JS

    return "".join(f"<script>{js}</script>" for js in (GRADIO_KOREAN_JS, SETTINGS_HEAD_JS, HISTORY_HEAD_JS))
