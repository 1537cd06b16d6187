"""The shared story store: every story's timeline, which many writers append to at once.

Every browser session, thread and app process of Relay shares one database: a SQLite file (the
embedded default) or a PostgreSQL server (a `postgresql://` URL), through one code path on
SQLAlchemy Core. Each write is one transaction that first locks what it checks (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: the story's row, `SELECT ... FOR UPDATE`), so "check the head and
the turn rule, then append" is atomic across processes and machines. A write that returned is
durable (SQLite: WAL with `synchronous=FULL`). Each story carries a `version` bumped with every
change to its paragraphs, and a global change token moves with every change of any kind, so the
live watcher polls one row (SQLite) or listens (PostgreSQL LISTEN/NOTIFY).

Input checks live in `relay.store.validation`, errors in `relay.store.errors`, tables, engine and
Alembic migrations in `relay.store.schema`; this module re-exports what callers need.
See docs/store.md.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from relay.store.errors import (
    InvalidInput,
    NameTaken,
    NotAllowed,
    NotFound,
    StaleHeadError,
    StoreBusy,
    StoreUnavailable,
    StoryError,
    TurnBusy,
    TurnError,
    TurnLost,
)
from relay.store.schema import (
    BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    PG_CHANNEL,
    ai_turns,
    blocked_writers,
    paragraph_versions,
    candidates,
    change_counter,
    create_engine,
    default_db_path,
    is_postgres_url,
    libpq_url,
    migrate,
    paragraphs,
    stories,
    story_names,
    writers,
)
from relay.store.validation import (
    KINDS,
    MAX_AUTHOR_CHARS,
    MAX_DRAFT_CHARS,
    MAX_JSON_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    TURN_RULES,
    _dump_json_object,
    _now,
    _optional_writer_id,
    _pid_alive,
    _validate_draft,
    _validate_expected_head,
    _validate_id,
    _validate_kind,
    _validate_process,
    key_sha256,
    _validate_timestamp,
    _validate_ttl,
    _validate_turn_rule,
    current_process_name,
    new_writer_key,
    validate_client_id,
    validate_writer_id,
    validate_author,
    validate_text,
    validate_title,
    writer_id_of,
)

__all__ = [
    "StoryStore", "Story", "Paragraph", "Candidate", "AITurnState", "ParagraphVersion",
    "StoryError", "InvalidInput", "NotFound", "StaleHeadError", "TurnError", "NotAllowed", "TurnBusy",
    "TurnLost", "StoreBusy", "StoreUnavailable", "NameTaken",
    "validate_text", "validate_author", "validate_title", "writer_id_of", "current_process_name",
    "default_db_path", "MAX_TEXT_CHARS", "MAX_AUTHOR_CHARS", "MAX_TITLE_CHARS", "MAX_JSON_CHARS",
    "MAX_DRAFT_CHARS", "CANDIDATE_MAX_AGE_S", "TURN_RULES", "KINDS", "DEFAULT_DB", "BUSY_TIMEOUT_MS",
]

EXPORT_FORMATS = ("txt", "md", "json")
EXPORT_FORMAT_NAME = "relay-story"
EXPORT_FORMAT_VERSION = 2  # 2 adds writer ids and hidden flags; import reads 1 and 2
CANDIDATE_MAX_AGE_S = 24 * 3600.0
CHANGE_POLL_S = 0.25  # how often wait_for_change() looks at the change token on SQLite
TURN_STATUSES = ("writing", "pending")


@dataclass(frozen=True)
class Story:
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (forked_from becomes a two-item list or None)."""
        d = asdict(self)
        d["forked_from"] = list(self.forked_from) if self.forked_from else None
        return d


@dataclass(frozen=True)
class Paragraph:
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True)
class ParagraphVersion:
    """One text a paragraph has had: `version` 1 is the original, each edit adds one."""

    version: int
    text: str
    editor: str
    edited_at: str
    editor_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True)
class AITurnState:
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


# --- the store --------------------------------------------------------------------------------


def default_db_target() -> str | Path:
    """What StoryStore() opens: $RELAY_DB (a path or a postgresql:// URL), else ./relay-data/relay.db."""
    env = os.environ.get("RELAY_DB", "").strip()
    if is_postgres_url(env):
        return env
    return default_db_path()


