"""Turning generated ids into the text a writer sees, and deciding where a candidate stops.

`StreamDecoder` decodes one sequence's new ids append-only (keeping the space before the first word and
KoGPT-2's emoticon tokens); `Track` follows one candidate: cleans its text, stops it at a paragraph or
sentence end, says what is settled enough to show and trims the final text, and keeps what each id added
(`token_record`: the candidate's ids, the piece of its final text each added, and their recorded
probabilities). `hidden_ids`, `paragraph_end_ids` and `display_pieces` read the vocabulary once for the
engine: ids never written or shown, ids that end a paragraph, each id's text as a writer sees it. The rules
are described in docs/engine.md.
"""

from __future__ import annotations

import re

from relay.settings import SamplingSettings

# A sentence ends at . ? ! … 。 (possibly repeated), optionally followed by closing quotes or brackets.
SENTENCE_END = r"[.?!…。]+[\"'”’」』)\]]*"
_CONFIRMED_END = re.compile(SENTENCE_END + r"(?=\s)")  # followed by a space or newline: surely an end
_FINAL_END = re.compile(SENTENCE_END + r"(?=\s|$)")  # at the very end of a finished text, too
# Not shown until more text follows: trailing spaces, half-decoded characters, jamo a next one may join.
_UNSETTLED_TAIL = re.compile(r"[\s\ufffd\u1100-\u11ff\u3131-\u318e]+$")
_LINE_BREAKS = re.compile(r"\s*\n\s*")
_MARKUP_TOKEN = re.compile(r"^<[^<>\s]+>$")  # <unused0>, <d>, <usr>: vocabulary that is not prose
# KoGPT-2's NFKC normalizer turns compatibility jamo (ㅋㅋ) into conjoining jamo (ᄏᄏ); turn lone ones back.
# Jamo inside an old-Hangul cluster (initial followed by a vowel) are left alone.
_JAMO_BACK = str.maketrans(
    {**{0x1100 + i: c for i, c in enumerate("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ")},
     **{0x1161 + i: c for i, c in enumerate("ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ")}})
_LONE_JAMO = re.compile(r"(?<![\u1100-\u115f\ua960-\ua97f])[\u1161-\u1175]|[\u1100-\u1112](?![\u1160-\u11ff\ud7b0-\ud7ff])")


def readable(text: str) -> str:
    """Text as people typed it: lone conjoining jamo back to compatibility jamo."""
    return _LONE_JAMO.sub(lambda m: m.group().translate(_JAMO_BACK), text)


class StreamDecoder:
    """Turns one sequence's new token ids into text, append-only and exactly.

    Decoding only the new ids loses the Metaspace space before the first word, so it decodes the prompt's
    last tokens plus the new ones and keeps the difference. Markup and special tokens are dropped by id
    (not with skip_special_tokens, which would also delete KoGPT-2's emoticon tokens). Conjoining jamo that
    the NFKC normalizer made of ㅋㅋ are turned back into the compatibility jamo people type.
    """

    def __init__(self, tokenizer, prefix_ids: list[int], drop_ids: frozenset[int]):
        self._decode = text_decoder(tokenizer)
        self._drop = drop_ids
        self._prefix = [i for i in prefix_ids[-4:] if i not in drop_ids]
        self._prefix_text = self._decode(self._prefix) if self._prefix else ""
        self.ids: list[int] = []
        self.text = ""

    def add(self, token_id: int) -> str:
        """Append one generated id; returns the whole continuation text so far (raw, not yet cleaned)."""
        if token_id in self._drop:
            return self.text
        self.ids.append(token_id)
        full = self._decode(self._prefix + self.ids)
        if full.startswith(self._prefix_text):
            text = full[len(self._prefix_text):]
        else:  # a decoder that rewrites earlier text; fall back to the new ids alone
            text = self._decode(self.ids)
        self.text = readable(text)
        return self.text


