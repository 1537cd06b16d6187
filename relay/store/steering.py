"""Steering the model: a story's memory, its author's note and its story cards (lorebook), shared by
everyone writing the story, every change kept as a version with who made it and when.

Plain functions over a connection inside a transaction the caller opened (the StoryStore methods are in
relay/store/steering_edge.py). Every write locks the story, admits the writer (a blocked key is refused,
the name is bound to the key), refuses anyone but the creator while the creator has locked steering, checks
an optional expected version (SteeringChanged if someone changed the block meanwhile), writes the block and
its version, and moves the change token so every open tab sees it. Also here: what an export carries of it
(the keys "memory", "note", "cards") and reading that back on import, and the copy a fork takes.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from relay.store.changes import bump
from relay.store.errors import InvalidInput, NotFound, SteeringChanged, SteeringLimit, SteeringLocked
from relay.store.records import _Record
from relay.store.schema import steering_versions, stories, story_cards, story_steering
from relay.store.timeline import fetch_story, lock_story
from relay.store.validation import (_TEXT_FORBIDDEN, _bad_char_message, _validate_id, _validate_line,
                                    _validate_timestamp, validate_author, validate_writer_id)
from relay.store.writers import admit

MAX_MEMORY_CHARS = 500  # the story memory, in code points (about 230 KoGPT-2 tokens)
MAX_NOTE_CHARS = 500  # the author's note
MAX_CARDS_PER_STORY = 100  # cards a story may hold (deleted ones do not count)
MAX_CARD_TEXT_CHARS = 500
MAX_CARD_NAME_CHARS = 60
MAX_CARD_KEYS = 10
MAX_KEY_CHARS = 40
MAX_DEPTH = 50  # the note's depth and the cards' scan depth, in paragraphs
DEFAULT_NOTE_DEPTH = 3  # paragraphs before the end (0 = right before the model writes)
DEFAULT_SCAN_DEPTH = 4  # cards look for their keys in this many latest paragraphs
DEFAULT_PRIORITY = 50
PRIORITY_RANGE = (0, 100)  # higher stays when room is short
BLOCKS = ("memory", "note", "card")
CARD_FIELDS = ("name", "keys", "text", "priority", "always_on", "enabled", "inside_words")
LOCKED_MESSAGE = "The story's creator has locked its memory, note and cards; only they can change them now."


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryCard(_Record):
    """A story card: `text` enters what the model reads when one of `keys` appears in the latest paragraphs."""

    id: int
    name: str
    keys: list[str]
    text: str
    priority: int = DEFAULT_PRIORITY
    always_on: bool = False
    enabled: bool = True
    inside_words: bool = False  # a key also matches inside another word
    version: int = 1
    updated_by: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class Steering(_Record):
    """A story's memory, author's note, card settings and live cards (by priority, then id), with who last
    changed the memory and the note and when (None: never set)."""

    story_id: int
    memory: str = ""
    memory_version: int = 0
    memory_by: str | None = None
    memory_at: str | None = None
    note: str = ""
    note_depth: int = DEFAULT_NOTE_DEPTH
    note_version: int = 0
    note_by: str | None = None
    note_at: str | None = None
    scan_depth: int = DEFAULT_SCAN_DEPTH
    locked: bool = False
    cards: list[StoryCard] = field(default_factory=list)


@dataclass(frozen=True)
class SteeringVersion(_Record):
    """One version of a block ("memory", "note" or a "card", `card_id`): `data` is the block as it became."""

    block: str
    card_id: int | None
    version: int
    data: dict
    editor: str
    editor_id: str | None
    edited_at: str


# --- input checks -------------------------------------------------------------------------------


def validate_block_text(text: Any, what: str, limit: int, *, empty: bool = True) -> str:
    """Memory, note or card text: a string of at most `limit` code points without control characters (line
    breaks and tabs are fine); empty clears memory and note. SteeringLimit names `what` when it is too long."""
    if not isinstance(text, str):
        raise InvalidInput(f"The {what} must be a string.")
    if len(text) > limit:
        raise SteeringLimit(f"The {what} is too long: {len(text):,} characters (the limit is {limit:,}).",
                            what.replace(" ", "_"), limit, len(text))
    bad = _TEXT_FORBIDDEN.search(text)
    if bad:
        raise InvalidInput(_bad_char_message(f"The {what}", bad.group()))
    if not empty and not text.strip():
        raise InvalidInput(f"The {what} is empty.")
    return text


def validate_depth(value: Any, what: str, low: int = 0) -> int:
    """A depth in paragraphs, `low` to MAX_DEPTH."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_DEPTH:
        raise InvalidInput(f"The {what} must be a whole number of paragraphs from {low} to {MAX_DEPTH}.")
    return value


