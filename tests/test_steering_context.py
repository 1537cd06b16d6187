"""What the model reads, block by block (relay/context.py): memory on top, story cards found by their keys
(Korean particles included, never inside another word), the author's note at its depth, and budgets that
drop low-priority cards first and tell the writer which block to shorten instead of cutting it.

Plain tokenizers, no model: the tiny test tokenizer, and the real KoGPT-2 tokenizer where ../shared has it.
"""

from __future__ import annotations

import pytest

from relay.context import Card, Steering, assemble, find_triggers
from relay.prompt import build_prompt
from relay.settings import SettingsError
from relay.tiny import train_tokenizer

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
    "\"정말 올 거라고 생각했어요?\" 그녀가 웃으며 물었다.",
    "나는 대답 대신 주머니 속의 편지를 만지작거렸다.",
    "기차는 새벽 다섯 시에 떠난다고 했다.",
    "우리에게 남은 시간은 많지 않았다.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


@pytest.fixture(scope="module")
def kogpt2(kogpt2_dir):
    from transformers import PreTrainedTokenizerFast

    from relay.tiny import KOGPT2_SPECIAL

    return PreTrainedTokenizerFast(tokenizer_file=str(kogpt2_dir / "tokenizer.json"), **KOGPT2_SPECIAL)


def encoder(tokenizer):
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def build(tokenizer, paragraphs, steering=None, window=256, room=40, lines_apart=False):
    return assemble(encoder(tokenizer), paragraphs, window, room, bos_id=tokenizer.bos_token_id, steering=steering,
                    lines_apart=lines_apart)


def text_of(tokenizer, ids) -> str:
    return tokenizer.backend_tokenizer.decode(list(ids), skip_special_tokens=False)


def card(id, keys, text="카드의 글.", **changes) -> Card:
    return Card(id=id, name=f"카드{id}", keys=tuple(keys), text=text, **changes)


def keyed(keys, paragraph: str, **changes) -> bool:
    return bool(find_triggers([card(1, keys, **changes)], [paragraph], scan_depth=4))


# -- story cards: which words trigger them ------------------------------------------------------


@pytest.mark.parametrize("word", ["민지가", "민지는", "민지의", "민지를", "민지에게", "민지와", "민지도", "민지야", "민지",
                                  "민지에게는", "민지와의", "민지씨가", "민지한테", "민지였다", "민지라고", "민지처럼"])
def test_a_name_with_a_korean_particle_triggers_its_card(word):
    assert keyed(["민지"], f"그날 밤 {word} 골목 끝에서 멈춰 섰다.")
    assert keyed(["민지"], f"\"{word}!\"")  # at the start of a quote, before punctuation


@pytest.mark.parametrize("sentence", ["그는 골목을 달리다 넘어졌다.", "아이가 달아나다 멈췄다.", "보름달이 떴다.",
                                      "달빛이 창으로 들어왔다.", "달래는 목소리였다."])
def test_a_key_inside_another_word_does_not_trigger(sentence):
    assert not keyed(["달"], sentence)


def test_match_inside_words_lets_a_key_fire_inside_another_word():
    assert keyed(["달"], "그는 골목을 달리다 넘어졌다.", inside_words=True)
    assert keyed(["달"], "달이 떴다.") and keyed(["달"], "달은 밝았다.") and keyed(["달"], "달도 숨었다.")


def test_latin_keys_ignore_case_and_a_name_inside_a_longer_name_does_not_count():
    assert keyed(["Mina"], "그때 MINA가 돌아봤다.")
    assert not keyed(["민지"], "김민지는 웃었다.")  # a different word; add "김민지" as a key to match it


def test_cards_look_only_at_the_last_paragraphs_the_story_asks_for():
    paragraphs = ["민지는 떠났다."] + ["비가 왔다."] * 4
    assert not find_triggers([card(1, ["민지"])], paragraphs, scan_depth=4)
    assert [t.paragraph for t in find_triggers([card(1, ["민지"])], paragraphs, scan_depth=5)] == [0]


def test_a_trigger_names_its_key_the_word_and_the_latest_paragraph_with_it():
    [trigger] = find_triggers([card(1, ["준호", "민지"])], ["민지가 왔다.", "준호는 민지를 봤다."], scan_depth=4)
    assert (trigger.key, trigger.word, trigger.paragraph) in {("준호", "준호는", 1), ("민지", "민지를", 1)}


