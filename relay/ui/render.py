"""HTML for the story list, a story's header, status and timeline.

Every piece of user text goes through html.escape, so HTML or script in a paragraph or a name stays inert.
"""

from __future__ import annotations

import html
import json
import threading
from collections import OrderedDict

from relay.ui.history import paragraph_actions_html, render_time
from relay.ui.token_view import tokens_of
from relay.ui_text import say

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
.relay-live { position: relative; }
/* Gradio's container hides overflow, which would make it the sticky desk's scroll box; clip does not. */
.gradio-container { overflow: clip !important; }
#relay-desk { position: sticky; bottom: 0; z-index: 20; background: var(--background-fill-primary);
  padding-top: 0.4rem; box-shadow: 0 -6px 12px -8px rgba(0, 0, 0, 0.25); }
/* live.js keeps the jump button just above the desk (--relay-desk-top), so it never covers the suggestion. */
.relay-jump { position: fixed; right: 1rem; bottom: var(--relay-desk-top, 45vh); z-index: 30; border-radius: 999px;
  padding: 0.3rem 0.8rem; min-width: 2.75rem; min-height: 2.75rem;
  background: var(--button-primary-background-fill); color: var(--button-primary-text-color); border: none; }
/* A card: its writer line, then the text; the paragraph's actions sit beside the writer line on a wide
   screen (a grid cell of their own, never over the text) and on a line of their own under the text on a phone. */
.relay-para { display: grid; grid-template-columns: minmax(0, 1fr) auto; column-gap: 0.5rem; }
.relay-para > .relay-meta { grid-column: 1; grid-row: 1; }
.relay-para > .relay-acts { grid-column: 2; grid-row: 1; align-self: start; }
.relay-para > .relay-text, .relay-para > .relay-details { grid-column: 1 / -1; }
.relay-reading .relay-acts { display: none !important; }
.relay-reading .relay-para { display: block; }
/* The desk's fold: a bar the writer taps to hide the desk down to itself and to bring it back (live.js). */
#relay-desk-toggle { display: block; width: 100%; min-height: 1.6rem; border: none; background: none; cursor: pointer;
  color: var(--body-text-color-subdued); font-size: 0.8rem; padding: 0; }
#relay-desk-toggle-root, #relay-desk-toggle-root * { min-height: 0; }
#relay-desk-toggle-root .html-container { padding: 0 !important; }
#relay-desk-toggle-root { padding: 0 !important; border: none !important; box-shadow: none !important;
  background: none !important; margin: 0 !important; }
#relay-desk.relay-desk-folded > :not(#relay-desk-toggle-root) { display: none !important; }
#relay-desk-toggle[aria-expanded="true"] .relay-fold-closed, #relay-desk-toggle[aria-expanded="false"] .relay-fold-open {
  display: none; }
.relay-reading .relay-meta, .relay-reading .relay-details { display: none; }
.relay-reading .relay-para { border-left: none; background: none; padding: 0; }
.relay-reading .relay-text { text-indent: 1em; line-height: 1.9; }
.relay-watch { border: 1px dashed #c88ab8; border-radius: 6px; padding: 0.4rem 0.8rem; margin-top: 0.6rem; }
.relay-watch-title { font-size: 0.85rem; opacity: 0.85; margin-bottom: 0.2rem; }
.relay-caret { animation: relay-blink 1s step-end infinite; }
@keyframes relay-blink { 50% { opacity: 0; } }
.relay-swipe { align-items: center; }
#relay-swipe-info { text-align: center; }
.relay-hidden { display: none !important; }
#relay-suggestion:has(#relay-preview textarea:placeholder-shown) { display: none; }
#relay-desk button { white-space: nowrap; }
@media (max-width: 640px) {
  #relay-desk textarea { font-size: 16px; }
  #relay-desk button { font-size: 0.85rem; padding-left: 0.3rem; padding-right: 0.3rem; min-height: 44px; }
  /* At most 40 % of a phone's screen, whatever is open: the rest scrolls inside the desk. */
  #relay-desk { max-height: 40vh; overflow-y: auto; overscroll-behavior: contain; }
  #relay-desk > *, #relay-desk .gr-group, #relay-desk .block, #relay-desk .row { flex-shrink: 0; }
  #relay-preview textarea { max-height: 7.2em !important; overflow-y: auto !important; }
  #relay-desk.relay-desk-folded { overflow: visible; }
  #relay-desk { gap: 0.4rem; }
  #relay-desk-toggle { min-height: 44px !important; }
  .relay-para { display: block; }
  .relay-para > .relay-acts { display: flex; flex-wrap: wrap; justify-content: flex-end; margin-top: 0.3rem; }
  .relay-act { min-height: 44px; min-width: 44px; font-size: 0.85rem !important; padding: 0 0.7rem !important; }
}
.relay-stories table { width: 100%; }
.relay-older { display: block; margin: 0 auto 0.6rem auto; padding: 0.3rem 1rem; border-radius: 999px;
  border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill); cursor: pointer; }
