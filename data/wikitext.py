"""Turn MediaWiki wikitext into clean paragraphs of prose, and read fields and links out of it.

Fiction on Wikisource is mostly plain paragraphs wrapped in a little markup: a header template,
bold or italic runs, links, `<ref>` notes, `<poem>` blocks, and sometimes tables of contents.
The page is parsed with mwparserfromhell (a MediaWiki parser: nested templates, refs, tables and
tags come out as a tree) and the tree is walked, keeping the prose and dropping everything that is
not part of the story's text.
"""

from __future__ import annotations

import functools
import re

import mwparserfromhell
from mwparserfromhell.nodes import Comment, ExternalLink, Heading, HTMLEntity, Tag, Template, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

# Templates whose last positional argument is running text (centred lines, size changes);
# every other template is dropped with its arguments (headers, licences, navigation boxes).
TEXT_TEMPLATES = {
    "가운데", "center", "centre", "c", "크게", "larger", "작게", "smaller", "글자 크기", "font-size",
    "오른쪽", "right", "왼쪽", "left", "들여쓰기", "indent", "sc", "small-caps", "윗첨자", "아랫첨자",
}
TEMPLATE_NAMESPACES = ("틀:", "template:")

# Link prefixes that are not part of the text: categories and files.
DROP_LINK_PREFIXES = {
    "분류", "category", "파일", "file", "그림", "image", "media", "미디어",
}
# Interwiki prefixes whose links show inline as their label ([[w:현진건|현진건]] → 현진건); any other
# language-code-like prefix ([[en:A Lucky Day]]) is an interlanguage link, shown outside the text.
INLINE_INTERWIKI = {
    "w", "wikipedia", "위키백과", "wikt", "wiktionary", "위키낱말사전", "s", "wikisource", "위키문헌",
    "q", "wikiquote", "b", "wikibooks", "n", "wikinews", "v", "wikiversity", "voy", "wikivoyage",
    "d", "wikidata", "c", "commons", "m", "meta", "mw", "species",
}
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*|simple")

# Tags whose content is not story text: notes, tables (of contents, layout), formulas, galleries,
# code, and what only shows when the page is transcluded.
DROP_TAGS = {
    "ref", "references", "table", "math", "chem", "score", "gallery", "timeline", "syntaxhighlight",
    "source", "templatedata", "graph", "mapframe", "maplink", "includeonly",
}
# List and definition markers (`*`, `#`, `;`, `:`): the marker goes, the text after it stays.
_LIST_TAGS = {"li", "dt", "dd"}

_COMMENT = "\x00"  # stands where a comment was, until a line holding only comments is removed
_COMMENT_LINE = re.compile(r"\n[ \t]*\x00[\x00 \t]*(?=\n)")
# What the parser leaves as text: unbalanced HTML tags (`</div>` opened in another template),
# unclosed bold/italic quotes (MediaWiki closes them at the end of the line), magic words.
_STRAY_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")
_STRAY_QUOTES = re.compile(r"'{2,}")
_MAGIC = re.compile(r"__[A-Z]+__")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
_HAS_LETTER = re.compile(r"\w")


@functools.lru_cache(maxsize=16)
def _parse(wikitext: str) -> Wikicode:
    """The parse tree of `wikitext`, kept for the next call: a work page is read for its links, its
    header template and its text. Never modified by this module."""
    return mwparserfromhell.parse(wikitext)


def _template_name(template: Template) -> str:
    name = str(template.name).strip().replace("_", " ")
    for namespace in TEMPLATE_NAMESPACES:
        if name.lower().startswith(namespace):
            return name[len(namespace) :].strip()
    return name


def _render_template(template: Template) -> str:
    if _template_name(template).lower() not in TEXT_TEMPLATES:
        return ""
    positional = [p for p in template.params if str(p.name).strip().isdigit()]
    if not positional:
        return ""
    return _render(max(positional, key=lambda p: int(str(p.name))).value)


