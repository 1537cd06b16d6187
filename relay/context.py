"""What the model reads on a turn, block by block: the story memory, the story cards whose keys appear in the
latest paragraphs, the story window, and the author's note a chosen number of paragraphs before the end.

`assemble(...)` is the one function that builds the prompt: the engine generates from `Assembly.ids`, and the
"what the model reads" panel shows `Assembly.blocks`, whose ids joined are exactly those ids, so what a writer
sees cannot drift from what the model reads. Without memory, note or cards it gives the same ids as
relay/prompt.py's `build_prompt` (the plain story window).

Order, chosen so that a kept cache of the prompt's start still serves the next turn: memory, cards (highest
priority first), the story up to the note, the note, the rest of the story. Budget, so nothing surprises: the
memory and the note are never cut; the story keeps at least a quarter of the window, or its last paragraph
if that is longer (`Problem` names the block to shorten when it cannot); cards fill what is left, lowest
priority dropped first; the story window is cut at a paragraph, then a sentence boundary (relay/prompt.py).
Plain functions over an `encode(text) -> ids` function, like relay/prompt.py.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

from relay.prompt import (Encode, EncodeMany, Join, _check_paragraphs, fitting_start, story_budget, story_lines,
                          story_window)

__all__ = ["Card", "Steering", "Block", "Trigger", "Problem", "Assembly", "assemble", "find_triggers",
           "key_pattern", "NOTE_LABEL", "STORY_FLOOR_SHARE"]

NOTE_LABEL = "작가의 말"  # the author's note reads "[작가의 말: …]", the bracketed style peers use
STORY_FLOOR_SHARE = 0.25  # the story keeps at least this share of the window (or its last paragraph)

# What may follow a key inside the same word and still be that name: Korean particles, the copula and
# quotative endings, honorifics, and the usual pairs of them ("민지에게는", "민지와의", "민지씨가"). An
# explicit list rather than "any syllables", so "달" never fires on "달리다" or "달아나다".
PARTICLES = (
    # case and topic particles
    "가 이 는 은 를 을 의 에 에게 에게서 한테 한테서 께 께서 에서 로 으로 로서 으로서 로써 으로써 와 과 랑 이랑 하고 "
    "도 만 까지 부터 조차 마저 밖에 처럼 보다 마다 뿐 이나 나 든지 이든지 라도 이라도 "
    # calling someone, the copula, quoting
    "야 아 여 이여 이야 다 이다 였다 이었다 예요 이에요 입니다 이고 고 라고 이라고 라는 이라는 란 이란 "
    # honorifics and pairs
    "씨 님 씨가 씨는 씨를 씨의 씨에게 씨와 씨도 님이 님은 님을 님의 님께 님께서 님도 "
    "에게는 에게도 에게만 에서는 에서도 에서의 으로는 로는 으로도 로도 와의 과의 와는 과는 와도 과도 까지는 까지도 "
    "부터는 만은 만이 만을 이랑은 한테는 한테도 처럼은 보다는 에는 에도 에의"
).split()
_ENDINGS = "|".join(sorted(set(PARTICLES), key=len, reverse=True))


@dataclass(frozen=True)
class Card:
    """A story card (lorebook entry): its text enters the context when one of its keys appears in the story."""

    id: int
    name: str
    keys: tuple[str, ...]
    text: str
    priority: int = 50  # higher stays when room is short; lower-priority cards drop first
    always_on: bool = False  # in the context whether or not a key appears
    enabled: bool = True
    inside_words: bool = False  # a key also matches inside another word ("달" in "달리다")
    version: int = 1


@dataclass(frozen=True)
class Steering:
    """Everything besides the story that steers the model on one turn (all optional)."""

    memory: str = ""  # pinned at the top of what the model reads
    memory_version: int = 0
    note: str = ""  # the author's note
    note_depth: int = 3  # paragraphs before the end (0 = right before the model writes)
    note_version: int = 0
    scan_depth: int = 4  # cards look for their keys in this many latest paragraphs
    cards: tuple[Card, ...] = ()
    turn_note: str = ""  # this turn only: the writer's own note, joined to the author's note

    @classmethod
    def from_record(cls, record: Any, turn_note: str | None = None) -> Steering:
        """The store's steering record (relay.store.records.Steering) as the engine reads it."""
        cards = tuple(Card(id=c.id, name=c.name, keys=tuple(c.keys), text=c.text, priority=c.priority,
                           always_on=c.always_on, enabled=c.enabled, inside_words=c.inside_words, version=c.version)
                      for c in record.cards)
        return cls(memory=record.memory, memory_version=record.memory_version, note=record.note,
                   note_depth=record.note_depth, note_version=record.note_version, scan_depth=record.scan_depth,
                   cards=cards, turn_note=turn_note or "")