.relay-older[hidden] { display: none; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_story_list(stories, lang: str) -> str:
    """The story list as an HTML table whose titles link to `?story=ID`."""
    if not stories:
        return f"<p>{_esc(say(lang, 'no_stories'))}</p>"
    head = "".join(f"<th>{_esc(say(lang, k))}</th>" for k in ("col_title", "col_paragraphs", "col_activity", "col_by"))
    rows = []
    for s in stories:
        rows.append(
            f'<tr><td><a class="relay-story-link" href="?story={s.id}">{_esc(s.title)}</a> <small>#{s.id}</small></td>'
            f"<td>{s.paragraph_count}</td><td>{render_time(s.last_activity)}</td><td>{_esc(s.created_by)}</td></tr>"
        )
    return f'<div class="relay-stories"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def render_header(story, lang: str, base_url: str = "", fork_seq: int | None = None) -> str:
    """Title, turn rule and the story's shareable link; for a fork, where it came from (`fork_seq`:
    the number of the paragraph it was forked at, when that paragraph is still in the original).
    With no `base_url` the link is relative; the page's script makes it absolute."""
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


def render_card(p, lang: str) -> str:
    """One paragraph of the timeline: writer, kind, edit mark, time, text and (AI) generation details."""
    badge = say(lang, "kind_ai" if p.kind == "ai" else "kind_human")
    who = say(lang, "ai_for", author=p.author) if p.kind == "ai" else p.author
    edited = f' <span class="relay-badge relay-edited">{_esc(say(lang, "edited_mark"))}</span>' if p.edited else ""
    details, tokens, has_tokens = "", "", ""
    if p.kind == "ai" and tokens_of(p.meta):  # token_view.js fetches its probability view when the toggle is on
        tokens = ' data-tokens="1"'
        has_tokens = "" if p.edited else " relay-has-tokens"  # an edited text stays beside its original's view
    if p.kind == "ai" and p.meta:
        details = (
            f'<details class="relay-details"><summary>{_esc(say(lang, "ai_details"))}</summary>'
            f"<pre>{_esc(_meta_summary(p.meta))}</pre></details>"
        )
    return (
        f'<div class="relay-para kind-{p.kind}{has_tokens}" data-seq="{p.seq}" data-id="{p.id}"{tokens}>'
        f'<div class="relay-meta">#{p.seq} · <b class="relay-author">{_esc(who)}</b> · '
        f'<span class="relay-badge">{_esc(badge)}</span>{edited} · {render_time(p.created_at)}</div>'
        f'<div class="relay-text">{_esc(p.text)}</div>{details}{paragraph_actions_html(p, lang)}</div>'
    )


class CardCache:
    """Rendered cards kept across snapshots, tabs and "older paragraphs" pages, least recently used first out.

    A story's every change used to re-render all of its cards in both languages; now a card is
    rendered once per (paragraph, what its card shows, language) while it stays in use. Bounded by
    the characters it holds (keys' text and cards' HTML), so a process's memory for cards has a
    ceiling whatever the stories; one lock, because the live watcher and request threads share it.
    """

    def __init__(self, max_chars: int = 8_000_000):  # ~16 MB of Korean text and markup at most
        self.max_chars = max_chars
        self._cards: OrderedDict[tuple, str] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._cards)

    @property
    def chars(self) -> int:
        return self._chars

    def card(self, p, lang: str) -> str:
        """`render_card(p, lang)`, from the cache when this paragraph's card was rendered before."""
        key = _card_key(p, lang)
        with self._lock:
            html_ = self._cards.get(key)
            if html_ is not None:
                self._cards.move_to_end(key)
                return html_
        html_ = render_card(p, lang)
        size = len(p.text) + len(html_)
        with self._lock:
            if key not in self._cards and size <= self.max_chars:
                self._cards[key] = html_
                self._chars += size
                while self._chars > self.max_chars:
                    old_key, dropped = self._cards.popitem(last=False)
                    self._chars -= len(old_key[2]) + len(dropped)  # key[2]: the paragraph's text
        return html_


