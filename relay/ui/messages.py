"""What a person reads when something goes wrong: one sentence in the page's language, in a writer's words.

The store and the engine raise errors whose messages are written for programmers (and the engine's
settings errors mix Korean and English). This module is the edge where they become a sentence
from the UI text catalogue: `error_text(lang, exc)` picks it by the error's class (store errors)
or by the setting it is about (engine SettingsError, with the allowed range from
SamplingSettings.specs()). Every value put into a sentence is HTML-escaped, because Gradio
toasts render HTML.

Gradio 6.31 itself shows some English on a Korean page; see `GRADIO_KOREAN_JS` for what can be
done about it from the page.
"""

from __future__ import annotations

import html
import re

import gradio as gr

from relay.settings import EngineError, SamplingSettings, SettingsError
from relay.ui_text import say

# Store error classes by name, most specific first through the class's MRO, so errors added to the
# store later (TurnLost, NameTaken, StoreUnavailable) need no import here and an unknown subclass
# still gets its parent's sentence.
STORE_ERRORS = ("UnknownWriterKey", "NameTaken", "NotAllowed", "TurnLost", "TurnBusy", "StaleHeadError", "StoryFull", "TurnError", "NotFound",
                "InvalidInput", "StoreBusy", "StoreUnavailable", "StoryError")
# Actions with their own wording for some errors (err.<action>.<Class> in the catalogue).
ACTIONS = ("undo", "redo", "edit", "fork", "import", "accept")


def error_text(lang: str, exc: BaseException, action: str | None = None) -> str:
    """The sentence to show for `exc` in `lang` ("ko" or "en"); `action` ("undo", "edit", ...) picks
    a more precise wording where the catalogue has one. Unknown errors get a polite generic sentence."""
    if isinstance(exc, SettingsError):
        return settings_error_text(lang, exc)
    if isinstance(exc, EngineError):
        return say(lang, "err.engine")
    for cls in type(exc).__mro__:
        name = cls.__name__
        if name not in STORE_ERRORS:
            continue
        values = {"holder": _esc(getattr(exc, "holder", "") or say(lang, "someone"))}
        if name == "TurnBusy" and getattr(exc, "status", "writing") == "pending":
            name = "TurnBusy.pending"
        for key in ((f"err.{action}.{name}",) if action else ()) + (f"err.{name}",):
            if _has(key):
                return say(lang, key, **values)
    return say(lang, "err.unknown")


def settings_error_text(lang: str, exc: SettingsError) -> str:
    """A settings problem named by the setting's label (never its field name), with its allowed range."""
    field = getattr(exc, "field", "")
    raw = str(exc)
    specs = {s.name: s for s in SamplingSettings.specs()}
    if field == "min_new_tokens" and "max_new_tokens" in raw:
        found = re.search(r"max_new_tokens \((\d+)\)", raw)
        return say(lang, "err.setting.min_over_max", max=found.group(1) if found else "")
    if field == "max_new_tokens" and "window" in raw:
        found = re.search(r"at most (\d+)", raw)
        limit = getattr(exc, "maximum", None) or (found.group(1) if found else "")
        return say(lang, "err.setting.window", max=_num(limit))
    if field == "temperature" and "every candidate" in raw:
        return say(lang, "err.setting.same_alternatives")
    if field == "n":
        return say(lang, "err.setting.n")
    if field == "adapter":
        return say(lang, "err.setting.adapter")
    spec = specs.get(field)
    if spec is None:
        return say(lang, "err.setting.unknown")
    label = setting_label(spec, lang)
    topic = with_topic_particle(label) if lang == "ko" else label
    if spec.kind == "bool":
        return say(lang, "err.setting.bool", topic=topic)
    if spec.kind == "choice":
        names = ", ".join(pair[0 if lang == "ko" else 1] for pair in (spec.choice_labels or {}).values())
        return say(lang, "err.setting.choice", topic=topic, choices=names)
    minimum = getattr(exc, "minimum", None)
    maximum = getattr(exc, "maximum", None)
    low = spec.minimum if minimum is None else minimum
    high = spec.maximum if maximum is None else maximum
    key = {"seed": "err.setting.seed", "int": "err.setting.int"}.get(spec.kind, "err.setting.float")
    text = say(lang, key, topic=topic, min=_num(low), max=_num(high))
    if hasattr(exc, "value") and exc.value is not None:
        text += " " + say(lang, "err.setting.you_typed", value=_esc(_num(exc.value)))
    return text