@dataclass(frozen=True)
class Trigger:
    """Why a card is in: the key that matched, the word it matched in, and the paragraph (index) it is in.

    An always-on card has key None."""

    card: Card
    key: str | None = None
    word: str | None = None
    paragraph: int | None = None


@dataclass(frozen=True)
class Block:
    """One block of what the model reads: "memory", "card", "story" or "note", with its exact ids.

    A story block covers paragraphs `paragraphs[0]..paragraphs[1]` (indexes into the story's list; the first
    one `cut` to its last sentences when it did not fit whole)."""

    kind: str
    ids: tuple[int, ...]
    trigger: Trigger | None = None
    paragraphs: tuple[int, int] | None = None
    cut: bool = False


@dataclass(frozen=True)
class Problem:
    """Memory, note and room to write leave the story less than it needs: `block` ("memory" or "note") is
    the one to shorten (or lower max_new_tokens); `need` and `left` are story tokens."""

    block: str
    need: int
    left: int


@dataclass
class Assembly:
    """What the model reads next turn: `ids` (exactly the blocks' ids joined) and how they were chosen."""

    ids: list[int]
    blocks: list[Block]
    window: int
    room: int  # max_new_tokens: what is kept for the model to write
    paragraphs: int  # how many paragraphs the story has
    dropped_cards: list[Trigger] = field(default_factory=list)  # triggered, but no room
    problem: Problem | None = None
    steering: Steering | None = None

    def tokens(self, kind: str) -> int:
        """Tokens of every block of this kind."""
        return sum(len(b.ids) for b in self.blocks if b.kind == kind)

    @property
    def story_range(self) -> tuple[int, int] | None:
        """(first, last) paragraph indexes the story window covers, or None when it holds none."""
        spans = [b.paragraphs for b in self.blocks if b.kind == "story" and b.paragraphs]
        return (spans[0][0], spans[-1][1]) if spans else None

    @property
    def cut(self) -> bool:
        """The first paragraph in the window is only partly there (its last sentences)."""
        return any(b.cut for b in self.blocks if b.kind == "story")

    @property
    def dropped_paragraphs(self) -> int:
        """Paragraphs that fell out of the window entirely (the first ones)."""
        span = self.story_range
        return span[0] if span else self.paragraphs

    def meta(self) -> dict:
        """What an AI paragraph keeps of its context: which memory, note and card versions it read."""
        s = self.steering or Steering()
        return {
            "memory_version": s.memory_version if self.tokens("memory") else None,
            "note_version": s.note_version if s.note.strip() and self.tokens("note") else None,
            "turn_note": bool(s.turn_note.strip()),
            "cards": [{"id": b.trigger.card.id, "version": b.trigger.card.version, "key": b.trigger.key}
                      for b in self.blocks if b.kind == "card"],
            "dropped_cards": [t.card.id for t in self.dropped_cards],
            "tokens": {kind: self.tokens(kind) for kind in ("memory", "card", "story", "note")} | {"room": self.room},
            "story_paragraphs": _count(self.story_range),
        }


def assemble(encode: Encode, paragraphs: list[str], window: int, max_new_tokens: int, *, bos_id: int | None,
             encode_many: EncodeMany | None = None, steering: Steering | None = None,
             lines_apart: bool = False) -> Assembly:
    """The prompt for the next turn as blocks: memory, triggered cards, story (split by the note), note.

    SettingsError when max_new_tokens leaves no room at all (relay.prompt.story_budget); a `problem` on the
    result when memory and note leave the story too little (the engine refuses to generate then).
    `lines_apart`: the tokenizer's tokens never run across a line break (relay/encoding.py
    `lines_tokenize_apart`), so the story's ids are its lines' ids put together, not its joined text's."""
    _check_paragraphs(paragraphs)
    budget = story_budget(window, max_new_tokens)
    steering = steering or Steering()
    encode_many = _memo(encode_many or (lambda texts: [encode(text) for text in texts]))
    later = _after_a_line(encode)
    lines = story_lines(paragraphs, budget + 1)  # no window holds more lines than tokens
    pieces = [line + "\n" for _, line in lines]
    memory = _ids(encode, _lines_of(steering.memory))
    note = _ids(later, _note_text(steering))
    story_room = budget - len(memory) - len(note)
    triggers = find_triggers(steering.cards, paragraphs, steering.scan_depth)
    need = _story_need(encode_many, lines, pieces, window, budget) if memory or note or triggers else 0
    problem = None
    if story_room < need:
        problem = Problem("memory" if len(memory) >= len(note) else "note", need, max(story_room, 0))
    cards, dropped = _fit_cards(later if memory else encode, later, triggers, max(story_room - need, 0))
    joiner = _line_joiner(encode, encode_many) if lines_apart else _text_joiner
    story = _story_blocks(encode if not (memory or cards) else later, later, encode_many, lines, pieces,
                          max(story_room - sum(len(b.ids) for b in cards), 0), steering.note_depth, note, joiner)
    blocks = ([Block("memory", tuple(memory))] if memory else []) + cards + story
    ids = [i for b in blocks for i in b.ids]
    if not ids:
        blocks, ids = [Block("story", (bos_id,))], [bos_id]  # an empty story: the model starts a document
    return Assembly(ids=ids, blocks=blocks, window=window, room=max_new_tokens, paragraphs=len(paragraphs),
                    dropped_cards=dropped, problem=problem, steering=steering)