def _render_link(link: Wikilink) -> str:
    title = str(link.title).strip()
    inline = title.startswith(":")  # [[:분류:소설]] links to the category page instead of filing under it
    title = title.lstrip(":").strip()
    prefix = title.split(":", 1)[0].strip().lower() if ":" in title else ""
    interlanguage = prefix not in INLINE_INTERWIKI and _LANGUAGE_PREFIX.fullmatch(prefix)
    if not inline and (prefix in DROP_LINK_PREFIXES or interlanguage):
        return ""
    if link.text is not None:
        return _render(link.text)
    return title.strip("/").rsplit("/", 1)[-1] if title.startswith("/") else title


def _render_tag(tag: Tag) -> str:
    name = str(tag.tag).strip().lower()
    if name in DROP_TAGS or name in _LIST_TAGS:
        return ""
    if name == "br":
        return "\n"
    if name == "hr":
        return "\n\n"
    if name == "poem":  # each line of a poem is its own paragraph
        return "\n\n" + _render(tag.contents).replace("\n", "\n\n") + "\n\n"
    return _render(tag.contents) if tag.contents is not None else ""


def _render(code: Wikicode) -> str:
    out = []
    for node in code.nodes:
        if isinstance(node, Text):
            out.append(_STRAY_QUOTES.sub("", _STRAY_TAG.sub("", _MAGIC.sub("", node.value))))
        elif isinstance(node, Tag):
            out.append(_render_tag(node))
        elif isinstance(node, Wikilink):
            out.append(_render_link(node))
        elif isinstance(node, Template):
            out.append(_render_template(node))
        elif isinstance(node, ExternalLink):
            out.append(_render(node.title) if node.brackets and node.title is not None else "")
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, Heading):
            out.append("\n\n")
        elif isinstance(node, Comment):
            out.append(_COMMENT)
        # Arguments ({{{1}}}) and anything else carry no story text.
    return "".join(out)


def strip_wikitext(wikitext: str) -> list[str]:
    """Return the prose paragraphs of a wikitext page, markup removed.

    Paragraphs are blank-line separated blocks with their lines joined by a space (as MediaWiki
    renders them); each line of a `<poem>` block is its own paragraph. Headings, tables,
    templates (except text wrappers such as {{가운데|...}}), references, categories, files,
    interlanguage links, comments and HTML tags are dropped; `[[a|b]]` becomes `b`.
    """
    text = _render(_parse(wikitext.replace("\r\n", "\n").replace(_COMMENT, "")))
    text = _COMMENT_LINE.sub("", text).replace(_COMMENT, "")  # a line of only comments is no line
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        paragraph = " ".join(line for line in lines if line)
        if _HAS_LETTER.search(paragraph):
            paragraphs.append(paragraph)
    return paragraphs


def split_template_args(body: str) -> list[str]:
    """Split a template's inner text on top-level `|` (not inside nested templates or links)."""
    code = mwparserfromhell.parse("{{_|" + body + "}}")
    if len(code.nodes) != 1 or not isinstance(code.nodes[0], Template):
        return [body]  # unbalanced braces or brackets: no top-level split
    return [str(param) for param in code.nodes[0].params]


def iter_templates(text: str):
    """Yield (name, positional_args, named_args) for each `{{...}}` template in `text` that is not
    inside another template (it may be inside a tag, link or table)."""
    templates = _parse(text).filter_templates()
    nested = set()
    for template in templates:
        for part in [template.name] + [piece for param in template.params for piece in (param.name, param.value)]:
            nested.update(id(inner) for inner in part.filter_templates())
    for template in templates:
        if id(template) in nested:
            continue
        positional, named = [], {}
        for param in template.params:
            if param.showkey:
                named[str(param.name).strip()] = str(param.value).strip()
            else:
                positional.append(str(param.value).strip())
        yield str(template.name).strip().replace("_", " "), positional, named


def first_year(value: str) -> int | None:
    """The first 3-4 digit year in a field value such as '1943년 4월 25일' or '{{사망일|1943|4|25}}'."""
    match = _YEAR.search(value or "")
    return int(match.group(1)) if match else None


def wiki_links(wikitext: str) -> list[str]:
    """Targets of the `[[...]]` links in `wikitext` (also inside templates and tags, not in comments),
    in order, without labels or section anchors."""
    targets = []
    for link in _parse(wikitext).filter_wikilinks():
        target = str(link.title).split("#", 1)[0].strip().replace("_", " ")
        if target:
            targets.append(target)
    return targets