class StoryStore:
    """All stories and their timelines in one database, safe to share across threads and processes.

    `StoryStore(path)` opens a SQLite file; `StoryStore("postgresql://user@host/db")` a
    PostgreSQL database. Connections come from a pool (each thread uses its own while it works);
    processes coordinate through the database's locks.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        """Open (creating and upgrading if needed) the database at `path`, $RELAY_DB or ./relay-data/relay.db."""
        target = path if path is not None else default_db_target()
        if isinstance(target, str) and is_postgres_url(target):
            self.url, self.path = target, None
        else:
            if not isinstance(target, (str, os.PathLike)):
                raise InvalidInput("The database must be a file path or a postgresql:// URL.")
            self.path = Path(target)
            if str(self.path) == ":memory:" or str(self.path).startswith("file:"):
                raise InvalidInput(
                    "The story store needs a database file path (each thread opens its own connection)."
                )
            self.url = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoryError(
                    f"Cannot use {self.path} for the story database: its folder cannot be created"
                    f" ({exc.strerror or exc}). Pass a file path in a writable folder, or a postgresql:// URL."
                ) from None
            if self.path.is_dir():
                raise StoryError(
                    f"Cannot use {self.path} for the story database: it is a folder. Pass a file path, e.g."
                    f" {self.path / 'relay.db'}."
                )
        self.backend = "postgresql" if self.url else "sqlite"
        self._engine = create_engine(self.url or self.path)
        self._pid = os.getpid()
        self._listeners = threading.local()
        self._listener_conns: list = []
        self._polls = threading.local()
        self._poll_conns: list = []
        self._lock = threading.Lock()
        try:
            migrate(self._engine)
        except sa_exc.DBAPIError as exc:
            self._engine.dispose()
            raise _db_error(exc) from exc
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        """Close every connection this object opened; call it when no thread is using the store."""
        with self._lock:
            for conn in self._listener_conns:
                try:
                    conn.close()
                except Exception:  # closing a broken listener must not stop closing the rest
                    pass
            self._listener_conns = []
            self._listeners = threading.local()
            for _, conn in self._poll_conns:
                conn.close()
            self._poll_conns = []
            self._polls = threading.local()
        self._engine.dispose()

    def __enter__(self) -> StoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # transactions

    @contextmanager
    def _tx(self, write: bool) -> Iterator[sa.Connection]:
        """One transaction: a write locks before it reads (see _lock_story); a read is one snapshot."""
        if os.getpid() != self._pid:
            # Connections inherited through fork() belong to the parent: never use them here.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(relay_write=True)
                elif self.backend == "postgresql":
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
        except sa_exc.DBAPIError as exc:
            raise _db_error(exc) from exc
        except sa_exc.TimeoutError:
            raise StoreBusy("The story store is busy with other writers; please try again in a moment.") from None

    def _poll(self, sqlite_sql: str, query: sa.TextClause, params: dict) -> list:
        """One single-row read of what watchers poll many times a second (version, change token).

        On SQLite it runs on a DBAPI connection this thread keeps (from the same engine, with
        the same settings) in autocommit mode: one statement, its own snapshot, a few
        microseconds instead of a pooled transaction's tens. PostgreSQL takes the normal path.
        """
        if self.backend != "sqlite":
            # One statement in autocommit: one round trip, no BEGIN/COMMIT around it.
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    return conn.execute(query, params).fetchall()
            except sa_exc.DBAPIError as exc:
                raise _db_error(exc) from exc
            except sa_exc.TimeoutError:
                raise StoreBusy("The story store is busy with other writers; please try again in a moment.") from None
        conn = getattr(self._polls, "conn", None)
        if conn is None or self._polls.pid != os.getpid():
            conn = self._engine.raw_connection()
            self._polls.conn, self._polls.pid = conn, os.getpid()
            with self._lock:
                # Give back the connections of threads that have ended (a server's worker threads come and go).
                alive = []
                for thread, other in self._poll_conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                self._poll_conns = [*alive, (threading.current_thread(), conn)]
        try:
            # fetchall(): run the statement to its end, so it holds no read snapshot afterwards.
            return conn.cursor().execute(sqlite_sql, tuple(params.values())).fetchall()
        except sqlite3.Error as exc:
            raise _db_error(exc) from exc

    def _write(self):
        return self._tx(True)

    def _read(self):
        return self._tx(False)

    # stories

    def create_story(
        self,
        title: str,
        author: str,
        turn_rule: str = "alternate",
        settings: dict | None = None,
        *,
        writer_key: str | None = None,
    ) -> Story:
        """Start a new, empty story and return it; with `writer_key`, its key is the creator's."""
        title = validate_title(title)
        author = validate_author(author)
        _validate_turn_rule(turn_rule)
        settings_json = _dump_json_object(settings, "Settings")
        wid = _optional_writer_id(writer_key)
        now = _now()
        with self._write() as conn:
            story_id = conn.execute(
                stories.insert().values(
                    title=title, created_by=author, created_at=now, turn_rule=turn_rule, settings=settings_json,
                    paragraph_count=0, last_activity=now, version=0, change_seq=0, creator_id=wid,
                ).returning(stories.c.id)
            ).scalar_one()
            _admit(conn, story_id, author, writer_key)
            _bump(conn, story_id)
            return _story(_fetch_story(conn, story_id))

    def list_stories(self) -> list[Story]:
        """Every story, most recently active first, with its paragraph count and last activity."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(*_STORY_COLUMNS).order_by(stories.c.last_activity.desc(), stories.c.id.desc())
            ).mappings().all()
        return [_story(row) for row in rows]

    def get_story(self, story_id: int) -> Story:
        """The story with this id; NotFound if there is none."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return _story(_fetch_story(conn, story_id))

    def version(self, story_id: int) -> int:
        """A number that changes with every write to the story's paragraphs; cheap enough to poll."""
        story_id = _validate_id(story_id, "story_id")
        rows = self._poll("SELECT version FROM stories WHERE id = ?", _VERSION_QUERY, {"id": story_id})
        if not rows:
            raise NotFound(f"There is no story number {story_id}.")
        return rows[0][0]

    # timeline

    def add_paragraph(
        self,
        story_id: int,
        text: str,
        author: str,
        kind: str = "human",
        expected_head: int | None = None,
        edited: bool = False,
        meta: dict | None = None,
        *,
        writer_key: str | None = None,
        client_id: str | None = None,
    ) -> Paragraph:
        """Append a paragraph at the end of the story and return it as stored.

        `expected_head` is the id of the last paragraph the writer saw (0 for an empty story): if
        the story has moved on, StaleHeadError carries the current head and nothing is written.
        The check, the turn rule and the append are one atomic step, also across processes.
        `client_id` makes a retry safe: the same (story, client_id) again returns the paragraph
        already stored and writes nothing (the text must be the same, else InvalidInput).
        """
        story_id = _validate_id(story_id, "story_id")
        text = validate_text(text)
        author = validate_author(author)
        _validate_kind(kind)
        expected_head = _validate_expected_head(expected_head)
        meta_json = _dump_json_object(meta, "Meta")
        client_id = validate_client_id(client_id)
        with self._write() as conn:
            _lock_story(conn, story_id)
            if client_id is not None:
                row = conn.execute(
                    sa.select(*_PARAGRAPH_COLUMNS).where(
                        paragraphs.c.story_id == story_id, paragraphs.c.client_id == client_id
                    )
                ).mappings().first()
                if row is not None:
                    if row["text"] != text:
                        raise InvalidInput(
                            "This request id was already used for a different paragraph; send new text with a new id."
                        )
                    return _paragraph(row)
            wid = _admit(conn, story_id, author, writer_key)
            return _append(
                conn, story_id, text, author, kind, expected_head, bool(edited), meta_json, locked=True,
                writer_id=wid, client_id=client_id,
            )

    def head(self, story_id: int) -> Paragraph | None:
        """The last paragraph that is not deleted, or None for an empty story."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            _fetch_story(conn, story_id)
            return _head(conn, story_id)

    def timeline(self, story_id: int) -> list[Paragraph]:
        """The story's paragraphs in seq order, without deleted (undone) ones."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            _fetch_story(conn, story_id)
            rows = conn.execute(
                sa.select(*_PARAGRAPH_COLUMNS)
                .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
                .order_by(paragraphs.c.seq)
            ).mappings().all()
        return [_paragraph(row) for row in rows]

    def undo_last(
        self, story_id: int, author: str, expected_head: int | None = None, *, writer_key: str | None = None
    ) -> Paragraph:
        """Mark the story's last paragraph deleted if `author` wrote or accepted it; return it.

        With `expected_head`, the undo only happens if that paragraph is still the last one. A
        paragraph written with a writer key can only be undone with that key.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        expected_head = _validate_expected_head(expected_head)
        with self._write() as conn:
            _lock_story(conn, story_id)
            wid = _admit(conn, story_id, author, writer_key)
            head = _head(conn, story_id)
            if expected_head is not None and (head.id if head else 0) != expected_head:
                raise StaleHeadError(_STALE_MESSAGE, head)
            last = _last_live(conn, story_id)
            if last is None:
                raise NotFound("There is nothing to undo: the story has no paragraphs.")
            if last.hidden:
                raise NotFound("The last paragraph was hidden by the story's creator, so there is nothing to undo.")
            if not _wrote(last, author, wid):
                raise NotAllowed(f"Only {last.author} can undo the last paragraph: they wrote or accepted it.")
            head = last
            now = _now()
            conn.execute(paragraphs.update().where(paragraphs.c.id == head.id).values(deleted=1))
            after = _head(conn, story_id)
            conn.execute(
                paragraphs.update().where(paragraphs.c.id == head.id).values(
                    undone_by=author, undone_by_id=wid, undone_at=now, head_after_undo=after.id if after else 0
                )
            )
            conn.execute(
                stories.update().where(stories.c.id == story_id).values(
                    version=stories.c.version + 1, paragraph_count=stories.c.paragraph_count - 1,
                    last_activity=now,
                )
            )
            _bump(conn, story_id)
            return _replace(head, deleted=True)

    def redo_last(self, story_id: int, author: str, *, writer_key: str | None = None) -> Paragraph:
        """Restore the paragraph `author` most recently undid, if the story has not moved on since.

        StaleHeadError if the head is no longer what it was right after that undo; NotFound if
        this writer has nothing to redo. Returns the restored paragraph.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        with self._write() as conn:
            _lock_story(conn, story_id)
            wid = _admit(conn, story_id, author, writer_key)
            who = (paragraphs.c.undone_by_id == wid) if wid is not None else sa.and_(
                paragraphs.c.undone_by_id.is_(None), paragraphs.c.undone_by == author
            )
            row = conn.execute(
                sa.select(*_PARAGRAPH_COLUMNS, paragraphs.c.head_after_undo)
                .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 1, who)
                .order_by(paragraphs.c.undone_at.desc(), paragraphs.c.id.desc()).limit(1)
            ).mappings().first()
            if row is None:
                raise NotFound("There is nothing of yours to redo in this story.")
            head = _head(conn, story_id)
            if (head.id if head else 0) != row["head_after_undo"]:
                raise StaleHeadError(
                    "The story has moved on since you undid that paragraph, so it cannot be put back.", head
                )
            last = _last_live(conn, story_id)
            seq = last.seq + 1 if last else 1
            now = _now()
            conn.execute(
                paragraphs.update().where(paragraphs.c.id == row["id"]).values(
                    deleted=0, seq=seq, undone_by=None, undone_by_id=None, undone_at=None, head_after_undo=None
                )
            )
            conn.execute(
                stories.update().where(stories.c.id == story_id).values(
                    version=stories.c.version + 1, paragraph_count=stories.c.paragraph_count + 1,
                    last_activity=now,
                )
            )
            _bump(conn, story_id)
            return _replace(_paragraph(row), deleted=False, seq=seq)

    def edit_paragraph(
        self, story_id: int, paragraph_id: int, text: str, author: str, *, writer_key: str | None = None
    ) -> Paragraph:
        """Change a paragraph's text, keeping every earlier version; return it as stored.

        Allowed for the paragraph's writer (by key when it was written with one), or for anyone
        on a `free` story. The paragraph is marked edited.
        """
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        text = validate_text(text)
        author = validate_author(author)
        with self._write() as conn:
            story = _lock_story(conn, story_id)
            wid = _admit(conn, story_id, author, writer_key)
            paragraph = _fetch_paragraph(conn, story_id, paragraph_id)
            if paragraph.deleted:
                raise NotFound(f"Paragraph {paragraph_id} was undone; only paragraphs in the story can be edited.")
            if story["turn_rule"] != "free" and not _wrote(paragraph, author, wid):
                raise NotAllowed(f"Only {paragraph.author} can edit this paragraph: they wrote or accepted it.")
            if text == paragraph.text:
                return paragraph
            now = _now()
            versions = _versions(conn, paragraph)
            if len(versions) == 1:  # keep the original as version 1 before the first edit
                _insert_version(conn, paragraph.id, versions[0])
            new = ParagraphVersion(len(versions) + 1, text, author, now, wid)
            _insert_version(conn, paragraph.id, new)
            conn.execute(paragraphs.update().where(paragraphs.c.id == paragraph.id).values(text=text, edited=1))
            conn.execute(
                stories.update().where(stories.c.id == story_id).values(
                    version=stories.c.version + 1, last_activity=now
                )
            )
            _bump(conn, story_id)
            return _replace(paragraph, text=text, edited=True)

    def paragraph_versions(self, paragraph_id: int) -> list[ParagraphVersion]:
        """Every text the paragraph has had, oldest first (one entry if it was never edited)."""
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        with self._read() as conn:
            row = conn.execute(sa.select(*_PARAGRAPH_COLUMNS).where(paragraphs.c.id == paragraph_id)).mappings().first()
            if row is None:
                raise NotFound(f"There is no paragraph number {paragraph_id}.")
            return _versions(conn, _paragraph(row))

    def turn_candidates(self, turn_id: str) -> list[Candidate]:
        """Every candidate of one model turn (its "swipes"), oldest first, whatever became of them."""
        if not isinstance(turn_id, str) or not turn_id:
            raise NotFound("There is no such model turn.")
        with self._read() as conn:
            rows = conn.execute(
                sa.select(*_CANDIDATE_COLUMNS).where(candidates.c.turn_id == turn_id)
                .order_by(candidates.c.created_unix, candidates.c.id)
            ).mappings().all()
        return [_candidate(r) for r in rows]

    def fork(
        self, story_id: int, at_paragraph_id: int, title: str, author: str, *, writer_key: str | None = None
    ) -> Story:
        """A new story whose timeline copies this one up to and including `at_paragraph_id`."""
        story_id = _validate_id(story_id, "story_id")
        at_paragraph_id = _validate_id(at_paragraph_id, "at_paragraph_id")
        title = validate_title(title)
        author = validate_author(author)
        wid = _optional_writer_id(writer_key)
        now = _now()
        with self._write() as conn:
            source = _lock_story(conn, story_id)
            at = conn.execute(
                sa.select(paragraphs.c.seq, paragraphs.c.deleted).where(
                    paragraphs.c.id == at_paragraph_id, paragraphs.c.story_id == story_id
                )
            ).mappings().first()
            if at is None:
                raise NotFound(f"Story {story_id} has no paragraph number {at_paragraph_id}.")
            if at["deleted"]:
                raise NotFound(f"Paragraph {at_paragraph_id} was undone; fork from a paragraph still in the story.")
            new_id = conn.execute(
                stories.insert().values(
                    title=title, created_by=author, created_at=now, turn_rule=source["turn_rule"],
                    settings=source["settings"], forked_from_story=story_id, forked_from_paragraph=at_paragraph_id,
                    paragraph_count=0, last_activity=now, version=0, change_seq=0, creator_id=wid,
                ).returning(stories.c.id)
            ).scalar_one()
            copied = ("seq", "author", "kind", "text", "created_at", "edited", "meta", "writer_id", "hidden")
            conn.execute(
                paragraphs.insert().from_select(
                    ["story_id", *copied, "deleted"],
                    sa.select(sa.literal(new_id, sa.BigInteger), *(paragraphs.c[c] for c in copied), sa.literal(0))
                    .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.seq <= at["seq"])
                    .order_by(paragraphs.c.seq),
                )
            )
            _recount(conn, new_id)
            _admit(conn, new_id, author, writer_key)
            _bump(conn, new_id)
            return _story(_fetch_story(conn, new_id))

    # writers and moderation

    def new_writer_key(self) -> str:
        """Issue a fresh secret writer key (registered now; only its SHA-256 is stored)."""
        key = new_writer_key()
        with self._write() as conn:
            _register(conn, key)
        return key

    def writer_id(self, key: str) -> str:
        """The public id of a writer key (first 16 hex digits of its SHA-256); InvalidInput if malformed."""
        return writer_id_of(key)

    def hide_paragraph(self, story_id: int, paragraph_id: int, *, writer_key: str) -> Paragraph:
        """Hide a paragraph from the story's timeline (creator only); it stays in the JSON export, marked hidden."""
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            story = _lock_story(conn, story_id)
            _check_creator(story, wid, "hide paragraphs")
            paragraph = _fetch_paragraph(conn, story_id, paragraph_id)
            if paragraph.hidden:
                return paragraph
            conn.execute(paragraphs.update().where(paragraphs.c.id == paragraph_id).values(hidden=1))
            _recount(conn, story_id)
            conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
            _bump(conn, story_id)
            return _replace(paragraph, hidden=True)

    def block_writer(self, story_id: int, writer_id: str, *, writer_key: str) -> None:
        """Refuse every further write of `writer_id` (a public writer id) to this story (creator only)."""
        story_id = _validate_id(story_id, "story_id")
        target = validate_writer_id(writer_id)
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            story = _lock_story(conn, story_id)
            _check_creator(story, wid, "block writers")
            if target == wid:
                raise InvalidInput("You cannot block yourself from your own story.")
            exists = conn.execute(
                sa.select(blocked_writers.c.writer_id).where(
                    blocked_writers.c.story_id == story_id, blocked_writers.c.writer_id == target
                )
            ).first()
            if exists is None:
                conn.execute(blocked_writers.insert().values(story_id=story_id, writer_id=target, blocked_at=_now()))
                _bump(conn, story_id)

    # the live model turn

    def claim_ai_turn(
        self,
        story_id: int,
        author: str,
        ttl: float = 120.0,
        *,
        writer_key: str | None = None,
        process: str | None = None,
    ) -> str:
        """Take the story's model turn for `author` for `ttl` seconds and return its turn id.

        TurnBusy if another writer's turn is live (the model writing for them, or their
        suggestion waiting). The same writer claiming again keeps the same turn and its
        candidates (a new generation, a "swipe"): status goes back to "writing" and the lease is
        refreshed. A turn that expired is free for anyone; its holder then loses it (TurnLost on
        accepting its candidates). `process` ("host:pid", default this process) is recorded so
        that release_dead_turns() can free the turn if the process dies.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        ttl = _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        process = _validate_process(process)
        with self._write() as conn:
            _lock_story(conn, story_id)
            _admit(conn, story_id, author, writer_key)
            now = time.time()
            turn = _current_turn(conn, story_id)
            if turn is not None and _same_holder(turn, author, wid):
                conn.execute(
                    ai_turns.update().where(ai_turns.c.n == turn["n"]).values(
                        status="writing", draft="", expires_at=now + ttl, process=process
                    )
                )
                turn_id = turn["id"]
            else:
                if turn is not None:
                    if turn["expires_at"] > now:
                        raise _turn_busy(turn)
                    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="lost", lost_to=author))
                turn_id = secrets.token_urlsafe(12)
                conn.execute(
                    ai_turns.insert().values(
                        id=turn_id, story_id=story_id, holder=author, holder_id=wid, status="writing", draft="",
                        expires_at=now + ttl, process=process, claimed_at=now,
                    )
                )
                conn.execute(stories.update().where(stories.c.id == story_id).values(ai_turn_id=turn_id))
            conn.execute(stories.update().where(stories.c.id == story_id).values(version=stories.c.version + 1))
            _bump(conn, story_id)
            return turn_id

    def set_ai_draft(
        self, story_id: int, author: str, text: str, *, writer_key: str | None = None, ttl: float | None = None
    ) -> None:
        """Store the model's text so far for everyone watching; refresh the lease when `ttl` is given.

        Changes the change token, not the story's version. NotAllowed if `author` does not hold
        the turn, TurnLost if it expired and went to someone else.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        text = _validate_draft(text)
        ttl = None if ttl is None else _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            _lock_story(conn, story_id)
            turn = _held_turn(conn, story_id, author, wid)
            expires = turn["expires_at"] if ttl is None else time.time() + ttl
            conn.execute(
                ai_turns.update().where(ai_turns.c.n == turn["n"]).values(draft=text, status="writing", expires_at=expires)
            )
            _bump(conn, story_id)

    def touch_ai_turn(self, story_id: int, author: str, ttl: float, *, writer_key: str | None = None) -> None:
        """Refresh the idle timer of `author`'s turn (e.g. while they edit its suggestion)."""
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        ttl = _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            _lock_story(conn, story_id)
            turn = _held_turn(conn, story_id, author, wid)
            conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(expires_at=time.time() + ttl))
            _bump(conn, story_id)

    def release_ai_turn(self, story_id: int, author: str, *, writer_key: str | None = None) -> None:
        """Give back the model turn (nothing to keep); does nothing if `author` does not hold it."""
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            _lock_story(conn, story_id)
            turn = _current_turn(conn, story_id)
            if turn is not None and _same_holder(turn, author, wid):
                _end_turn(conn, story_id, turn, "released")

    def discard_ai_turn(self, story_id: int, author: str, *, writer_key: str | None = None) -> int:
        """Throw away every suggestion of the story's model turn and free it; return how many.

        Only its holder may, or anyone once the turn has expired (idle too long). Discarded
        suggestions can never be accepted.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            _lock_story(conn, story_id)
            turn = _current_turn(conn, story_id)
            if turn is None:
                raise NotFound("There is no model turn to discard in this story.")
            if not _same_holder(turn, author, wid) and turn["expires_at"] > time.time():
                raise NotAllowed(f"Only {turn['holder']} can discard these suggestions until their turn times out.")
            count = conn.execute(
                candidates.update()
                .where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
                .values(status="discarded")
            ).rowcount
            _end_turn(conn, story_id, turn, "discarded")
            return count

    def ai_turn(self, story_id: int) -> AITurnState | None:
        """The story's live model turn, or None when nobody holds it (or it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            turn = _live_turn(conn, story_id)
            if turn is None:
                return None
            rows = conn.execute(
                sa.select(*_CANDIDATE_COLUMNS)
                .where(candidates.c.turn_id == turn["id"], candidates.c.status != "discarded")
                .order_by(candidates.c.created_unix, candidates.c.id)
            ).mappings().all()
        return AITurnState(
            story_id=story_id, holder=turn["holder"], holder_id=turn["holder_id"], status=turn["status"],
            draft=turn["draft"], candidates=[_candidate(r) for r in rows], expires_at=turn["expires_at"],
            process=turn["process"], turn_id=turn["id"],
        )

    def ai_turn_holder(self, story_id: int) -> str | None:
        """Whom the model's turn belongs to now (writing or pending), or None (also when it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            turn = _live_turn(conn, story_id)
        return None if turn is None else turn["holder"]

    def release_dead_turns(self, host: str | None = None) -> int:
        """Free the model turns being written by processes on `host` that no longer run; return how many.

        Call it at startup. A dead process's turn that already has suggestions stays with its
        holder as "pending" (the suggestions are in the database); one without is released.
        `host` defaults to this machine's name.
        """
        if host is None:
            host = socket.gethostname()
        if not isinstance(host, str) or not host or ":" in host:
            raise InvalidInput("host must be a machine name, as in the \"host:pid\" a lease records.")
        freed = 0
        with self._write() as conn:
            rows = conn.execute(
                sa.select(ai_turns)
                .join(stories, stories.c.ai_turn_id == ai_turns.c.id)
                .where(ai_turns.c.status == "writing", ai_turns.c.process.startswith(host + ":", autoescape=True))
                .order_by(ai_turns.c.story_id)
            ).mappings().all()
            dead = [t for t in rows if not _process_alive(t["process"])]
            for turn in dead:  # lock every story first (in id order), then write
                _lock_story(conn, turn["story_id"])
            for turn in dead:
                has_candidates = conn.execute(
                    sa.select(candidates.c.id)
                    .where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
                    .limit(1)
                ).first()
                if has_candidates:
                    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="pending", draft=""))
                    _bump(conn, turn["story_id"])
                else:
                    _end_turn(conn, turn["story_id"], turn, "released")
                freed += 1
        return freed

    # server-generated candidates

    def add_candidate(
        self,
        story_id: int,
        author: str,
        text: str,
        meta: dict | None = None,
        *,
        writer_key: str | None = None,
        idle_ttl: float | None = None,
    ) -> str:
        """Keep model output generated for `author` and return an unguessable id to accept it by.

        If `author` holds the story's model turn, the candidate joins that turn, which becomes
        "pending" (its draft cleared) and, with `idle_ttl`, stays theirs for that many seconds
        of inactivity. Candidates older than a day are pruned here.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        text = validate_text(text)
        meta_json = _dump_json_object(meta, "Meta")
        idle_ttl = None if idle_ttl is None else _validate_ttl(idle_ttl, "idle_ttl")
        wid = _optional_writer_id(writer_key)
        candidate_id = secrets.token_urlsafe(16)
        now = time.time()
        with self._write() as conn:
            _lock_story(conn, story_id)
            _admit(conn, story_id, author, writer_key)
            conn.execute(candidates.delete().where(candidates.c.created_unix < now - CANDIDATE_MAX_AGE_S))
            turn = _current_turn(conn, story_id)
            turn_id = None
            if turn is not None and _same_holder(turn, author, wid):
                turn_id = turn["id"]
                expires = turn["expires_at"] if idle_ttl is None else now + idle_ttl
                conn.execute(
                    ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status="pending", draft="", expires_at=expires)
                )
            conn.execute(
                candidates.insert().values(
                    id=candidate_id, story_id=story_id, author=author, text=text, meta=meta_json, created_at=_now(),
                    created_unix=now, used=0, turn_id=turn_id, status="open", writer_id=wid,
                )
            )
            _bump(conn, story_id)
        return candidate_id

    def get_candidate(self, candidate_id: str) -> Candidate:
        """The candidate with this id; NotFound if it never existed or was pruned."""
        key = _candidate_key(candidate_id)
        with self._read() as conn:
            row = conn.execute(sa.select(*_CANDIDATE_COLUMNS).where(candidates.c.id == key)).mappings().first()
        if row is None:
            raise NotFound(_CANDIDATE_MISSING)
        return _candidate(row)

    def accept_candidate(
        self,
        candidate_id: str,
        author: str,
        text: str | None = None,
        expected_head: int | None = None,
        *,
        writer_key: str | None = None,
    ) -> Paragraph:
        """Append a candidate to its own story as an AI paragraph accepted by `author`; return it.

        `text` is the accepting person's edit, if any (the paragraph is then marked edited and
        its meta keeps the original). Turn rule and `expected_head` apply as in add_paragraph.
        A candidate of a model turn may be accepted by the turn's holder, or by anyone once the
        turn has expired; if the turn expired and another writer took the model's turn since,
        TurnLost. In the same transaction the candidate is marked used, the turn's other
        candidates "not chosen", and the turn freed.
        """
        key = _candidate_key(candidate_id)
        author = validate_author(author)
        if text is not None:
            text = validate_text(text)
        expected_head = _validate_expected_head(expected_head)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            story_id = conn.execute(sa.select(candidates.c.story_id).where(candidates.c.id == key)).scalar()
            if story_id is None:
                raise NotFound(_CANDIDATE_MISSING)
            _lock_story(conn, story_id)
            _admit(conn, story_id, author, writer_key)
            row = conn.execute(
                sa.select(*_CANDIDATE_COLUMNS, candidates.c.created_unix).where(candidates.c.id == key)
            ).mappings().first()
            if row is None:
                raise NotFound(_CANDIDATE_MISSING)
            candidate = _candidate(row)
            if candidate.status == "accepted":
                raise NotAllowed("This suggestion was already added to the story.")
            if candidate.status == "discarded":
                raise NotAllowed("This suggestion was discarded, so it cannot be added; ask the model again.")
            if candidate.status == "not_chosen":
                raise NotAllowed("Another suggestion of the same turn was already added to the story.")
            if row["created_unix"] < time.time() - CANDIDATE_MAX_AGE_S:
                raise NotFound("This suggestion expired: it is more than a day old. Ask the model again.")
            turn = None
            if candidate.turn_id is not None:
                turn = conn.execute(sa.select(ai_turns).where(ai_turns.c.id == candidate.turn_id)).mappings().first()
            if turn is not None:
                later = conn.execute(
                    sa.select(ai_turns.c.holder, ai_turns.c.holder_id)
                    .where(ai_turns.c.story_id == turn["story_id"], ai_turns.c.n > turn["n"])
                    .order_by(ai_turns.c.n)
                ).mappings().all()
                taker = next((t for t in later if not _same_holder(turn, t["holder"], t["holder_id"])), None)
                if turn["status"] == "lost" or taker is not None:
                    holder = turn["lost_to"] or (taker["holder"] if taker else "")
                    raise TurnLost(
                        f"You were idle too long, so the model's turn went to {holder}; this suggestion can no"
                        " longer be added. Wait for your turn and ask the model again.",
                        holder,
                    )
                current = turn["status"] in TURN_STATUSES
                if current and not _same_holder(turn, author, wid) and turn["expires_at"] > time.time():
                    raise NotAllowed(f"Only {turn['holder']} can accept this suggestion until their turn times out.")
            edited = text is not None and text != candidate.text
            meta = dict(candidate.meta, candidate_id=candidate.id)
            if edited:
                meta["original_text"] = candidate.text
            if turn is not None:
                others = conn.execute(
                    sa.select(candidates.c.text)
                    .where(candidates.c.turn_id == turn["id"], candidates.c.id != key, candidates.c.status == "open")
                    .order_by(candidates.c.created_unix, candidates.c.id)
                ).scalars().all()
                if others:
                    meta["other_versions"] = list(others)
            paragraph = _append(
                conn, candidate.story_id, text if edited else candidate.text, author, "ai", expected_head, edited,
                json.dumps(meta, ensure_ascii=False), locked=True, writer_id=wid,
            )
            conn.execute(candidates.update().where(candidates.c.id == key).values(used=1, status="accepted"))
            if turn is not None:
                conn.execute(
                    candidates.update()
                    .where(candidates.c.turn_id == turn["id"], candidates.c.status == "open")
                    .values(status="not_chosen")
                )
                if turn["status"] in TURN_STATUSES:
                    _end_turn(conn, candidate.story_id, turn, "accepted")
            return paragraph

    # the change feed

    def change_token(self) -> int:
        """A number that grows with every committed change to any story; one single-row read."""
        return self._poll("SELECT value FROM change_counter WHERE id = 1", _TOKEN_QUERY, {})[0][0]

    def changed_stories(self, since: int) -> tuple[int, list[int]]:
        """(current change token, ids of the stories changed after token `since`)."""
        since = _validate_id(since, "since")
        with self._read() as conn:
            token = conn.execute(_TOKEN_QUERY).scalar_one()
            ids = conn.execute(
                sa.select(stories.c.id).where(stories.c.change_seq > since).order_by(stories.c.id)
            ).scalars().all()
        return token, list(ids)

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block up to `timeout` seconds until the change token passes `since`; return the token.

        SQLite: polls change_token() every CHANGE_POLL_S. PostgreSQL: waits for the NOTIFY every
        commit sends (LISTEN on a connection this thread keeps), so it wakes at once.
        """
        since = _validate_id(since, "since")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise InvalidInput("timeout must be a number of seconds (0 or more).")
        deadline = time.monotonic() + min(float(timeout), 3600.0)
        listener = self._listener() if self.backend == "postgresql" else None
        while True:
            token = self.change_token()
            left = deadline - time.monotonic()
            if token > since or left <= 0:
                return token
            if listener is None:
                time.sleep(min(CHANGE_POLL_S, left))
                continue
            try:
                # Any notification means "look again"; the token read above decides.
                for _ in listener.notifies(timeout=min(left, 5.0), stop_after=1):
                    pass
            except Exception as exc:  # a dropped listener: open a new one next time
                self._listeners.conn = None
                raise StoreUnavailable(f"Lost the connection to the database while waiting for changes: {exc}") from exc

    def _listener(self):
        conn = getattr(self._listeners, "conn", None)
        if conn is None or conn.closed or getattr(self._listeners, "pid", None) != os.getpid():
            import psycopg

            try:
                conn = psycopg.connect(libpq_url(self.url), autocommit=True, connect_timeout=10)
                conn.execute(f"LISTEN {PG_CHANNEL}")
            except psycopg.Error as exc:
                raise StoreUnavailable(f"Could not reach the database to watch for changes: {exc}") from exc
            self._listeners.conn, self._listeners.pid = conn, os.getpid()
            with self._lock:
                self._listener_conns.append(conn)
        return conn

    # export and import

    def export(self, story_id: int, fmt: str) -> str:
        """The story as "txt" (plain novel), "md" (with writers and AI marks) or "json" (everything)."""
        story_id = _validate_id(story_id, "story_id")
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(f"Unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}.")
        with self._read() as conn:
            story = _story(_fetch_story(conn, story_id))
            rows = conn.execute(
                sa.select(*_PARAGRAPH_COLUMNS)
                .where(paragraphs.c.story_id == story_id)
                .order_by(paragraphs.c.seq, paragraphs.c.id)
            ).mappings().all()
            history: dict[int, list[dict]] = {}
            if fmt == "json":
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
        all_paragraphs = [_paragraph(row) for row in rows]
        if fmt == "json":
            return _export_json(story, all_paragraphs, history)
        live = [p for p in all_paragraphs if not p.deleted and not p.hidden]
        return _export_md(story, live) if fmt == "md" else _export_txt(story, live)

    def import_json(self, data: str | bytes | dict) -> Story:
        """Restore a JSON export as a new story (new ids, everything else exactly as exported).

        Malformed input raises InvalidInput and writes nothing.
        """
        story_row, paragraph_rows = _parse_export(data)
        title, created_by, created_at, turn_rule, settings, forked_story, forked_paragraph, count = story_row
        now = _now()
        with self._write() as conn:
            new_id = conn.execute(
                stories.insert().values(
                    title=title, created_by=created_by, created_at=created_at, turn_rule=turn_rule, settings=settings,
                    forked_from_story=forked_story, forked_from_paragraph=forked_paragraph, paragraph_count=count,
                    last_activity=now, version=0, change_seq=0,
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
                        _insert_version(conn, pid, version)
            _bump(conn, new_id)
            return _story(_fetch_story(conn, new_id))


# --- helpers that run inside a transaction ------------------------------------------------------

_STORY_COLUMNS = (
    stories.c.id, stories.c.title, stories.c.created_by, stories.c.created_at, stories.c.turn_rule,
    stories.c.settings, stories.c.forked_from_story, stories.c.forked_from_paragraph, stories.c.paragraph_count,
    stories.c.last_activity, stories.c.version, stories.c.creator_id,
)
_PARAGRAPH_COLUMNS = (
    paragraphs.c.id, paragraphs.c.story_id, paragraphs.c.seq, paragraphs.c.author, paragraphs.c.kind,
    paragraphs.c.text, paragraphs.c.created_at, paragraphs.c.edited, paragraphs.c.meta, paragraphs.c.deleted,
    paragraphs.c.writer_id, paragraphs.c.hidden,
)
_CANDIDATE_COLUMNS = (
    candidates.c.id, candidates.c.story_id, candidates.c.author, candidates.c.text, candidates.c.meta,
    candidates.c.created_at, candidates.c.used, candidates.c.turn_id, candidates.c.status, candidates.c.writer_id,
)
# Statements of the hot paths (append, poll), built once: SQLAlchemy memoizes a built
# statement's cache key, so executing one costs little more than the driver call.
_VERSION_QUERY = sa.text("SELECT version FROM stories WHERE id = :id")
_STORY_QUERY = sa.select(*_STORY_COLUMNS, stories.c.ai_turn_id).where(stories.c.id == sa.bindparam("id"))
_STORY_QUERY_LOCKED = _STORY_QUERY.with_for_update()  # PostgreSQL; SQLite's BEGIN IMMEDIATE already holds it
_HEAD_QUERY = (  # the last paragraph a reader sees
    sa.select(*_PARAGRAPH_COLUMNS)
    .where(paragraphs.c.story_id == sa.bindparam("id"), paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
    .order_by(paragraphs.c.seq.desc()).limit(1)
)
_LAST_LIVE_QUERY = (  # the last paragraph not undone, hidden or not: it holds the highest seq
    sa.select(*_PARAGRAPH_COLUMNS)
    .where(paragraphs.c.story_id == sa.bindparam("id"), paragraphs.c.deleted == 0)
    .order_by(paragraphs.c.seq.desc()).limit(1)
)
_INSERT_PARAGRAPH = paragraphs.insert().returning(paragraphs.c.id)
_APPENDED = stories.update().where(stories.c.id == sa.bindparam("sid")).values(
    version=stories.c.version + 1, paragraph_count=stories.c.paragraph_count + 1,
    last_activity=sa.bindparam("now"),
)
_NEXT_TOKEN = (
    change_counter.update().where(change_counter.c.id == 1)
    .values(value=change_counter.c.value + 1).returning(change_counter.c.value)
)
_STAMP_STORY = stories.update().where(stories.c.id == sa.bindparam("sid")).values(change_seq=sa.bindparam("token"))
_NOTIFY = sa.select(sa.func.pg_notify(PG_CHANNEL, sa.bindparam("token")))
_TOKEN_QUERY = sa.text("SELECT value FROM change_counter WHERE id = 1")
_IMPORTED_COLUMNS = ("seq", "author", "kind", "text", "created_at", "edited", "meta", "deleted", "writer_id", "hidden")
_STALE_MESSAGE = "The story has moved on since you last looked: someone else added or undid a paragraph."
_CANDIDATE_MISSING = "This suggestion does not exist any more (it may have expired); ask the model again."


def _fetch_story(conn: sa.Connection, story_id: int, *, lock: bool = False):
    row = conn.execute(_STORY_QUERY_LOCKED if lock else _STORY_QUERY, {"id": story_id}).mappings().first()
    if row is None:
        raise NotFound(f"There is no story number {story_id}.")
    return row


def _lock_story(conn: sa.Connection, story_id: int):
    """Lock the story's row for this write transaction (PostgreSQL) and return it; NotFound if none.

    Every write locks the stories it changes before it takes the change counter's row in
    _bump, always in that order, so two writers never wait on each other in a cycle.
    """
    return _fetch_story(conn, story_id, lock=True)


def _bump(conn: sa.Connection, story_id: int) -> int:
    """Advance the global change token and stamp the story with it (inside the write transaction).

    On PostgreSQL the row lock on the counter orders the tokens as the commits, and a NOTIFY,
    delivered at commit, wakes the watchers of every app process.
    """
    token = conn.execute(_NEXT_TOKEN).scalar_one()
    conn.execute(_STAMP_STORY, {"sid": story_id, "token": token})
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"token": str(token)})
    return token


def _current_turn(conn: sa.Connection, story_id: int):
    """The story's open model turn (writing or pending), expired or not; NotFound for no story."""
    turn_id = conn.execute(sa.select(stories.c.ai_turn_id).where(stories.c.id == story_id)).first()
    if turn_id is None:
        raise NotFound(f"There is no story number {story_id}.")
    if turn_id[0] is None:
        return None
    return conn.execute(sa.select(ai_turns).where(ai_turns.c.id == turn_id[0])).mappings().first()


