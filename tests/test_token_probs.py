"""Token probabilities and branching (issue 18 items 1-2): what a writer sees on a suggestion is what the sampler
used, every piece of text belongs to one token, and rewriting from a token keeps exactly what came before it.

Every engine test runs on each local backend (transformers, and openvino when installed) with the tiny random
model; the openai backend through a real relay.serve is in tests/test_backend_openai.py. The reference
probabilities are computed here from the model's logits and the engine's rules (never-ids, the repetition
penalty, the temperature), independently of the recording code.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from relay.engine import Engine, SamplingSettings

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
]
BACKENDS = ["transformers"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
# Sampled with every knob that changes the distribution the recording describes, and the cut that must not.
SAMPLED = dict(temperature=0.7, top_k=8, top_p=0.9, repetition_penalty=1.3, no_repeat_ngram_size=0,
               stop_at="length", trim_incomplete=False, max_new_tokens=12, min_new_tokens=0, seed=5)
GREEDY = dict(SAMPLED, temperature=0.0, max_new_tokens=20)


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, tiny_model_dir, relay_cache) -> Engine:
    engine = Engine.from_pretrained(tiny_model_dir, backend=request.param)
    yield engine
    engine.close()


def _reference(engine: Engine, settings: SamplingSettings, prompt: list[int], ids: list[int], logits) -> list:
    """Per position, the probabilities the definition gives: softmax((rules(logits)) / T) over the vocabulary."""
    import torch

    never = list(engine._never) + [engine.tokenizer.eos_token_id]  # stop_at "length": </s> is never written either
    temperature = settings.temperature if settings.temperature > 0 else 1.0
    rows = []
    for position, row in enumerate(logits):
        scores = torch.as_tensor(row, dtype=torch.float32).clone()
        scores[never] = -float("inf")
        seen = sorted(set(prompt + ids[:position]))
        penalised = scores[seen]
        scores[seen] = torch.where(penalised < 0, penalised * settings.repetition_penalty,
                                   penalised / settings.repetition_penalty)
        rows.append(torch.softmax(scores / temperature, dim=-1))
    return rows


def _model_logits(engine: Engine, prompt: list[int], ids: list[int]):
    """The transformers model's logits for each generated position, from one plain forward pass."""
    import torch

    with torch.inference_mode(), engine.backend._adapter_scope(None):  # the base model, adapters off
        logits = engine.backend.model(input_ids=torch.tensor([prompt + ids]))["logits"][0]
    return logits[len(prompt) - 1:len(prompt) - 1 + len(ids)]


def _sampler_logits(monkeypatch) -> list:
    """Capture the logits the OpenVINO batcher hands to the sampler (TokenPicker.pick), row 0, step by step."""
    import relay.backends.openvino.batcher as batcher

    seen = []

    class Capturing(batcher.TokenPicker):
        def pick(self, logits):
            seen.append(logits[0].copy())
            return super().pick(logits)

    monkeypatch.setattr(batcher, "TokenPicker", Capturing)
    return seen


def assert_matches_reference(tokens: dict, reference: list) -> None:
    for position, (chosen, p, top) in enumerate(zip(tokens["ids"], tokens["p"], tokens["top"])):
        expected = reference[position]
        assert p == pytest.approx(expected[chosen].item(), rel=2e-3), position
        assert len(top) == 5 and [q for _, _, q in top] == sorted((q for _, _, q in top), reverse=True)
        for token, _, q in top:
            assert q == pytest.approx(expected[token].item(), rel=2e-3), (position, token)
        sixth = expected.topk(6).values[5].item()
        assert top[-1][2] >= sixth * (1 - 2e-3), position  # they are the five likeliest


