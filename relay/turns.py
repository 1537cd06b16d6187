"""The model's turn on a story, with the same rules for the browser and the API.

A turn belongs to the writer who asked for it from the first token until its suggestions are
decided: while the model writes, its text so far is in the store for every co-writer to watch;
once finished, each text is kept as a suggestion ("candidate") of that turn, and the turn stays
with its writer, "pending", until they accept one, discard them, or stay idle for AI_IDLE_S
(then anyone may start a new model turn, and the old suggestions are set aside with a message
saying why). Asking again in the same turn adds another suggestion: the writer flips between
them (swipes) and accepts one; the others stay in the accepted paragraph's history.

Every suggestion keeps the model's ids with their recorded probabilities (meta "tokens", docs/engine.md). A
writer may rewrite a suggestion of their turn from any of its tokens (`branch`: keep the ids before it, put
another of the alternatives the model considered there, or let the model choose again) or continue it
(`extend`, "더 쓰기"); either adds a new suggestion to the same turn, rebuilt from the stored ids only.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

from relay.context import Steering
from relay.decoding import without_paragraph_end
from relay.engine import ContextTooLong
from relay.settings import EngineError, SamplingSettings, SettingsError
from relay.story_store import MAX_NOTE_CHARS, NameTaken, StoryError, StoryStore, TurnBusy, writer_id_of
from relay.ui import limit_text
from relay.ui.common import _fail
from relay.ui.render import _esc
from relay.turn_text import TURN_TEXT
from relay.ui_text import say as _say_ui

AI_TURN_TTL = 90.0  # seconds a writing turn lives without a refresh (a crashed worker frees it)
AI_IDLE_S = 180.0  # a finished suggestion keeps the turn this long without activity (editing refreshes it)
TURN_GRACE_S = 30.0  # a finished suggestion whose writer has no tab open is theirs this long, then anyone's to take


def turn_idle_s() -> float:
    """The idle release time of a waiting suggestion: $RELAY_TURN_IDLE_S, else AI_IDLE_S."""
    return _seconds_setting("RELAY_TURN_IDLE_S", AI_IDLE_S)


def turn_grace_s() -> float:
    """How long a waiting suggestion stays its writer's after their last tab on the story closed:
    $RELAY_TURN_GRACE_S, else TURN_GRACE_S."""
    return _seconds_setting("RELAY_TURN_GRACE_S", TURN_GRACE_S)


def _seconds_setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 10**7:
        raise ValueError(f"{name}={raw!r}: give a number of seconds, more than 0 (default {default:g}).")
    return value
DRAFT_EVERY_S = 0.3  # how often the text so far is written to the store for co-writers to watch


class Stop(threading.Event):
    """A stop request for one generation; `reason` says whether to keep the text ("stop") or not ("discard")."""

    reason = "stop"

    def request(self, reason: str) -> None:
        self.reason = reason
        self.set()


class Stops:
    """The stop and discard buttons: one Stop per browser session, set from another request of that session."""

    def __init__(self):
        self._events: dict[str, Stop] = {}
        self._lock = threading.Lock()

    def fresh(self, session: str) -> Stop:
        with self._lock:
            event = self._events[session] = Stop()
            return event

    def cancel(self, session: str, reason: str = "stop") -> None:
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.request(reason)

    def done(self, session: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]

    def wait_stopped(self, session: str, timeout: float) -> bool:
        """Wait until the session's generation has ended (its handler called done); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if session not in self._events:
                    return True
            time.sleep(0.02)
        return False


