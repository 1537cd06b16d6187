"""The token probability view: a text the model wrote, each token coloured by the probability the model gave it,
with the likeliest alternatives at each position for the popover (relay/ui/token_view.js shows it).

`token_html` is a pure function of a candidate's or AI paragraph's recorded `meta["tokens"]` (the format is in
docs/engine.md and /work/notes/tokens-contract.md: parallel arrays ids/text/p/top). The record may come from an
imported story, so every value is checked and every piece of text escaped: a bad record shows a note, never markup.
"""

from __future__ import annotations

import html
import json
import math

from relay.ui_text import say

# Upper bounds of the probability bands, least likely first; a token falls in the first band its p is below.
BANDS = (0.05, 0.2, 0.5, 0.8)
MAX_POSITIONS = 4096  # more positions than any generation writes: a record beyond this is not shown
MAX_TOP = 10  # alternatives shown per position (the engine records 5)
MAX_PIECE_CHARS = 64  # a token's display text longer than this is not a real token piece

CSS = """
/* The toggle is a class on <body> (token_view.js). Gradio also copies each rule under its own container, where
   <body> never is: these rules only ever apply as written. */
body:not(.relay-probs-on) .relay-tokens, body:not(.relay-probs-on) .relay-tk-panel,
body:not(.relay-probs-on) .relay-tk-key, body:not(.relay-probs-on) #relay-probs-key,
body:not(.relay-probs-on) #relay-preview-tokens, body:not(.relay-probs-on) [id^="relay-alt-tokens-"] {
  display: none !important; }
body.relay-probs-on .relay-para.relay-has-tokens.relay-tk-loaded > .relay-text,
body.relay-probs-on .relay-watch-candidate.relay-tk-loaded > .relay-text { display: none; }
.relay-para > .relay-tokens { grid-column: 1 / -1; }
.relay-tk-text { white-space: pre-wrap; line-height: 1.9; font-size: 1.02rem; }
.relay-tk { border-radius: 3px; color: #111 !important; cursor: pointer; padding: 0.05em 0; }
.relay-tk:focus-visible, .relay-tk.relay-tk-open { outline: 2px solid #1d4ed8; outline-offset: 1px; }
/* Pale backgrounds under near-black text (contrast 9.9:1 to 16:1, WCAG AAA); the two least likely bands are
   also underlined, so the view does not rest on telling red from green. */
.relay-pb0 { background: #fca5a5; text-decoration: underline wavy #991b1b; text-underline-offset: 3px; }
.relay-pb1 { background: #fdba74; text-decoration: underline dotted #9a3412; text-underline-offset: 3px; }
.relay-pb2 { background: #fde68a; }
.relay-pb3 { background: #d9f99d; }
.relay-pb4 { background: #dbeafe; }
.relay-tk-note { font-size: 0.8rem; opacity: 0.85; margin: 0 0 0.2rem 0; }
.relay-tk-legend { font-size: 0.8rem; margin: 0.2rem 0; display: flex; flex-wrap: wrap; gap: 0.3rem;
  align-items: center; }
.relay-tk-legend .relay-tk { cursor: default; padding: 0 0.35rem; }
.relay-tk-panel { padding: 0.3rem 0.6rem; }
#relay-tk-pop { position: fixed; z-index: 1000; max-width: min(22rem, calc(100vw - 16px)); min-width: 13rem;
  background: var(--background-fill-primary, #fff); color: var(--body-text-color, #111);
  border: 1px solid var(--border-color-primary, #999); border-radius: 8px; padding: 0.5rem 0.6rem;
  box-shadow: 0 6px 20px rgba(0, 0, 0, 0.25); font-size: 0.9rem; }
#relay-tk-pop[hidden] { display: none; }
#relay-tk-pop .relay-pop-head { font-size: 0.8rem; opacity: 0.8; margin-bottom: 0.2rem; }
#relay-tk-pop table { width: 100%; border-collapse: collapse; }
#relay-tk-pop td { padding: 0.1rem 0.25rem; vertical-align: middle; }
#relay-tk-pop td.relay-pop-p { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#relay-tk-pop tr.relay-pop-chosen td { font-weight: 700; }
#relay-tk-pop .relay-pop-piece { font-family: var(--font-mono, monospace); white-space: pre; }
#relay-tk-pop .relay-pop-bar { display: block; height: 4px; background: #1d4ed8; border-radius: 2px; }
#relay-tk-pop button { font-size: 0.8rem; padding: 0.15rem 0.4rem; border-radius: 4px; cursor: pointer;
  border: 1px solid var(--border-color-primary, #999); background: var(--button-secondary-background-fill, #eee);
  color: inherit; min-height: 2rem; }
#relay-tk-pop .relay-pop-here { width: 100%; margin-top: 0.35rem; }
#relay-tk-pop .relay-pop-close { position: absolute; top: 0.2rem; right: 0.3rem; border: none; background: none;
  min-height: 0; z-index: 1; }
#relay-tk-pop > .relay-pop-head:first-of-type { padding-right: 1.8rem; }
@media (max-width: 640px) {
  /* The desk has 40 % of a phone's screen: its tokens, not a second copy of the key at the top of the story. */
  .relay-tk-panel .relay-tk-legend { display: none; }
  #relay-tk-pop button { min-height: 44px; }
  #relay-tk-pop .relay-pop-close { min-height: 44px; min-width: 44px; top: 0; right: 0; }
  #relay-tk-pop > .relay-pop-head:first-of-type { padding-right: 2.8rem; min-height: 2rem; }
}
"""