def text_decoder(tokenizer):
    """A fast `ids -> str` that keeps every token (emoticons included) and never cleans up spaces."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return lambda ids: backend.decode(ids, skip_special_tokens=False)
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


class Track:
    """Follows one candidate while it is generated: decodes, cleans, finds where to stop and what is safe to show."""

    def __init__(self, decoder: StreamDecoder, settings: SamplingSettings, eos_id: int | None):
        self.decoder = decoder
        self.settings = settings
        self.eos_id = eos_id
        self.count = 0  # generated ids, including the one that ended the paragraph
        self.reason: str | None = None  # "paragraph" | "sentence" once a boundary stopped it
        self.clean = ""  # cleaned text so far (cut at the boundary once stopped)
        self._floor = 0  # a sentence stop must end after this offset (min_new_tokens)
        self.ids: list[int] = []  # every id it took, the one that ended it included
        self.raw_ends: list[int] = []  # where the decoded (raw) text ended after each of those ids
        self.probs: list[tuple] = []  # (p, top ids, top p) per id taken, when the backend recorded them

    def take(self, token_id: int, probs: tuple | None = None) -> bool:
        """`feed`, keeping the id's recorded probabilities (p, top ids, top p) when it is part of the candidate."""
        if self.reason is None and probs is not None:
            self.probs.append(probs)
        return self.feed(token_id)

    def feed(self, token_id: int) -> bool:
        """Take the next generated id; True once this candidate has reached its stopping boundary."""
        if self.reason is not None:
            return True
        stop_at = self.settings.stop_at
        if self.count < self.settings.min_new_tokens:
            self._floor = len(self.clean)
        self.count += 1
        self.ids.append(token_id)
        if token_id == self.eos_id and stop_at != "length":
            self.raw_ends.append(len(self.decoder.text))
            self.reason = "paragraph"
            return True
        raw = self.decoder.add(token_id)
        self.raw_ends.append(len(raw))
        text = raw.lstrip()
        if stop_at == "length":
            self.clean = _LINE_BREAKS.sub("\n", text)
            return False
        newline = text.find("\n")
        if newline >= 0:
            self.clean, self.reason = text[:newline], "paragraph"
            return True
        self.clean = text
        if stop_at == "sentence" and self.count >= self.settings.min_new_tokens:
            for match in _CONFIRMED_END.finditer(text, self._floor):
                self.clean, self.reason = text[:match.end()], "sentence"
                return True
        return False

    def shown(self) -> str:
        """The text that can be shown now: settled text only (no half character or trailing space).

        Shown text is streamed token by token even when `trim_incomplete` is on, so a writer watches the
        paragraph appear word by word; if the turn is then cut by the length limit or a cancel, the final
        text (`final`) drops the unfinished last sentence and is a prefix of what was shown.
        """
        if self.reason is not None:
            return self.final(self.reason)
        return _UNSETTLED_TAIL.sub("", self.clean)

    def final(self, reason: str) -> str:
        """The finished text for a candidate that stopped for `reason`."""
        text = self.clean.rstrip().rstrip("\ufffd").rstrip()
        if self.settings.trim_incomplete and reason in ("length", "cancel"):
            ends = [m.end() for m in _FINAL_END.finditer(text)] + [m.start() for m in re.finditer("\n", text)]
            if ends:  # with no complete sentence at all, keep what there is rather than nothing
                text = text[:max(ends)].rstrip()
        return text


def token_pieces(track: Track, final: str) -> list[str]:
    """The piece of `final` (the candidate's finished text) each id the track took added: "".join of them is
    `final` exactly; an id whose text was cut (stripped, past the boundary, trimmed) or hidden adds ""."""
    at = _clean_offsets(track.decoder.text, track.settings.stop_at)
    pieces, last = [], 0
    for end in track.raw_ends:
        boundary = min(max(last, at(end)), len(final))
        pieces.append(final[last:boundary])
        last = boundary
    if pieces and last < len(final):
        pieces[-1] += final[last:]
    return pieces


def _clean_offsets(raw: str, stop_at: str):
    """Maps an offset in a candidate's raw decoded text to the offset in its cleaned text (`Track.feed`: leading
    space stripped; with stop_at "length", each run of line breaks and the spaces around them made one newline)."""
    start = len(raw) - len(raw.lstrip())
    breaks = [(m.start(), m.end()) for m in _LINE_BREAKS.finditer(raw, start)] if stop_at == "length" else []

    def at(offset: int) -> int:
        cleaned, shift = offset - start, 0
        for begin, end in breaks:
            if offset <= begin:
                break
            if offset < end:
                return begin - start - shift + 1
            shift += end - begin - 1
        return max(0, cleaned - shift)

    return at


