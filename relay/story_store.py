"""The shared story store: one SQLite timeline per story that many writers append to at once.

Every browser session, thread and worker process of Relay shares one database file. Writes run
in `BEGIN IMMEDIATE` transactions, so "check the head and the turn rule, then append" is one
atomic step even across processes; WAL with `synchronous=FULL` means a write that returned is on
disk and survives the server being killed. Each story carries a `version` counter bumped in the
same transaction as every write to it, so a browser can poll `version()` (one primary-key
lookup) and re-read the timeline only when something changed.

The schema is created and evolved by the numbered migrations at the bottom of this module,
recorded in the `_migrations` table and run when a `StoryStore` opens. See docs/store.md.
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
import hashlib
import secrets
import socket
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

MAX_TEXT_CHARS = 4000  # one paragraph, in code points
MAX_AUTHOR_CHARS = 40
MAX_TITLE_CHARS = 100
MAX_JSON_CHARS = 20_000  # settings or meta, serialized
TURN_RULES = ("alternate", "free")
KINDS = ("human", "ai")
EXPORT_FORMATS = ("txt", "md", "json")
EXPORT_FORMAT_NAME = "relay-story"
EXPORT_FORMAT_VERSION = 1
DEFAULT_DB = Path("relay-data") / "relay.db"
BUSY_TIMEOUT_MS = 10_000
CANDIDATE_MAX_AGE_S = 24 * 3600.0
CHANGE_POLL_S = 0.25  # how often wait_for_change() looks at the change token on SQLite
TURN_STATUSES = ("writing", "pending")
MAX_DRAFT_CHARS = MAX_TEXT_CHARS * 4  # the model's text so far may run past one paragraph's limit
_WRITER_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")

# Control characters (C0, DEL, C1) and surrogate code points; paragraph text may keep \t and \n.
_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Names and titles are one line: no control characters at all, no line/paragraph separators, and
# no bidi overrides or isolates, which could make one writer's name impersonate another's.
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class StoryError(Exception):
    """Base of every error the story store raises; its message is fit to show a person."""


class InvalidInput(StoryError):
    """Text, a name, a title, a kind, a turn rule or another argument is not acceptable."""


class NotFound(StoryError):
    """No story, paragraph or candidate has that id (or there is nothing to act on)."""


class StaleHeadError(StoryError):
    """The story moved on since the writer last looked; `.head` is the current last paragraph."""

    def __init__(self, message: str, head: Paragraph | None = None):
        super().__init__(message)
        self.head = head

    def __reduce__(self):
        return (type(self), (str(self), self.head))


class TurnError(StoryError):
    """The story's turn rule does not allow this kind of paragraph now."""


class NotAllowed(StoryError):
    """This person may not do that, e.g. undo someone else's paragraph or reuse a candidate."""


class TurnBusy(StoryError):
    """Someone else holds the story's model turn; `.holder` names them.

    `.status` is "writing" (the model is writing for them) or "pending" (their suggestion waits
    to be accepted); `.expires_at` is when the turn is handed back if they stay idle (Unix time).
    """

    def __init__(self, message: str, holder: str = "", status: str = "writing", expires_at: float = 0.0):
        super().__init__(message)
        self.holder = holder
        self.status = status
        self.expires_at = expires_at

    def __reduce__(self):
        return (type(self), (str(self), self.holder, self.status, self.expires_at))


class TurnLost(StoryError):
    """The writer was idle past the turn's timeout and another writer took the model's turn since.

    `.holder` names the writer who has (or had) the turn now.
    """

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder

    def __reduce__(self):
        return (type(self), (str(self), self.holder))


class StoreBusy(StoryError):
    """The database stayed locked by other writers past the busy timeout; nothing was written."""


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


# --- validation -------------------------------------------------------------------------------


def validate_text(text: Any) -> str:
    """Return paragraph text unchanged if it may be stored; raise InvalidInput otherwise."""
    if not isinstance(text, str):
        raise InvalidInput("Paragraph text must be a string.")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"The paragraph is too long: {len(text):,} characters (the limit is {MAX_TEXT_CHARS:,})."
        )
    bad = _TEXT_FORBIDDEN.search(text)
    if bad:
        raise InvalidInput(_bad_char_message("The text", bad.group()))
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        raise InvalidInput("The paragraph is empty: write some text first.")
    return text


def validate_author(name: Any) -> str:
    """Return a writer's display name with surrounding whitespace stripped, or raise InvalidInput."""
    return _validate_line(name, "The name", MAX_AUTHOR_CHARS)


def validate_title(title: Any) -> str:
    """Return a story title with surrounding whitespace stripped, or raise InvalidInput."""
    return _validate_line(title, "The title", MAX_TITLE_CHARS)


def _validate_line(value: Any, what: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string.")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is empty.")
    if len(value) > max_chars:
        raise InvalidInput(f"{what} is too long: {len(value)} characters (the limit is {max_chars}).")
    bad = _NAME_FORBIDDEN.search(value)
    if bad:
        raise InvalidInput(_bad_char_message(what, bad.group()))
    return value


