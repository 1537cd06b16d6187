"""The story store's errors: a small hierarchy whose messages are fit to show a person.

The UI translates by class, so there is one class per situation it must phrase differently, with
the attributes it needs (e.g. `TurnBusy.holder`). Re-exported by `relay.story_store`.
"""

from __future__ import annotations


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


class TurnError(StoryError):
    """The story's turn rule does not allow this kind of paragraph now."""


class NotAllowed(StoryError):
    """This person may not do that, e.g. undo someone else's paragraph or reuse a candidate."""


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


class StoreBusy(StoryError):
    """The database stayed locked by other writers past the busy timeout; nothing was written."""


class StoreUnavailable(StoryError):
    """The database cannot be written (read-only, disk full, I/O error) or reached; nothing was written."""