def _live_turn(conn, story_id: int):
    """The story's current model turn if it has not timed out, else None (a timeout writes nothing)."""
    turn = _current_turn(conn, story_id)
    return None if turn is None or turn["expires_at"] <= time.time() else turn

def _same_holder(turn, author: str, writer_id: str | None) -> bool:
    """A turn claimed with a writer key belongs to that key; one claimed by name, to that name."""
    if turn["holder_id"] is not None:
        return writer_id == turn["holder_id"]
    return writer_id is None and author == turn["holder"]


def _turn_busy(turn) -> TurnBusy:
    holder = turn["holder"]
    if turn["status"] == "pending":
        message = (f"{holder}'s suggestion from the model is waiting to be accepted; the model's turn is theirs"
                   " until they decide or stay idle too long.")
    else:
        message = f"The model is already writing for {holder}; try again when it is done."
    return TurnBusy(message, holder, turn["status"], turn["expires_at"])


def _held_turn(conn: sa.Connection, story_id: int, author: str, writer_id: str | None):
    """The story's turn if `author` holds it (even expired, while nobody took it); else raise."""
    turn = _current_turn(conn, story_id)
    if turn is not None and _same_holder(turn, author, writer_id):
        return turn
    lost = conn.execute(
        sa.select(ai_turns).where(ai_turns.c.story_id == story_id, ai_turns.c.status == "lost")
        .order_by(ai_turns.c.n.desc()).limit(1)
    ).mappings().first()
    if lost is not None and _same_holder(lost, author, writer_id):
        raise TurnLost(f"You were idle too long, so the model's turn went to {lost['lost_to']}.", lost["lost_to"] or "")
    raise NotAllowed("You do not hold the model's turn in this story; ask the model first.")


