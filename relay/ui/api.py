"""Named API endpoints for gradio_client (`/writer_key`, `/create_story`, `/add_paragraph`, ...), documented in the README.

Every endpoint checks its own arguments strictly (ids are positive ints, never bools, floats or
numeric strings), and every endpoint that changes a story needs a `writer_key` from `/writer_key`:
the store binds a writer name to that key per story and checks the key (not the name) for undo,
accept and discard. Writes are limited per writer key and per client address (relay/limits.py).

Refusals are gr.Error with a plain-text message (the API returns JSON, nothing renders it as HTML),
in English unless the request's Accept-Language asks for Korean. `api_functions()` builds the
endpoint functions without a Blocks, so tests call exactly the code the server runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gradio as gr

from relay.limits import LimitExceeded, Limits, client_ip
from relay.settings import SamplingSettings, SettingsError
from relay.store.validation import MAX_PARAGRAPHS_PER_STORY
from relay.story_store import StoryError, StoryStore
from relay.turns import AITurn, say as say_turn
from relay.ui.limit_text import limit_message, say as say_limit
from relay.ui.lab_api import LAB_ENDPOINTS, lab_endpoints
from relay.ui.steering_api import STEERING_WRITES, steering_endpoints

MAX_ID = 2**63 - 1  # SQLite's largest integer: a bigger id cannot name anything
MAX_CANDIDATE_ID_CHARS = 100
MAX_CLIENT_ID_CHARS = 100  # the store's limit too (printable ASCII)
# Every endpoint that writes (the README's API section lists them).
WRITING_ENDPOINTS = ("create_story", "add_paragraph", "undo_last", "continue_story", "accept", "discard",
                     "edit_paragraph", "hide_paragraph", "purge", "block_writer", "branch_suggestion",
                     "extend_suggestion") + STEERING_WRITES
MODEL_TURN_ENDPOINTS = ("continue_story", "branch_suggestion", "extend_suggestion")  # outside Gradio's queue group


class Refusal(Exception):
    """An API argument is unusable; the message says which and what to send instead."""


def api_lang(request: gr.Request | None) -> str:
    """Korean when the client's Accept-Language asks for it first, else English (API clients send none)."""
    header = (request.headers.get("accept-language") if request is not None else None) or ""
    return "ko" if header.strip().lower().startswith("ko") else "en"