class AITurn:
    """Runs model turns on stories under the store's turn rules and lease (one turn per story)."""

    def __init__(self, engine, store: StoryStore, *, escape_names: bool, idle_s: float = AI_IDLE_S):
        self.engine = engine
        self.store = store
        self.idle_s = idle_s
        self.name = _esc if escape_names else str  # browser toasts render HTML; API messages are plain

    def check_ai_may_write(self, story_id: int, author: str, lang: str, *, writer_key: str | None = None):
        """Refuse at once a model turn that could not run: the wrong turn, or someone else's turn is live."""
        story = self.store.get_story(story_id)
        head = self.store.head(story_id)
        turn = self.store.ai_turn(story_id)
        mine = turn is not None and _holds(turn, author, writer_key)
        if turn is not None and not mine:
            key = "ai_busy" if turn.status == "writing" else "ai_pending_busy"
            raise _fail(say(lang, key, holder=self.name(turn.holder)))
        if story.turn_rule == "alternate" and (head is None or head.kind == "ai"):
            raise _fail(say(lang, "not_ai_turn"))
        return story, head

    def steering(self, story_id: int, turn_note: str | None = None) -> Steering:
        """What steers the model on this story's next turn: its memory, note and cards (from the store), and the
        writer's note for this turn only (never stored as the story's)."""
        return Steering.from_record(self.store.steering(story_id), turn_note)

    @contextlib.contextmanager
    def _turn(self, story_id: int, author: str, lang: str, writer_key: str | None, turn_note: str | None = None):
        """Check the rules and hold the story's model turn; yields (head, paragraph texts, steering).

        On any failure before a suggestion exists, the turn is given back.
        """
        if turn_note is not None and (not isinstance(turn_note, str) or len(turn_note) > MAX_NOTE_CHARS):
            raise _fail(say(lang, "steer_turn_note_too_long", limit=MAX_NOTE_CHARS))
        _, head = self.check_ai_may_write(story_id, author, lang, writer_key=writer_key)
        try:
            self.store.claim_ai_turn(story_id, author, ttl=AI_TURN_TTL, writer_key=writer_key)
        except TurnBusy as e:
            raise _fail(say(lang, "ai_busy", holder=self.name(e.holder))) from None
        except NameTaken as e:  # the store's sentence is English: the page's language instead
            raise _fail(limit_text.say(lang, "name_taken", name=self.name(e.name or author))) from None
        kept = False
        try:
            yield head, [p.text for p in self.store.timeline(story_id)], self.steering(story_id, turn_note)
            kept = True
        except ContextTooLong as e:  # memory and note leave the story too little: say which to shorten
            raise _fail(say(lang, f"steer_too_long_{e.problem.block}", need=e.problem.need, left=e.problem.left)) \
                from None
        except (SettingsError, EngineError) as e:
            raise _fail(say(lang, "generation_failed", detail=str(e))) from None
        finally:
            if not kept:
                self._give_back(story_id, author, writer_key)

    def _give_back(self, story_id: int, author: str, writer_key: str | None) -> None:
        """Free the turn, or, if it already has suggestions from earlier asks, leave them waiting."""
        turn = self.store.ai_turn(story_id)
        if turn is not None and _holds(turn, author, writer_key) and turn.candidates:
            self.store.touch_ai_turn(story_id, author, self.idle_s, writer_key=writer_key)
            return
        self.store.release_ai_turn(story_id, author, writer_key=writer_key)

    def stream(self, story_id: int, author: str, settings: SamplingSettings, adapter: str | None,
               stop: threading.Event | None, lang: str, *, writer_key: str | None = None,
               turn_note: str | None = None) -> Iterator[tuple[str, dict | None]]:
        """Yields (text so far, None) while writing, then (final text, suggestion info) once it is kept.

        The model reads the story with its memory, note and cards (and `turn_note`, this turn only). Co-writers
        watch the text through the store. Stopped, or abandoned by its reader (a closed tab), the text so far is
        still kept as a suggestion; discarded, nothing is kept.
        """
        def start(paragraphs, steering):
            return self.engine.continue_story(paragraphs, settings, adapter=adapter, cancel=stop, steering=steering)

        yield from self._write_one(story_id, author, lang, writer_key, turn_note, stop, start)

    def branch(self, story_id: int, author: str, candidate_key: str, at: int, choice: int | None,
               settings: SamplingSettings, adapter: str | None, stop: threading.Event | None, lang: str, *,
               writer_key: str | None = None, turn_note: str | None = None) -> Iterator[tuple[str, dict | None]]:
        """Rewrite one of this writer's waiting suggestions from its token `at`: the ids before it are kept, then
        the model writes on. `choice` picks the alternative there (an index into the stored top list: that id is
        put at `at`); None lets the model choose again from `at` (a fresh seed unless one is set). Yields like
        `stream`; the new suggestion joins the same turn (meta["branch"] says where it came from)."""
        candidate, tokens = self._branch_source(story_id, author, candidate_key, lang, writer_key)
        ids, top, probs = tokens["ids"], tokens["top"], tokens["p"]
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < len(ids):
            raise _fail(say(lang, "branch_at_range", at=_shown(at), count=len(ids), last=len(ids) - 1))
        if choice is None:
            prefix, head = ids[:at], {"p": probs[:at], "top": top[:at]}
        else:
            here = top[at] if isinstance(top[at], list) else []
            if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < len(here):
                raise _fail(say(lang, "branch_choice_range", choice=_shown(choice), count=len(here),
                                last=len(here) - 1))
            prefix, head = ids[:at] + [here[choice][0]], {"p": probs[:at] + [here[choice][2]], "top": top[:at + 1]}
        if len(prefix) >= settings.max_new_tokens:
            raise _fail(say(lang, "branch_too_long", kept=len(prefix), max=settings.max_new_tokens))
        mark = {"kind": "branch", "at": at, "id": prefix[-1] if choice is not None else None, "from": candidate.id}
        yield from self._rewrite(story_id, author, prefix, head, mark, settings, adapter, stop, lang, writer_key,
                                 turn_note)

    def extend(self, story_id: int, author: str, candidate_key: str, settings: SamplingSettings,
               adapter: str | None, stop: threading.Event | None, lang: str, *, writer_key: str | None = None,
               turn_note: str | None = None) -> Iterator[tuple[str, dict | None]]:
        """"더 쓰기": continue one of this writer's waiting suggestions, keeping all of its ids (less ids past its
        trimmed text, and its paragraph end: only its newline when that id also wrote a word, `_open_paragraph`);
        the model writes up to settings.max_new_tokens more, at least max(1, min_new_tokens). Yields like `stream`;
        the longer text is a new suggestion of the same turn."""
        candidate, tokens = self._branch_source(story_id, author, candidate_key, lang, writer_key)
        ids, head = _open_paragraph(self.engine, tokens)
        keep = len(ids)
        limit = min(_MAX_NEW_TOKENS, self.engine.max_new_tokens_limit)
        if keep >= limit:
            raise _fail(say(lang, "extend_full", limit=limit))
        most = min(limit, keep + settings.max_new_tokens)
        longer = settings.replace(max_new_tokens=most, min_new_tokens=min(most, keep + max(1, settings.min_new_tokens)))
        mark = {"kind": "extend", "at": keep, "id": None, "from": candidate.id}
        yield from self._rewrite(story_id, author, ids, head, mark, longer, adapter, stop, lang, writer_key,
                                 turn_note)

    def _branch_source(self, story_id: int, author: str, candidate_key, lang: str,
                       writer_key: str | None) -> tuple:
        """The suggestion to rewrite and its stored tokens, once it is a waiting suggestion of this story's
        current turn and the turn is this writer's; refuses (in `lang`) otherwise."""
        turn = self.store.ai_turn(story_id)
        if turn is None:
            raise _fail(say(lang, "branch_not_this_turn"))
        if not _holds(turn, author, writer_key):
            key = "ai_busy" if turn.status == "writing" else "ai_pending_busy"
            raise _fail(say(lang, key, holder=self.name(turn.holder)))
        try:
            candidate = self.store.get_candidate(candidate_key)
        except StoryError:
            raise _fail(say(lang, "branch_not_this_turn")) from None
        if candidate.story_id != story_id or candidate.turn_id != turn.turn_id or candidate.status != "open":
            raise _fail(say(lang, "branch_not_this_turn"))
        tokens = candidate.meta.get("tokens")
        if not _usable_tokens(tokens):
            raise _fail(say(lang, "branch_no_tokens"))
        return candidate, tokens

    def _rewrite(self, story_id, author, prefix, head, mark, settings, adapter, stop, lang, writer_key, turn_note):
        """Write a suggestion whose first ids are `prefix` (with its recorded `head` p/top); meta["branch"] = mark."""
        def start(paragraphs, steering):
            return self.engine.branch(paragraphs, settings, prefix, prefix_tokens=head, adapter=adapter, cancel=stop,
                                      steering=steering)

        yield from self._write_one(story_id, author, lang, writer_key, turn_note, stop, start, {"branch": mark})

    def _write_one(self, story_id, author, lang, writer_key, turn_note, stop, start, extra: dict | None = None):
        """Hold the turn, stream `start(paragraphs, steering)` (a Continuation) to the store and the caller, and
        keep its text as a suggestion (meta updated with `extra`)."""
        with self._turn(story_id, author, lang, writer_key, turn_note) as (head, paragraphs, steering):
            continuation = start(paragraphs, steering)
            text, drafted = "", time.monotonic()
            finished = False
            try:
                for chunk in continuation:
                    text += chunk
                    if time.monotonic() - drafted > DRAFT_EVERY_S:
                        self.store.set_ai_draft(story_id, author, text, writer_key=writer_key, ttl=AI_TURN_TTL)
                        drafted = time.monotonic()
                    if _discarded(stop):
                        break
                    yield text, None
                finished = True
            finally:
                continuation.close()
                if not finished and not _discarded(stop) and text.strip():
                    # The reader went away mid-stream: keep what was written, so a reload finds it.
                    meta = dict(continuation.meta or {}, stopped_by="disconnect", **(extra or {}))
                    self.store.add_candidate(story_id, author, text, meta, writer_key=writer_key, idle_ttl=self.idle_s)
            if _discarded(stop):
                return  # the discard handler already threw the turn's suggestions away
            text, meta = continuation.text, dict(continuation.meta, **(extra or {}))
            if not text.strip():
                raise _fail(say(lang, "empty_output"))
            candidate_id = self.store.add_candidate(story_id, author, text, meta, writer_key=writer_key,
                                                    idle_ttl=self.idle_s)
            yield text, {"candidate_id": candidate_id, "meta": meta, "expected_head": head.id if head else 0}

    def alternatives(self, story_id: int, author: str, settings: SamplingSettings, n: int,
                     adapter: str | None, lang: str, *, writer_key: str | None = None,
                     stop: threading.Event | None = None,
                     turn_note: str | None = None) -> Iterator[tuple[list[str], dict | None]]:
        """n suggestions written side by side: yields (texts so far, None) as they grow, then
        (final texts, {"candidate_ids", "expected_head", "meta"}) once all are kept in the turn.
        Co-writers watch the first column's text; a stop keeps what each column has so far."""
        with self._turn(story_id, author, lang, writer_key, turn_note) as (head, paragraphs, steering):
            stream = self.engine.stream_alternatives(paragraphs, settings, n, adapter=adapter, cancel=stop,
                                                     steering=steering)
            texts, drafted = [""] * n, time.monotonic()
            for index, chunk in stream:
                texts[index] += chunk
                if time.monotonic() - drafted > DRAFT_EVERY_S:
                    self.store.set_ai_draft(story_id, author, texts[0], writer_key=writer_key, ttl=AI_TURN_TTL)
                    drafted = time.monotonic()
                if _discarded(stop):
                    return
                yield list(texts), None
            if _discarded(stop):
                return
            meta = dict(stream.meta)
            kept = [(i, t) for i, t in enumerate(stream.texts) if t.strip()]
            if not kept:
                raise _fail(say(lang, "empty_output"))
            ids = [self.store.add_candidate(story_id, author, t, _alternative_meta(meta, i), writer_key=writer_key,
                                            idle_ttl=self.idle_s) for i, t in kept]
            yield [t for _, t in kept], {"candidate_ids": ids, "expected_head": head.id if head else 0, "meta": meta}