def validate_card(fields: Any) -> dict:
    """A card's fields checked and normalized (keys stripped, duplicates and empty ones dropped)."""
    if not isinstance(fields, dict):
        raise InvalidInput("A card must be an object with name, keys and text.")
    unknown = sorted(set(fields) - set(CARD_FIELDS) - {"id", "version"})
    if unknown:
        raise InvalidInput(f"Unknown card field(s): {', '.join(unknown)}.")
    name = fields.get("name")
    if not isinstance(name, str):
        raise InvalidInput("The card's name must be a string.")
    name = _validate_line(unicodedata.normalize("NFC", name), "The card's name", MAX_CARD_NAME_CHARS)
    keys = fields.get("keys", [])
    if isinstance(keys, str):
        keys = keys.split(",")
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
        raise InvalidInput("The card's keys must be a list of words.")
    keys = list(dict.fromkeys(unicodedata.normalize("NFC", k).strip() for k in keys if k.strip()))
    if len(keys) > MAX_CARD_KEYS:
        raise SteeringLimit(f"A card has at most {MAX_CARD_KEYS} keys (got {len(keys)}).", "keys", MAX_CARD_KEYS,
                            len(keys))
    for key in keys:
        if len(key) > MAX_KEY_CHARS:
            raise SteeringLimit(f"The key {key[:20]!r}… is too long (the limit is {MAX_KEY_CHARS} characters).",
                                "key", MAX_KEY_CHARS, len(key))
        _validate_line(key, "A key", MAX_KEY_CHARS)
    text = validate_block_text(fields.get("text"), "card text", MAX_CARD_TEXT_CHARS, empty=False)
    priority = fields.get("priority", DEFAULT_PRIORITY)
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise InvalidInput(f"The card's priority must be a whole number from {low} to {high}.")
    flags = {name: fields.get(name, default) for name, default in
             (("always_on", False), ("enabled", True), ("inside_words", False))}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise InvalidInput("\"always_on\", \"enabled\" and \"inside_words\" must be true or false.")
    return {"name": name, "keys": keys, "text": text, "priority": priority, **flags}


# --- reading ------------------------------------------------------------------------------------


def read(conn: sa.Connection, story_id: int) -> Steering:
    """The story's steering (defaults when nobody set any); NotFound for a story that does not exist."""
    fetch_story(conn, story_id)
    return _steering(conn, story_id)


def _steering(conn: sa.Connection, story_id: int) -> Steering:
    row = conn.execute(sa.select(story_steering).where(story_steering.c.story_id == story_id)).mappings().first()
    cards = [_card(r) for r in conn.execute(
        sa.select(story_cards).where(story_cards.c.story_id == story_id, story_cards.c.deleted == 0)
        .order_by(story_cards.c.priority.desc(), story_cards.c.id)).mappings()]
    if row is None:
        return Steering(story_id=story_id, cards=cards)
    values = {k: row[k] for k in row.keys() if k != "locked"}
    return Steering(**values, locked=bool(row["locked"]), cards=cards)


def _card(row) -> StoryCard:
    return StoryCard(id=row["id"], name=row["name"], keys=json.loads(row["keys"]), text=row["text"],
                     priority=row["priority"], always_on=bool(row["always_on"]), enabled=bool(row["enabled"]),
                     inside_words=bool(row["inside_words"]), version=row["version"], updated_by=row["updated_by"],
                     updated_at=row["updated_at"])


def versions(conn: sa.Connection, story_id: int, block: str, card_id: int | None) -> list[SteeringVersion]:
    """Every version of the memory, the note or one card, oldest first."""
    fetch_story(conn, story_id)
    query = sa.select(steering_versions).where(steering_versions.c.story_id == story_id,
                                               steering_versions.c.block == block)
    if block == "card":
        query = query.where(steering_versions.c.card_id == card_id)
    rows = conn.execute(query.order_by(steering_versions.c.version, steering_versions.c.n)).mappings()
    return [SteeringVersion(r["block"], r["card_id"], r["version"], json.loads(r["data"]), r["editor"],
                            r["editor_id"], r["edited_at"]) for r in rows]