def _end_turn(conn: sa.Connection, story_id: int, turn, status: str) -> None:
    conn.execute(ai_turns.update().where(ai_turns.c.n == turn["n"]).values(status=status, draft=""))
    conn.execute(
        stories.update().where(stories.c.id == story_id).values(ai_turn_id=None, version=stories.c.version + 1)
    )
    _bump(conn, story_id)


def _process_alive(process: str | None) -> bool:
    pid = (process or "").rpartition(":")[2]
    return pid.isdigit() and _pid_alive(int(pid))


def _fetch_paragraph(conn, story_id: int, paragraph_id: int) -> Paragraph:
    """Paragraph `paragraph_id` of story `story_id` (deleted or hidden ones too); NotFound if it is not there."""
    row = conn.execute(
        sa.select(*_PARAGRAPH_COLUMNS).where(paragraphs.c.id == paragraph_id, paragraphs.c.story_id == story_id)
    ).mappings().first()
    if row is None:
        raise NotFound(f"Story {story_id} has no paragraph number {paragraph_id}.")
    return _paragraph(row)


def _head(conn: sa.Connection, story_id: int) -> Paragraph | None:
    row = conn.execute(_HEAD_QUERY, {"id": story_id}).mappings().first()
    return _paragraph(row) if row else None


def _versions(conn: sa.Connection, paragraph: Paragraph) -> list[ParagraphVersion]:
    rows = conn.execute(
        sa.select(paragraph_versions).where(paragraph_versions.c.paragraph_id == paragraph.id)
        .order_by(paragraph_versions.c.version)
    ).mappings().all()
    if not rows:  # never edited: the paragraph as written is its only version
        return [ParagraphVersion(1, paragraph.text, paragraph.author, paragraph.created_at, paragraph.writer_id)]
    return [ParagraphVersion(r["version"], r["text"], r["editor"], r["edited_at"], r["editor_id"]) for r in rows]