_MAX_NEW_TOKENS = next(spec.maximum for spec in SamplingSettings.specs() if spec.name == "max_new_tokens")


def _alternative_meta(meta: dict, index: int) -> dict:
    """Alternative `index`'s stored meta: the batch's, with its own tokens only (the others' left out)."""
    own = dict(meta, alternative=index,
               candidates=[{k: v for k, v in c.items() if k != "tokens"} for c in meta.get("candidates", [])])
    tokens = (meta.get("candidates") or [{}] * (index + 1))[index].get("tokens")
    if tokens is not None:
        own["tokens"] = tokens
    return own


def _usable_tokens(tokens) -> bool:
    """Whether a stored tokens meta has the parallel lists branching reads (ids, text, p, top)."""
    if not isinstance(tokens, dict):
        return False
    ids, text, probs, top = (tokens.get(k) for k in ("ids", "text", "p", "top"))
    return (all(isinstance(v, list) for v in (ids, text, probs, top)) and len(ids) == len(text) == len(probs)
            == len(top) and len(ids) > 0 and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            and all(isinstance(t, list) and all(isinstance(e, list) and len(e) == 3 and isinstance(e[0], int)
                                                for e in t) for t in top))


def _shown(value) -> str:
    """A client's value as a message may quote it (short)."""
    return repr(value)[:40]