# --- writing ------------------------------------------------------------------------------------


def set_memory(conn: sa.Connection, story_id: int, text: str, author: str, key: str | None,
               expected: int | None, now: str) -> Steering:
    """Replace the story memory (empty clears it); a new version records who and when."""
    wid, current = _may_edit(conn, story_id, author, key)
    _check_version(expected, current.memory_version, "memory")
    version = current.memory_version + 1
    _upsert(conn, story_id, memory=text, memory_version=version, memory_by=author, memory_at=now)
    _keep_version(conn, story_id, "memory", None, version, {"text": text}, author, wid, now)
    return _changed(conn, story_id, now)


def set_note(conn: sa.Connection, story_id: int, text: str, depth: int, author: str, key: str | None,
             expected: int | None, now: str) -> Steering:
    """Replace the author's note and its depth; a new version records who and when."""
    wid, current = _may_edit(conn, story_id, author, key)
    _check_version(expected, current.note_version, "author's note")
    version = current.note_version + 1
    _upsert(conn, story_id, note=text, note_depth=depth, note_version=version, note_by=author, note_at=now)
    _keep_version(conn, story_id, "note", None, version, {"text": text, "depth": depth}, author, wid, now)
    return _changed(conn, story_id, now)


def set_scan_depth(conn: sa.Connection, story_id: int, depth: int, author: str, key: str | None,
                   now: str) -> Steering:
    """How many latest paragraphs the cards look for their keys in."""
    _may_edit(conn, story_id, author, key)
    _upsert(conn, story_id, scan_depth=depth)
    return _changed(conn, story_id, now)


def set_locked(conn: sa.Connection, story_id: int, locked: bool, writer_id: str, now: str) -> Steering:
    """Lock (only the creator may change steering) or unlock; the creator only."""
    story = lock_story(conn, story_id)
    if story["creator_id"] is None or story["creator_id"] != writer_id:
        raise SteeringLocked("Only the story's creator can lock or unlock its memory, note and cards.")
    _upsert(conn, story_id, locked=int(locked))
    return _changed(conn, story_id, now)


def save_card(conn: sa.Connection, story_id: int, card_id: int | None, fields: dict, author: str, key: str | None,
              expected: int | None, now: str) -> StoryCard:
    """Create a card (`card_id` None) or change one; a new version records who and when."""
    wid, _ = _may_edit(conn, story_id, author, key)
    if card_id is None:
        count = conn.execute(sa.select(sa.func.count()).select_from(story_cards).where(
            story_cards.c.story_id == story_id, story_cards.c.deleted == 0)).scalar_one()
        if count >= MAX_CARDS_PER_STORY:
            raise SteeringLimit(f"A story holds at most {MAX_CARDS_PER_STORY} cards; delete one first.", "cards",
                                MAX_CARDS_PER_STORY, count + 1)
        card_id = conn.execute(story_cards.insert().values(
            story_id=story_id, **_card_columns(fields), version=1, deleted=0, created_at=now, updated_by=author,
            updated_at=now).returning(story_cards.c.id)).scalar_one()
        version = 1
    else:
        card = _live_card(conn, story_id, card_id)
        _check_version(expected, card.version, "card")
        version = card.version + 1
        conn.execute(story_cards.update().where(story_cards.c.id == card_id).values(
            **_card_columns(fields), version=version, updated_by=author, updated_at=now))
    _keep_version(conn, story_id, "card", card_id, version, {**fields, "deleted": False}, author, wid, now)
    _changed(conn, story_id, now)
    return _live_card(conn, story_id, card_id)


def delete_card(conn: sa.Connection, story_id: int, card_id: int, author: str, key: str | None,
                expected: int | None, now: str) -> Steering:
    """Delete a card (kept, marked deleted, in its versions and the JSON export)."""
    wid, _ = _may_edit(conn, story_id, author, key)
    card = _live_card(conn, story_id, card_id)
    _check_version(expected, card.version, "card")
    version = card.version + 1
    conn.execute(story_cards.update().where(story_cards.c.id == card_id).values(
        deleted=1, version=version, updated_by=author, updated_at=now))
    data = {**{k: getattr(card, k) for k in CARD_FIELDS}, "deleted": True}
    _keep_version(conn, story_id, "card", card_id, version, data, author, wid, now)
    return _changed(conn, story_id, now)