# -- cards -----------------------------------------------------------------------------------------


def find_triggers(cards: tuple[Card, ...] | list[Card], paragraphs: list[str], scan_depth: int) -> list[Trigger]:
    """The enabled cards that enter the context, highest priority first (always-on before keyed at equal
    priority, then by id): always-on ones, and those with a key in the last `scan_depth` paragraphs."""
    first = max(len(paragraphs) - scan_depth, 0) if scan_depth > 0 else len(paragraphs)
    recent = [(i, _normal(paragraphs[i])) for i in range(len(paragraphs) - 1, first - 1, -1)]  # latest first
    found = []
    for card in cards:
        if not card.enabled:
            continue
        if card.always_on:
            found.append(Trigger(card))
            continue
        hit = _first_hit(card, recent)
        if hit is not None:
            found.append(hit)
    return sorted(found, key=lambda t: (-t.card.priority, not t.card.always_on, t.card.id))


def _first_hit(card: Card, recent: list[tuple[int, str]]) -> Trigger | None:
    """The key of `card` in the latest paragraph that has one (`recent`: latest first, normalized), or None."""
    keys, pattern = _card_pattern(card.keys, card.inside_words)
    if pattern is None:
        return None
    for index, text in recent:
        match = pattern.search(text)
        if match is not None:
            return Trigger(card, keys[match.lastindex - 1], match.group(0), index)
    return None


@functools.lru_cache(maxsize=4096)
def _card_pattern(keys: tuple[str, ...], inside_words: bool) -> tuple[tuple[str, ...], re.Pattern | None]:
    """A card's keys as written (normalized, empty ones left out) and the pattern finding them."""
    keys = tuple(k for k in (_normal(k) for k in keys) if k)
    return keys, key_pattern(keys, inside_words) if keys else None


@functools.lru_cache(maxsize=4096)
def key_pattern(keys: tuple[str, ...], inside_words: bool = False) -> re.Pattern:
    """A regex finding any of `keys` as a word of its own, or followed by a Korean particle or ending
    ("민지는", "민지에게"), never inside another word ("달" in "달리다") unless `inside_words`."""
    alternatives = "|".join(f"({re.escape(k)})" for k in keys)
    if inside_words:
        return re.compile(alternatives, re.IGNORECASE)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?:{_ENDINGS})?(?!\w)", re.IGNORECASE)


def _fit_cards(first_encode: Encode, encode: Encode, triggers: list[Trigger],
               room: int) -> tuple[list[Block], list[Trigger]]:
    """Cards in priority order while they fit in `room`; from the first that does not, the rest drop.
    (`first_encode` reads the first card when nothing comes before it.)"""
    blocks, used = [], 0
    for n, trigger in enumerate(triggers):
        ids = _ids(encode if blocks else first_encode, _lines_of(trigger.card.text))
        if used + len(ids) > room:
            return blocks, triggers[n:]
        if ids:
            blocks.append(Block("card", tuple(ids), trigger=trigger))
            used += len(ids)
    return blocks, []


# -- the story and the note -----------------------------------------------------------------------


def _story_need(encode_many: EncodeMany, lines, pieces: list[str], window: int, budget: int) -> int:
    """Tokens the story must keep: a quarter of the window or its last paragraph (whichever is more, at most the
    whole budget), and never more than the story has."""
    if not pieces:
        return 0
    last = lines[-1][0]
    last_lines = [p for (i, _), p in zip(lines, pieces) if i == last]
    floor = min(budget, max(int(window * STORY_FLOOR_SHARE), sum(len(ids) for ids in encode_many(last_lines))))
    total, end = 0, len(pieces)
    while end > 0 and total < floor:
        start = max(0, end - 32)
        total += sum(len(ids) for ids in encode_many(pieces[start:end]))
        end = start
    return min(floor, total)


