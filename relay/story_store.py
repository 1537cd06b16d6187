"""The shared story store: every story's timeline, which many writers append to at once.

Every browser session, thread and app process of Relay shares one database: a SQLite file (the
embedded default) or a PostgreSQL server (a `postgresql://` URL), through one code path on
SQLAlchemy Core. Each write is one transaction that first locks what it checks (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: the story's row, `SELECT ... FOR UPDATE`), so "check the head and
the turn rule, then append" is atomic across processes and machines. A write that returned is
durable (SQLite: WAL with `synchronous=FULL`). Each story carries a `version` bumped with every
change to its paragraphs, and a global change token moves with every change of any kind, so the
live watcher polls one row (SQLite) or listens (PostgreSQL LISTEN/NOTIFY).

This module is the store's public entry point: the code lives in the package `relay.store`, in
rooms by concern (see its docstring), and this module re-exports what callers need.
See docs/store.md.
"""

from __future__ import annotations

from relay.store.changes import CHANGE_POLL_S
from relay.store.errors import (
    InvalidInput,
    NameTaken,
    NotAllowed,
    NotFound,
    StaleHeadError,
    StoreBusy,
    StoreUnavailable,
    StoryError,
    StoryFull,
    SteeringChanged,
    SteeringLimit,
    SteeringLocked,
    TurnBusy,
    TurnError,
    TurnLost,
    UnknownWriterKey,
)
from relay.store.exchange import EXPORT_FORMAT_NAME, EXPORT_FORMAT_VERSION, EXPORT_FORMATS
from relay.store.facade import StoryStore
from relay.store.records import AITurnState, Candidate, Paragraph, ParagraphVersion, Story
from relay.store.steering import (
    MAX_CARD_KEYS,
    MAX_CARD_TEXT_CHARS,
    MAX_CARDS_PER_STORY,
    MAX_MEMORY_CHARS,
    MAX_NOTE_CHARS,
    Steering,
    SteeringVersion,
    StoryCard,
)
from relay.store.schema import BUSY_TIMEOUT_MS, DEFAULT_DB, default_db_path, default_db_target, is_postgres_url
from relay.store.turns import CANDIDATE_MAX_AGE_S, TURN_STATUSES
from relay.store.validation import (
    KINDS,
    MAX_AUTHOR_CHARS,
    MAX_DRAFT_CHARS,
    MAX_JSON_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    TURN_RULES,
    current_process_name,
    validate_author,
    validate_text,
    validate_title,
    writer_id_of,
)

__all__ = [
    "StoryStore", "Story", "Paragraph", "Candidate", "AITurnState", "ParagraphVersion",
    "StoryError", "StoryFull", "InvalidInput", "NotFound", "StaleHeadError", "TurnError", "NotAllowed", "TurnBusy",
    "TurnLost", "StoreBusy", "StoreUnavailable", "NameTaken", "UnknownWriterKey",
    "Steering", "StoryCard", "SteeringVersion", "SteeringLimit", "SteeringChanged", "SteeringLocked",
    "MAX_MEMORY_CHARS", "MAX_NOTE_CHARS", "MAX_CARDS_PER_STORY", "MAX_CARD_TEXT_CHARS", "MAX_CARD_KEYS",
    "validate_text", "validate_author", "validate_title", "writer_id_of", "current_process_name",
    "default_db_path", "MAX_TEXT_CHARS", "MAX_AUTHOR_CHARS", "MAX_TITLE_CHARS", "MAX_JSON_CHARS",
    "MAX_DRAFT_CHARS", "CANDIDATE_MAX_AGE_S", "TURN_RULES", "KINDS", "DEFAULT_DB", "BUSY_TIMEOUT_MS",
]
# Also importable from here, as before the store became a package: the constants this module defined
# (CANDIDATE_MAX_AGE_S, CHANGE_POLL_S, TURN_STATUSES, EXPORT_FORMATS, ...), default_db_target and
# is_postgres_url.