def _bad_char_message(what: str, ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    if "\ud800" <= ch <= "\udfff":
        return f"{what} contains a broken character ({code}, a lone surrogate)."
    if ch in "\n\t\u2028\u2029":
        return f"{what} must be a single line."
    if ch == "\x00":
        return f"{what} contains a NUL byte."
    if unicodedata.category(ch) == "Cf":
        return f"{what} contains a text-direction control character ({code})."
    return f"{what} contains a control character ({code}); only line breaks and tabs are allowed in text."


def _validate_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"Unknown paragraph kind {kind!r}: use one of {', '.join(KINDS)}.")
    return kind


def _validate_turn_rule(rule: Any) -> str:
    if rule not in TURN_RULES:
        raise InvalidInput(f"Unknown turn rule {rule!r}: use one of {', '.join(TURN_RULES)}.")
    return rule


def _validate_id(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a whole number.")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidInput(f"{what} must be a whole number, not {type(value).__name__}.") from None


def _validate_expected_head(value: Any) -> int | None:
    if value is None:
        return None
    head = _validate_id(value, "expected_head")
    if head < 0:
        raise InvalidInput("expected_head must be 0 (empty story) or a paragraph id.")
    return head


def _dump_json_object(value: Any, what: str) -> str:
    """Serialize a settings/meta dict for storage, refusing what would not load back the same."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a dict (a JSON object).")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be plain JSON data: {exc}.") from None
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} contains a broken character (a lone surrogate).") from None
    if len(text) > MAX_JSON_CHARS:
        raise InvalidInput(f"{what} is too large: {len(text):,} characters as JSON (the limit is {MAX_JSON_CHARS:,}).")
    return text


def _validate_timestamp(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be an ISO-8601 date-time string.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} is not an ISO-8601 date-time: {value[:40]!r}.") from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"{what} must carry a time zone (UTC): {value[:40]!r}.")
    return value


def _validate_ttl(ttl: Any, what: str = "ttl") -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise InvalidInput(f"{what} must be a positive number of seconds.")
    return float(ttl)


def _validate_draft(text: Any) -> str:
    """The model's text so far: may be empty, otherwise like paragraph text."""
    if not isinstance(text, str):
        raise InvalidInput("The draft must be a string.")
    if len(text) > MAX_DRAFT_CHARS:
        raise InvalidInput(f"The draft is too long: {len(text):,} characters (the limit is {MAX_DRAFT_CHARS:,}).")
    bad = _TEXT_FORBIDDEN.search(text)
    if bad:
        raise InvalidInput(_bad_char_message("The draft", bad.group()))
    return text


def writer_id_of(key: Any) -> str:
    """The public id of a writer key: the first 16 hex digits of its SHA-256."""
    if not isinstance(key, str) or not _WRITER_KEY.fullmatch(key):
        raise InvalidInput("The writer key is malformed: ask the site for a new one.")
    return hashlib.sha256(key.encode("ascii")).hexdigest()[:16]


def _optional_writer_id(key: Any) -> str | None:
    return None if key is None else writer_id_of(key)


def _validate_process(process: Any) -> str:
    if process is None:
        return current_process_name()
    if not isinstance(process, str) or not re.fullmatch(r"[^:\s]{1,255}:[0-9]{1,10}", process):
        raise InvalidInput("process must be \"host:pid\", e.g. \"web1:4242\".")
    return process


def current_process_name() -> str:
    """This process as a lease records it: "host:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --- the store --------------------------------------------------------------------------------


def default_db_path() -> Path:
    """The database file used when no path is given: $RELAY_DB, else ./relay-data/relay.db."""
    env = os.environ.get("RELAY_DB", "").strip()
    return Path(env) if env else DEFAULT_DB


class StoryStore:
    """All stories and their timelines in one SQLite file, safe to share across threads and processes.

    Each thread gets its own connection (SQLite connections must not be used by two threads at
    once); processes coordinate through SQLite's file locks.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        """Open (creating if needed) the database at `path`, $RELAY_DB or ./relay-data/relay.db."""
        self.path = Path(path) if path is not None else default_db_path()
        if str(self.path) == ":memory:" or str(self.path).startswith("file:"):
            raise InvalidInput("The story store needs a database file path (each thread opens its own connection).")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        migrate(self._conn())

    # connections and transactions

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoryError(f"Could not switch {self.path} to WAL journaling (got {mode!r}).")
            # FULL: a commit that returned survives power loss, not only a killed process.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            conn.close()
            raise _db_error(exc) from exc
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        # A connection inherited through fork() must not be used in the child: open a fresh one.
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn, local.pid = conn, os.getpid()
            with self._lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        other.close()
                alive.append((threading.current_thread(), conn))
                self._conns = alive
        return conn

    def close(self) -> None:
        """Close every connection this object opened; call it when no thread is using the store."""
        with self._lock:
            for _, conn in self._conns:
                conn.close()
            self._conns = []
            self._local = threading.local()

    def __enter__(self) -> StoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds SQLite's write lock from its first statement."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _db_error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _db_error(exc) from exc
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs that see one consistent snapshot."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # stories

    def create_story(self, title: str, author: str, turn_rule: str = "alternate", settings: dict | None = None) -> Story:
        """Start a new, empty story and return it."""
        title = validate_title(title)
        author = validate_author(author)
        _validate_turn_rule(turn_rule)
        settings_json = _dump_json_object(settings, "Settings")
        now = _now()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO stories (title, created_by, created_at, turn_rule, settings, last_activity)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (title, author, now, turn_rule, settings_json, now),
            )
            _bump(conn, cur.lastrowid)
            return _story(_fetch_story(conn, cur.lastrowid))

    def list_stories(self) -> list[Story]:
        """Every story, most recently active first, with its paragraph count and last activity."""
        rows = self._conn().execute(f"SELECT {_STORY_COLUMNS} FROM stories ORDER BY last_activity DESC, id DESC")
        return [_story(row) for row in rows]

    def get_story(self, story_id: int) -> Story:
        """The story with this id; NotFound if there is none."""
        return _story(_fetch_story(self._conn(), _validate_id(story_id, "story_id")))

    def version(self, story_id: int) -> int:
        """A number that changes with every write to the story; cheap enough to poll every second."""
        story_id = _validate_id(story_id, "story_id")
        row = self._conn().execute("SELECT version FROM stories WHERE id = ?", (story_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no story number {story_id}.")
        return row[0]

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
    ) -> Paragraph:
        """Append a paragraph at the end of the story and return it as stored.

        `expected_head` is the id of the last paragraph the writer saw (0 for an empty story): if
        the story has moved on, StaleHeadError carries the current head and nothing is written.
        The check, the turn rule and the append are one atomic step, also across processes.
        """
        story_id = _validate_id(story_id, "story_id")
        text = validate_text(text)
        author = validate_author(author)
        _validate_kind(kind)
        expected_head = _validate_expected_head(expected_head)
        meta_json = _dump_json_object(meta, "Meta")
        with self._write() as conn:
            return _append(conn, story_id, text, author, kind, expected_head, bool(edited), meta_json)

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
                f"SELECT {_PARAGRAPH_COLUMNS} FROM paragraphs WHERE story_id = ? AND deleted = 0 ORDER BY seq",
                (story_id,),
            )
            return [_paragraph(row) for row in rows]

    def undo_last(self, story_id: int, author: str, expected_head: int | None = None) -> Paragraph:
        """Mark the story's last paragraph deleted if `author` wrote or accepted it; return it.

        With `expected_head`, the undo only happens if that paragraph is still the last one.
        """
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        expected_head = _validate_expected_head(expected_head)
        with self._write() as conn:
            _fetch_story(conn, story_id)
            head = _head(conn, story_id)
            if expected_head is not None and (head.id if head else 0) != expected_head:
                raise StaleHeadError(_STALE_MESSAGE, head)
            if head is None:
                raise NotFound("There is nothing to undo: the story has no paragraphs.")
            if head.author != author:
                raise NotAllowed(
                    f"Only {head.author} can undo the last paragraph: they wrote or accepted it."
                )
            conn.execute("UPDATE paragraphs SET deleted = 1 WHERE id = ?", (head.id,))
            conn.execute(
                "UPDATE stories SET version = version + 1, paragraph_count = paragraph_count - 1,"
                " last_activity = ? WHERE id = ?",
                (_now(), story_id),
            )
            _bump(conn, story_id)
            return _replace(head, deleted=True)

    def fork(self, story_id: int, at_paragraph_id: int, title: str, author: str) -> Story:
        """A new story whose timeline copies this one up to and including `at_paragraph_id`."""
        story_id = _validate_id(story_id, "story_id")
        at_paragraph_id = _validate_id(at_paragraph_id, "at_paragraph_id")
        title = validate_title(title)
        author = validate_author(author)
        now = _now()
        with self._write() as conn:
            source = _fetch_story(conn, story_id)
            at = conn.execute(
                "SELECT seq, deleted FROM paragraphs WHERE id = ? AND story_id = ?", (at_paragraph_id, story_id)
            ).fetchone()
            if at is None:
                raise NotFound(f"Story {story_id} has no paragraph number {at_paragraph_id}.")
            if at["deleted"]:
                raise NotFound(f"Paragraph {at_paragraph_id} was undone; fork from a paragraph still in the story.")
            new_id = conn.execute(
                "INSERT INTO stories (title, created_by, created_at, turn_rule, settings, forked_from_story,"
                " forked_from_paragraph, paragraph_count, last_activity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, author, now, source["turn_rule"], source["settings"], story_id, at_paragraph_id, at["seq"], now),
            ).lastrowid
            conn.execute(
                "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, edited, meta, deleted)"
                " SELECT ?, seq, author, kind, text, created_at, edited, meta, 0 FROM paragraphs"
                " WHERE story_id = ? AND deleted = 0 AND seq <= ? ORDER BY seq",
                (new_id, story_id, at["seq"]),
            )
            _bump(conn, new_id)
            return _story(_fetch_story(conn, new_id))

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
            now = time.time()
            turn = _current_turn(conn, story_id)
            if turn is not None and _same_holder(turn, author, wid):
                conn.execute(
                    "UPDATE ai_turns SET status = 'writing', draft = '', expires_at = ?, process = ? WHERE n = ?",
                    (now + ttl, process, turn["n"]),
                )
                turn_id = turn["id"]
            else:
                if turn is not None:
                    if turn["expires_at"] > now:
                        raise _turn_busy(turn)
                    conn.execute("UPDATE ai_turns SET status = 'lost', lost_to = ? WHERE n = ?", (author, turn["n"]))
                turn_id = secrets.token_urlsafe(12)
                conn.execute(
                    "INSERT INTO ai_turns (id, story_id, holder, holder_id, status, draft, expires_at, process,"
                    " claimed_at) VALUES (?, ?, ?, ?, 'writing', '', ?, ?, ?)",
                    (turn_id, story_id, author, wid, now + ttl, process, now),
                )
                conn.execute("UPDATE stories SET ai_turn_id = ? WHERE id = ?", (turn_id, story_id))
            conn.execute("UPDATE stories SET version = version + 1 WHERE id = ?", (story_id,))
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
            turn = _held_turn(conn, story_id, author, wid)
            expires = turn["expires_at"] if ttl is None else time.time() + ttl
            conn.execute(
                "UPDATE ai_turns SET draft = ?, status = 'writing', expires_at = ? WHERE n = ?",
                (text, expires, turn["n"]),
            )
            _bump(conn, story_id)

    def touch_ai_turn(self, story_id: int, author: str, ttl: float, *, writer_key: str | None = None) -> None:
        """Refresh the idle timer of `author`'s turn (e.g. while they edit its suggestion)."""
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        ttl = _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            turn = _held_turn(conn, story_id, author, wid)
            conn.execute("UPDATE ai_turns SET expires_at = ? WHERE n = ?", (time.time() + ttl, turn["n"]))
            _bump(conn, story_id)

    def release_ai_turn(self, story_id: int, author: str, *, writer_key: str | None = None) -> None:
        """Give back the model turn (nothing to keep); does nothing if `author` does not hold it."""
        story_id = _validate_id(story_id, "story_id")
        author = validate_author(author)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
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
            turn = _current_turn(conn, story_id)
            if turn is None:
                _fetch_story(conn, story_id)
                raise NotFound("There is no model turn to discard in this story.")
            if not _same_holder(turn, author, wid) and turn["expires_at"] > time.time():
                raise NotAllowed(
                    f"Only {turn['holder']} can discard these suggestions until their turn times out."
                )
            count = conn.execute(
                "UPDATE candidates SET status = 'discarded' WHERE turn_id = ? AND status = 'open'", (turn["id"],)
            ).rowcount
            _end_turn(conn, story_id, turn, "discarded")
            return count

    def ai_turn(self, story_id: int) -> AITurnState | None:
        """The story's live model turn, or None when nobody holds it (or it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            turn = _current_turn(conn, story_id)
            if turn is None or turn["expires_at"] <= time.time():
                return None
            rows = conn.execute(
                f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE turn_id = ? AND status != 'discarded'"
                " ORDER BY created_unix, rowid",
                (turn["id"],),
            )
            return AITurnState(
                story_id=story_id, holder=turn["holder"], holder_id=turn["holder_id"], status=turn["status"],
                draft=turn["draft"], candidates=[_candidate(r) for r in rows], expires_at=turn["expires_at"],
                process=turn["process"], turn_id=turn["id"],
            )

    def ai_turn_holder(self, story_id: int) -> str | None:
        """Whom the model's turn belongs to now (writing or pending), or None (also when it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            turn = _current_turn(conn, story_id)
        if turn is None or turn["expires_at"] <= time.time():
            return None
        return turn["holder"]

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
                "SELECT t.* FROM ai_turns t JOIN stories s ON s.ai_turn_id = t.id"
                " WHERE t.status = 'writing' AND t.process LIKE ? ESCAPE '\\'",
                (_like_escape(host) + ":%",),
            ).fetchall()
            for turn in rows:
                pid = turn["process"].rpartition(":")[2]
                if pid.isdigit() and _pid_alive(int(pid)):
                    continue
                has_candidates = conn.execute(
                    "SELECT 1 FROM candidates WHERE turn_id = ? AND status = 'open' LIMIT 1", (turn["id"],)
                ).fetchone()
                if has_candidates:
                    conn.execute("UPDATE ai_turns SET status = 'pending', draft = '' WHERE n = ?", (turn["n"],))
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
            _fetch_story(conn, story_id)
            conn.execute("DELETE FROM candidates WHERE created_unix < ?", (now - CANDIDATE_MAX_AGE_S,))
            turn = _current_turn(conn, story_id)
            turn_id = None
            if turn is not None and _same_holder(turn, author, wid):
                turn_id = turn["id"]
                expires = turn["expires_at"] if idle_ttl is None else now + idle_ttl
                conn.execute(
                    "UPDATE ai_turns SET status = 'pending', draft = '', expires_at = ? WHERE n = ?",
                    (expires, turn["n"]),
                )
            conn.execute(
                "INSERT INTO candidates (id, story_id, author, text, meta, created_at, created_unix, used, turn_id,"
                " status, writer_id) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'open', ?)",
                (candidate_id, story_id, author, text, meta_json, _now(), now, turn_id, wid),
            )
            _bump(conn, story_id)
        return candidate_id

    def get_candidate(self, candidate_id: str) -> Candidate:
        """The candidate with this id; NotFound if it never existed or was pruned."""
        row = self._conn().execute(
            f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE id = ?", (_candidate_key(candidate_id),)
        ).fetchone()
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
            row = conn.execute(
                f"SELECT {_CANDIDATE_COLUMNS}, created_unix FROM candidates WHERE id = ?", (key,)
            ).fetchone()
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
                turn = conn.execute("SELECT * FROM ai_turns WHERE id = ?", (candidate.turn_id,)).fetchone()
            if turn is not None:
                later = conn.execute(
                    "SELECT holder, holder_id FROM ai_turns WHERE story_id = ? AND n > ? ORDER BY n",
                    (turn["story_id"], turn["n"]),
                ).fetchall()
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
                    raise NotAllowed(
                        f"Only {turn['holder']} can accept this suggestion until their turn times out."
                    )
            edited = text is not None and text != candidate.text
            meta = dict(candidate.meta, candidate_id=candidate.id)
            if edited:
                meta["original_text"] = candidate.text
            paragraph = _append(
                conn,
                candidate.story_id,
                text if edited else candidate.text,
                author,
                "ai",
                expected_head,
                edited,
                json.dumps(meta, ensure_ascii=False),
            )
            conn.execute("UPDATE candidates SET used = 1, status = 'accepted' WHERE id = ?", (key,))
            if turn is not None:
                conn.execute(
                    "UPDATE candidates SET status = 'not_chosen' WHERE turn_id = ? AND status = 'open'", (turn["id"],)
                )
                if turn["status"] in TURN_STATUSES:
                    _end_turn(conn, candidate.story_id, turn, "accepted")
            return paragraph

    # the change feed

    def change_token(self) -> int:
        """A number that grows with every committed change to any story; one single-row read."""
        row = self._conn().execute("SELECT value FROM change_counter WHERE id = 1").fetchone()
        return row[0]

    def changed_stories(self, since: int) -> tuple[int, list[int]]:
        """(current change token, ids of the stories changed after token `since`)."""
        since = _validate_id(since, "since")
        with self._read() as conn:
            token = conn.execute("SELECT value FROM change_counter WHERE id = 1").fetchone()[0]
            ids = [r[0] for r in conn.execute("SELECT id FROM stories WHERE change_seq > ? ORDER BY id", (since,))]
        return token, ids

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block up to `timeout` seconds until the change token passes `since`; return the token."""
        since = _validate_id(since, "since")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise InvalidInput("timeout must be a number of seconds (0 or more).")
        deadline = time.monotonic() + min(float(timeout), 3600.0)
        while True:
            token = self.change_token()
            left = deadline - time.monotonic()
            if token > since or left <= 0:
                return token
            time.sleep(min(CHANGE_POLL_S, left))

    # export and import

    def export(self, story_id: int, fmt: str) -> str:
        """The story as "txt" (plain novel), "md" (with writers and AI marks) or "json" (everything)."""
        story_id = _validate_id(story_id, "story_id")
        if fmt not in EXPORT_FORMATS:
            raise InvalidInput(f"Unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}.")
        with self._read() as conn:
            story = _story(_fetch_story(conn, story_id))
            rows = conn.execute(
                f"SELECT {_PARAGRAPH_COLUMNS} FROM paragraphs WHERE story_id = ? ORDER BY seq, id", (story_id,)
            )
            paragraphs = [_paragraph(row) for row in rows]
        if fmt == "json":
            return _export_json(story, paragraphs)
        live = [p for p in paragraphs if not p.deleted]
        return _export_md(story, live) if fmt == "md" else _export_txt(story, live)

    def import_json(self, data: str | bytes | dict) -> Story:
        """Restore a JSON export as a new story (new ids, everything else exactly as exported).

        Malformed input raises InvalidInput and writes nothing.
        """
        story_row, paragraph_rows = _parse_export(data)
        now = _now()
        with self._write() as conn:
            new_id = conn.execute(
                "INSERT INTO stories (title, created_by, created_at, turn_rule, settings, forked_from_story,"
                " forked_from_paragraph, paragraph_count, last_activity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*story_row, now),
            ).lastrowid
            conn.executemany(
                "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, edited, meta, deleted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(new_id, *row) for row in paragraph_rows],
            )
            _bump(conn, new_id)
            return _story(_fetch_story(conn, new_id))


# --- helpers that run inside a transaction ------------------------------------------------------

_STORY_COLUMNS = (
    "id, title, created_by, created_at, turn_rule, settings, forked_from_story, forked_from_paragraph,"
    " paragraph_count, last_activity, version"
)
_PARAGRAPH_COLUMNS = "id, story_id, seq, author, kind, text, created_at, edited, meta, deleted"
_CANDIDATE_COLUMNS = "id, story_id, author, text, meta, created_at, used, turn_id, status"
_STALE_MESSAGE = "The story has moved on since you last looked: someone else added or undid a paragraph."
_CANDIDATE_MISSING = "This suggestion does not exist any more (it may have expired); ask the model again."


def _fetch_story(conn: sqlite3.Connection, story_id: int) -> sqlite3.Row:
    row = conn.execute(f"SELECT {_STORY_COLUMNS} FROM stories WHERE id = ?", (story_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no story number {story_id}.")
    return row


def _bump(conn: sqlite3.Connection, story_id: int) -> int:
    """Advance the global change token and stamp the story with it (inside the write transaction)."""
    token = conn.execute("UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value").fetchone()[0]
    conn.execute("UPDATE stories SET change_seq = ? WHERE id = ?", (token, story_id))
    return token


def _current_turn(conn: sqlite3.Connection, story_id: int) -> sqlite3.Row | None:
    """The story's open model turn (writing or pending), expired or not; NotFound for no story."""
    story = conn.execute("SELECT ai_turn_id FROM stories WHERE id = ?", (story_id,)).fetchone()
    if story is None:
        raise NotFound(f"There is no story number {story_id}.")
    if story["ai_turn_id"] is None:
        return None
    return conn.execute("SELECT * FROM ai_turns WHERE id = ?", (story["ai_turn_id"],)).fetchone()