def _may_edit(conn: sa.Connection, story_id: int, author: str, key: str | None) -> tuple[str | None, Steering]:
    """Lock the story, admit the writer (blocked keys refused, the name bound to the key) and, while the
    creator has locked steering, refuse everyone else. Returns (writer id, steering now)."""
    story = lock_story(conn, story_id)
    wid = admit(conn, story_id, author, key)
    current = _steering(conn, story_id)
    if current.locked and (wid is None or wid != story["creator_id"]):
        raise SteeringLocked(LOCKED_MESSAGE)
    return wid, current


def _check_version(expected: int | None, current: int, what: str) -> None:
    if expected is not None and expected != current:
        raise SteeringChanged(f"Someone changed the {what} meanwhile (it is at version {current} now); "
                              "read it again, then save.", current)


def _live_card(conn: sa.Connection, story_id: int, card_id: int) -> StoryCard:
    row = conn.execute(sa.select(story_cards).where(story_cards.c.id == card_id, story_cards.c.story_id == story_id,
                                                    story_cards.c.deleted == 0)).mappings().first()
    if row is None:
        raise NotFound(f"Story {story_id} has no card number {card_id}.")
    return _card(row)


def _card_columns(fields: dict) -> dict:
    return {"name": fields["name"], "keys": json.dumps(fields["keys"], ensure_ascii=False), "text": fields["text"],
            "priority": fields["priority"], "always_on": int(fields["always_on"]), "enabled": int(fields["enabled"]),
            "inside_words": int(fields["inside_words"])}


def _upsert(conn: sa.Connection, story_id: int, **values) -> None:
    """Change the story's steering row, making it (with the defaults) on the first edit."""
    exists = conn.execute(sa.select(story_steering.c.story_id).where(story_steering.c.story_id == story_id)).first()
    if exists is None:
        defaults = dict(memory="", memory_version=0, note="", note_depth=DEFAULT_NOTE_DEPTH, note_version=0,
                        scan_depth=DEFAULT_SCAN_DEPTH, locked=0)
        conn.execute(story_steering.insert().values(story_id=story_id, **{**defaults, **values}))
    else:
        conn.execute(story_steering.update().where(story_steering.c.story_id == story_id).values(**values))


def _keep_version(conn: sa.Connection, story_id: int, block: str, card_id: int | None, version: int, data: dict,
                  editor: str, editor_id: str | None, at: str) -> None:
    conn.execute(steering_versions.insert().values(
        story_id=story_id, block=block, card_id=card_id, version=version,
        data=json.dumps(data, ensure_ascii=False), editor=editor, editor_id=editor_id, edited_at=at))


def _changed(conn: sa.Connection, story_id: int, now: str) -> Steering:
    """Every open tab on the story sees the change (the change token), and the story counts as active."""
    conn.execute(stories.update().where(stories.c.id == story_id).values(last_activity=now))
    bump(conn, story_id)
    return _steering(conn, story_id)


# --- forks, export and import -------------------------------------------------------------------


def copy(conn: sa.Connection, source_id: int, target_id: int, now: str) -> None:
    """A fork starts with its source's memory, note and live cards (each as version 1 by its last editor)."""
    state = _steering(conn, source_id)
    if state.memory_version or state.note_version or state.cards or state.scan_depth != DEFAULT_SCAN_DEPTH:
        _upsert(conn, target_id, memory=state.memory, memory_version=1 if state.memory_version else 0,
                memory_by=state.memory_by, memory_at=state.memory_at, note=state.note, note_depth=state.note_depth,
                note_version=1 if state.note_version else 0, note_by=state.note_by, note_at=state.note_at,
                scan_depth=state.scan_depth)
    if state.memory_version:
        _keep_version(conn, target_id, "memory", None, 1, {"text": state.memory}, state.memory_by or "", None,
                      state.memory_at or now)
    if state.note_version:
        _keep_version(conn, target_id, "note", None, 1, {"text": state.note, "depth": state.note_depth},
                      state.note_by or "", None, state.note_at or now)
    for card in reversed(state.cards):  # oldest ids first (the list is by priority, then id)
        fields = {k: getattr(card, k) for k in CARD_FIELDS}
        new_id = conn.execute(story_cards.insert().values(
            story_id=target_id, **_card_columns(fields), version=1, deleted=0, created_at=now,
            updated_by=card.updated_by, updated_at=card.updated_at).returning(story_cards.c.id)).scalar_one()
        _keep_version(conn, target_id, "card", new_id, 1, {**fields, "deleted": False}, card.updated_by, None,
                      card.updated_at)