def _got(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def positive_id(value, what: str, lang: str = "en") -> int:
    """`value` if it is an int from 1 to MAX_ID (bools, floats and numeric strings are refused)."""
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise Refusal(say_limit(lang, "bad_id", what=what, got=_got(value)))
    return value


def expected_head(value, lang: str = "en") -> int | None:
    """None (no check), 0 (the story is empty) or a paragraph id."""
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise Refusal(say_limit(lang, "bad_head", got=_got(value)))
    return value


def text_arg(value, what: str, lang: str = "en", *, optional: bool = False, max_chars: int | None = None) -> str | None:
    """A string argument (None allowed when optional); contents are the store's to check."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or (max_chars is not None and len(value) > max_chars):
        raise Refusal(say_limit(lang, "bad_text_arg", what=what, got=_got(value)))
    return value


def register_api(engine, store: StoryStore, ai_turn: AITurn, limits: Limits | None = None) -> None:
    """Named endpoints for gradio_client; errors come back as gr.Error messages.

    Model turns run outside Gradio's model queue group: each takes one of its writer's model slots
    at once (or is refused at once) and then waits in the engine's own first-come line, so the
    slots count waiting and running jobs alike.
    """
    fns = api_functions(engine, store, ai_turn, limits or Limits())
    for name, fn in fns.items():
        if name in MODEL_TURN_ENDPOINTS + LAB_ENDPOINTS:
            gr.api(fn, api_name=name, concurrency_limit=None)
        else:
            gr.api(fn, api_name=name)


def api_functions(engine, store: StoryStore, ai_turn: AITurn, limits: Limits) -> dict[str, Callable]:
    """The endpoint functions by API name (no Blocks needed: tests call them directly)."""

    def refuse(message: str):
        return gr.Error(message, print_exception=False)

    def writer(key, lang: str) -> tuple[str, str]:
        """(writer key, public writer id), or a refusal saying how to get a key."""
        if key is None or key == "":
            raise Refusal(say_limit(lang, "need_writer_key"))
        if not isinstance(key, str):
            raise Refusal(say_limit(lang, "bad_writer_key"))
        try:
            wid = store.writer_id(key)
        except StoryError:
            raise Refusal(say_limit(lang, "bad_writer_key")) from None
        if not store.writer_key_issued(key):  # well-formed but made up: it would escape every per-key limit
            raise Refusal(say_limit(lang, "unknown_writer_key"))
        return key, wid

    def guarded(fn: Callable) -> Callable:
        """Turn every expected refusal into a gr.Error with its message (never a bare exception)."""

        def call(*args, request: gr.Request | None = None, **kwargs):
            lang = api_lang(request)
            try:
                return fn(lang, client_ip(request), *args, **kwargs)
            except Refusal as e:
                raise refuse(str(e)) from None
            except LimitExceeded as e:
                raise refuse(limit_message(lang, e)) from None
            except (StoryError, SettingsError) as e:
                raise refuse(str(e) or type(e).__name__) from None

        return call

    # -- reading ---------------------------------------------------------------------------

    @guarded
    def _new_writer_key(lang, ip):
        limits.check("writer_key", None, ip)  # each key is a database row: no key floods
        return store.new_writer_key()

    def new_writer_key(request: gr.Request = None) -> str:
        """A new secret writer key: pass it as `writer_key` to every endpoint that writes, and keep it private."""
        return _new_writer_key(request=request)

    def list_stories() -> list[dict]:
        """All stories, most recently active first."""
        return [s.to_dict() for s in store.list_stories()]

    @guarded
    def _timeline(lang, ip, story_id, limit, before):
        sid = positive_id(story_id, "story_id", lang)
        if limit is None and before is None:  # the whole story, as before issue 20
            return [p.to_dict() for p in store.timeline(sid)]
        n = MAX_PARAGRAPHS_PER_STORY if limit is None else min(positive_id(limit, "limit", lang), MAX_PARAGRAPHS_PER_STORY)
        seq = None if before is None else min(positive_id(before, "before", lang), 2**31 - 1)
        return [p.to_dict() for p in store.timeline_page(sid, n, before=seq)[0]]

    def timeline(story_id: int, limit: int | None = None, before: int | None = None,
                 request: gr.Request = None) -> list[dict]:
        """The story's paragraphs in order. With `limit`, only the newest `limit` (at most 5,000); with `before`,
        only those numbered (seq) below it: page back through a long story with before = the first one's seq."""
        return _timeline(story_id, limit, before, request=request)

    # -- writing ---------------------------------------------------------------------------

    @guarded
    def _create_story(lang, ip, title, author, turn_rule, writer_key):
        key, wid = writer(writer_key, lang)
        text_arg(title, "title", lang)
        text_arg(author, "author", lang)
        text_arg(turn_rule, "turn_rule", lang)
        limits.check("story", wid, ip)
        return store.create_story(title, author, turn_rule=turn_rule, writer_key=key).to_dict()

    def create_story(title: str, author: str, turn_rule: str = "alternate", writer_key: str | None = None,
                     request: gr.Request = None) -> dict:
        """Create a story; turn_rule is "alternate" or "free"."""
        return _create_story(title, author, turn_rule, writer_key, request=request)

    @guarded
    def _add_paragraph(lang, ip, story_id, text, author, head, writer_key, client_id):
        sid = positive_id(story_id, "story_id", lang)
        head = expected_head(head, lang)
        text_arg(text, "text", lang)
        text_arg(author, "author", lang)
        text_arg(client_id, "client_id", lang, optional=True, max_chars=MAX_CLIENT_ID_CHARS)
        key, wid = writer(writer_key, lang)
        with limits.counted("paragraph", wid, ip):  # a refused paragraph does not use up the rate
            return store.add_paragraph(sid, text, author, kind="human", expected_head=head, writer_key=key,
                                       client_id=client_id).to_dict()

    def add_paragraph(story_id: int, text: str, author: str, expected_head: int | None = None,
                      writer_key: str | None = None, client_id: str | None = None, request: gr.Request = None) -> dict:
        """Append a human paragraph; expected_head is the id of the last paragraph you saw (0: empty story).
        client_id (optional, any string up to 100 characters, new per paragraph) makes a retry store it once."""
        return _add_paragraph(story_id, text, author, expected_head, writer_key, client_id, request=request)

    @guarded
    def _undo_last(lang, ip, story_id, author, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(author, "author", lang)
        key, _ = writer(writer_key, lang)
        return store.undo_last(sid, author, writer_key=key).to_dict()

    def undo_last(story_id: int, author: str, writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Undo your own most recent paragraph on the story (if it is still the last one); returns it."""
        return _undo_last(story_id, author, writer_key, request=request)

    @guarded
    def _start_turn(lang, ip, story_id, author, settings, adapter, writer_key):
        """Everything checked before the model is touched: (story id, name, key, writer id, settings, adapter)."""
        sid = positive_id(story_id, "story_id", lang)
        name = text_arg(author, "author", lang).strip()
        if not name:
            raise Refusal(say_limit(lang, "bad_text_arg", what="author", got=_got(author)))
        if settings is not None and not isinstance(settings, dict):
            raise Refusal(say_limit(lang, "bad_settings_arg"))
        sampling = SamplingSettings.from_dict(settings or {})
        text_arg(adapter, "adapter", lang, optional=True, max_chars=200)
        if adapter and adapter not in engine.adapter_names:  # before the turn is claimed or the model touched
            known = ", ".join(engine.adapter_names) or "none (pass null for the base model)"
            raise Refusal(f"Unknown adapter {adapter!r}; this server has: {known}.")
        key, wid = writer(writer_key, lang)
        limits.check("model_turn", wid, ip)
        limits.check("candidates", wid, ip)
        return sid, name, key, wid, sampling, adapter or None, lang, ip

    def continue_story(story_id: int, author: str, settings: dict | None = None, adapter: str | None = None,
                       writer_key: str | None = None, turn_note: str | None = None,
                       request: gr.Request = None) -> Iterator[dict]:
        """Stream a model continuation: {"text", "done": false} chunks, then the candidate to accept. The model reads
        the story with its memory, author's note and story cards; turn_note (optional) steers this turn only."""
        sid, name, key, wid, sampling, adapter, lang, ip = _start_turn(story_id, author, settings, adapter, writer_key,
                                                                      request=request)
        try:
            with limits.model_slot(wid, ip):
                for text, done in ai_turn.stream(sid, name, sampling, adapter, None, lang, writer_key=key,
                                                 turn_note=turn_note):
                    if done is None:
                        yield {"text": text, "done": False}
                    else:
                        yield {"text": text, "done": True, **done}
        except LimitExceeded as e:
            raise refuse(limit_message(lang, e)) from None
        except (StoryError, SettingsError) as e:
            raise refuse(str(e) or type(e).__name__) from None

    def _turn_updates(lang, wid, ip, turn: Iterator) -> Iterator[dict]:
        """A model turn's progress as the API streams it, inside one of the writer's model slots."""
        try:
            with limits.model_slot(wid, ip):
                for text, done in turn:
                    yield {"text": text, "done": False} if done is None else {"text": text, "done": True, **done}
        except LimitExceeded as e:
            raise refuse(limit_message(lang, e)) from None
        except (StoryError, SettingsError) as e:
            raise refuse(str(e) or type(e).__name__) from None

    @guarded
    def _rewrite_args(lang, ip, candidate_id, at, choice):
        """A suggestion's id and a token position (and alternative) in it; their ranges are the turn's to check."""
        text_arg(candidate_id, "candidate_id", lang, max_chars=MAX_CANDIDATE_ID_CHARS)
        for what, value, optional in (("at", at, False), ("choice", choice, True)):
            if (value is not None or not optional) and (type(value) is not int or not 0 <= value <= MAX_ID):
                raise Refusal(say_turn(lang, "bad_position", what=what, got=_got(value)))
        return candidate_id

    def branch_suggestion(story_id: int, author: str, candidate_id: str, at: int, choice: int | None = None,
                          settings: dict | None = None, adapter: str | None = None, writer_key: str | None = None,
                          request: gr.Request = None) -> Iterator[dict]:
        """Rewrite one of your waiting suggestions from its token `at` (meta["tokens"]): the tokens before it are
        kept; `choice` (an index into meta["tokens"]["top"][at]) puts that alternative there, None lets the model
        choose again. Streams like continue_story; the result is a new suggestion of the same turn."""
        candidate_id = _rewrite_args(candidate_id, at, choice, request=request)  # before a limit counts the call
        sid, name, key, wid, sampling, adapter, lang, ip = _start_turn(story_id, author, settings, adapter, writer_key,
                                                                      request=request)
        yield from _turn_updates(lang, wid, ip, ai_turn.branch(sid, name, candidate_id, at, choice, sampling, adapter,
                                                               None, lang, writer_key=key))

    def extend_suggestion(story_id: int, author: str, candidate_id: str, settings: dict | None = None,
                          adapter: str | None = None, writer_key: str | None = None,
                          request: gr.Request = None) -> Iterator[dict]:
        """"더 쓰기": continue one of your waiting suggestions by up to settings max_new_tokens more tokens, as a
        new suggestion of the same turn. Streams like continue_story."""
        candidate_id = _rewrite_args(candidate_id, 0, None, request=request)
        sid, name, key, wid, sampling, adapter, lang, ip = _start_turn(story_id, author, settings, adapter, writer_key,
                                                                      request=request)
        yield from _turn_updates(lang, wid, ip, ai_turn.extend(sid, name, candidate_id, sampling, adapter, None, lang,
                                                               writer_key=key))

    @guarded
    def _accept(lang, ip, candidate_id, author, text, head, writer_key):
        text_arg(candidate_id, "candidate_id", lang, max_chars=MAX_CANDIDATE_ID_CHARS)
        text_arg(author, "author", lang)
        text_arg(text, "text", lang, optional=True)
        head = expected_head(head, lang)
        key, _ = writer(writer_key, lang)
        return store.accept_candidate(candidate_id, author, text=text, expected_head=head, writer_key=key).to_dict()

    def accept(candidate_id: str, author: str, text: str | None = None, expected_head: int | None = None,
               writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Store a generated candidate as the story's next AI paragraph, optionally edited."""
        return _accept(candidate_id, author, text, expected_head, writer_key, request=request)

    @guarded
    def _discard(lang, ip, story_id, author, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(author, "author", lang)
        key, _ = writer(writer_key, lang)
        return {"discarded": store.discard_ai_turn(sid, author, writer_key=key)}

    def discard(story_id: int, author: str, writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Throw away your model turn's candidates and free the turn; returns how many were discarded."""
        return _discard(story_id, author, writer_key, request=request)

    @guarded
    def _edit_paragraph(lang, ip, story_id, paragraph_id, text, author, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        pid = positive_id(paragraph_id, "paragraph_id", lang)
        text_arg(text, "text", lang)
        text_arg(author, "author", lang)
        key, wid = writer(writer_key, lang)
        limits.check("paragraph", wid, ip)  # an edit writes a paragraph version: same pace as adding one
        return store.edit_paragraph(sid, pid, text, author, writer_key=key).to_dict()

    def edit_paragraph(story_id: int, paragraph_id: int, text: str, author: str, writer_key: str | None = None,
                       request: gr.Request = None) -> dict:
        """Change the text of a paragraph you wrote (anyone's on a "free" story); earlier versions are kept."""
        return _edit_paragraph(story_id, paragraph_id, text, author, writer_key, request=request)

    @guarded
    def _hide_paragraph(lang, ip, story_id, paragraph_id, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        pid = positive_id(paragraph_id, "paragraph_id", lang)
        key, _ = writer(writer_key, lang)
        return store.hide_paragraph(sid, pid, writer_key=key).to_dict()

    def hide_paragraph(story_id: int, paragraph_id: int, writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Hide a paragraph from the story (its creator's key only); only the creator's JSON export still has it."""
        return _hide_paragraph(story_id, paragraph_id, writer_key, request=request)

    @guarded
    def _purge(lang, ip, story_id, paragraph_id, version, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        pid = positive_id(paragraph_id, "paragraph_id", lang)
        number = None if version is None else positive_id(version, "version", lang)
        key, _ = writer(writer_key, lang)
        store.purge(sid, pid, number, writer_key=key)
        return {"purged": pid, "version": number}

    def purge(story_id: int, paragraph_id: int, version: int | None = None, writer_key: str | None = None,
              request: gr.Request = None) -> dict:
        """Erase for good a hidden paragraph's text (version null) or one earlier version of a paragraph (creator's key only)."""
        return _purge(story_id, paragraph_id, version, writer_key, request=request)

    @guarded
    def _block_writer(lang, ip, story_id, writer_id, writer_key):
        sid = positive_id(story_id, "story_id", lang)
        text_arg(writer_id, "writer_id", lang, max_chars=64)
        key, _ = writer(writer_key, lang)
        store.block_writer(sid, writer_id, writer_key=key)
        return {"blocked": writer_id}

    def block_writer(story_id: int, writer_id: str, writer_key: str | None = None, request: gr.Request = None) -> dict:
        """Refuse every further write to the story by a writer id (a paragraph's "writer_id"; creator's key only)."""
        return _block_writer(story_id, writer_id, writer_key, request=request)

    return {
        "writer_key": new_writer_key,
        "list_stories": list_stories,
        "create_story": create_story,
        "timeline": timeline,
        "add_paragraph": add_paragraph,
        "undo_last": undo_last,
        "continue_story": continue_story,
        "branch_suggestion": branch_suggestion,
        "extend_suggestion": extend_suggestion,
        "accept": accept,
        "discard": discard,
        "edit_paragraph": edit_paragraph,
        "hide_paragraph": hide_paragraph,
        "purge": purge,
        "block_writer": block_writer,
        # memory, author's note, story cards, what the model reads (relay/ui/steering_api.py)
        **steering_endpoints(engine, store, ai_turn, limits, guarded=guarded, writer=writer, positive_id=positive_id,
                             text_arg=text_arg, refusal=Refusal, got=_got),
        # measured lab runs and sweeps (relay/ui/lab_api.py)
        **lab_endpoints(engine, limits, guarded=guarded, writer=writer, text_arg=text_arg, refusal=Refusal, got=_got),
    }