def band(p: float) -> int:
    """The colour band of probability `p`: 0 (under 5 %) to 4 (80 % or more)."""
    for i, upper in enumerate(BANDS):
        if p < upper:
            return i
    return len(BANDS)


def token_html(tokens: dict, lang: str, *, branchable: bool, edited: bool = False) -> str:
    """The text in `tokens` (a recorded meta["tokens"]) as coloured, hoverable token spans, in `lang`.

    `branchable`: the popover offers to rewrite from a token (a suggestion of the writer's turn; the caller
    wraps the result in an element with data-candidate). `edited`: a person changed the text since, so a note
    says the probabilities are for the model's original text. A missing or bad record shows a note instead."""
    positions = _positions(tokens)
    words = _words(lang)
    head = f'<div class="relay-tokens" data-branchable="{1 if branchable else 0}" data-words=\'{_json_attr(words)}\'>'
    if positions is None:
        return f'{head}<p class="relay-tk-note">{_esc(say(lang, "probs_none"))}</p></div>'
    note = f'<p class="relay-tk-note relay-tk-edited">{_esc(say(lang, "probs_edited"))}</p>' if edited else ""
    spans = "".join(_span(i, text, p, top) for i, (text, p, top) in enumerate(positions) if text)
    return f'{head}{note}<div class="relay-tk-text">{spans}</div></div>'


def legend_html(lang: str) -> str:
    """The colour key: what each band's colour means, and how to see the alternatives."""
    bands = "".join(f'<span class="relay-tk relay-pb{i}">{_esc(say(lang, f"probs_band_{i}"))}</span>'
                    for i in range(len(BANDS), -1, -1))
    return (f'<div class="relay-tk-legend"><span>{_esc(say(lang, "probs_legend"))}</span>{bands}'
            f'<span class="relay-tk-hint">{_esc(say(lang, "probs_hint"))}</span></div>')


def tokens_of(meta) -> dict | None:
    """The token record in a candidate's or paragraph's meta, if any."""
    tokens = meta.get("tokens") if isinstance(meta, dict) else None
    return tokens if isinstance(tokens, dict) else None


def _span(i: int, text: str, p: float | None, top: list) -> str:
    cls = f"relay-tk relay-pb{band(p)}" if p is not None else "relay-tk"
    p_attr = "" if p is None else f' data-p="{p:.4g}"'
    return (f'<span class="{cls}" data-i="{i}"{p_attr} data-top=\'{_json_attr(top)}\' tabindex="0" role="button">'
            f"{_esc(text)}</span>")


def _json_attr(value) -> str:
    """JSON for a single-quoted attribute: its double quotes stay as they are (a third of the size of &quot;),
    and &, <, > and ' are escaped, so no piece of text can end the attribute or open a tag."""
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return html.escape(data, quote=False).replace("'", "&#x27;")


def _positions(tokens) -> list[tuple[str, float | None, list]] | None:
    """[(text piece, p of the chosen id, alternatives likeliest first (see _top))] per position, or None if the record
    cannot be shown (absent, another version, arrays that do not line up, too long)."""
    if not isinstance(tokens, dict) or tokens.get("v") != 1:
        return None
    texts, probs, tops, ids = tokens.get("text"), tokens.get("p"), tokens.get("top"), tokens.get("ids")
    if not isinstance(texts, list) or not isinstance(probs, list) or not texts or len(texts) > MAX_POSITIONS:
        return None
    if len(probs) != len(texts) or not all(isinstance(t, str) for t in texts):
        return None
    tops = tops if isinstance(tops, list) and len(tops) == len(texts) else [[]] * len(texts)
    ids = ids if isinstance(ids, list) and len(ids) >= len(texts) else [None] * len(texts)
    return [(t, _prob(p), _top(top, chosen)) for t, p, top, chosen in zip(texts, probs, tops, ids)]


def _top(entries, chosen) -> list[list]:
    """A position's alternatives as [[display piece, p, index in the record, 1 if it is the chosen id]], only
    well-formed entries, at most MAX_TOP (the index is what a branch sends back: the server reads the id)."""
    out = []
    for k, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            continue
        piece, p = entry[1], _prob(entry[2])
        if isinstance(piece, str) and len(piece) <= MAX_PIECE_CHARS and p is not None:
            out.append([piece, p, k, int(chosen is not None and entry[0] == chosen)])
        if len(out) == MAX_TOP:
            break
    return out


def _prob(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return round(value, 4) if math.isfinite(value) and 0.0 <= value <= 1.0 else None


def _words(lang: str) -> dict:
    """The popover's words in the page's language, for token_view.js."""
    keys = ("probs_chosen", "probs_alternatives", "probs_branch", "probs_here", "probs_close")
    return {k.removeprefix("probs_"): say(lang, k) for k in keys}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)