def say(lang: str, key: str, **values) -> str:
    """relay.ui_text.say, and the messages of rewriting and continuing a suggestion (relay/turn_text.py)."""
    if key in TURN_TEXT:
        ko, en = TURN_TEXT[key]
        return (en if lang == "en" else ko).format(**values)
    return _say_ui(lang, key, **values)


def _holds(turn, author: str, writer_key: str | None) -> bool:
    """Whether this writer holds the turn (by key when the turn was claimed with one, else by name)."""
    if turn.holder_id is not None:
        return writer_key is not None and writer_id_of(writer_key) == turn.holder_id
    return writer_key is None and turn.holder == author


def _open_paragraph(engine, tokens: dict) -> tuple[list[int], dict]:
    """A suggestion's ids to continue its paragraph from, with their recorded p and top: trailing ids that add no
    text are dropped, and a last id that ends the paragraph is dropped too, or, when it also wrote text
    ("▁열었다.\n"), replaced by ids that write that text without the newline (recorded as unknown: p None)."""
    ids, texts = tokens["ids"], tokens["text"]
    keep = len(ids)
    while keep and not texts[keep - 1]:
        keep -= 1
    kept, head = list(ids[:keep]), {"p": list(tokens["p"][:keep]), "top": list(tokens["top"][:keep])}
    if keep and kept[-1] in engine.paragraph_end_ids:
        spelled = without_paragraph_end(engine.tokenizer, kept[:-1], kept[-1])
        kept[-1:] = spelled
        head = {"p": head["p"][:-1] + [None] * len(spelled), "top": head["top"][:-1] + [[]] * len(spelled)}
    return kept, head


def _discarded(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set() and getattr(stop, "reason", "stop") == "discard"