def _same_holder(turn: sqlite3.Row, author: str, writer_id: str | None) -> bool:
    """A turn claimed with a writer key belongs to that key; one claimed by name, to that name."""
    if turn["holder_id"] is not None:
        return writer_id == turn["holder_id"]
    return writer_id is None and author == turn["holder"]


def _turn_busy(turn: sqlite3.Row) -> TurnBusy:
    holder = turn["holder"]
    if turn["status"] == "pending":
        message = (f"{holder}'s suggestion from the model is waiting to be accepted; the model's turn is theirs"
                   " until they decide or stay idle too long.")
    else:
        message = f"The model is already writing for {holder}; try again when it is done."
    return TurnBusy(message, holder, turn["status"], turn["expires_at"])


def _held_turn(conn: sqlite3.Connection, story_id: int, author: str, writer_id: str | None) -> sqlite3.Row:
    """The story's turn if `author` holds it (even expired, while nobody took it); else raise."""
    turn = _current_turn(conn, story_id)
    if turn is not None and _same_holder(turn, author, writer_id):
        return turn
    lost = conn.execute(
        "SELECT * FROM ai_turns WHERE story_id = ? AND status = 'lost' ORDER BY n DESC LIMIT 1", (story_id,)
    ).fetchone()
    if lost is not None and _same_holder(lost, author, writer_id):
        raise TurnLost(
            f"You were idle too long, so the model's turn went to {lost['lost_to']}.", lost["lost_to"] or ""
        )
    raise NotAllowed("You do not hold the model's turn in this story; ask the model first.")


