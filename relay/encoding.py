"""The engine's tokenizer calls, remembered across turns.

Every turn assembles its prompt from the story's lines (relay/context.py): each line is tokenized to find the
window, then the window's text as a whole. A story's lines barely change between turns, and a retry or a swipe
reads the very same window, so the ids of recent texts are kept (least recently used given up first): a retry
tokenizes nothing. With a tokenizer whose tokens never run across a line break (`lines_tokenize_apart`, true
for KoGPT-2), the window's ids are its lines' ids put together, so a next turn tokenizes only its new
paragraph; otherwise the joined window is tokenized again at each turn.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

MEMO_TEXTS = 4096  # texts whose ids are kept: a few long stories' lines and windows


class Encoder:
    """`tokenizer`'s ids for texts (no special tokens), the last MEMO_TEXTS remembered; safe across threads."""

    def __init__(self, tokenizer, size: int = MEMO_TEXTS):
        self.tokenizer = tokenizer
        self.size = size
        self.lines_apart = lines_tokenize_apart(tokenizer)
        self._known: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def one(self, text: str) -> list[int]:
        return self.many([text])[0]

    def many(self, texts: list[str]) -> list[list[int]]:
        with self._lock:
            found = {text: self._known.get(text) for text in texts}
            for text, ids in found.items():
                if ids is not None:
                    self._known.move_to_end(text)
        missing = [text for text, ids in found.items() if ids is None]
        if missing:  # one call of the tokenizer for all of them
            new = dict(zip(missing, map(tuple, self.tokenizer(missing, add_special_tokens=False)["input_ids"])))
            found.update(new)
            with self._lock:
                self._known.update(new)
                while len(self._known) > self.size:
                    self._known.popitem(last=False)
        return [list(found[text]) for text in texts]


def lines_tokenize_apart(tokenizer) -> bool:
    """Whether a text of lines tokenizes as its lines do: the first line as it reads alone, each later one as it
    reads after a line break (the ids of "\n" + line without those of "\n" alone).

    Read from the tokenizer's parts, not assumed: a normalizer that changes characters one by one, a Metaspace
    pre-tokenizer (it splits at spaces, never at a line break), a BPE model without dropout, and no token holding
    a line break anywhere but as its last character, so no merge joins a line break to what follows it and the
    text after one is tokenized on its own. Then checked on sample lines.
    KoGPT-2 passes (tests/test_encoding.py checks every line of the shared corpus); a tokenizer that fails is
    simply asked for the whole joined text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "BPE" or backend.model.dropout is not None:
        return False
    if not (_state(backend.pre_tokenizer, "pretokenizers", _splits_at_spaces)
            and _state(backend.normalizer, "normalizers", _keeps_line_breaks)):
        return False
    if any("\n" in token[:-1] for token in backend.get_vocab(with_added_tokens=True)):
        return False
    encode = lambda text: backend.encode(text, add_special_tokens=False).ids  # noqa: E731
    newline = encode("\n")
    after = [encode("\n" + line) for line in _SAMPLE_LINES[1:]]
    apart = encode(_SAMPLE_LINES[0]) + [i for ids in after for i in ids[len(newline):]]
    return encode("".join(_SAMPLE_LINES)) == apart and all(ids[:len(newline)] == newline for ids in after)


_SAMPLE_LINES = ["비가 그치자 골목은 다시 조용해졌다.\n", "\"정말 올 거예요?\" 그녀가 물었다.\n", "ABC 123 hello world!\n",
                 "ㅋㅋㅋ ^^ 나는 웃었다\n"]


def _splits_at_spaces(part: dict) -> bool:
    return part.get("type") == "Metaspace"


def _keeps_line_breaks(part: dict) -> bool:
    """A normalizer step that maps characters one by one and never makes or removes a line break (BertNormalizer's
    clean_text turns line breaks into spaces)."""
    kind = part.get("type")
    return kind in ("NFC", "NFKC") or (kind == "BertNormalizer" and not part.get("clean_text", True))


def _state(component, sequence_key: str, allowed) -> bool:
    """Whether a tokenizer component (None: absent), or each step of its Sequence, is `allowed`."""
    if component is None:
        return sequence_key == "normalizers"
    state = json.loads(component.__getstate__())
    steps = state[sequence_key] if state.get("type") == "Sequence" else [state]
    return bool(steps) and all(allowed(step) for step in steps)