def export_state(conn: sa.Connection, story_id: int) -> dict:
    """What a JSON export carries of steering: {"memory": …, "note": …, "cards": …} with every version.

    Card ids are left out (an import gives new ones): cards keep their order, deleted ones included."""
    state = _steering(conn, story_id)
    history: dict[tuple[str, int | None], list[dict]] = {}
    for r in conn.execute(sa.select(steering_versions).where(steering_versions.c.story_id == story_id)
                          .order_by(steering_versions.c.version, steering_versions.c.n)).mappings():
        history.setdefault((r["block"], r["card_id"]), []).append(
            {"version": r["version"], **json.loads(r["data"]), "editor": r["editor"], "editor_id": r["editor_id"],
             "edited_at": r["edited_at"]})
    rows = conn.execute(sa.select(story_cards).where(story_cards.c.story_id == story_id)
                        .order_by(story_cards.c.id)).mappings().all()
    cards = [{**{k: v for k, v in _card(r).to_dict().items() if k != "id"}, "deleted": bool(r["deleted"]),
              "created_at": r["created_at"], "versions": history.get(("card", r["id"]), [])} for r in rows]
    return {
        "memory": {"text": state.memory, "version": state.memory_version, "by": state.memory_by,
                   "at": state.memory_at, "versions": history.get(("memory", None), [])},
        "note": {"text": state.note, "depth": state.note_depth, "version": state.note_version, "by": state.note_by,
                 "at": state.note_at, "versions": history.get(("note", None), [])},
        "cards": {"scan_depth": state.scan_depth, "items": cards},
    }


@dataclass(frozen=True)
class ImportedSteering:
    """An export's steering, checked and ready to write (see parse_state)."""

    row: dict  # story_steering values, or {} when the export had none
    versions: list[tuple[str, int | None, dict]]  # (block, card index or None, version row) in order
    cards: list[dict]  # story_cards values, in order


def parse_state(data: dict) -> ImportedSteering:
    """Check an export's "memory", "note" and "cards" completely (InvalidInput naming the problem); an export
    without them (older Relay) has no steering."""
    memory, note, cards = data.get("memory"), data.get("note"), data.get("cards")
    if memory is None and note is None and cards is None:
        return ImportedSteering({}, [], [])
    memory, note, cards = memory or {}, note or {}, cards or {}
    if not all(isinstance(x, dict) for x in (memory, note, cards)):
        raise InvalidInput("\"memory\", \"note\" and \"cards\" must be objects.")
    found: list[tuple[str, int | None, dict]] = []
    row = {
        "memory": validate_block_text(memory.get("text", ""), "memory", MAX_MEMORY_CHARS),
        "memory_version": _count(memory.get("version", 0), "memory version"),
        "memory_by": _optional_name(memory.get("by")), "memory_at": _optional_time(memory.get("at")),
        "note": validate_block_text(note.get("text", ""), "note", MAX_NOTE_CHARS),
        "note_depth": validate_depth(note.get("depth", DEFAULT_NOTE_DEPTH), "note's depth"),
        "note_version": _count(note.get("version", 0), "note version"),
        "note_by": _optional_name(note.get("by")), "note_at": _optional_time(note.get("at")),
        "scan_depth": validate_depth(cards.get("scan_depth", DEFAULT_SCAN_DEPTH), "cards' scan depth", 1),
        "locked": 0,
    }
    for block, part in (("memory", memory), ("note", note)):
        for v in _versions(part.get("versions", []), block):
            limit = MAX_MEMORY_CHARS if block == "memory" else MAX_NOTE_CHARS
            data_fields = {"text": validate_block_text(v.get("text"), block, limit)}
            if block == "note":
                data_fields["depth"] = validate_depth(v.get("depth", DEFAULT_NOTE_DEPTH), "note's depth")
            found.append((block, None, {**_version_meta(v), "data": data_fields}))
    items = cards.get("items", [])
    if not isinstance(items, list):
        raise InvalidInput("\"cards\".\"items\" must be a list.")
    parsed_cards = []
    for index, item in enumerate(items):
        where = f"Card {index + 1} of the export"
        try:
            parsed_cards.append(_parsed_card(item))
            for v in _versions(item.get("versions", []), "card"):
                fields = validate_card({k: v.get(k) for k in CARD_FIELDS if k in v})
                found.append(("card", index, {**_version_meta(v), "data": {**fields,
                                                                           "deleted": _flag(v.get("deleted", False))}}))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
    if sum(1 for c in parsed_cards if not c["deleted"]) > MAX_CARDS_PER_STORY:
        raise SteeringLimit(f"A story holds at most {MAX_CARDS_PER_STORY} cards.", "cards", MAX_CARDS_PER_STORY,
                            len(parsed_cards))
    return ImportedSteering(row, found, parsed_cards)


