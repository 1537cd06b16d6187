"""The engine's tokenizer calls, remembered across turns.

Every turn assembles its prompt from the story's lines (relay/context.py): each line is tokenized to find the
window, then the window's text as a whole. A story's lines barely change between turns, and a retry or a swipe
reads the very same window, so the ids of recent texts are kept (least recently used given up first): a next
turn tokenizes its new paragraph and the joined window, a retry nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MEMO_TEXTS = 4096  # texts whose ids are kept: a few long stories' lines and windows


class Encoder:
    """`tokenizer`'s ids for texts (no special tokens), the last MEMO_TEXTS remembered; safe across threads."""

    def __init__(self, tokenizer, size: int = MEMO_TEXTS):
        self.tokenizer = tokenizer
        self.size = size
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