@pytest.mark.parametrize("knobs", [SAMPLED, GREEDY], ids=["sampled", "greedy"])
def test_recorded_probabilities_are_a_softmax_over_the_logits_the_sampler_used(engine, knobs, monkeypatch):
    settings = SamplingSettings(**knobs)
    captured = _sampler_logits(monkeypatch) if engine.backend_name == "openvino" else None
    result = engine.continue_story(STORY, settings)
    tokens = result.meta["tokens"]
    prompt = engine.assemble(STORY, settings).ids
    assert len(tokens["ids"]) == result.meta["output_tokens"] == settings.max_new_tokens
    logits = captured if captured is not None else _model_logits(engine, prompt, tokens["ids"])
    assert len(logits) == len(tokens["ids"])
    assert_matches_reference(tokens, _reference(engine, settings, prompt, tokens["ids"], logits))
    if settings.temperature == 0:  # greedy: the chosen id is always the likeliest
        assert all(top[0][0] == chosen for chosen, top in zip(tokens["ids"], tokens["top"]))


def test_recording_can_be_switched_off_and_changes_no_text(engine):
    settings = SamplingSettings(**SAMPLED)
    recorded = engine.continue_story(STORY, settings)
    engine.record_probs = False
    try:
        plain = engine.continue_story(STORY, settings)
        text, meta = plain.text, plain.meta  # read while it is still off (the worker thread reads the switch)
    finally:
        engine.record_probs = True
    assert text == recorded.text and "tokens" not in meta


@pytest.mark.parametrize("knobs", [
    dict(stop_at="paragraph", min_new_tokens=3, max_new_tokens=40),
    dict(stop_at="sentence", max_new_tokens=40),
    dict(stop_at="length", max_new_tokens=30, trim_incomplete=True),
    dict(stop_at="length", max_new_tokens=30, temperature=0.0, trim_incomplete=False),
], ids=["paragraph", "sentence", "length-trimmed", "length-greedy"])
def test_the_token_pieces_join_to_exactly_the_candidate_text(engine, knobs):
    for seed in (1, 2, 3):
        settings = SamplingSettings(**{"seed": seed, "min_new_tokens": 0, **knobs})
        stream = engine.continue_story(STORY, settings)
        shown = "".join(stream)
        tokens = stream.meta["tokens"]
        assert "".join(tokens["text"]) == stream.text and shown.startswith(stream.text)  # trimmed: a prefix
        assert len(tokens["ids"]) == len(tokens["text"]) == len(tokens["p"]) == len(tokens["top"]) \
            == stream.meta["output_tokens"]
        assert all(0 < p <= 1 for p in tokens["p"]) and all(len(top) == 5 for top in tokens["top"])
        assert json.loads(json.dumps(tokens)) == tokens  # stored as JSON as it is


def test_each_alternative_carries_its_own_tokens(engine):
    stream = engine.stream_alternatives(STORY, SamplingSettings(seed=9, max_new_tokens=25, min_new_tokens=0), 3)
    texts = ["", "", ""]
    for index, chunk in stream:
        texts[index] += chunk
    candidates = stream.meta["candidates"]
    assert all(shown.startswith(text) for shown, text in zip(texts, stream.texts)) and len(candidates) == 3
    for text, candidate in zip(stream.texts, candidates):
        assert "".join(candidate["tokens"]["text"]) == text
        assert len(candidate["tokens"]["ids"]) == candidate["output_tokens"]
    assert len({tuple(c["tokens"]["ids"]) for c in candidates}) == 3