def _end_turn(conn: sqlite3.Connection, story_id: int, turn: sqlite3.Row, status: str) -> None:
    conn.execute("UPDATE ai_turns SET status = ?, draft = '' WHERE n = ?", (status, turn["n"]))
    conn.execute("UPDATE stories SET ai_turn_id = NULL, version = version + 1 WHERE id = ?", (story_id,))
    _bump(conn, story_id)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _head(conn: sqlite3.Connection, story_id: int) -> Paragraph | None:
    row = conn.execute(
        f"SELECT {_PARAGRAPH_COLUMNS} FROM paragraphs WHERE story_id = ? AND deleted = 0 ORDER BY seq DESC LIMIT 1",
        (story_id,),
    ).fetchone()
    return _paragraph(row) if row else None


def _check_turn(head: Paragraph | None, kind: str) -> None:
    if head is None and kind == "ai":
        raise TurnError("A person writes the first paragraph; the model takes the next turn.")
    if head is not None and head.kind == kind:
        if kind == "human":
            raise TurnError("It is the model's turn: ask it for the next paragraph.")
        raise TurnError("It is a person's turn: write the next paragraph yourself.")


def _append(
    conn: sqlite3.Connection,
    story_id: int,
    text: str,
    author: str,
    kind: str,
    expected_head: int | None,
    edited: bool,
    meta_json: str,
) -> Paragraph:
    story = _fetch_story(conn, story_id)
    head = _head(conn, story_id)
    if expected_head is not None and (head.id if head else 0) != expected_head:
        raise StaleHeadError(_STALE_MESSAGE, head)
    if story["turn_rule"] == "alternate":
        _check_turn(head, kind)
    # Non-deleted seqs are always 1..n (only the last paragraph can be undone), so this is n + 1.
    seq = head.seq + 1 if head else 1
    now = _now()
    paragraph_id = conn.execute(
        "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, edited, meta, deleted)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (story_id, seq, author, kind, text, now, int(edited), meta_json),
    ).lastrowid
    conn.execute(
        "UPDATE stories SET version = version + 1, paragraph_count = paragraph_count + 1, last_activity = ?"
        " WHERE id = ?",
        (now, story_id),
    )
    _bump(conn, story_id)
    return Paragraph(
        id=paragraph_id, story_id=story_id, seq=seq, author=author, kind=kind, text=text, created_at=now,
        edited=edited, meta=json.loads(meta_json), deleted=False,
    )