def _insert_version(conn: sa.Connection, paragraph_id: int, v: ParagraphVersion) -> None:
    conn.execute(
        paragraph_versions.insert().values(
            paragraph_id=paragraph_id, version=v.version, text=v.text, editor=v.editor, editor_id=v.editor_id,
            edited_at=v.edited_at,
        )
    )


def _last_live(conn: sa.Connection, story_id: int) -> Paragraph | None:
    row = conn.execute(_LAST_LIVE_QUERY, {"id": story_id}).mappings().first()
    return _paragraph(row) if row else None


def _recount(conn: sa.Connection, story_id: int) -> None:
    """Set paragraph_count to the paragraphs a reader sees (not undone, not hidden)."""
    count = conn.execute(
        sa.select(sa.func.count()).select_from(paragraphs)
        .where(paragraphs.c.story_id == story_id, paragraphs.c.deleted == 0, paragraphs.c.hidden == 0)
    ).scalar_one()
    conn.execute(stories.update().where(stories.c.id == story_id).values(paragraph_count=count))


def _register(conn: sa.Connection, key: str) -> str:
    """Record a writer key (hashed) if new; return its public id."""
    wid = writer_id_of(key)
    digest = key_sha256(key)
    known = conn.execute(sa.select(writers.c.key_sha256).where(writers.c.id == wid)).scalar()
    if known is None:
        # ON CONFLICT DO NOTHING (SQLite and PostgreSQL): two processes may register one key at once.
        conn.execute(
            sa.text("INSERT INTO writers (id, key_sha256, created_at) VALUES (:id, :sha, :now) ON CONFLICT DO NOTHING"),
            {"id": wid, "sha": digest, "now": _now()},
        )
        known = conn.execute(sa.select(writers.c.key_sha256).where(writers.c.id == wid)).scalar()
    if known != digest:
        raise InvalidInput("This writer key cannot be used; ask the site for a new one.")
    return wid