def test_branching_at_a_token_keeps_the_ids_before_it_and_continues_from_the_chosen_id(engine):
    settings = SamplingSettings(**GREEDY)
    original = engine.continue_story(STORY, settings).meta["tokens"]
    at = 6
    same = engine.branch(STORY, settings, original["ids"][:at + 1],
                         prefix_tokens={"p": original["p"][:at + 1], "top": original["top"][:at + 1]})
    assert same.meta["tokens"]["ids"] == original["ids"]  # greedy from the same prefix: the same turn
    assert same.meta["tokens"]["p"][:at + 1] == original["p"][:at + 1]  # spliced from prefix_tokens
    # After it: recorded again (int8 caches may round the prompt's keys a hair differently than the written ones).
    assert same.meta["tokens"]["p"] == pytest.approx(original["p"], rel=1e-2)
    other = original["top"][at][1][0]  # the second likeliest id at `at`
    branch = engine.branch(STORY, settings, original["ids"][:at] + [other])
    chunks = list(branch)
    tokens = branch.meta["tokens"]
    assert tokens["ids"][:at] == original["ids"][:at] and tokens["ids"][at] == other
    assert len(tokens["ids"]) == settings.max_new_tokens  # the prefix counts inside max_new_tokens
    assert "".join(chunks) == branch.text == "".join(tokens["text"])
    assert branch.text.startswith("".join(original["text"][:at]))
    assert tokens["p"][:at + 1] == [None] * (at + 1)  # not recorded here (AITurn passes the original's)
    assert all(p is not None for p in tokens["p"][at + 1:])
    assert branch.meta["branch"] == {"at": at + 1, "id": None}
    # After the prefix it samples like any turn: the same ids as writing greedily from prompt + prefix.
    follow = engine.branch(STORY, settings, tokens["ids"][:at + 3])
    assert follow.meta["tokens"]["ids"] == tokens["ids"]


def test_a_branch_whose_prefix_fills_max_new_tokens_is_refused(engine):
    from relay.engine import SettingsError

    with pytest.raises(SettingsError, match="max_new_tokens"):
        engine.branch(STORY, SamplingSettings(max_new_tokens=3), [10, 11, 12])
    with pytest.raises(SettingsError, match="prefix_ids"):
        engine.branch(STORY, SamplingSettings(max_new_tokens=30), [10, -1])


# --- the turn API: branching and "더 쓰기" through the store --------------------------------------------------


@pytest.fixture()
def turns(engine):
    """(AITurn, store, story id, writer key A, writer key B) on a fresh story with one human paragraph."""
    from relay.ui.api import api_functions  # noqa: F401  relay.turns needs relay.ui imported before it
    from relay.story_store import StoryStore
    from relay.turns import AITurn

    store = StoryStore()
    key_a, key_b = store.new_writer_key(), store.new_writer_key()
    story = store.create_story("갈래", "민지", "free", writer_key=key_a)
    store.add_paragraph(story.id, STORY[0], "민지", writer_key=key_a)
    return AITurn(engine, store, escape_names=False), store, story.id, key_a, key_b


def _last(iterator):
    item = None
    for item in iterator:
        pass
    return item


def test_a_writer_branches_and_extends_a_suggestion_and_the_tokens_reach_the_export(turns):
    ai, store, story_id, key, _ = turns
    settings = SamplingSettings(**{**SAMPLED, "max_new_tokens": 16})
    text, done = _last(ai.stream(story_id, "민지", settings, None, None, "ko", writer_key=key))
    first = store.get_candidate(done["candidate_id"])
    tokens = first.meta["tokens"]
    assert "".join(tokens["text"]) == first.text == text
    at, choice = 4, 2
    chosen = tokens["top"][at][choice]
    text, done = _last(ai.branch(story_id, "민지", first.id, at, choice, settings, None, None, "ko", writer_key=key))
    branched = store.get_candidate(done["candidate_id"])
    assert branched.meta["tokens"]["ids"][:at + 1] == tokens["ids"][:at] + [chosen[0]]
    assert branched.meta["tokens"]["p"][at] == chosen[2] and branched.meta["tokens"]["top"][at] == tokens["top"][at]
    assert branched.text == text and text.startswith("".join(tokens["text"][:at]))
    assert branched.meta["branch"] == {"kind": "branch", "at": at, "id": chosen[0], "from": first.id}
    # "Continue from here": the model writes again from position `at` (ids before it kept).
    _, done = _last(ai.branch(story_id, "민지", first.id, at, None, settings.replace(seed=77), None, None, "ko",
                              writer_key=key))
    again = store.get_candidate(done["candidate_id"])
    assert again.meta["tokens"]["ids"][:at] == tokens["ids"][:at] and again.meta["branch"]["id"] is None
    # "더 쓰기": every id of the suggestion kept, up to max_new_tokens more.
    text, done = _last(ai.extend(story_id, "민지", first.id, settings, None, None, "ko", writer_key=key))
    longer = store.get_candidate(done["candidate_id"])
    assert longer.meta["tokens"]["ids"][:len(tokens["ids"])] == tokens["ids"]
    assert len(longer.meta["tokens"]["ids"]) == len(tokens["ids"]) + settings.max_new_tokens
    assert longer.text.startswith(first.text) and len(longer.text) > len(first.text)
    turn = store.ai_turn(story_id)
    assert [c.id for c in turn.candidates] == [first.id, branched.id, again.id, longer.id]  # swipes of one turn
    paragraph = store.accept_candidate(branched.id, "민지", writer_key=key)
    assert paragraph.meta["tokens"] == branched.meta["tokens"]
    exported = json.loads(store.export(story_id, "json", writer_key=key))
    assert exported["paragraphs"][-1]["meta"]["tokens"] == branched.meta["tokens"]
    assert json.loads(store.export(story_id, "json"))["paragraphs"][-1]["meta"]["tokens"] == branched.meta["tokens"]


