"""The engine's remembered tokenizer calls (relay/encoding.py) give exactly the tokenizer's ids, and a story's
lines put together give exactly the ids of its joined text."""

from __future__ import annotations

import json

from relay.context import assemble
from relay.encoding import Encoder, lines_tokenize_apart
from relay.engine import load_tokenizer
from relay.tiny import train_tokenizer


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


def test_kogpt2_s_tokens_never_run_across_a_line_break_so_every_corpus_line_joins_as_the_text_reads(
        kogpt2_dir, corpus_dir):
    tokenizer = load_tokenizer(kogpt2_dir)
    assert lines_tokenize_apart(tokenizer)
    backend = tokenizer.backend_tokenizer
    lines = [line.strip() + "\n" for novel in sorted(corpus_dir.glob("*.txt"))
             for line in novel.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) > 10_000

    def encode(texts):
        return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]

    alone, after = encode(lines), encode(["\n" + line for line in lines])
    newline = len(encode(["\n"])[0])
    windows = range(0, len(lines), 12)  # every line, in windows of 12 as a story's lines come
    joined = encode(["".join(lines[start:start + 12]) for start in windows])
    for start, expected in zip(windows, joined):
        apart = alone[start] + [i for line in after[start + 1:start + 12] for i in line[newline:]]
        assert apart == expected, lines[start:start + 12]


def test_a_tokenizer_with_a_token_across_a_line_break_is_asked_for_the_whole_window():
    tokenizer = _with_token_across_a_line_break(train_tokenizer(), "\n비")
    encoder = Encoder(tokenizer)
    assert not encoder.lines_apart
    story = ["골목 끝에서 누군가 휘파람을 불었다.", "비가 그친 저녁이었다.", "비가 다시 내렸다."]
    joined = encoder.one("".join(line + "\n" for line in story))
    assert 0 < joined.count(tokenizer.convert_tokens_to_ids("\n비"))

    def read(lines_apart):
        return assemble(encoder.one, story, 256, 40, bos_id=1, encode_many=encoder.many,
                        lines_apart=lines_apart).ids

    assert read(encoder.lines_apart) == joined
    assert read(True) != joined  # what the check keeps the engine from doing with this tokenizer


def _with_token_across_a_line_break(tokenizer, token: str):
    """`tokenizer` with one more token, `token` (a line break and what follows), merged before anything else."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from relay.tiny import KOGPT2_SPECIAL

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    model["vocab"][token] = max(model["vocab"].values()) + 1
    pair = [token[0], token[1:]]
    model["merges"].insert(0, pair if model["merges"] and isinstance(model["merges"][0], list) else " ".join(pair))
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), **KOGPT2_SPECIAL)
