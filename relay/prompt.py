"""The prompt: which part of the story the model reads, as token ids.

`build_prompt` takes the story's paragraphs and keeps the most recent text that fits in the model's window
beside `max_new_tokens`: whole lines (paragraphs) first; if even the last one is too long, its last
sentences; failing that, its last tokens. An empty story is the bos id alone. The engine generates from
these ids and `Engine.context_text` shows exactly their text, so what a writer sees is what the model reads.
Plain functions over an `encode(text) -> ids` function; no model or tokenizer object is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from relay.decoding import SENTENCE_END
from relay.settings import SettingsError

__all__ = ["build_prompt", "story_budget", "story_window", "story_lines", "latest_that_fits", "fitting_start", "Window",
           "MIN_PROMPT_TOKENS", "Join"]

MIN_PROMPT_TOKENS = 32  # the window must leave at least this much story for the model to read
_SENTENCE_START = re.compile(SENTENCE_END + r"\s+")  # .end() is where the next sentence begins

Encode = Callable[[str], list[int]]
EncodeMany = Callable[[list[str]], list[list[int]]]
Join = Callable[[list[str]], list[int]]  # the ids of some pieces of text read as one text


def build_prompt(encode: Encode, paragraphs: list[str], window: int, max_new_tokens: int, *, bos_id: int | None,
                 encode_many: EncodeMany | None = None) -> list[int]:
    """The most recent story that fits beside `max_new_tokens`, cut at a paragraph, else sentence, else token.

    `encode_many` (a batch of texts at once) is only faster; by default `encode` is called per text.
    relay/context.py's `assemble` reads the story through `story_window` too, with memory, cards and a note."""
    _check_paragraphs(paragraphs)
    budget = story_budget(window, max_new_tokens)
    encode_many = encode_many or (lambda texts: [encode(text) for text in texts])
    lines = [line for _, line in story_lines(paragraphs, budget + 1)]
    if not lines:
        return [bos_id]  # an empty story: the model starts a document
    return story_window(encode, encode_many, lines, budget).ids


@dataclass(frozen=True)
class Window:
    """The part of the story's lines the model reads: from line `first` on; `cut` when that line keeps only
    its last sentences (or tokens) because not even it fit whole."""

    first: int
    ids: list[int]
    cut: bool = False


def story_window(encode: Encode, encode_many: EncodeMany, lines: list[str], budget: int,
                 join_lines: Join | None = None) -> Window:
    """The latest whole lines that fit in `budget` tokens; else the last line's last sentences; else its last tokens.

    Lines are the story's non-empty lines, stripped (see `story_lines`). An empty window when `budget` is 0.
    `join_lines` gives the ids of some lines (each with its line break) read as one text, the first read by
    `encode`; by default that text is tokenized whole."""
    if budget <= 0 or not lines:
        return Window(len(lines), [])
    found = latest_that_fits(encode, encode_many, [line + "\n" for line in lines], budget, join_lines)
    if found is not None:
        return Window(*found)
    found = latest_that_fits(encode, encode_many, _sentences(lines[-1]), budget)
    if found is not None:
        return Window(len(lines) - 1, found[1], cut=True)
    return Window(len(lines) - 1, encode(lines[-1] + "\n")[-budget:], cut=True)


def story_budget(window: int, max_new_tokens: int) -> int:
    """How many tokens of story fit in a `window`-token model beside `max_new_tokens`; SettingsError if too few."""
    budget = window - max_new_tokens
    if budget < MIN_PROMPT_TOKENS:
        raise SettingsError(
            "max_new_tokens",
            f"최대 길이가 모델 창({window}토큰)에 비해 너무 깁니다 / max_new_tokens={max_new_tokens} "
            f"leaves no room for the story in this model's {window}-token window; use at most "
            f"{window - MIN_PROMPT_TOKENS}.")
    return budget


def fitting_start(encode_many: EncodeMany, pieces: list[str], budget: int) -> int:
    """Index of the earliest piece such that pieces[i:] fit in `budget` tokens; tokenizes only from the end.

    Each batch is as many pieces as probably hold the tokens still to fill, by the characters per token seen so
    far (a little more), so a window is usually found in one or two batches, never tokenizing much of the rest."""
    total, chars, first, per_token = 0, 0, len(pieces), CHARS_PER_TOKEN
    while first > 0:
        batch = pieces[max(0, first - _likely_pieces(pieces, first, budget - total, per_token)):first]
        for piece, ids in zip(reversed(batch), reversed(encode_many(batch))):
            if total + len(ids) > budget:
                return first
            total += len(ids)
            chars += len(piece)
            first -= 1
        per_token = chars / total * 1.15 if total else per_token * 2
    return first


CHARS_PER_TOKEN = 2.6  # a first guess, a little above Korean prose's ~2.2 characters per KoGPT-2 token


def _likely_pieces(pieces: list[str], end: int, tokens: int, per_token: float) -> int:
    """How many pieces before `end` probably hold `tokens` tokens at `per_token` characters each (at least 8)."""
    chars, count = 0, 0
    for index in range(end - 1, -1, -1):
        if chars > tokens * per_token:
            break
        chars += len(pieces[index])
        count += 1
    return max(count, 8)


def _check_paragraphs(paragraphs: list[str]) -> None:
    if isinstance(paragraphs, str) or not all(isinstance(p, str) for p in paragraphs):
        raise SettingsError("paragraphs", "paragraphs must be a list of str")


def story_lines(paragraphs: list[str], limit: int | None = None) -> list[tuple[int, str]]:
    """(paragraph index, line) for the non-empty lines of the story, stripped, in order: a paragraph with line
    breaks counts as several. With `limit`, only the last `limit` lines (a window of n tokens never holds more
    than n lines, so a long story is read from its end only)."""
    out: list[tuple[int, str]] = []
    for i in range(len(paragraphs) - 1, -1, -1):
        text = paragraphs[i]
        if "\n" in text:
            out += reversed([(i, line) for line in (part.strip() for part in text.split("\n")) if line])
        elif text.strip():
            out.append((i, text.strip()))
        if limit is not None and len(out) >= limit:
            break
    out.reverse()
    return out[-limit:] if limit is not None else out


def _sentences(line: str) -> list[str]:
    """Cut `line` before each sentence start; the last piece gets the line break."""
    starts = [0] + [m.end() for m in _SENTENCE_START.finditer(line)]
    pieces = [line[a:b] for a, b in zip(starts, starts[1:] + [len(line)])]
    pieces[-1] += "\n"
    return pieces


def latest_that_fits(encode: Encode, encode_many: EncodeMany, pieces: list[str], budget: int,
                     join: Join | None = None) -> tuple[int, list[int]] | None:
    """(index of the first piece kept, the ids of the longest tail of `pieces` joined) within `budget`, or None
    when not even the last piece fits.

    Pieces are counted one by one first; the joined text can tokenize slightly differently, so it is checked and
    one more piece dropped while it is too long. `join(tail)`: the tail's ids read as one text (by default
    `encode` of the joined text)."""
    first = fitting_start(encode_many, pieces, budget)
    while first < len(pieces):
        ids = join(pieces[first:]) if join is not None else encode("".join(pieces[first:]))
        if len(ids) <= budget:
            return first, ids
        first += 1
    return None