def _story(row: sqlite3.Row) -> Story:
    forked = None
    if row["forked_from_story"] is not None:
        forked = (row["forked_from_story"], row["forked_from_paragraph"])
    return Story(
        id=row["id"], title=row["title"], created_by=row["created_by"], created_at=row["created_at"],
        turn_rule=row["turn_rule"], settings=json.loads(row["settings"]), forked_from=forked,
        paragraph_count=row["paragraph_count"], last_activity=row["last_activity"], version=row["version"],
    )


def _paragraph(row: sqlite3.Row) -> Paragraph:
    return Paragraph(
        id=row["id"], story_id=row["story_id"], seq=row["seq"], author=row["author"], kind=row["kind"],
        text=row["text"], created_at=row["created_at"], edited=bool(row["edited"]), meta=json.loads(row["meta"]),
        deleted=bool(row["deleted"]),
    )


def _replace(p: Paragraph, **changes: Any) -> Paragraph:
    return Paragraph(**{**asdict(p), **changes})


def _candidate(row: sqlite3.Row) -> Candidate:
    return Candidate(
        id=row["id"], story_id=row["story_id"], author=row["author"], text=row["text"],
        meta=json.loads(row["meta"]), created_at=row["created_at"], used=bool(row["used"]),
        turn_id=row["turn_id"], status=row["status"],
    )