RECORD_VERSION = 1


def token_record(track: Track, final: str, display: list[str], head: dict | None = None) -> dict | None:
    """A candidate's `tokens` meta (docs/engine.md): its ids, the piece of `final` each added, the recorded
    probability of each and the likeliest ids at each position (id, display piece, p), rounded to 4 digits.

    `head` gives the p and top of the first positions when they were recorded elsewhere (a branch's prefix:
    the original candidate's entries). None when no position has a recorded probability."""
    head_p, head_top = list((head or {}).get("p") or []), list((head or {}).get("top") or [])
    forced = len(track.ids) - len(track.probs)  # leading ids the backend did not pick (a branch's prefix)
    if not track.probs and not head_p:
        return None
    p, top = [], []
    for index in range(len(track.ids)):
        if index < forced:
            p.append(head_p[index] if index < len(head_p) else None)
            top.append(head_top[index] if index < len(head_top) else [])
            continue
        chosen, ids, probs = track.probs[index - forced]
        p.append(_round(chosen) if chosen is not None else None)  # None: a server that sent no log-probabilities
        top.append([[i, display[i] if 0 <= i < len(display) else "", _round(q)] for i, q in zip(ids, probs) if q > 0])
    return {"v": RECORD_VERSION, "ids": list(track.ids), "text": token_pieces(track, final), "p": p, "top": top}


def _round(p: float) -> float:
    """4 significant digits: enough to colour and compare, a third of the size in JSON."""
    return float(f"{p:.4g}")


def display_pieces(tokenizer, count: int) -> list[str]:
    """Each id's text as a writer sees it in a list of alternatives: a word-starting token with its leading
    space, markup as written, lone jamo as typed."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(count)))
    return [readable(str(token).replace("\u2581", " ")) if token is not None else "" for token in tokens]


def hidden_ids(tokenizer, vocab_size: int, pad_id: int | None) -> frozenset[int]:
    """Ids never generated (except </s>, which ends a paragraph) and never shown: specials, markup, padding."""
    specials = set(tokenizer.all_special_ids)
    markup = {i for i, token in tokenizer.added_tokens_decoder.items() if _MARKUP_TOKEN.match(str(token))}
    return frozenset(i for i in specials | markup | {pad_id} if i is not None and i < vocab_size)


def paragraph_end_ids(tokenizer, vocab_size: int, hidden: frozenset[int], eos_id: int | None) -> list[int]:
    """Every shown id whose text holds a newline, then </s>: the ids that end a paragraph."""
    texts = _decode_each(tokenizer, min(vocab_size, len(tokenizer)))
    newline_ids = [i for i, text in enumerate(texts) if "\n" in text and i not in hidden]
    return newline_ids + [i for i in [eos_id] if i is not None]


def without_paragraph_end(tokenizer, kept: list[int], end_id: int) -> list[int]:
    """The ids that write what paragraph-end `end_id` wrote after `kept`, less its newline: KoGPT-2 has ~1,500 ids
    such as "▁열었다.\n" that end a sentence and the paragraph at once, and continuing the paragraph must keep
    "열었다.". [] when the id wrote nothing else (a bare newline, </s>) or its text cannot be spelled again exactly.
    The piece is split by the tokenizer's own BPE model, not re-encoded as text, so no word-starting space is added.
    """
    token = tokenizer.convert_ids_to_tokens(end_id)
    piece = str(token).rstrip("\n") if token is not None else ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not piece.strip("\u2581 ") or backend is None or end_id in tokenizer.added_tokens_decoder:
        return []
    ids = [tokenizer.convert_tokens_to_ids(t.value) for t in backend.model.tokenize(piece)]
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        return []
    wanted = tokenizer.decode(kept + [end_id], skip_special_tokens=False).rstrip("\n")
    return ids if tokenizer.decode(kept + ids, skip_special_tokens=False) == wanted else []


def _decode_each(tokenizer, count: int) -> list[str]:
    """The text of every single token id (to find the ones that contain a newline)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.decode_batch([[i] for i in range(count)], skip_special_tokens=False)
    return [tokenizer.decode([i], skip_special_tokens=False) for i in range(count)]