def _card_key(p, lang: str) -> tuple:
    """Everything render_card reads of a paragraph (an edit changes the text, a redo the seq)."""
    meta = json.dumps(p.meta, ensure_ascii=False, sort_keys=True) if p.kind == "ai" and p.meta else ""
    return (p.id, p.seq, p.text, p.edited, p.author, p.kind, p.created_at, meta, lang)


def render_timeline(paragraphs, lang: str) -> str:
    """The whole timeline as one HTML string (the live page sends cards one by one instead)."""
    if not paragraphs:
        return f"<p><em>{_esc(say(lang, 'empty_timeline'))}</em></p>"
    return f'<div class="relay-timeline">{"".join(render_card(p, lang) for p in paragraphs)}</div>'


def render_status(story, head, turn, lang: str) -> str:
    """Whose turn it is: a person's, the model's, or the model's turn held by someone."""
    if turn is not None:
        key = "ai_busy_status" if turn.status == "writing" else "ai_pending_status"
        return f"<p>{say(lang, key, holder=_esc(turn.holder))}</p>"
    if story.turn_rule != "alternate":
        return f"<p>{say(lang, 'turn_free')}</p>"
    return f"<p>{say(lang, 'turn_next_ai' if head is not None and head.kind == 'human' else 'turn_next_human')}</p>"


def render_turn(turn, lang: str) -> str:
    """The model's turn as co-writers watch it: the text being written, or the suggestions waiting."""
    if turn is None:
        return ""
    if turn.status == "writing":
        body = f'<div class="relay-draft relay-text">{_esc(turn.draft)}<span class="relay-caret">▍</span></div>'
        title = say(lang, "watch_writing", holder=_esc(turn.holder))
    else:
        items = "".join(_watched_candidate(turn.turn_id, n, c) for n, c in enumerate(turn.candidates))
        body = f'<ol class="relay-watch-candidates">{items}</ol>'
        title = say(lang, "watch_pending", holder=_esc(turn.holder), n=len(turn.candidates))
    return f'<div class="relay-watch relay-watch-{turn.status}"><div class="relay-watch-title">{title}</div>{body}</div>'


def _watched_candidate(turn_id: str, n: int, candidate) -> str:
    """Suggestion `n` of a waiting turn as co-writers see it. One with a token record says so (data-tokens); its
    view is fetched from /relay/tokens by turn and position once a co-writer turns "확률 보기" on
    (relay/ui/token_view.js). Never by the suggestion's own id: that id is what its writer accepts it by."""
    tokens = f' data-tokens="1" data-turn="{_esc(turn_id)}" data-n="{n}"' if tokens_of(candidate.meta) else ""
    return f'<li class="relay-watch-candidate"{tokens}><div class="relay-text">{_esc(candidate.text)}</div></li>'


# The live part of the story tab: relay/ui/live.js fills these slots from the /relay/live stream.
LIVE_SLOTS = (
    '<div id="relay-live" class="relay-live">'
    '<div id="relay-header"></div><div id="relay-status" class="relay-status"></div>'
    '<button type="button" class="relay-older" id="relay-older" hidden></button>'
    '<div id="relay-timeline" class="relay-timeline"></div><div id="relay-turn"></div>'
    '<button type="button" class="relay-jump" id="relay-jump" hidden>↓</button>'
    '</div>'
)


def seed_line(meta: dict, lang: str) -> str:
    """One line under a generated text: its seed, length, time and why it stopped."""
    return say(lang, "last_seed", seed=meta.get("seed"), tokens=meta.get("output_tokens", 0),
               seconds=float(meta.get("seconds", 0.0)), stopped=say(lang, f"stopped_{meta.get('stopped_by', 'length')}"))