def _candidate_key(candidate_id: Any) -> str:
    if not isinstance(candidate_id, str) or not candidate_id:
        raise NotFound(_CANDIDATE_MISSING)
    return candidate_id


def _db_error(exc: sqlite3.Error) -> StoryError:
    if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreBusy("The story store is busy with other writers; please try again in a moment.")
    return StoryError(f"The story store failed: {exc}")


# --- export formats -----------------------------------------------------------------------------


def _export_txt(story: Story, paragraphs: list[Paragraph]) -> str:
    return "\n\n".join([story.title, *(p.text for p in paragraphs)]) + "\n"


# Names and titles sit inside emphasis or a heading, where only these characters change the markup.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


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
        lines += [f"**{p.seq}. {_md_escape(p.author)}{mark}**", "", p.text, ""]
    return "\n".join(lines)


def _export_json(story: Story, paragraphs: list[Paragraph]) -> str:
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
            {k: v for k, v in p.to_dict().items() if k != "story_id"} for p in paragraphs
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
    if data.get("version") != EXPORT_FORMAT_VERSION:
        raise InvalidInput(f"Unsupported story export version {data.get('version')!r}; this Relay reads version 1.")
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

    rows, live_seqs = [], []
    for i, p in enumerate(paragraphs, start=1):
        where = f"Paragraph {i} of the export"
        if not isinstance(p, dict):
            raise InvalidInput(f"{where} is not an object.")
        try:
            seq, deleted, edited = _field(p, "seq"), p.get("deleted", False), p.get("edited", False)
            if not _is_int(seq) or seq < 1:
                raise InvalidInput("its seq must be a positive whole number.")
            if not isinstance(deleted, bool) or not isinstance(edited, bool):
                raise InvalidInput("\"deleted\" and \"edited\" must be true or false.")
            row = (
                seq,
                validate_author(_field(p, "author")),
                _validate_kind(_field(p, "kind")),
                validate_text(_field(p, "text")),
                _validate_timestamp(_field(p, "created_at"), "created_at"),
                int(edited),
                _dump_json_object(p.get("meta", {}), "Meta"),
                int(deleted),
            )
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        if not deleted:
            live_seqs.append(seq)
        rows.append(row)
    if sorted(live_seqs) != list(range(1, len(live_seqs) + 1)):
        raise InvalidInput("The export's paragraphs are not numbered 1, 2, 3… without gaps or repeats.")
    return (*story_row, len(live_seqs)), rows