def test_always_on_cards_are_in_without_a_key_and_disabled_cards_never():
    triggers = find_triggers([card(1, [], always_on=True), card(2, ["민지"], enabled=False)], ["민지가 왔다."], 4)
    assert [(t.card.id, t.key) for t in triggers] == [(1, None)]


# -- the blocks, in reading order ---------------------------------------------------------------


def test_without_memory_note_or_cards_the_model_reads_the_plain_story_window(tokenizer):
    for story in ([], STORY, STORY * 20, ["한 문단. " * 300]):
        for room in (40, 140, 200):
            plain = build_prompt(encoder(tokenizer), story, 256, room, bos_id=tokenizer.bos_token_id)
            assert build(tokenizer, story, room=room).ids == plain


@pytest.mark.parametrize("which", ["tiny", "kogpt2"])
def test_a_story_put_together_line_by_line_reads_as_its_joined_text_with_every_kind_of_block(which, request):
    """The engine puts a window's remembered line ids together instead of tokenizing it again (relay/encoding.py
    `lines_tokenize_apart`): the model must read exactly what tokenizing the window whole gives."""
    from relay.encoding import lines_tokenize_apart

    tokenizer = request.getfixturevalue("tokenizer" if which == "tiny" else "kogpt2")
    assert lines_tokenize_apart(tokenizer)
    cards = (card(1, ["편지"], "편지는 어머니가 썼다."), card(2, ["그녀"], "그녀는 기차역에서 일한다.", priority=2))
    steerings = [None, Steering(memory="배경은 부산이다.\n때는 겨울."), Steering(note="짧게.", note_depth=0),
                 Steering(note="긴장감 있게.", note_depth=2), Steering(memory="기억.", note="짧게.", note_depth=3, cards=cards),
                 Steering(cards=cards)]
    stories = [STORY, STORY * 12, ["여러 줄의 문단.\n둘째 줄.\n\n셋째 줄."] + STORY, ["한 문단. " * 300]]
    for story in stories:
        for steering in steerings:
            for room in (40, 200):
                joined = build(tokenizer, story, steering, room=room)
                apart = build(tokenizer, story, steering, room=room, lines_apart=True)
                assert apart.ids == joined.ids and apart.blocks == joined.blocks


def test_the_ids_are_exactly_the_blocks_ids_in_order(tokenizer):
    steering = Steering(memory="배경은 부산이다.", note="짧게.", cards=(card(1, ["편지"], "편지는 어머니가 썼다."),))
    result = build(tokenizer, STORY, steering)
    assert result.ids == [i for block in result.blocks for i in block.ids]
    assert [b.kind for b in result.blocks] == ["memory", "card", "story", "note", "story"]


def test_memory_is_pinned_at_the_top_and_kept_whole(tokenizer):
    memory = "할머니는 부엌에서 된장찌개를 끓이고 계셨다. 창밖으로 눈이 내렸다."
    result = build(tokenizer, STORY * 10, Steering(memory=memory))
    assert text_of(tokenizer, result.blocks[0].ids).strip() == memory
    assert text_of(tokenizer, result.ids).lstrip().startswith(memory)


@pytest.mark.parametrize("depth, before, after", [(3, (0, 2), (3, 5)), (1, (0, 4), (5, 5)), (0, (0, 5), None)])
def test_the_authors_note_lands_its_depth_in_paragraphs_before_the_end(kogpt2, depth, before, after):
    result = build(kogpt2, STORY, Steering(note="긴장감 있게.", note_depth=depth), window=1024, room=140)
    kinds = [(b.kind, b.paragraphs) for b in result.blocks]
    assert kinds == [("story", before), ("note", None)] + ([("story", after)] if after else [])
    assert text_of(kogpt2, result.blocks[1].ids) == "[작가의 말: 긴장감 있게.]\n"


def test_a_note_deeper_than_the_story_goes_on_top_and_a_turn_note_joins_it(kogpt2):
    result = build(kogpt2, STORY[:2], Steering(note="짧게.", note_depth=5, turn_note="편지를 꺼낸다."), window=1024)
    assert [b.kind for b in result.blocks] == ["note", "story"]
    assert text_of(kogpt2, result.blocks[0].ids) == "[작가의 말: 짧게.]\n[작가의 말: 편지를 꺼낸다.]\n"


