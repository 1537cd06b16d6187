"""`StoryStore`: the store's one class, and its edge.

It opens the engine (running the migrations), owns the transactions and the connections
watchers poll, checks every argument before a transaction starts (bad input raises
InvalidInput and writes nothing), and turns database failures into StoryErrors. Each public
method then opens one transaction and hands it to a plain function of the room that holds
that concern: `timeline`, `history`, `writers`/`moderation`, `turns`, `changes`, `exchange`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from relay.store import changes, exchange, history, moderation, presets, steering, timeline, turns, writers
from relay.store.errors import BUSY_MESSAGE, InvalidInput, NotFound, StoreBusy, StoryError, db_error
from relay.store.records import AITurnState, Candidate, Paragraph, ParagraphVersion, Story
from relay.store.schema import create_engine, default_db_target, is_postgres_url, migrate
from relay.store.presence_edge import PresenceMethods
from relay.store.steering_edge import SteeringMethods
from relay.store.validation import (
    MAX_PARAGRAPHS_PER_STORY,
    _dump_json_object,
    _now,
    _optional_writer_id,
    _validate_draft,
    _validate_expected_head,
    _validate_id,
    _validate_kind,
    _validate_process,
    _validate_ttl,
    _validate_turn_rule,
    new_writer_key,
    validate_author,
    validate_client_id,
    validate_text,
    validate_title,
    validate_writer_id,
    writer_id_of,
)


class StoryStore(SteeringMethods, PresenceMethods):
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
            self.url, self.path = None, _sqlite_file(target)
        self.backend = "postgresql" if self.url else "sqlite"
        self._engine = create_engine(self.url or self.path)
        self._pid = os.getpid()
        self._poller = changes.Poller(self._engine)
        self._listener = changes.Listener(self.url) if self.url else None
        try:
            migrate(self._engine)
        except sa_exc.DBAPIError as exc:
            self._engine.dispose()
            raise db_error(exc) from exc
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        """Close every connection this object opened; call it when no thread is using the store."""
        if self._listener is not None:
            self._listener.close()
        self._poller.close()
        self._engine.dispose()

    def __enter__(self) -> StoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # transactions

    @contextmanager
    def _tx(self, write: bool) -> Iterator[sa.Connection]:
        """One transaction: a write locks before it reads (see timeline.lock_story); a read is one snapshot."""
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
            raise db_error(exc) from exc
        except sa_exc.TimeoutError:
            raise StoreBusy(BUSY_MESSAGE) from None

    def _write(self):
        return self._tx(True)

    def _read(self):
        return self._tx(False)

    # stories and their timelines

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
        title, author = validate_title(title), validate_author(author)
        _validate_turn_rule(turn_rule)
        settings_json = _dump_json_object(settings, "Settings")
        wid = _optional_writer_id(writer_key)
        now = _now()
        with self._write() as conn:
            return timeline.create_story(conn, title, author, turn_rule, settings_json, writer_key, wid, now)

    def save_story_preset(self, story_id: int, name: str, settings: dict, author: str, *,
                          writer_key: str | None = None) -> dict[str, dict]:
        """Save sampling `settings` as the story's named preset (replacing one of that name), shared with everyone
        writing the story; returns the story's presets. Kept in the story's settings JSON (relay/store/presets.py)."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        name = presets.validate_preset_name(name)
        _dump_json_object(settings, "Settings")
        with self._write() as conn:
            return presets.save_preset(conn, story_id, name, dict(settings), author, writer_key)

    def list_stories(self) -> list[Story]:
        """Every story, most recently active first, with its paragraph count and last activity."""
        with self._read() as conn:
            return timeline.list_stories(conn)

    def get_story(self, story_id: int) -> Story:
        """The story with this id; NotFound if there is none."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return timeline.get_story(conn, story_id)

    def version(self, story_id: int) -> int:
        """A number that changes with every write to the story's paragraphs; cheap enough to poll."""
        return changes.story_version(self._poller, _validate_id(story_id, "story_id"))

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
        text, author = validate_text(text), validate_author(author)
        _validate_kind(kind)
        expected_head = _validate_expected_head(expected_head)
        meta_json = _dump_json_object(meta, "Meta")
        client_id = validate_client_id(client_id)
        with self._write() as conn:
            return timeline.add_paragraph(
                conn, story_id, text, author, kind, expected_head, edited, meta_json, writer_key, client_id
            )

    def head(self, story_id: int) -> Paragraph | None:
        """The last paragraph that is not deleted, or None for an empty story."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return timeline.story_head(conn, story_id)

    def timeline(self, story_id: int) -> list[Paragraph]:
        """The story's paragraphs in seq order, without deleted (undone) ones."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return timeline.timeline(conn, story_id)

    def timeline_page(self, story_id: int, limit: int, *, before: int | None = None) -> tuple[list[Paragraph], bool]:
        """A window of the timeline: its newest `limit` paragraphs (those with seq < `before`, if given),
        in seq order, and whether older ones remain.

        What a page shows of a long story and what "older paragraphs" pages read: an indexed range
        read of `limit` rows, never the whole story. `limit` is 1 to MAX_PARAGRAPHS_PER_STORY.
        """
        story_id = _validate_id(story_id, "story_id")
        limit = _validate_id(limit, "limit")
        if not 1 <= limit <= MAX_PARAGRAPHS_PER_STORY:
            raise InvalidInput(f"limit must be from 1 to {MAX_PARAGRAPHS_PER_STORY}.")
        if before is not None:
            before = _validate_id(before, "before")
            if before < 1:
                raise InvalidInput("before must be a paragraph number (seq), 1 or more.")
        with self._read() as conn:
            return timeline.timeline_page(conn, story_id, limit, before)

    def paragraph(self, story_id: int, paragraph_id: int) -> Paragraph:
        """Paragraph `paragraph_id` of story `story_id`, undone or hidden ones too (see its flags); NotFound if
        the story has no such paragraph. One row, where `timeline()` would read the whole story."""
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        with self._read() as conn:
            return timeline.fetch_paragraph(conn, story_id, paragraph_id)

    # paragraph history

    def undo_last(
        self, story_id: int, author: str, expected_head: int | None = None, *, writer_key: str | None = None
    ) -> Paragraph:
        """Mark the story's last paragraph deleted if `author` wrote or accepted it; return it.

        With `expected_head`, the undo only happens if that paragraph is still the last one. A
        paragraph written with a writer key can only be undone with that key.
        """
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        expected_head = _validate_expected_head(expected_head)
        with self._write() as conn:
            return history.undo_last(conn, story_id, author, expected_head, writer_key)

    def redo_last(self, story_id: int, author: str, *, writer_key: str | None = None) -> Paragraph:
        """Restore the paragraph `author` most recently undid, if the story has not moved on since.

        StaleHeadError if the head is no longer what it was right after that undo; NotFound if
        this writer has nothing to redo. Returns the restored paragraph.
        """
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        with self._write() as conn:
            return history.redo_last(conn, story_id, author, writer_key)

    def edit_paragraph(
        self, story_id: int, paragraph_id: int, text: str, author: str, *, writer_key: str | None = None
    ) -> Paragraph:
        """Change a paragraph's text, keeping every earlier version; return it as stored.

        Allowed for the paragraph's writer (by key when it was written with one), or for anyone
        on a `free` story. The paragraph is marked edited.
        """
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        text, author = validate_text(text), validate_author(author)
        with self._write() as conn:
            return history.edit_paragraph(conn, story_id, paragraph_id, text, author, writer_key)

    def paragraph_versions(self, paragraph_id: int) -> list[ParagraphVersion]:
        """Every text the paragraph has had, oldest first (one entry if it was never edited)."""
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        with self._read() as conn:
            return history.list_versions(conn, paragraph_id)

    def fork(
        self, story_id: int, at_paragraph_id: int, title: str, author: str, *, writer_key: str | None = None
    ) -> Story:
        """A new story whose timeline copies this one up to and including `at_paragraph_id`."""
        story_id = _validate_id(story_id, "story_id")
        at_paragraph_id = _validate_id(at_paragraph_id, "at_paragraph_id")
        title, author = validate_title(title), validate_author(author)
        wid = _optional_writer_id(writer_key)
        now = _now()
        with self._write() as conn:
            forked = history.fork(conn, story_id, at_paragraph_id, title, author, writer_key, wid, now)
            steering.copy(conn, story_id, forked.id, now)  # a fork keeps the memory, note and cards
            return forked

    # writers and moderation

    def new_writer_key(self) -> str:
        """Issue a fresh secret writer key (registered now; only its SHA-256 is stored)."""
        key = new_writer_key()
        with self._write() as conn:
            writers.register(conn, key)
        return key

    def register_writer_key(self, key: str) -> str:
        """Accept a key the server derived itself (a signed-in account's, relay.identity); returns its public id."""
        with self._write() as conn:
            return writers.register(conn, key)

    def writer_key_issued(self, key: object) -> bool:
        """Whether `key` is a well-formed key this site issued (a made-up or tampered key is not)."""
        try:
            with self._read() as conn:
                writers.issued(conn, key)
        except InvalidInput:
            return False
        return True

    def writer_id(self, key: str) -> str:
        """The public id of a writer key (first 16 hex digits of its SHA-256); InvalidInput if malformed."""
        return writer_id_of(key)

    def hide_paragraph(self, story_id: int, paragraph_id: int, *, writer_key: str) -> Paragraph:
        """Hide a paragraph from the story's timeline (creator only); it stays in the JSON export, marked hidden."""
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            return moderation.hide_paragraph(conn, story_id, paragraph_id, wid)

    def purge(self, story_id: int, paragraph_id: int, version: int | None = None, *, writer_key: str) -> None:
        """Erase for good a hidden paragraph's text (and its versions), or one earlier version (creator only)."""
        story_id = _validate_id(story_id, "story_id")
        paragraph_id = _validate_id(paragraph_id, "paragraph_id")
        version = None if version is None else _validate_id(version, "version")
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            moderation.purge(conn, story_id, paragraph_id, version, wid)

    def block_writer(self, story_id: int, writer_id: str, *, writer_key: str) -> None:
        """Refuse every further write of `writer_id` (a public writer id) to this story (creator only)."""
        story_id = _validate_id(story_id, "story_id")
        target = validate_writer_id(writer_id)
        wid = writer_id_of(writer_key)
        with self._write() as conn:
            moderation.block_writer(conn, story_id, target, wid)

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
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        ttl = _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        process = _validate_process(process)
        with self._write() as conn:
            return turns.claim_ai_turn(conn, story_id, author, ttl, writer_key, wid, process)

    def set_ai_draft(
        self, story_id: int, author: str, text: str, *, writer_key: str | None = None, ttl: float | None = None
    ) -> None:
        """Store the model's text so far for everyone watching; refresh the lease when `ttl` is given.

        Changes the change token, not the story's version. NotAllowed if `author` does not hold
        the turn, TurnLost if it expired and went to someone else.
        """
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        text = _validate_draft(text)
        ttl = None if ttl is None else _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            turns.set_ai_draft(conn, story_id, author, text, wid, ttl)

    def touch_ai_turn(self, story_id: int, author: str, ttl: float, *, writer_key: str | None = None) -> None:
        """Refresh the idle timer of `author`'s turn (e.g. while they edit its suggestion)."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        ttl = _validate_ttl(ttl)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            turns.touch_ai_turn(conn, story_id, author, ttl, wid)

    def release_ai_turn(self, story_id: int, author: str, *, writer_key: str | None = None) -> None:
        """Give back the model turn (nothing to keep); does nothing if `author` does not hold it."""
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            turns.release_ai_turn(conn, story_id, author, wid)

    def discard_ai_turn(self, story_id: int, author: str, *, writer_key: str | None = None) -> int:
        """Throw away every suggestion of the story's model turn and free it; return how many.

        Only its holder may, or anyone once the turn has expired (idle too long). Discarded
        suggestions can never be accepted.
        """
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            return turns.discard_ai_turn(conn, story_id, author, wid)

    def ai_turn(self, story_id: int) -> AITurnState | None:
        """The story's live model turn, or None when nobody holds it (or it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return turns.ai_turn(conn, story_id)

    def ai_turn_holder(self, story_id: int) -> str | None:
        """Whom the model's turn belongs to now (writing or pending), or None (also when it expired)."""
        story_id = _validate_id(story_id, "story_id")
        with self._read() as conn:
            return turns.ai_turn_holder(conn, story_id)

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
        with self._write() as conn:
            return turns.release_dead_turns(conn, host)

    # the model's candidates

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
        story_id, author = _validate_id(story_id, "story_id"), validate_author(author)
        text = validate_text(text)
        meta_json = _dump_json_object(meta, "Meta")
        idle_ttl = None if idle_ttl is None else _validate_ttl(idle_ttl, "idle_ttl")
        wid = _optional_writer_id(writer_key)
        candidate_id, now = secrets.token_urlsafe(16), time.time()
        with self._write() as conn:
            return turns.add_candidate(
                conn, story_id, author, text, meta_json, writer_key, wid, idle_ttl, candidate_id, now
            )

    def get_candidate(self, candidate_id: str) -> Candidate:
        """The candidate with this id; NotFound if it never existed or was pruned."""
        key = turns.candidate_key(candidate_id)
        with self._read() as conn:
            return turns.get_candidate(conn, key)

    def turn_candidates(self, turn_id: str) -> list[Candidate]:
        """Every candidate of one model turn (its "swipes"), oldest first, whatever became of them."""
        if not isinstance(turn_id, str) or not turn_id:
            raise NotFound("There is no such model turn.")
        with self._read() as conn:
            return turns.turn_candidates(conn, turn_id)

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
        key = turns.candidate_key(candidate_id)
        author = validate_author(author)
        if text is not None:
            text = validate_text(text)
        expected_head = _validate_expected_head(expected_head)
        wid = _optional_writer_id(writer_key)
        with self._write() as conn:
            return turns.accept_candidate(conn, key, author, text, expected_head, writer_key, wid)

    # the change feed

    def change_token(self) -> int:
        """A number that grows with every committed change to any story; one single-row read."""
        return changes.change_token(self._poller)

    def changed_stories(self, since: int) -> tuple[int, list[int]]:
        """(current change token, ids of the stories changed after token `since`)."""
        since = _validate_id(since, "since")
        with self._read() as conn:
            return changes.changed_stories(conn, since)

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block up to `timeout` seconds until the change token passes `since`; return the token.

        SQLite: polls change_token() every CHANGE_POLL_S. PostgreSQL: waits for the NOTIFY every
        commit sends (LISTEN on a connection this thread keeps), so it wakes at once.
        """
        since = _validate_id(since, "since")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise InvalidInput("timeout must be a number of seconds (0 or more).")
        return changes.wait_for_change(self._poller, self._listener, since, timeout)

    # export and import

    def export(self, story_id: int, fmt: str, *, writer_key: str | None = None, lang: str = "en") -> str:
        """The story as "txt" (plain novel), "md" (with writers and AI marks) or "json" (everything).

        Hidden paragraphs are in the JSON export only for the story's creator (`writer_key`); model
        names never show a server folder.
        """
        story_id = _validate_id(story_id, "story_id")
        if fmt not in exchange.EXPORT_FORMATS:
            raise InvalidInput(f"Unknown export format {fmt!r}: use one of {', '.join(exchange.EXPORT_FORMATS)}.")
        viewer = writer_id_of(writer_key) if writer_key is not None else None
        with self._read() as conn:
            story, paragraphs, versions = exchange.read_story(conn, story_id, with_history=fmt == "json")
            steered = steering.export_state(conn, story_id)
        if viewer is None or viewer != story.creator_id:
            paragraphs, versions = exchange.without_hidden(paragraphs, versions)
        return exchange.with_steering(fmt, exchange.render(fmt, story, paragraphs, versions, lang), steered, lang)

    def import_json(self, data: str | bytes | dict, importer: str | None = None, *,
                    writer_key: str | None = None) -> Story:
        """A JSON export as a new story. Malformed input raises InvalidInput and writes nothing.

        Without a key (a restore) everything is kept exactly as exported, with new ids. With the
        importing writer's key and name (the page and the API), the story is theirs: they are its
        creator, the file's writer ids are dropped (its names stay, as text) and `story.origin` says
        who imported it, when, and what the file called the story and its writers.
        """
        parsed = exchange.parse_export(data)
        steered = exchange.steering_of(data)
        now = _now()
        if writer_key is not None:
            importer = validate_author(importer)
            writer_id_of(writer_key)  # malformed keys fail before the transaction
        with self._write() as conn:
            if writer_key is None:
                story = exchange.import_story(conn, parsed, now)
                steering.import_state(conn, story.id, steered)
                return story
            wid = writers.issued(conn, writer_key)
            story = exchange.import_story(conn, exchange.as_importer(parsed, importer, wid, now), now)
            steering.import_state(conn, story.id, steered, keep_writer_ids=False)
            writers.admit(conn, story.id, importer, writer_key)
            return story


def _sqlite_file(target: object) -> Path:
    """The SQLite database file `target` names, its folder created; StoryError saying why it cannot be."""
    if not isinstance(target, (str, os.PathLike)):
        raise InvalidInput("The database must be a file path or a postgresql:// URL.")
    path = Path(target)
    if str(path) == ":memory:" or str(path).startswith("file:"):
        raise InvalidInput("The story store needs a database file path (each thread opens its own connection).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoryError(
            f"Cannot use {path} for the story database: its folder cannot be created"
            f" ({exc.strerror or exc}). Pass a file path in a writable folder, or a postgresql:// URL."
        ) from None
    if path.is_dir():
        raise StoryError(
            f"Cannot use {path} for the story database: it is a folder. Pass a file path, e.g."
            f" {path / 'relay.db'}."
        )
    return path