def _admit(conn: sa.Connection, story_id: int, author: str, key: str | None) -> str | None:
    """Check a keyed writer may write to this story under `author`, binding the name on first use.

    Returns the writer's public id (None without a key: the old name-only behaviour). The
    story's row must already be locked.
    """
    if key is None:
        return None
    wid = _register(conn, key)
    blocked = conn.execute(
        sa.select(blocked_writers.c.writer_id).where(
            blocked_writers.c.story_id == story_id, blocked_writers.c.writer_id == wid
        )
    ).first()
    if blocked is not None:
        raise NotAllowed("The story's creator has blocked you from writing in this story.")
    owner = conn.execute(
        sa.select(story_names.c.writer_id).where(story_names.c.story_id == story_id, story_names.c.name == author)
    ).scalar()
    if owner is None:
        conn.execute(story_names.insert().values(story_id=story_id, name=author, writer_id=wid, bound_at=_now()))
    elif owner != wid:
        raise NameTaken(f"Another writer already writes as {author} in this story; choose another name.", author)
    return wid


def _wrote(paragraph: Paragraph, author: str, writer_id: str | None) -> bool:
    """Whether this caller wrote (or accepted) the paragraph: by key when it was written with one."""
    if paragraph.writer_id is not None:
        return writer_id == paragraph.writer_id
    return paragraph.author == author