def setting_label(spec, lang: str) -> str:
    """A setting's label for sentences, without asides in brackets ("후보 수 (top-k)" -> "후보 수")."""
    return re.sub(r"\s*\([^)]*\)", "", spec.label_ko if lang == "ko" else spec.label_en).strip()


def with_topic_particle(word: str) -> str:
    """'온도' -> '온도는', '누적 확률' -> '누적 확률은': the particle follows the last syllable's final consonant."""
    last = word.rstrip()[-1:] if word else ""
    if "가" <= last <= "힣":
        return word + ("은" if (ord(last) - 0xAC00) % 28 else "는")
    return word + "은(는)"


def user_error(lang: str, exc_or_text: BaseException | str, action: str | None = None) -> gr.Error:
    """A gr.Error to raise for a person's mistake: the catalogue sentence, a translated title, no traceback.

    Raise it only from a handler whose `outputs` is empty (a check step followed by `.success(...)`):
    Gradio marks every output of an event that raised with a red error badge that stays after the toast.
    """
    text = exc_or_text if isinstance(exc_or_text, str) else error_text(lang, exc_or_text, action)
    return gr.Error(text, title=say(lang, "toast.error"), print_exception=False)


def warn(lang: str, text: str) -> None:
    """A warning toast with a translated title (the handler goes on and may return gr.skip())."""
    gr.Warning(text, title=say(lang, "toast.warning"))


def info(lang: str, text: str) -> None:
    """An information toast with a translated title."""
    gr.Info(text, title=say(lang, "toast.info"))


def _has(key: str) -> bool:
    from relay.ui_text import TEXT

    return key in TEXT


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value) -> str:
    """2.0 -> '2', 0.01 -> '0.01': ranges read like a person writes them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Gradio 6.31's toast header is the toast's type with a capital letter ("Error", "Warning", "Info",
# "Success"), whatever `title=` says, and its progress text is a fixed "processing |" / "queue: 1/2 |"
# (statustracker: not translation keys, so gr.I18n cannot reach them). This head script rewrites
# those words on a Korean page (the language Gradio's own i18n picks: the browser's), and keeps
# doing so for toasts and progress texts added later. Put it in the page head (`<script>`).
GRADIO_KOREAN_JS = r"""
(() => {
  const lang = (navigator.languages && navigator.languages[0]) || navigator.language || "";
  if (!lang.toLowerCase().startsWith("ko")) return;
  const titles = {Error: "오류", Warning: "알림", Info: "안내", Success: "완료"};
  const fix = (root) => {
    root.querySelectorAll(".toast-title").forEach((title) => {
      const node = title.firstChild;
      if (node && node.nodeType === 3) {
        const word = node.nodeValue.trim();
        if (titles[word]) node.nodeValue = titles[word] + " ";
      }
    });
    root.querySelectorAll(".progress-text, .meta-text, .meta-text-center").forEach((el) => {
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.nodeValue;
        if (text.includes("processing")) node.nodeValue = text.replace("processing", "처리 중");
        if (/queue:/.test(text)) node.nodeValue = text.replace("queue:", "대기 순서:");
      }
    });
    root.querySelectorAll('[data-testid="toast-close"]').forEach((b) => b.setAttribute("aria-label", "닫기"));
  };
  let queued = false;
  const later = () => {  // at most once per frame: streaming text changes the page many times a second
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fix(document); });
  };
  const start = () => {
    fix(document);
    new MutationObserver(later).observe(document.body, {childList: true, subtree: true, characterData: true});
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
"""