def test_more_continues_a_paragraph_that_ended_on_a_word_and_keeps_the_word(turns):
    """Many paragraphs end on one id holding the last word and the newline (KoGPT-2's "▁열었다.\n"): "더 쓰기"
    keeps the word and writes on after it, in the same paragraph."""
    ai, store, story_id, key, _ = turns
    ends = ai.engine.paragraph_end_ids
    for seed in range(40):  # the tiny model's seeded suggestions: find one that ended so
        settings = SamplingSettings(**{**SAMPLED, "seed": seed, "stop_at": "paragraph", "max_new_tokens": 40,
                                       "min_new_tokens": 2})
        _, done = _last(ai.stream(story_id, "민지", settings, None, None, "ko", writer_key=key))
        first = store.get_candidate(done["candidate_id"])
        tokens = first.meta["tokens"]
        if tokens["ids"][-1] in ends and tokens["text"][-1].strip():
            break
    else:
        pytest.fail("no seeded suggestion ended on a word and a newline")
    more = settings.replace(stop_at="length", max_new_tokens=6)
    text, done = _last(ai.extend(story_id, "민지", first.id, more, None, None, "ko", writer_key=key))
    longer = store.get_candidate(done["candidate_id"])
    assert longer.text == text and longer.text.startswith(first.text) and len(longer.text) > len(first.text)
    assert "\n" not in longer.text
    assert longer.meta["tokens"]["ids"][:len(tokens["ids"]) - 1] == tokens["ids"][:-1]


def test_the_last_word_of_a_paragraph_end_is_spelled_again_without_its_newline(kogpt2_dir):
    from transformers import PreTrainedTokenizerFast

    from relay.decoding import without_paragraph_end
    from relay.tiny import KOGPT2_SPECIAL

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(kogpt2_dir / "tokenizer.json"), **KOGPT2_SPECIAL)
    kept = tokenizer.encode("그는 문을", add_special_tokens=False)
    for end, wanted in (("\u2581열었다.\n", "그는 문을 열었다."), ("기\n", "그는 문을기")):
        ids = without_paragraph_end(tokenizer, kept, tokenizer.convert_tokens_to_ids(end))
        assert ids and tokenizer.decode(kept + ids) == wanted
    for bare in ("\n", "</s>"):
        assert without_paragraph_end(tokenizer, kept, tokenizer.convert_tokens_to_ids(bare)) == []


def test_each_stored_alternative_keeps_only_its_own_tokens(turns):
    ai, store, story_id, key, _ = turns
    texts, done = _last(ai.alternatives(story_id, "민지", SamplingSettings(seed=3, max_new_tokens=12), 3, None, "ko",
                                        writer_key=key))
    for index, candidate_id in enumerate(done["candidate_ids"]):
        meta = store.get_candidate(candidate_id).meta
        assert "".join(meta["tokens"]["text"]) == texts[index]
        assert all("tokens" not in c for c in meta["candidates"])  # the others' are not copied into this row