def _check_creator(story, writer_id: str, what: str) -> None:
    if story["creator_id"] is None or story["creator_id"] != writer_id:
        raise NotAllowed(f"Only the story's creator can {what}.")


def _check_turn(head: Paragraph | None, kind: str) -> None:
    if head is None and kind == "ai":
        raise TurnError("A person writes the first paragraph; the model takes the next turn.")
    if head is not None and head.kind == kind:
        if kind == "human":
            raise TurnError("It is the model's turn: ask it for the next paragraph.")
        raise TurnError("It is a person's turn: write the next paragraph yourself.")


def _append(
    conn: sa.Connection,
    story_id: int,
    text: str,
    author: str,
    kind: str,
    expected_head: int | None,
    edited: bool,
    meta_json: str,
    *,
    locked: bool = False,
    writer_id: str | None = None,
    client_id: str | None = None,
) -> Paragraph:
    story = _fetch_story(conn, story_id, lock=not locked)
    head = _head(conn, story_id)
    if expected_head is not None and (head.id if head else 0) != expected_head:
        raise StaleHeadError(_STALE_MESSAGE, head)
    if story["turn_rule"] == "alternate":
        _check_turn(head, kind)
    # Non-deleted seqs are always 1..n (only the last paragraph can be undone), so this is n + 1.
    last = _last_live(conn, story_id)
    seq = last.seq + 1 if last else 1
    now = _now()
    paragraph_id = conn.execute(
        _INSERT_PARAGRAPH,
        {"story_id": story_id, "seq": seq, "author": author, "kind": kind, "text": text, "created_at": now,
         "edited": int(edited), "meta": meta_json, "deleted": 0, "writer_id": writer_id, "client_id": client_id,
         "hidden": 0},
    ).scalar_one()
    conn.execute(_APPENDED, {"sid": story_id, "now": now})
    _bump(conn, story_id)
    return Paragraph(
        id=paragraph_id, story_id=story_id, seq=seq, author=author, kind=kind, text=text, created_at=now,
        edited=edited, meta=json.loads(meta_json), deleted=False, writer_id=writer_id,
    )