def _field(obj: dict, name: str) -> Any:
    if name not in obj:
        raise InvalidInput(f"The field {name!r} is missing.")
    return obj[name]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- migrations ---------------------------------------------------------------------------------
# Each migration runs once per database, in order, inside the same transaction that records it in
# `_migrations`. Never edit a released migration: add the next number.


def m001_initial(conn: sqlite3.Connection) -> None:
    """Stories and their paragraphs."""
    conn.execute(
        """CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            turn_rule TEXT NOT NULL CHECK (turn_rule IN ('alternate', 'free')),
            settings TEXT NOT NULL DEFAULT '{}',
            -- Not foreign keys: an imported fork keeps ids from the database it came from.
            forked_from_story INTEGER,
            forked_from_paragraph INTEGER,
            paragraph_count INTEGER NOT NULL DEFAULT 0,
            last_activity TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute(
        """CREATE TABLE paragraphs (
            id INTEGER PRIMARY KEY,
            story_id INTEGER NOT NULL REFERENCES stories (id),
            seq INTEGER NOT NULL CHECK (seq >= 1),
            author TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('human', 'ai')),
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            edited INTEGER NOT NULL DEFAULT 0,
            meta TEXT NOT NULL DEFAULT '{}',
            deleted INTEGER NOT NULL DEFAULT 0
        )"""
    )
    # Undone paragraphs keep their seq, which the next paragraph then reuses: seq is unique
    # only among live paragraphs, and this index also serves head() and timeline().
    conn.execute("CREATE UNIQUE INDEX paragraphs_live_seq ON paragraphs (story_id, seq) WHERE deleted = 0")
    conn.execute("CREATE INDEX paragraphs_all_seq ON paragraphs (story_id, seq, id)")
    conn.execute("CREATE INDEX stories_by_activity ON stories (last_activity DESC, id DESC)")


def m002_ai_turns_and_candidates(conn: sqlite3.Connection) -> None:
    """The per-story AI-turn lease and server-generated candidate paragraphs."""
    conn.execute("ALTER TABLE stories ADD COLUMN ai_turn_holder TEXT")
    conn.execute("ALTER TABLE stories ADD COLUMN ai_turn_expires REAL")
    conn.execute(
        """CREATE TABLE candidates (
            id TEXT PRIMARY KEY,
            story_id INTEGER NOT NULL REFERENCES stories (id),
            author TEXT NOT NULL,
            text TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            created_unix REAL NOT NULL,
            used INTEGER NOT NULL DEFAULT 0
        )"""
    )
    conn.execute("CREATE INDEX candidates_by_age ON candidates (created_unix)")


def m003_live_turns_and_change_feed(conn: sqlite3.Connection) -> None:
    """The global change token, per-story change stamps, and model turns as records with a status."""
    conn.execute(
        "CREATE TABLE change_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO change_counter (id, value) VALUES (1, 0)")
    conn.execute("ALTER TABLE stories ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0")
    conn.execute("CREATE INDEX stories_by_change ON stories (change_seq)")
    conn.execute(
        """CREATE TABLE ai_turns (
            n INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            story_id INTEGER NOT NULL REFERENCES stories (id),
            holder TEXT NOT NULL,
            holder_id TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('writing', 'pending', 'accepted', 'discarded', 'released', 'lost')),
            draft TEXT NOT NULL DEFAULT '',
            expires_at REAL NOT NULL,
            process TEXT,
            claimed_at REAL NOT NULL,
            lost_to TEXT
        )"""
    )
    conn.execute("CREATE INDEX ai_turns_by_story ON ai_turns (story_id, n)")
    conn.execute("ALTER TABLE stories ADD COLUMN ai_turn_id TEXT")
    # A lease held when the database was upgraded becomes a turn record (no process known).
    for row in conn.execute(
        "SELECT id, ai_turn_holder, ai_turn_expires FROM stories WHERE ai_turn_holder IS NOT NULL"
    ).fetchall():
        turn_id = secrets.token_urlsafe(12)
        conn.execute(
            "INSERT INTO ai_turns (id, story_id, holder, status, expires_at, claimed_at)"
            " VALUES (?, ?, ?, 'writing', ?, ?)",
            (turn_id, row[0], row[1], row[2] or 0.0, time.time()),
        )
        conn.execute("UPDATE stories SET ai_turn_id = ? WHERE id = ?", (turn_id, row[0]))
    conn.execute("ALTER TABLE stories DROP COLUMN ai_turn_holder")
    conn.execute("ALTER TABLE stories DROP COLUMN ai_turn_expires")
    conn.execute("ALTER TABLE candidates ADD COLUMN turn_id TEXT")
    conn.execute(
        "ALTER TABLE candidates ADD COLUMN status TEXT NOT NULL DEFAULT 'open'"
        " CHECK (status IN ('open', 'accepted', 'not_chosen', 'discarded'))"
    )
    conn.execute("UPDATE candidates SET status = 'accepted' WHERE used = 1")
    conn.execute("ALTER TABLE candidates ADD COLUMN writer_id TEXT")
    conn.execute("CREATE INDEX candidates_by_turn ON candidates (turn_id)")


MIGRATIONS = (m001_initial, m002_ai_turns_and_candidates, m003_live_turns_and_change_feed)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks, each recorded in `_migrations`; return their names.

    Runs under the write lock, so processes opening a new database at once apply each migration once.
    """
    known = {m.__name__ for m in MIGRATIONS}
    applied: list[str] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
            unknown = sorted(done - known)
            if unknown:
                raise StoryError(
                    f"This database was written by a newer Relay (migrations {', '.join(unknown)}); update Relay."
                )
            for step in MIGRATIONS:
                if step.__name__ not in done:
                    step(conn)
                    conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (step.__name__, _now()))
                    applied.append(step.__name__)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise _db_error(exc) from exc
    return applied
