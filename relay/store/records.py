"""The records the store hands out (Story, Paragraph, Candidate, ParagraphVersion, AITurnState)
and how a database row becomes one.

Every record is a frozen dataclass with `to_dict()`. The column tuples name what a query must
select for the matching `*_from_row` converter.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from relay.store.schema import candidates, paragraphs, stories


class _Record:
    """What every record has: `to_dict()`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True)
class Story(_Record):
    """A story's record, with its live paragraph count, last activity time and version."""

    id: int
    title: str
    created_by: str
    created_at: str
    turn_rule: str
    settings: dict = field(default_factory=dict)
    forked_from: tuple[int, int] | None = None
    paragraph_count: int = 0
    last_activity: str = ""
    version: int = 0
    creator_id: str | None = None  # the public writer id of its creator (None: created without a key)
    origin: dict | None = None  # an imported story: {"imported_by", "imported_at", "title", "created_by", "writers"}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (forked_from becomes a two-item list or None)."""
        d = asdict(self)
        d["forked_from"] = list(self.forked_from) if self.forked_from else None
        return d


@dataclass(frozen=True)
class Paragraph(_Record):
    """One paragraph of a timeline; `author` of an AI paragraph is the person who accepted it."""

    id: int
    story_id: int
    seq: int
    author: str
    kind: str
    text: str
    created_at: str
    edited: bool = False
    meta: dict = field(default_factory=dict)
    deleted: bool = False
    writer_id: str | None = None  # the public id of the key that wrote or accepted it
    hidden: bool = False  # hidden by the story's creator: out of the timeline, kept in the JSON export


@dataclass(frozen=True)
class Candidate(_Record):
    """Text the server generated for `author`, waiting to be accepted into its story."""

    id: str
    story_id: int
    author: str
    text: str
    meta: dict
    created_at: str
    used: bool
    turn_id: str | None = None
    status: str = "open"  # "open" | "accepted" | "not_chosen" | "discarded"
    writer_id: str | None = None


@dataclass(frozen=True)
class ParagraphVersion(_Record):
    """One text a paragraph has had: `version` 1 is the original, each edit adds one."""

    version: int
    text: str
    editor: str
    edited_at: str
    editor_id: str | None = None


@dataclass(frozen=True)
class AITurnState(_Record):
    """The live model turn of a story: for whom, what it has written so far, and what waits.

    `status` is "writing" while the model writes (`draft` is the text so far) and "pending" once
    its text is finished and waits as `candidates` (oldest first) to be accepted or discarded.
    """

    story_id: int
    holder: str
    holder_id: str | None
    status: str
    draft: str
    candidates: list[Candidate]
    expires_at: float
    process: str | None
    turn_id: str


STORY_COLUMNS = (
    stories.c.id, stories.c.title, stories.c.created_by, stories.c.created_at, stories.c.turn_rule,
    stories.c.settings, stories.c.forked_from_story, stories.c.forked_from_paragraph, stories.c.paragraph_count,
    stories.c.last_activity, stories.c.version, stories.c.creator_id, stories.c.origin,
)
PARAGRAPH_COLUMNS = (
    paragraphs.c.id, paragraphs.c.story_id, paragraphs.c.seq, paragraphs.c.author, paragraphs.c.kind,
    paragraphs.c.text, paragraphs.c.created_at, paragraphs.c.edited, paragraphs.c.meta, paragraphs.c.deleted,
    paragraphs.c.writer_id, paragraphs.c.hidden,
)
CANDIDATE_COLUMNS = (
    candidates.c.id, candidates.c.story_id, candidates.c.author, candidates.c.text, candidates.c.meta,
    candidates.c.created_at, candidates.c.used, candidates.c.turn_id, candidates.c.status, candidates.c.writer_id,
)


def story_from_row(row) -> Story:
    forked = None
    if row["forked_from_story"] is not None:
        forked = (row["forked_from_story"], row["forked_from_paragraph"])
    return Story(
        id=row["id"], title=row["title"], created_by=row["created_by"], created_at=row["created_at"],
        turn_rule=row["turn_rule"], settings=json.loads(row["settings"]), forked_from=forked,
        paragraph_count=row["paragraph_count"], last_activity=row["last_activity"], version=row["version"],
        creator_id=row["creator_id"], origin=json.loads(row["origin"]) if row["origin"] else None,
    )


def paragraph_from_row(row) -> Paragraph:
    return Paragraph(
        id=row["id"], story_id=row["story_id"], seq=row["seq"], author=row["author"], kind=row["kind"],
        text=row["text"], created_at=row["created_at"], edited=bool(row["edited"]), meta=json.loads(row["meta"]),
        deleted=bool(row["deleted"]), writer_id=row["writer_id"], hidden=bool(row["hidden"]),
    )


def candidate_from_row(row) -> Candidate:
    return Candidate(
        id=row["id"], story_id=row["story_id"], author=row["author"], text=row["text"],
        meta=json.loads(row["meta"]), created_at=row["created_at"], used=bool(row["used"]),
        turn_id=row["turn_id"], status=row["status"], writer_id=row["writer_id"],
    )


def version_from_row(row) -> ParagraphVersion:
    return ParagraphVersion(row["version"], row["text"], row["editor"], row["edited_at"], row["editor_id"])


def paragraph_with(p: Paragraph, **changes: Any) -> Paragraph:
    """The paragraph with some fields changed (what a write just did to its row)."""
    return Paragraph(**{**asdict(p), **changes})
