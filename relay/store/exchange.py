"""Export and import: a story as plain text, Markdown or JSON, and a JSON export read back.

`read_story` gathers what an export needs inside a read transaction; `render` formats it
afterwards. `parse_export` validates a JSON export completely before anything is written;
`import_story` then writes it as a new story inside a write transaction: either exactly as
exported (a restore), or, for a writer importing a file (`as_importer`), as that writer's story:
they become its creator, the file's writer ids are dropped (its writers' names stay, as text), and
the story's `origin` says who imported it, when, and what the file called the story and its writers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import sqlalchemy as sa

from relay.store import steering
from relay.store.changes import bump
from relay.store.errors import InvalidInput
from relay.store.history import insert_version
from relay.store.records import PARAGRAPH_COLUMNS, Paragraph, ParagraphVersion, Story, paragraph_from_row, story_from_row
from relay.store.schema import paragraph_versions, paragraphs, stories
from relay.store.timeline import fetch_story
from relay.store.validation import (
    MAX_PARAGRAPHS_PER_STORY,
    _dump_json_object,
    _now,
    _validate_kind,
    _validate_timestamp,
    _validate_turn_rule,
    validate_author,
    validate_text,
    validate_title,
    validate_writer_id,
)

EXPORT_FORMATS = ("txt", "md", "json")
EXPORT_FORMAT_NAME = "relay-story"
EXPORT_FORMAT_VERSION = 2  # 2 adds writer ids and hidden flags; import reads 1 and 2
_IMPORTED_COLUMNS = ("seq", "author", "kind", "text", "created_at", "edited", "meta", "deleted", "writer_id", "hidden")


# --- export -------------------------------------------------------------------------------------


def read_story(
    conn: sa.Connection, story_id: int, with_history: bool
) -> tuple[Story, list[Paragraph], dict[int, list[dict]]]:
    """The story, all its paragraphs (undone and hidden too) and, if asked, every paragraph's versions."""
    story = story_from_row(fetch_story(conn, story_id))
    rows = conn.execute(
        sa.select(*PARAGRAPH_COLUMNS)
        .where(paragraphs.c.story_id == story_id)
        .order_by(paragraphs.c.seq, paragraphs.c.id)
    ).mappings().all()
    history = _history(conn, story_id) if with_history else {}
    return story, [paragraph_from_row(row) for row in rows], history


def _history(conn: sa.Connection, story_id: int) -> dict[int, list[dict]]:
    history: dict[int, list[dict]] = {}
    for v in conn.execute(
        sa.select(paragraph_versions)
        .join(paragraphs, paragraphs.c.id == paragraph_versions.c.paragraph_id)
        .where(paragraphs.c.story_id == story_id)
        .order_by(paragraph_versions.c.paragraph_id, paragraph_versions.c.version)
    ).mappings():
        history.setdefault(v["paragraph_id"], []).append(
            {"version": v["version"], "text": v["text"], "editor": v["editor"],
             "editor_id": v["editor_id"], "edited_at": v["edited_at"]}
        )
    return history


def render(fmt: str, story: Story, all_paragraphs: list[Paragraph], history: dict[int, list[dict]],
           lang: str = "en") -> str:
    """The export in `fmt`: JSON keeps every paragraph; txt and md only those a reader sees (md's own
    words in `lang`, "ko" or "en": the reader's page language)."""
    all_paragraphs = [_without_server_paths(p) for p in all_paragraphs]
    if fmt == "json":
        return _export_json(story, all_paragraphs, history)
    live = [p for p in all_paragraphs if not p.deleted and not p.hidden]
    return _export_md(story, live, lang) if fmt == "md" else _export_txt(story, live)


# A Hub id ("skt/kogpt2-base-v2"); any other model name in a paragraph's meta was a server folder.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
LOCAL_MODEL = "local model"


def _without_server_paths(p: Paragraph) -> Paragraph:
    """An AI paragraph with its model named publicly: an export never shows where the server keeps its files
    (the engine records "local model" itself; this covers paragraphs written before it did)."""
    model = p.meta.get("model")
    if p.kind != "ai" or not isinstance(model, str) or _HUB_ID.fullmatch(model):
        return p
    return dataclasses.replace(p, meta={**p.meta, "model": LOCAL_MODEL})


