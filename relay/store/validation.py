"""Input checks of the story store: what text, names, ids and settings may be stored.

Every public method of `StoryStore` runs these before it touches the database, so bad input
raises InvalidInput and writes nothing. `validate_text`, `validate_author` and `validate_title`
are public so the UI can check input before sending it.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import re
import secrets
import socket
import unicodedata
from datetime import datetime, timezone
from typing import Any

from relay.store.errors import InvalidInput

MAX_TEXT_CHARS = 4000  # one paragraph, in code points
MAX_AUTHOR_CHARS = 40
MAX_TITLE_CHARS = 100
MAX_JSON_CHARS = 20_000  # settings or meta, serialized
# A model-written text's meta may also hold its "tokens" record (ids, pieces, probabilities and 5 alternatives per
# id, docs/engine.md): about 150 characters a token, at most 512 tokens (max_new_tokens), so it gets this much more.
MAX_TOKENS_JSON_CHARS = 200_000
MAX_DRAFT_CHARS = MAX_TEXT_CHARS * 4  # the model's text so far may run past one paragraph's limit
MAX_PARAGRAPHS_PER_STORY = 5000  # live paragraphs a story may hold (writes and imports); a long novel is ~2,000
MAX_ID = 2**63 - 1  # the largest id a database column holds
TURN_RULES = ("alternate", "free")
KINDS = ("human", "ai")
_WRITER_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")

# Control characters (C0, DEL, C1) and surrogate code points; paragraph text may keep \t and \n.
_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Names and titles are one line: no control characters at all, no line/paragraph separators, and
# no bidi overrides or isolates, which could make one writer's name impersonate another's.
_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
    """A writer's display name in its canonical form (NFC, stripped), or InvalidInput.

    Names must look like what they are: invisible and format characters (zero-width spaces, word
    joiners, soft hyphens, direction marks) are refused, so "민지" and "민지\u200b" cannot be two names.
    """
    if isinstance(name, str):
        name = unicodedata.normalize("NFC", name)
    name = _validate_line(name, "The name", MAX_AUTHOR_CHARS)
    hidden = next((ch for ch in name if _invisible(ch)), None)
    if hidden is not None:
        raise InvalidInput(f"The name contains an invisible character (U+{ord(hidden):04X}); type the name without it.")
    return name


def name_skeleton(name: str) -> str:
    """What a name looks like: compatibility forms folded, case folded, white space collapsed.

    Two names with one skeleton ("Minji" and "ｍｉｎｊｉ", "민 지" and "민지") read as the same
    writer; the store refuses the second one in a story (relay/store/writers.py).
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if not ch.isspace() and not _invisible(ch))


def _invisible(ch: str) -> bool:
    """Format characters (Cf: zero-width, joiners, soft hyphen, direction marks), variation selectors, fillers."""
    return (unicodedata.category(ch) == "Cf" or "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"
            or ch in "\u115f\u1160\u3164\uffa0\u034f")


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
        number = operator.index(value)
    except TypeError:
        raise InvalidInput(f"{what} must be a whole number, not {type(value).__name__}.") from None
    if not -MAX_ID <= number <= MAX_ID:
        raise InvalidInput(f"{what} is far too large to be an id.")
    return number


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
    limit = MAX_JSON_CHARS + (MAX_TOKENS_JSON_CHARS if isinstance(value.get("tokens"), dict) else 0)
    if len(text) > limit:
        raise InvalidInput(f"{what} is too large: {len(text):,} characters as JSON (the limit is {limit:,}).")
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


def new_writer_key() -> str:
    """A fresh secret writer key (what a browser keeps); only its SHA-256 is ever stored."""
    return secrets.token_urlsafe(24)


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def validate_writer_id(value: Any) -> str:
    """A public writer id as writer_id_of() makes it: 16 lowercase hex digits."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{16}", value):
        raise InvalidInput("writer_id must be a writer's public id (16 hex digits).")
    return value


def validate_client_id(value: Any) -> str | None:
    """An add's idempotency key: 1-100 printable ASCII characters, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[\x21-\x7e]{1,100}", value):
        raise InvalidInput("client_id must be 1 to 100 printable ASCII characters without spaces.")
    return value


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
