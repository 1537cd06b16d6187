"""The story store's errors: a small hierarchy whose messages are fit to show a person.

The UI translates by class, so there is one class per situation it must phrase differently, with
the attributes it needs (e.g. `TurnBusy.holder`). Re-exported by `relay.story_store`.
`db_error` says what a database failure means, as one of these.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

BUSY_MESSAGE = "The story store is busy with other writers; please try again in a moment."


class StoryError(Exception):
    """Base of every error the story store raises; its message is fit to show a person."""


class InvalidInput(StoryError):
    """Text, a name, a title, a kind, a turn rule or another argument is not acceptable."""


class NotFound(StoryError):
    """No story, paragraph or candidate has that id (or there is nothing to act on)."""


class StaleHeadError(StoryError):
    """The story moved on since the writer last looked; `.head` is the current last paragraph."""

    def __init__(self, message: str, head=None):
        super().__init__(message)
        self.head = head

    def __reduce__(self):
        return (type(self), (str(self), self.head))


class StoryFull(StoryError):
    """The story holds the most paragraphs a story may (MAX_PARAGRAPHS_PER_STORY); fork or continue it anew."""


class TurnError(StoryError):
    """The story's turn rule does not allow this kind of paragraph now."""


class NotAllowed(StoryError):
    """This person may not do that, e.g. undo someone else's paragraph or reuse a candidate."""


class UnknownWriterKey(InvalidInput):
    """A well-formed writer key that this site never issued (made up, or from another site)."""


class NameTaken(NotAllowed):
    """Another writer (another key) already writes under this name in this story; `.name` is it."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name

    def __reduce__(self):
        return (type(self), (str(self), self.name))


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


class SteeringLimit(InvalidInput):
    """A memory, note or story card over its size limit; `.what` names it ("memory", "note", "card_text",
    "card_name", "keys", "key", "cards"), `.limit` the most allowed and `.got` what was sent."""

    def __init__(self, message: str, what: str = "", limit: int = 0, got: int = 0):
        super().__init__(message)
        self.what, self.limit, self.got = what, limit, got

    def __reduce__(self):
        return (type(self), (str(self), self.what, self.limit, self.got))


class SteeringChanged(StoryError):
    """Someone changed the memory, note or card since this writer loaded it; `.version` is its version now."""

    def __init__(self, message: str, version: int = 0):
        super().__init__(message)
        self.version = version

    def __reduce__(self):
        return (type(self), (str(self), self.version))


class SteeringLocked(NotAllowed):
    """The story's creator has locked its memory, note and cards: only they may change them."""


class StoreBusy(StoryError):
    """The database stayed locked by other writers past the busy timeout; nothing was written."""


class StoreUnavailable(StoryError):
    """The database cannot be written (read-only, disk full, I/O error) or reached; nothing was written.

    The message is for anyone; `.detail` (the driver's words, which may name the database's host and
    port) is for the operator: the app prints it at startup, and no page or API answer shows it.
    """

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail

    def __reduce__(self):
        return (type(self), (str(self), self.detail))


_SQLITE_UNAVAILABLE = {
    getattr(sqlite3, name) for name in ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN")
}


def db_error(exc: sa_exc.DBAPIError | sqlite3.Error) -> StoryError:
    """The StoryError a database failure means for a person."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        primary = code & 0xFF
        if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreBusy(BUSY_MESSAGE)
        if primary in _SQLITE_UNAVAILABLE:
            return StoreUnavailable(_unavailable_message(primary, orig), str(orig))
        return StoryError(f"The story store failed: {orig}")
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate in ("55P03", "40P01", "40001"):  # lock not available, deadlock, serialization failure
        return StoreBusy(BUSY_MESSAGE)
    if sqlstate.startswith("08") or sqlstate in ("53100", "25006") or isinstance(exc, sa_exc.OperationalError):
        return StoreUnavailable(
            "The story database cannot be reached or written now, so nothing was saved; check that the"
            " PostgreSQL server is running and the URL is right.", str(orig).strip()
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
    return "The story database could not be read or written (a disk error), so nothing was saved."