def without_hidden(paragraphs_: list[Paragraph], history: dict[int, list[dict]]):
    """What a reader who is not the story's creator may export: no hidden paragraph, nor its versions."""
    kept = [p for p in paragraphs_ if not p.hidden]
    return kept, {pid: v for pid, v in history.items() if pid in {p.id for p in kept}}


def _export_txt(story: Story, paragraphs: list[Paragraph]) -> str:
    return "\n\n".join([story.title, *(p.text for p in paragraphs)]) + "\n"


# Names and titles sit inside emphasis or a heading, where only these characters change the markup.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


# A line of paragraph text that starts like a block of Markdown (heading, quote, list, rule, setext
# underline) would turn into one; a backslash before that first mark keeps it text.
_MD_BLOCK_START = re.compile(r"^(\s{0,3})([#>+=-]|\d+(?=[.)]))")


def _md_block_escape(m: re.Match) -> str:
    indent, mark = m.group(1), m.group(2)
    return indent + (mark + "\\" if mark[0].isdigit() else "\\" + mark)  # "1\." for a list number, "\#" else


def _md_paragraph(text: str) -> str:
    """Paragraph text for the Markdown export: it reads the same, but cannot forge a heading, an author
    line (**N. name**), a link, raw HTML or any other markup."""
    lines = []
    for line in text.split("\n"):
        line = _MD_BLOCK_START.sub(_md_block_escape, _md_escape(line))
        lines.append(line.replace("&", "&amp;"))
    # A blank line inside a paragraph would start a new one in Markdown; a hard line break keeps it inside.
    return "  \n".join(line if line.strip() else "&nbsp;" for line in lines)


# The Markdown export's own words, in the reader's page language.
MD_WORDS = {
    "en": {"writers": "Writers", "ai": "AI", "forked": "Forked from story {story} at paragraph id {paragraph}",
           "ai_mark": " · AI", "ai_edited_mark": " · AI, edited"},
    "ko": {"writers": "작가", "ai": "AI", "forked": "{story}번 이야기의 문단 {paragraph}에서 갈라져 나옴",
           "ai_mark": " · AI", "ai_edited_mark": " · AI, 고침"},
}


def _export_md(story: Story, paragraphs: list[Paragraph], lang: str = "en") -> str:
    words = MD_WORDS.get(lang, MD_WORDS["en"])
    writers = list(dict.fromkeys([story.created_by, *(p.author for p in paragraphs)]))
    models = list(dict.fromkeys(str(p.meta["model"]) for p in paragraphs if p.kind == "ai" and p.meta.get("model")))
    lines = [f"# {_md_escape(story.title)}", "", f"*{words['writers']}: {', '.join(_md_escape(w) for w in writers)}*"]
    if models:
        lines.append(f"*{words['ai']}: {', '.join(_md_escape(m) for m in models)}*")
    if story.forked_from:
        lines.append(f"*{words['forked'].format(story=story.forked_from[0], paragraph=story.forked_from[1])}*")
    lines += ["", "---", ""]
    for p in paragraphs:
        mark = ""
        if p.kind == "ai":
            mark = words["ai_edited_mark"] if p.edited else words["ai_mark"]
        lines += [f"**{p.seq}. {_md_escape(p.author)}{mark}**", "", _md_paragraph(p.text), ""]
    return "\n".join(lines)