def _story(row) -> Story:
    forked = None
    if row["forked_from_story"] is not None:
        forked = (row["forked_from_story"], row["forked_from_paragraph"])
    return Story(
        id=row["id"], title=row["title"], created_by=row["created_by"], created_at=row["created_at"],
        turn_rule=row["turn_rule"], settings=json.loads(row["settings"]), forked_from=forked,
        paragraph_count=row["paragraph_count"], last_activity=row["last_activity"], version=row["version"],
        creator_id=row["creator_id"],
    )


def _paragraph(row) -> Paragraph:
    return Paragraph(
        id=row["id"], story_id=row["story_id"], seq=row["seq"], author=row["author"], kind=row["kind"],
        text=row["text"], created_at=row["created_at"], edited=bool(row["edited"]), meta=json.loads(row["meta"]),
        deleted=bool(row["deleted"]), writer_id=row["writer_id"], hidden=bool(row["hidden"]),
    )


def _replace(p: Paragraph, **changes: Any) -> Paragraph:
    return Paragraph(**{**asdict(p), **changes})


def _candidate(row) -> Candidate:
    return Candidate(
        id=row["id"], story_id=row["story_id"], author=row["author"], text=row["text"],
        meta=json.loads(row["meta"]), created_at=row["created_at"], used=bool(row["used"]),
        turn_id=row["turn_id"], status=row["status"], writer_id=row["writer_id"],
    )


def _candidate_key(candidate_id: Any) -> str:
    if not isinstance(candidate_id, str) or not candidate_id:
        raise NotFound(_CANDIDATE_MISSING)
    return candidate_id


_SQLITE_UNAVAILABLE = {
    getattr(sqlite3, name) for name in ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
}


def _db_error(exc: sa_exc.DBAPIError) -> StoryError:
    """The StoryError a database failure means for a person."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        primary = code & 0xFF
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreBusy("The story store is busy with other writers; please try again in a moment.")
        if primary in _SQLITE_UNAVAILABLE:
            return StoreUnavailable(_unavailable_message(primary, orig))
        return StoryError(f"The story store failed: {orig}")
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate in ("55P03", "40P01", "40001"):  # lock not available, deadlock, serialization failure
        return StoreBusy("The story store is busy with other writers; please try again in a moment.")
    if sqlstate.startswith("08") or sqlstate in ("53100", "25006") or isinstance(exc, sa_exc.OperationalError):
        return StoreUnavailable(
            "The story database cannot be reached or written now, so nothing was saved; check that the"
            f" PostgreSQL server is running and the URL is right. ({str(orig).strip()})"
        )
    return StoryError(f"The story store failed: {orig}")


def _unavailable_message(code: int, orig: Exception) -> str:
    if code == sqlite3.SQLITE_READONLY:
        return ("The story database is read-only now, so nothing can be saved; ask the operator to make the"
                " database file and its folder writable.")
    if code == sqlite3.SQLITE_FULL:
        return "The disk holding the story database is full, so nothing was saved; ask the operator to free space."
    if code == sqlite3.SQLITE_CANTOPEN:
        return ("The story database file cannot be opened; check that the path exists and that its folder is"
                " writable.")
    return f"The story database could not be read or written (a disk error), so nothing was saved. ({orig})"


# --- export formats -----------------------------------------------------------------------------


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


def _export_md(story: Story, paragraphs: list[Paragraph]) -> str:
    writers = list(dict.fromkeys([story.created_by, *(p.author for p in paragraphs)]))
    models = list(dict.fromkeys(str(p.meta["model"]) for p in paragraphs if p.kind == "ai" and p.meta.get("model")))
    lines = [f"# {_md_escape(story.title)}", "", f"*Writers: {', '.join(_md_escape(w) for w in writers)}*"]
    if models:
        lines.append(f"*AI: {', '.join(_md_escape(m) for m in models)}*")
    if story.forked_from:
        lines.append(f"*Forked from story {story.forked_from[0]} at paragraph id {story.forked_from[1]}*")
    lines += ["", "---", ""]
    for p in paragraphs:
        mark = ""
        if p.kind == "ai":
            mark = " · AI, edited" if p.edited else " · AI"
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
        },
        "paragraphs": [
            {**{k: v for k, v in p.to_dict().items() if k != "story_id"}, "versions": history.get(p.id, [])}
            for p in paragraphs
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)


def _parse_export(data: Any) -> tuple[tuple, list[tuple]]:
    """Validate a JSON export completely and return the rows to insert (without story ids)."""
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
    story, paragraphs = data.get("story"), data.get("paragraphs")
    if not isinstance(story, dict):
        raise InvalidInput("The export has no \"story\" object.")
    if not isinstance(paragraphs, list):
        raise InvalidInput("The export has no \"paragraphs\" list.")

    forked = story.get("forked_from")
    if forked is not None:
        if not (isinstance(forked, list) and len(forked) == 2 and all(_is_int(x) for x in forked)):
            raise InvalidInput("\"forked_from\" must be null or [story id, paragraph id].")
        forked = tuple(forked)
    story_row = (
        validate_title(_field(story, "title")),
        validate_author(_field(story, "created_by")),
        _validate_timestamp(_field(story, "created_at"), "The story's created_at"),
        _validate_turn_rule(_field(story, "turn_rule")),
        _dump_json_object(story.get("settings", {}), "Settings"),
        forked[0] if forked else None,
        forked[1] if forked else None,
    )

    rows, live_seqs, visible = [], [], 0
    for i, p in enumerate(paragraphs, start=1):
        where = f"Paragraph {i} of the export"
        if not isinstance(p, dict):
            raise InvalidInput(f"{where} is not an object.")
        try:
            seq, deleted, edited = _field(p, "seq"), p.get("deleted", False), p.get("edited", False)
            hidden, writer = p.get("hidden", False), p.get("writer_id")
            if not _is_int(seq) or seq < 1:
                raise InvalidInput("its seq must be a positive whole number.")
            if not all(isinstance(flag, bool) for flag in (deleted, edited, hidden)):
                raise InvalidInput("\"deleted\", \"edited\" and \"hidden\" must be true or false.")
            if writer is not None:
                validate_writer_id(writer)
            versions = _parse_versions(p.get("versions", []))
            row = (
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
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        if not deleted:
            live_seqs.append(seq)
            visible += not hidden
        rows.append(row)
    if sorted(live_seqs) != list(range(1, len(live_seqs) + 1)):
        raise InvalidInput("The export's paragraphs are not numbered 1, 2, 3… without gaps or repeats.")
    return (*story_row, visible), rows


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

