"""The engine's remembered tokenizer calls (relay/encoding.py) give exactly the tokenizer's ids."""

from __future__ import annotations

from relay.encoding import Encoder
from relay.engine import load_tokenizer


class Counting:
    """A tokenizer that counts the texts it is asked to tokenize."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, 0

    def __call__(self, texts, **options):
        self.texts += len(texts)
        return self.tokenizer(texts, **options)


def test_remembered_ids_are_the_tokenizers_and_a_retry_tokenizes_nothing_again(kogpt2_dir):
    tokenizer = load_tokenizer(kogpt2_dir)
    counting = Counting(tokenizer)
    encoder = Encoder(counting, size=3)
    lines = ["비가 그치자 골목은 다시 조용해졌다.\n", "나는 우산을 접고 그 옆에 앉았다.\n", "\n"]
    expected = [tokenizer(line, add_special_tokens=False)["input_ids"] for line in lines]
    assert encoder.many(lines) == expected and counting.texts == 3
    first = encoder.many(lines)
    assert first == expected and counting.texts == 3  # the same window again: no tokenizer call
    first[0].append(7)  # a caller changing its list changes nothing remembered
    assert encoder.one(lines[0]) == expected[0]
    assert encoder.one("그녀가 웃었다.") == tokenizer("그녀가 웃었다.", add_special_tokens=False)["input_ids"]
    assert counting.texts == 4
    assert encoder.many(lines) == expected and counting.texts == 5  # size 3: the oldest line was given up