def test_the_note_reads_where_it_should_in_the_real_kogpt2_text(kogpt2):
    result = assemble(encoder(kogpt2), STORY, 1024, 140, bos_id=kogpt2.bos_token_id,
                      steering=Steering(memory="배경은 부산.", note="비가 온다.", note_depth=2))
    lines = text_of(kogpt2, result.ids).strip().split("\n")
    assert lines == ["배경은 부산.", *STORY[:4], "[작가의 말: 비가 온다.]", *STORY[4:]]


# -- budgets ---------------------------------------------------------------------------------------


def test_lower_priority_cards_drop_first_when_room_runs_out(tokenizer):
    long_text = "골목 끝에서 누군가 휘파람을 불었다. " * 4
    cards = tuple(card(i, ["편지"], long_text, priority=p) for i, p in ((1, 10), (2, 90), (3, 50), (4, 70)))
    result = build(tokenizer, STORY * 3, Steering(cards=cards), room=100)
    kept = [b.trigger.card.id for b in result.blocks if b.kind == "card"]
    dropped = [t.card.id for t in result.dropped_cards]
    assert kept and dropped and kept + dropped == [2, 4, 3, 1]
    assert result.problem is None and 256 - 100 - result.tokens("card") >= 256 // 4  # the story kept its quarter


def test_memory_that_leaves_the_story_too_little_is_named_not_cut(tokenizer):
    memory = "할머니는 부엌에서 된장찌개를 끓이고 계셨다. " * 8
    result = build(tokenizer, STORY * 3, Steering(memory=memory, note="짧게."), room=100)
    assert result.problem is not None and result.problem.block == "memory"
    assert result.problem.left < result.problem.need
    assert text_of(tokenizer, result.blocks[0].ids).strip() == memory.strip()  # whole, not truncated


def test_a_long_note_is_the_block_named(tokenizer):
    result = build(tokenizer, STORY * 3, Steering(memory="부산.", note="비가 오고 바람이 분다. " * 12), room=100)
    assert result.problem.block == "note"


def test_the_story_window_still_cuts_at_whole_paragraphs_beside_memory_and_cards(tokenizer):
    steering = Steering(memory="배경은 부산이다.", cards=(card(1, ["편지"], "편지는 어머니가 썼다."),))
    result = build(tokenizer, STORY * 8, steering, room=60)
    story = text_of(tokenizer, [i for b in result.blocks if b.kind == "story" for i in b.ids])
    assert all(line.strip() in STORY for line in story.strip().split("\n"))
    assert result.dropped_paragraphs > 0 and not result.cut


def test_max_new_tokens_that_leaves_no_story_at_all_is_refused(tokenizer):
    with pytest.raises(SettingsError):
        build(tokenizer, STORY, Steering(memory="부산."), room=250)


def test_meta_records_which_memory_note_and_card_versions_were_read(tokenizer):
    steering = Steering(memory="부산.", memory_version=3, note="짧게.", note_version=2,
                        cards=(card(7, ["편지"], version=4), card(8, ["없는말"])))
    meta = build(tokenizer, STORY, steering).meta()
    assert meta["memory_version"] == 3 and meta["note_version"] == 2 and meta["turn_note"] is False
    assert meta["cards"] == [{"id": 7, "version": 4, "key": "편지"}]
    assert meta["tokens"]["room"] == 40 and meta["story_paragraphs"] == len(STORY)


def test_the_window_start_is_exact_however_the_pieces_are_batched(tokenizer):
    from relay.prompt import fitting_start

    encode = encoder(tokenizer)
    pieces = [f"{'골목 끝에서 ' * (n % 7 + 1)}누군가 휘파람을 불었다.\n" for n in range(300)]
    for budget in (1, 10, 57, 200, 884, 5000):
        total, first = 0, len(pieces)
        while first > 0 and total + len(encode(pieces[first - 1])) <= budget:  # one piece at a time
            total += len(encode(pieces[first - 1]))
            first -= 1
        assert fitting_start(lambda texts: [encode(t) for t in texts], pieces, budget) == first
