"""Turn MediaWiki wikitext into clean paragraphs of prose, and read fields out of templates.

Fiction on Wikisource is mostly plain paragraphs wrapped in a little markup: a header template,
bold or italic runs, links, `<ref>` notes, `<poem>` blocks, and sometimes tables of contents.
The stripper keeps the prose and drops everything that is not part of the story's text.
"""

from __future__ import annotations

import html
import re

# Templates whose last positional argument is running text (centred lines, size changes);
# every other template is dropped with its arguments (headers, licences, navigation boxes).
TEXT_TEMPLATES = {
    "가운데", "center", "centre", "c", "크게", "larger", "작게", "smaller", "글자 크기", "font-size",
    "오른쪽", "right", "왼쪽", "left", "들여쓰기", "indent", "sc", "small-caps", "윗첨자", "아랫첨자",
}

# Link prefixes that are not part of the text: categories, files and interwiki links.
DROP_LINK_PREFIXES = {
    "분류", "category", "파일", "file", "그림", "image", "media", "미디어",
}

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref\b[^>/]*/>|<ref\b[^>]*>.*?</ref\s*>", re.S | re.I)
_DROP_BLOCKS = re.compile(
    r"<(math|score|gallery|timeline|syntaxhighlight|source|templatedata|graph|references)\b[^>]*>.*?</\1\s*>"
    r"|<references\b[^>]*/>",
    re.S | re.I,
)
_POEM = re.compile(r"<poem\b[^>]*>(.*?)</poem\s*>", re.S | re.I)
_BR = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")
_HEADING = re.compile(r"^\s*(={1,6}).*\1\s*$", re.M)
_MAGIC = re.compile(r"__[A-Z]+__")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_BARE_URL = re.compile(r"https?://\S+")
_BOLD_ITALIC = re.compile(r"'{2,5}")
_LIST_MARKER = re.compile(r"^[*#:;]+\s*", re.M)
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
_HAS_LETTER = re.compile(r"\w")


def _matching_end(text: str, start: int, open_: str, close: str) -> int:
    """Index just past the `close` that balances the `open_` at `start`, or len(text) if unbalanced."""
    depth = 0
    i = start
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif text.startswith(close, i):
            depth -= 1
            i += len(close)
            if depth == 0:
                return i
        else:
            i += 1
    return len(text)


def split_template_args(body: str) -> list[str]:
    """Split a template's inner text on top-level `|` (not inside nested templates or links)."""
    parts, depth, current = [], 0, []
    i = 0
    while i < len(body):
        two = body[i : i + 2]
        if two in ("{{", "[["):
            depth += 1
            current.append(two)
            i += 2
        elif two in ("}}", "]]"):
            depth -= 1
            current.append(two)
            i += 2
        elif body[i] == "|" and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
        else:
            current.append(body[i])
            i += 1
    parts.append("".join(current))
    return parts


def iter_templates(text: str):
    """Yield (name, positional_args, named_args) for each top-level `{{...}}` template in `text`."""
    i = 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            return
        end = _matching_end(text, start, "{{", "}}")
        parts = split_template_args(text[start + 2 : end - 2])
        name = parts[0].strip().replace("_", " ")
        positional, named = [], {}
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if eq and "{{" not in key and "[[" not in key:
                named[key.strip()] = value.strip()
            else:
                positional.append(part.strip())
        yield name, positional, named
        i = end


def _replace_templates(text: str) -> str:
    out, i = [], 0
    while True:
        start = text.find("{{", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:start])
        end = _matching_end(text, start, "{{", "}}")
        parts = split_template_args(text[start + 2 : end - 2])
        name = parts[0].strip().replace("_", " ").lower()
        positional = [p for p in parts[1:] if "=" not in p.split("[[")[0].split("{{")[0]]
        if name in TEXT_TEMPLATES and positional:
            out.append(_replace_templates(positional[-1]))
        i = end


def _remove_tables(text: str) -> str:
    out, i = [], 0
    while True:
        start = text.find("{|", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:start])
        i = _matching_end(text, start, "{|", "|}")


def _replace_link(match: re.Match) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    prefix = target.split(":", 1)[0].strip().lower() if ":" in target else ""
    if prefix in DROP_LINK_PREFIXES or (prefix and len(prefix) <= 3 and prefix.isascii() and prefix.isalpha()):
        return ""  # categories, files and interwiki links (en:, ja:, w:) carry no story text
    if label:
        return label.split("|")[-1]
    return target.strip().lstrip("/").rsplit("/", 1)[-1] if target.strip().startswith("/") else target.strip()


def _replace_links(text: str) -> str:
    # Innermost links first, so file captions with nested links collapse cleanly.
    link = re.compile(r"\[\[([^\[\]]*)\]\]")
    while True:
        new = link.sub(_replace_link, text)
        if new == text:
            return new
        text = new


def strip_wikitext(wikitext: str) -> list[str]:
    """Return the prose paragraphs of a wikitext page, markup removed.

    Paragraphs are blank-line separated blocks with their lines joined by a space (as MediaWiki
    renders them); each line of a `<poem>` block is its own paragraph. Headings, tables,
    templates (except text wrappers such as {{가운데|...}}), references, categories, files and
    HTML tags are dropped; `[[a|b]]` becomes `b`.
    """
    text = wikitext.replace("\r\n", "\n")
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROP_BLOCKS.sub("", text)
    text = _POEM.sub(lambda m: "\n\n" + m.group(1).replace("\n", "\n\n") + "\n\n", text)
    text = _BR.sub("\n", text)
    text = _remove_tables(text)
    text = _replace_templates(text)
    text = _HEADING.sub("\n", text)
    text = _MAGIC.sub("", text)
    text = _replace_links(text)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _BARE_URL.sub("", text)
    text = _TAG.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    text = _LIST_MARKER.sub("", text)
    text = html.unescape(text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        paragraph = " ".join(line for line in lines if line)
        if _HAS_LETTER.search(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def first_year(value: str) -> int | None:
    """The first 3-4 digit year in a field value such as '1943년 4월 25일' or '{{사망일|1943|4|25}}'."""
    match = _YEAR.search(value or "")
    return int(match.group(1)) if match else None


def wiki_links(wikitext: str) -> list[str]:
    """Targets of the `[[...]]` links in `wikitext`, in order, without labels or section anchors."""
    targets = []
    for inner in re.findall(r"\[\[([^\[\]|]+)(?:\|[^\[\]]*)?\]\]", wikitext):
        target = inner.split("#", 1)[0].strip().replace("_", " ")
        if target:
            targets.append(target)
    return targets