def import_state(conn: sa.Connection, story_id: int, parsed: ImportedSteering, *, keep_writer_ids: bool = True) -> None:
    """Write a parsed export's steering to a story just imported (new card ids, everything else as exported;
    without `keep_writer_ids` the versions keep their editors' names but not the file's writer ids)."""
    if not parsed.row and not parsed.cards:
        return
    _upsert(conn, story_id, **parsed.row)
    ids = [conn.execute(story_cards.insert().values(story_id=story_id, **card).returning(story_cards.c.id))
           .scalar_one() for card in parsed.cards]
    for block, index, v in parsed.versions:
        _keep_version(conn, story_id, block, None if index is None else ids[index], v["version"], v["data"],
                      v["editor"], v["editor_id"] if keep_writer_ids else None, v["edited_at"])


def _parsed_card(item: Any) -> dict:
    if not isinstance(item, dict):
        raise InvalidInput("it is not an object.")
    fields = validate_card({k: item[k] for k in CARD_FIELDS if k in item})
    return {**_card_columns(fields), "version": _count(item.get("version", 1), "version", 1),
            "deleted": int(_flag(item.get("deleted", False))),
            "created_at": _validate_timestamp(item.get("created_at"), "created_at"),
            "updated_by": validate_author(item.get("updated_by")),
            "updated_at": _validate_timestamp(item.get("updated_at"), "updated_at")}


def _versions(value: Any, what: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(f"The {what}'s versions must be a list of objects.")
    numbers = [v.get("version") for v in value]
    if numbers != sorted(numbers) or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise InvalidInput(f"The {what}'s versions must be numbered in order.")
    return value


def _version_meta(v: dict) -> dict:
    editor_id = v.get("editor_id")
    if editor_id is not None:
        validate_writer_id(editor_id)
    return {"version": _count(v.get("version"), "version", 1), "editor": validate_author(v.get("editor")),
            "editor_id": editor_id, "edited_at": _validate_timestamp(v.get("edited_at"), "edited_at")}


def _count(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(f"The {what} must be a whole number of {low} or more.")
    return _validate_id(value, what)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("\"deleted\" must be true or false.")
    return value


def _optional_name(value: Any) -> str | None:
    return None if value is None else validate_author(value)


def _optional_time(value: Any) -> str | None:
    return None if value is None else _validate_timestamp(value, "a steering time")


# The words a txt or md export says steering with, in the reader's page language (like exchange.MD_WORDS).
DESCRIBE_WORDS = {
    "en": {"memory": "Story memory", "note": "Author's note ({depth} paragraphs before the end)",
           "cards": "Story cards", "always": "always on"},
    "ko": {"memory": "이야기 기억", "note": "작가의 말 (끝에서 {depth}문단 앞)", "cards": "설정 카드", "always": "항상"},
}


def describe(state: dict, lang: str = "en") -> list[str]:
    """Lines a txt or md export ends with: the memory, the note and which cards existed (names and keys)."""
    words = DESCRIBE_WORDS.get(lang, DESCRIBE_WORDS["en"])
    lines = []
    if state["memory"]["text"].strip():
        lines.append(f"{words['memory']}: {' '.join(state['memory']['text'].split())}")
    if state["note"]["text"].strip():
        lines.append(f"{words['note'].format(depth=state['note']['depth'])}: {' '.join(state['note']['text'].split())}")
    live = [c for c in state["cards"]["items"] if not c["deleted"]]
    if live:
        lines.append(f"{words['cards']}: " + "; ".join(f"{c['name']} ({', '.join(c['keys']) or words['always']})"
                                                      for c in live))
    return lines