def _export_json(story: Story, paragraphs: list[Paragraph], history: dict[int, list[dict]]) -> str:
    data = {
        "format": EXPORT_FORMAT_NAME,
        "version": EXPORT_FORMAT_VERSION,
        "exported_at": _now(),
        "story": {
            "id": story.id,
            "title": story.title,
            "created_by": story.created_by,
            "created_at": story.created_at,
            "turn_rule": story.turn_rule,
            "settings": story.settings,
            "forked_from": list(story.forked_from) if story.forked_from else None,
            "last_activity": story.last_activity,
            **({"origin": story.origin} if story.origin else {}),
        },
        "paragraphs": [
            {**{k: v for k, v in p.to_dict().items() if k != "story_id"}, "versions": history.get(p.id, [])}
            for p in paragraphs
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


# --- import -------------------------------------------------------------------------------------


def import_story(conn: sa.Connection, parsed: tuple[tuple, list[tuple]], now: str) -> Story:
    """Write a parsed export (see parse_export, as_importer) as a new story; return it."""
    story_row, paragraph_rows = parsed
    title, created_by, created_at, turn_rule, settings, forked_story, forked_paragraph, origin, count, *claimed = story_row
    creator_id = claimed[0] if claimed else None
    new_id = conn.execute(
        stories.insert().values(
            title=title, created_by=created_by, created_at=created_at, turn_rule=turn_rule, settings=settings,
            forked_from_story=forked_story, forked_from_paragraph=forked_paragraph, paragraph_count=count,
            last_activity=now, version=0, change_seq=0, creator_id=creator_id, origin=origin,
        ).returning(stories.c.id)
    ).scalar_one()
    values = [dict(zip(_IMPORTED_COLUMNS, row[:-1]), story_id=new_id) for row in paragraph_rows]
    if not any(row[-1] for row in paragraph_rows):
        if values:
            conn.execute(paragraphs.insert(), values)
    else:  # earlier versions need their paragraph's new id: insert one by one, in order
        for row, value in zip(paragraph_rows, values):
            pid = conn.execute(paragraphs.insert().values(value).returning(paragraphs.c.id)).scalar_one()
            for version in row[-1]:
                insert_version(conn, pid, version)
    bump(conn, new_id)
    return story_from_row(fetch_story(conn, new_id))


def as_importer(parsed: tuple[tuple, list[tuple]], importer: str, importer_id: str, now: str) -> tuple:
    """A parsed export made into `importer`'s own story: their name and id as its creator, no writer or
    editor ids from the file (ids are the server's to give), and the file's own names kept in `origin`."""
    story_row, paragraph_rows = parsed
    title, created_by, created_at, turn_rule, settings, _forked_story, _forked_paragraph, _origin, count = story_row
    writers = list(dict.fromkeys([created_by, *(row[1] for row in paragraph_rows)]))
    origin = json.dumps({"imported_by": importer, "imported_at": now, "title": title, "created_by": created_by,
                         "created_at": created_at, "writers": writers}, ensure_ascii=False)
    rows = [(*row[:8], None, row[9], [dataclasses.replace(v, editor_id=None) for v in row[10]])
            for row in paragraph_rows]
    return (title, importer, now, turn_rule, settings, None, None, origin, count, importer_id), rows


def parse_export(data: Any) -> tuple[tuple, list[tuple]]:
    """Validate a JSON export completely and return the rows to insert (without story ids)."""
    data = _export_object(data)
    story, paragraphs = data.get("story"), data.get("paragraphs")
    if not isinstance(story, dict):
        raise InvalidInput("The export has no \"story\" object.")
    if not isinstance(paragraphs, list):
        raise InvalidInput("The export has no \"paragraphs\" list.")
    story_row = _story_row(story)
    rows, live_seqs, visible = [], [], 0
    for i, p in enumerate(paragraphs, start=1):
        where = f"Paragraph {i} of the export"
        if not isinstance(p, dict):
            raise InvalidInput(f"{where} is not an object.")
        try:
            row = _paragraph_row(p)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        if not p.get("deleted", False):
            live_seqs.append(row[0])
            visible += not p.get("hidden", False)
        rows.append(row)
    if len(live_seqs) > MAX_PARAGRAPHS_PER_STORY or len(rows) > 2 * MAX_PARAGRAPHS_PER_STORY:
        raise InvalidInput(f"The export has {len(live_seqs):,} paragraphs; a story holds at most "
                           f"{MAX_PARAGRAPHS_PER_STORY:,}.")
    if sorted(live_seqs) != list(range(1, len(live_seqs) + 1)):
        raise InvalidInput("The export's paragraphs are not numbered 1, 2, 3… without gaps or repeats.")
    return (*story_row, visible), rows


def _export_object(data: Any) -> dict:
    """The export as a dict (decoded and parsed if it came as bytes or text), of a format this Relay reads."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The file is not UTF-8 text.") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"The file is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidInput("A story export must be a JSON object.")
    if data.get("format") != EXPORT_FORMAT_NAME:
        raise InvalidInput(f"This is not a Relay story export (its \"format\" is not {EXPORT_FORMAT_NAME!r}).")
    if data.get("version") not in (1, 2) or isinstance(data.get("version"), bool):
        raise InvalidInput(
            f"Unsupported story export version {data.get('version')!r}; this Relay reads versions 1 and 2."
        )
    return data


def _story_row(story: dict) -> tuple:
    forked = story.get("forked_from")
    if forked is not None:
        if not (isinstance(forked, list) and len(forked) == 2 and all(_is_int(x) for x in forked)):
            raise InvalidInput("\"forked_from\" must be null or [story id, paragraph id].")
        forked = tuple(forked)
    return (
        validate_title(_field(story, "title")),
        validate_author(_field(story, "created_by")),
        _validate_timestamp(_field(story, "created_at"), "The story's created_at"),
        _validate_turn_rule(_field(story, "turn_rule")),
        _dump_json_object(story.get("settings", {}), "Settings"),
        forked[0] if forked else None,
        forked[1] if forked else None,
        _dump_json_object(story["origin"], "Origin") if story.get("origin") is not None else None,
    )


def _paragraph_row(p: dict) -> tuple:
    seq, deleted, edited = _field(p, "seq"), p.get("deleted", False), p.get("edited", False)
    hidden, writer = p.get("hidden", False), p.get("writer_id")
    if not _is_int(seq) or seq < 1:
        raise InvalidInput("its seq must be a positive whole number.")
    if not all(isinstance(flag, bool) for flag in (deleted, edited, hidden)):
        raise InvalidInput("\"deleted\", \"edited\" and \"hidden\" must be true or false.")
    if writer is not None:
        validate_writer_id(writer)
    versions = _parse_versions(p.get("versions", []))
    return (
        seq,
        validate_author(_field(p, "author")),
        _validate_kind(_field(p, "kind")),
        validate_text(_field(p, "text")),
        _validate_timestamp(_field(p, "created_at"), "created_at"),
        int(edited),
        _dump_json_object(p.get("meta", {}), "Meta"),
        int(deleted),
        writer,
        int(hidden),
        versions,
    )


def _parse_versions(value: Any) -> list[ParagraphVersion]:
    if not isinstance(value, list):
        raise InvalidInput("\"versions\" must be a list.")
    out = []
    for n, v in enumerate(value, start=1):
        if not isinstance(v, dict) or v.get("version") != n:
            raise InvalidInput("its versions must be numbered 1, 2, 3… in order.")
        editor_id = v.get("editor_id")
        if editor_id is not None:
            validate_writer_id(editor_id)
        out.append(ParagraphVersion(
            n, validate_text(_field(v, "text")), validate_author(_field(v, "editor")),
            _validate_timestamp(_field(v, "edited_at"), "edited_at"), editor_id,
        ))
    return out


def _field(obj: dict, name: str) -> Any:
    if name not in obj:
        raise InvalidInput(f"The field {name!r} is missing.")
    return obj[name]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- steering: the memory, note and cards beside the story (relay/store/steering.py) --------------


def with_steering(fmt: str, text: str, state: dict, lang: str = "en") -> str:
    """An export with the story's steering: JSON gets the keys "memory", "note" and "cards" (every version);
    txt and md end with the memory, the note and which cards existed (their words in `lang`)."""
    if fmt == "json":
        return json.dumps({**json.loads(text), **state}, ensure_ascii=False, indent=2)
    lines = steering.describe(state, lang)
    if not lines:
        return text
    if fmt == "md":
        return text.rstrip("\n") + "\n\n---\n\n" + "\n\n".join(f"*{_md_escape(line)}*" for line in lines) + "\n"
    return text + "\n" + "\n".join(lines) + "\n"


def steering_of(data: Any) -> steering.ImportedSteering:
    """The steering of a JSON export, checked completely (an export without it has none)."""
    return steering.parse_state(_export_object(data))