def _story_blocks(encode: Encode, later: Encode, encode_many: EncodeMany, lines, pieces: list[str], room: int,
                  depth: int, note: list[int], joiner) -> list[Block]:
    """The story window in `room` tokens, with the note (if any) `depth` paragraphs before its end.

    `encode` reads the story's first part (the prompt's start when nothing comes before it), `later` what
    follows a line break; `joiner(start)` joins lines read as one text whose first line `start` reads. A note
    inside the window splits it in two halves, each tokenized on its own."""
    cut_at = _note_position(lines, depth) if note else len(lines)
    note_block = [Block("note", tuple(note))] if note else []
    if 0 < cut_at < len(lines):
        first = fitting_start(encode_many, pieces, room) if room > 0 else len(lines)
        while first < cut_at:
            before, after = joiner(encode)(pieces[first:cut_at]), joiner(later)(pieces[cut_at:])
            if len(before) + len(after) <= room:
                return _story(before, lines, first, cut_at) + note_block + _story(after, lines, cut_at, len(lines))
            first += 1  # the two halves tokenize a little longer than the joined text: one line less
    if cut_at >= len(lines):  # the note (if any) right before the model writes
        window = story_window(encode, encode_many, [line for _, line in lines], room, joiner(encode))
        return _story(window.ids, lines, window.first, len(lines), window.cut) + note_block
    window = story_window(later, encode_many, [line for _, line in lines[cut_at:]], room,  # the note on top
                          joiner(later))
    return note_block + _story(window.ids, lines, cut_at + window.first, len(lines), window.cut)


def _story(ids: list[int], lines, first: int, end: int, cut: bool = False) -> list[Block]:
    """A story block for lines[first:end] (nothing when it holds no ids)."""
    if not ids or first >= end:
        return []
    partial = cut or (first > 0 and lines[first - 1][0] == lines[first][0])  # a paragraph's later lines only
    return [Block("story", tuple(ids), paragraphs=(lines[first][0], lines[end - 1][0]), cut=partial)]


def _note_position(lines, depth: int) -> int:
    """The index of the first line of the paragraph `depth` paragraphs before the end (len(lines) for 0)."""
    if depth <= 0 or not lines:
        return len(lines)
    starts = [n for n, (i, _) in enumerate(lines) if n == 0 or lines[n - 1][0] != i]
    return starts[-depth] if depth <= len(starts) else 0


def _note_text(steering: Steering) -> str:
    """The author's note and this turn's note, each as "[작가의 말: …]" on a line of its own."""
    notes = [" ".join(_lines_of(text).split("\n")).strip() for text in (steering.note, steering.turn_note)]
    return "".join(f"[{NOTE_LABEL}: {text}]\n" for text in notes if text)


# -- small helpers --------------------------------------------------------------------------------


def _lines_of(text: str) -> str:
    """Text as the model reads a block: its non-empty lines, stripped, each ending in a line break."""
    lines = [line.strip() for line in (text or "").split("\n")]
    return "".join(line + "\n" for line in lines if line)


def _ids(encode: Encode, text: str) -> list[int]:
    return encode(text) if text else []


def _after_a_line(encode: Encode) -> Encode:
    """Tokenize text as it reads after a line break, not at the start of a document: a tokenizer that marks
    a document's first word (Metaspace's "▁") would mark each block's first word otherwise."""
    newline = encode("\n")

    def later(text: str) -> list[int]:
        ids = encode("\n" + text)
        return ids[1:] if len(newline) == 1 and ids[:1] == newline else encode(text)

    return later


def _text_joiner(start: Encode) -> Join:
    """Lines read as one text: the joined text, tokenized whole."""
    return lambda pieces: start("".join(pieces))


def _line_joiner(encode: Encode, encode_many: EncodeMany) -> Callable[[Encode], Join]:
    """Lines read as one text, for a tokenizer whose tokens never run across a line break: the first line's ids
    as `start` reads it, then each later line's as it reads after a line break, all remembered across turns
    (relay/encoding.py), so a next turn tokenizes only its new lines instead of the whole window again."""
    newline = len(encode("\n"))

    def joiner(start: Encode) -> Join:
        def join(pieces: list[str]) -> list[int]:
            if not pieces:
                return start("")
            ids = list(start(pieces[0]))
            for after in encode_many(["\n" + piece for piece in pieces[1:]]):
                ids += after[newline:]
            return ids
        return join

    return joiner


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text or "").strip()


def _count(span: tuple[int, int] | None) -> int:
    return span[1] - span[0] + 1 if span else 0


def _memo(encode_many: EncodeMany) -> EncodeMany:
    """`encode_many` remembering each text's ids for one assembly (the floor and the window read the same lines)."""
    seen: dict[str, list[int]] = {}

    def encode_known(texts: list[str]) -> list[list[int]]:
        missing = [t for t in dict.fromkeys(texts) if t not in seen]
        if missing:
            seen.update(zip(missing, encode_many(missing)))
        return [seen[t] for t in texts]

    return encode_known