def test_branching_refuses_another_writer_a_foreign_suggestion_and_positions_out_of_range(turns):
    import gradio as gr

    ai, store, story_id, key, other_key = turns
    settings = SamplingSettings(**SAMPLED)
    _, done = _last(ai.stream(story_id, "민지", settings, None, None, "en", writer_key=key))
    candidate = store.get_candidate(done["candidate_id"])
    count = len(candidate.meta["tokens"]["ids"])

    def refused(*args, key=key, author="민지"):
        with pytest.raises(gr.Error) as caught:
            _last(ai.branch(story_id, author, *args, settings, None, None, "en", writer_key=key))
        return caught.value.message

    assert "민지" in refused(candidate.id, 0, 0, key=other_key, author="서준")  # another writer's turn
    with pytest.raises(gr.Error):
        _last(ai.extend(story_id, "서준", candidate.id, settings, None, None, "en", writer_key=other_key))
    assert "not a waiting suggestion of this story" in refused("made-up-key", 0, 0)
    elsewhere = store.create_story("다른 이야기", "민지", "free", writer_key=key)
    store.add_paragraph(elsewhere.id, STORY[1], "민지", writer_key=key)
    _, foreign = _last(ai.stream(elsewhere.id, "민지", settings, None, None, "en", writer_key=key))
    assert "not a waiting suggestion of this story" in refused(foreign["candidate_id"], 0, 0)
    assert f"has {count} tokens" in refused(candidate.id, count, 0)
    assert "There is no position -1" in refused(candidate.id, -1, None)
    assert "has 5 alternatives" in refused(candidate.id, 0, 5)
    assert "max length" in refused(candidate.id, count - 1, 0)  # the kept part leaves nothing to write
    before = [c.id for c in store.ai_turn(story_id).candidates]
    assert before == [candidate.id]  # nothing refused was stored


def test_the_api_branches_and_extends_with_the_same_key_and_argument_checks(engine, tmp_path):
    import gradio as gr

    from relay.limits import Limits
    from relay.story_store import StoryStore
    from relay.turns import AITurn
    from relay.ui.api import api_functions

    store = StoryStore(tmp_path / "api.db")
    fns = api_functions(engine, store, AITurn(engine, store, escape_names=False), Limits())
    key, other = fns["writer_key"](), fns["writer_key"]()
    story = fns["create_story"]("갈래 API", "민지", "free", key)
    fns["add_paragraph"](story["id"], STORY[0], "민지", 0, key)
    knobs = {"max_new_tokens": 10, "min_new_tokens": 0, "seed": 4, "stop_at": "length", "trim_incomplete": False}
    first = _last(fns["continue_story"](story["id"], "민지", knobs, None, key))
    tokens = first["meta"]["tokens"]
    updates = list(fns["branch_suggestion"](story["id"], "민지", first["candidate_id"], 3, 1, knobs, None, key))
    done = updates[-1]
    assert done["done"] and all(not u["done"] for u in updates[:-1])
    assert done["meta"]["tokens"]["ids"][:4] == tokens["ids"][:3] + [tokens["top"][3][1][0]]
    longer = _last(fns["extend_suggestion"](story["id"], "민지", first["candidate_id"], knobs, None, key))
    assert longer["text"].startswith(first["text"]) and longer["meta"]["branch"]["kind"] == "extend"
    for call, message in [
        (lambda: fns["branch_suggestion"](story["id"], "민지", first["candidate_id"], 3, 1, knobs, None, None),
         "/writer_key"),
        (lambda: fns["branch_suggestion"](story["id"], "서준", first["candidate_id"], 3, 1, knobs, None, other),
         "민지"),
        (lambda: fns["branch_suggestion"](story["id"], "민지", first["candidate_id"], True, 1, knobs, None, key),
         "at must be a whole number of 0 or more"),
        (lambda: fns["branch_suggestion"](story["id"], "민지", first["candidate_id"], 3, 9, knobs, None, key),
         "has 5 alternatives"),
        (lambda: fns["extend_suggestion"](story["id"], "민지", ["not", "an", "id"], knobs, None, key),
         "candidate_id"),
    ]:
        with pytest.raises(gr.Error, match=message):
            list(call())
