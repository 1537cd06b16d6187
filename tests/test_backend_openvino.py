"""The OpenVINO backend against the transformers reference: same tokens, adapters, writers in one batch,
kept caches, a full cache pool (adapters at runtime in detail: tests/test_openvino_lora.py).

The engine's whole contract also runs on this backend (tests/test_engine.py is parametrized over backends);
here are the things only a converted, concurrent, caching backend can get wrong.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("openvino")

from relay.backends.base import BackendError  # noqa: E402
from relay.backends.openvino import KV_MB_ENV, PRECISION_ENV, OpenVinoBackend, cached_model_path  # noqa: E402
from relay.engine import Engine, SamplingSettings, load_tokenizer  # noqa: E402
from relay.tiny import build_tiny_adapter  # noqa: E402

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
]
OTHER_STORIES = [
    ["할머니는 부엌에서 된장찌개를 끓이고 계셨다."],
    ["그날 밤 마을에는 이상한 소문이 돌았다.", "산 너머 절에서 종소리가 세 번 울렸다는 것이다."],
    ["바다는 잔잔했고, 배는 천천히 항구를 떠났다."],
    ["선생님은 칠판에 커다랗게 글자를 썼다. 교실은 조용해졌다.", "그러나 아무도 그 문을 열지 않았다."],
]
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=40, min_new_tokens=0, stop_at="length", seed=1)
# Agreement of int8 greedy tokens with fp32 transformers on the tiny random model, measured over the stories
# above (random weights make many near-ties, so this is a floor for a real model, not a typical value).
INT8_MIN_AGREEMENT = 0.5


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    return build_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "noir")


@pytest.fixture(scope="module")
def reference(tiny_model_dir, adapter_dir) -> Engine:
    return Engine.from_pretrained(tiny_model_dir, adapters={"noir": str(adapter_dir)}, backend="transformers")


def openvino_engine(folder, adapters, precision, kv_blocks=None) -> Engine:
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder)
    backend = OpenVinoBackend.from_model(base, adapters=adapters, precision=precision, kv_blocks=kv_blocks)
    return Engine(backend, load_tokenizer(folder), model_id=str(folder), adapter_names=list(adapters), device="cpu")


@pytest.fixture(scope="module")
def exact(tiny_model_dir, adapter_dir, relay_cache) -> Engine:
    """fp32 conversion: must match transformers token for token."""
    return openvino_engine(tiny_model_dir, {"noir": str(adapter_dir)}, "fp32")


@pytest.fixture(scope="module")
def fast(tiny_model_dir, adapter_dir, relay_cache) -> Engine:
    """The default int8 conversion, through the real from_pretrained path."""
    return Engine.from_pretrained(tiny_model_dir, adapters={"noir": str(adapter_dir)}, backend="openvino")


def ids(engine: Engine, story, settings, adapter=None) -> list[int]:
    """The token ids a greedy continuation wrote (decoded text re-encoded would blur boundaries; record ids)."""
    seen: list[int] = []
    original = engine.backend.generate

    def recording(request):
        inner = request.on_tokens

        def on_tokens(step):
            seen.append(step[0])
            return inner(step)

        request.on_tokens = on_tokens
        return original(request)

    engine.backend.generate = recording
    try:
        engine.continue_story(story, settings, adapter=adapter).text
    finally:
        del engine.backend.generate
    return seen


def test_fp32_conversion_writes_the_same_greedy_tokens_as_transformers(exact, reference):
    for story in [STORY] + OTHER_STORIES:
        assert ids(exact, story, GREEDY) == ids(reference, story, GREEDY)


def test_an_adapter_writes_the_same_greedy_tokens_as_the_peft_adapter(exact, reference):
    styled = ids(reference, STORY, GREEDY, adapter="noir")
    assert styled != ids(reference, STORY, GREEDY)  # the adapter matters
    assert ids(exact, STORY, GREEDY, adapter="noir") == styled
    assert exact.continue_story(STORY, GREEDY, adapter="noir").meta["adapter"] == "noir"


def test_int8_greedy_tokens_mostly_agree_with_transformers(fast, reference):
    agree = total = 0
    for story in [STORY] + OTHER_STORIES:
        mine, theirs = ids(fast, story, GREEDY), ids(reference, story, GREEDY)
        for a, b in zip(mine, theirs):  # up to the first difference: after it the texts legitimately part
            if a != b:
                break
            agree += 1
        total += len(theirs)
    assert agree / total >= INT8_MIN_AGREEMENT


def write_at_once(engine: Engine, jobs) -> list[str]:
    """Every (story, settings) continued by its own thread, all started together; their texts in order."""
    together: dict[int, str] = {}
    started = threading.Barrier(len(jobs))

    def write(index):
        story, s = jobs[index]
        started.wait()
        together[index] = engine.continue_story(story, s).text

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [together.get(i) for i in range(len(jobs))]


SAMPLED = SamplingSettings(max_new_tokens=30, min_new_tokens=0, stop_at="length")


def test_four_writers_at_once_run_in_one_batch_and_each_get_the_text_they_get_alone(fast):
    jobs = [(story, SAMPLED.replace(seed=20 + i)) for i, story in enumerate(OTHER_STORIES)]
    alone = [fast.continue_story(story, s).text for story, s in jobs]
    before = fast.backend.stats()
    assert write_at_once(fast, jobs) == alone
    after = fast.backend.stats()
    assert fast.backend.concurrent  # no arrival-order lock
    assert after["widest_step"] >= 3  # the runtime ran their tokens in one call, not one writer after another
    assert after["steps"] - before["steps"] < 3 * SAMPLED.max_new_tokens  # 4 x 30 tokens in far fewer steps


def test_a_cancelled_writer_leaves_the_others_text_unchanged(fast):
    jobs = [(story, SAMPLED.replace(seed=40 + i)) for i, story in enumerate(OTHER_STORIES[:3])]
    alone = [fast.continue_story(story, s).text for story, s in jobs]
    stream = fast.continue_story(STORY, SAMPLED.replace(seed=5, max_new_tokens=200))
    first = next(iter(stream))
    together: list = []
    others = threading.Thread(target=lambda: together.extend(write_at_once(fast, jobs)))
    others.start()
    batcher, deadline = fast.backend._batchers[None], time.monotonic() + 30
    while len(batcher.active) < 2 and time.monotonic() < deadline:  # cancel once it shares the batch
        time.sleep(0.0005)
    stream.close()
    others.join(timeout=120)
    assert together == alone
    assert first and len(stream.text) < 200


def test_when_the_cache_pool_is_full_writers_wait_their_turn_and_all_finish(tiny_model_dir, relay_cache):
    # Each of these turns needs 2 blocks of 32 positions (a short story + 30 tokens): 5 blocks hold 2 turns.
    small = openvino_engine(tiny_model_dir, {}, "int8", kv_blocks=5)
    roomy = openvino_engine(tiny_model_dir, {}, "int8")
    jobs = [(story, SAMPLED.replace(seed=60 + i)) for i, story in enumerate(OTHER_STORIES)]
    alone = [roomy.continue_story(story, s).text for story, s in jobs]
    assert write_at_once(small, jobs) == alone
    assert small.backend.stats()["widest_step"] <= 2  # never more turns in the cache than it holds
    small.close()
    roomy.close()


def test_a_story_larger_than_the_cache_pool_gets_a_clear_message(tiny_model_dir, relay_cache):
    small = openvino_engine(tiny_model_dir, {}, "int8", kv_blocks=2)
    with pytest.raises(BackendError, match=KV_MB_ENV):
        small.continue_story(STORY * 8, SAMPLED.replace(seed=1)).text
    small.close()


def test_the_next_turn_rereads_only_the_new_text_and_writes_what_a_fresh_read_writes(fast, tiny_model_dir):
    long_story = STORY * 6
    s = SamplingSettings(max_new_tokens=20, min_new_tokens=0, stop_at="length", seed=3)
    first = fast.continue_story(long_story, s)
    first.text
    grown = long_story + [first.text or "그녀가 웃었다.", "나는 대답하지 않았다."]
    second = fast.continue_story(grown, s)
    assert second.meta["cached_prompt_tokens"] >= 64  # whole cache blocks of the old story were kept
    assert second.meta["cached_prompt_tokens"] <= first.meta["prompt_tokens"]
    fresh = Engine.from_pretrained(tiny_model_dir, backend="openvino")  # the same cached conversion, no kept KV
    assert fresh.continue_story(grown, s).text == second.text


def test_alternatives_stream_side_by_side_and_join_to_the_same_candidates(fast):
    s = SamplingSettings(max_new_tokens=25, min_new_tokens=0, stop_at="length", seed=9, trim_incomplete=False)
    stream = fast.stream_alternatives(STORY, s, 3)
    pieces = {0: "", 1: "", 2: ""}
    order = []
    for index, chunk in stream:
        pieces[index] += chunk
        order.append(index)
    assert [pieces[i] for i in range(3)] == stream.texts == list(fast.alternatives(STORY, s, 3))
    assert len(set(order[:6])) > 1  # the columns fill together, not one after another
    assert stream.meta["n"] == 3 and stream.meta["backend"] == "openvino"


def test_a_conversion_is_cached_and_redone_when_the_weights_change(fast, tiny_model_dir, adapter_dir, relay_cache,
                                                                   tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    converted = {path.parent for path in relay_cache.glob("openvino/*/model.xml")}
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    first = cached_model_path(base, "int8")  # `fast` converted the base model already
    assert first.parent in converted
    assert cached_model_path(base, "int8", lora=True).parent in converted  # and its LoRA graph, for "noir"
    changed = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter_dir)) \
        .merge_and_unload()  # a model with other weights (here: an adapter merged in)
    second = cached_model_path(changed, "int8", tmp_path)
    assert second.parent.name != first.parent.name and second.is_file()


def test_a_failed_step_fails_only_its_turns_and_the_next_turn_works(fast, monkeypatch):
    batcher = fast.backend._batchers[None]
    real = batcher._infer
    calls = []

    def failing_once(entries, reading=False):
        calls.append(len(entries))
        if len(calls) == 1:
            raise RuntimeError("simulated runtime failure")
        return real(entries, reading)

    monkeypatch.setattr(batcher, "_infer", failing_once)
    with pytest.raises(BackendError, match="simulated runtime failure"):
        fast.continue_story(STORY, SAMPLED.replace(seed=2)).text
    monkeypatch.setattr(batcher, "_infer", real)
    assert fast.continue_story(STORY, SAMPLED.replace(seed=2)).text  # the pool's books stayed right
    assert not batcher.active and not batcher.waiting


def test_a_broken_batcher_fails_the_turn_instead_of_hanging(fast, monkeypatch):
    batcher = fast.backend._batchers[None]
    step_entries, failed = batcher._step_entries, []

    def broken_once():  # fails the first step that has a turn in it, then works (no race with undoing a patch)
        if batcher.active and not failed:
            failed.append(True)
            raise RuntimeError("simulated bookkeeping bug")
        return step_entries()

    monkeypatch.setattr(batcher, "_step_entries", broken_once)
    with pytest.raises(BackendError, match="simulated bookkeeping bug"):
        fast.continue_story(STORY, SAMPLED.replace(seed=3)).text
    assert fast.continue_story(STORY, SAMPLED.replace(seed=3)).text


def test_the_picker_penalises_repeats_and_samples_top_k_like_transformers():
    """TokenPicker's numpy repetition penalty and top-k-only sampling keep transformers' numbers and rules."""
    import torch
    from transformers import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper

    from relay.backends.base import GenerationRequest
    from relay.backends.picker import TokenPicker, _SeenIds

    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 500, generator=generator) * 4
    ids = torch.randint(0, 500, (3, 40), generator=generator)  # with repeats
    seen = _SeenIds(1.3, ids[0, :30].tolist(), 3)  # a prompt shared by the rows, then each row's own ids
    for step in range(30, 40):
        seen.add(ids[:, step].tolist())
    penalised = scores.clone().numpy()
    seen.apply(penalised)
    for row in range(3):  # bit for bit what transformers gives for the same ids written
        written = torch.cat([ids[0, :30], ids[row, 30:]])[None]
        expected = RepetitionPenaltyLogitsProcessor(1.3)(written, scores[row:row + 1].clone())
        assert torch.equal(torch.from_numpy(penalised[row:row + 1]), expected)

    settings = SamplingSettings(temperature=1.0, top_k=5, top_p=1.0, repetition_penalty=1.0,
                                no_repeat_ngram_size=0, stop_at="length", min_new_tokens=0)
    request = GenerationRequest(prompt=[1, 2, 3], n=1, settings=settings, seed=4, adapter=None, never_ids=[0],
                                paragraph_end_ids=[], holds_paragraph_end=lambda row: False,
                                on_tokens=lambda step: [False], cancelled=lambda: False)
    picker = TokenPicker(request)
    logits = torch.randn(1, 500, generator=generator)
    allowed = set(torch.nonzero(TopKLogitsWarper(5)(None, logits.clone())[0] > -float("inf")).flatten().tolist())
    drawn = {picker.pick(logits.clone())[0] for _ in range(200)}
    assert drawn <= allowed and len(drawn) > 1  # only the 5 likeliest ids, and really sampled among them


@pytest.mark.parametrize("size", [1, 2, 3])
def test_the_pickers_rules_ban_what_the_transformers_processors_ban(size):
    """The numpy rules (no n-gram of the new text again, a held paragraph end) ban, step by step, the ids the
    transformers backend's processors ban, a branch's kept ids counting as new text."""
    import torch

    from relay.backends.base import GenerationRequest, logits_processors
    from relay.backends.picker import _Rules

    rng = np.random.default_rng(size)
    prompt = rng.integers(0, 12, 30).tolist()  # a small vocabulary: repeats are frequent
    holding = [True, False]
    settings = SamplingSettings(no_repeat_ngram_size=size, stop_at="paragraph", min_new_tokens=0)
    request = GenerationRequest(prompt=prompt, n=2, settings=settings, seed=1, adapter=None, never_ids=[],
                                paragraph_end_ids=[3, 7], holds_paragraph_end=lambda row: holding[row],
                                on_tokens=lambda step: [False, False], cancelled=lambda: False)
    start = 22  # the last 8 prompt ids are a branch's kept ids
    rules = _Rules(request, start)
    processors = logits_processors(settings, start, request, torch.tensor([], dtype=torch.long), torch.tensor([3, 7]))
    ids = torch.tensor([prompt, prompt])
    for step in range(25):
        ours = np.zeros((2, 60), dtype=np.float32)
        rules.apply(ours)
        theirs = torch.zeros((2, 60))
        for processor in processors:
            theirs = processor(ids, theirs)
        assert (np.isinf(ours) == torch.isinf(theirs).numpy()).all(), step
        chosen = [int(rng.choice(np.flatnonzero(np.isfinite(row))[:12])) for row in ours]  # mostly seen ids
        rules.add(chosen)
        ids = torch.cat([ids, torch.tensor(chosen)[:, None]], dim=1)
        holding[0] = step < 10


def test_with_top_k_the_picker_keeps_the_ids_transformers_warpers_keep():
    """top-k with temperature, top-p and typical-p (the balanced and careful presets): the ids the numpy draw
    chooses among are those transformers' warpers keep of the whole row (in float64), and it really samples."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper

    from relay.backends.base import GenerationRequest
    from relay.backends.picker import TokenPicker, _cut_and_draw

    rng = np.random.default_rng(11)
    for spread in (0.5, 2.0, 6.0):
        for top_p in (0.3, 0.9, 0.95):
            row = np.sort((rng.standard_normal(50) * spread).astype(np.float32))[::-1]
            reference = TopPLogitsWarper(top_p)(None, torch.from_numpy(row.astype(np.float64))[None])[0]
            kept = int((reference > -float("inf")).sum())
            # the draw's ends: the likeliest for a uniform of 0, the last id top-p keeps for one just under 1
            assert (_cut_and_draw(row, top_p, 1.0, 0.0), _cut_and_draw(row, top_p, 1.0, 1 - 1e-12)) == (0, kept - 1)

    for temperature, top_p, typical_p in ((0.9, 0.92, 1.0), (0.6, 0.9, 1.0), (1.0, 1.0, 0.5), (0.8, 0.95, 0.9)):
        settings = SamplingSettings(temperature=temperature, top_k=20, top_p=top_p, typical_p=typical_p,
                                    repetition_penalty=1.0, no_repeat_ngram_size=0, stop_at="length",
                                    min_new_tokens=0)
        request = GenerationRequest(prompt=[1, 2, 3], n=2, settings=settings, seed=5, adapter=None, never_ids=[0],
                                    paragraph_end_ids=[], holds_paragraph_end=lambda row: False,
                                    on_tokens=lambda step: [False, False], cancelled=lambda: False)
        picker = TokenPicker(request)
        logits = (rng.standard_normal((1, 500)) * 2).astype(np.float32)
        logits[0, 0] = 50.0  # banned: never drawn, and not among the top-k
        scores = torch.from_numpy(logits.astype(np.float64))
        scores[0, 0] = -float("inf")
        warpers = [TopKLogitsWarper(20), TemperatureLogitsWarper(temperature)]
        warpers += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
        warpers += [TypicalLogitsWarper(typical_p)] if typical_p < 1.0 else []
        for warper in warpers:  # generate's order
            scores = warper(None, scores)
        allowed = set(torch.nonzero(scores[0] > -float("inf")).flatten().tolist())
        drawn = set()
        for _ in range(150):
            drawn.update(picker.pick(np.repeat(logits, 2, axis=0)))
        assert drawn <= allowed and len(drawn) > 1, (temperature, top_p, typical_p)


def test_without_top_k_or_top_p_the_picker_draws_from_the_whole_row_less_its_banned_ids():
    """top_k=0 and top_p=1 (a writer's own settings): the draw is over every id but the banned ones, cut by
    typical-p as transformers' warper cuts the whole row."""
    import torch
    from transformers import TemperatureLogitsWarper, TypicalLogitsWarper

    from relay.backends.base import GenerationRequest
    from relay.backends.picker import TokenPicker

    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((1, 400)) * 3).astype(np.float32)
    for typical_p in (1.0, 0.8):
        settings = SamplingSettings(temperature=0.8, top_k=0, top_p=1.0, typical_p=typical_p, repetition_penalty=1.0,
                                    no_repeat_ngram_size=0, stop_at="length", min_new_tokens=0)
        request = GenerationRequest(prompt=[1, 2, 3], n=1, settings=settings, seed=9, adapter=None,
                                    never_ids=list(range(0, 400, 2)), paragraph_end_ids=[],
                                    holds_paragraph_end=lambda row: False, on_tokens=lambda step: [False],
                                    cancelled=lambda: False)
        scores = torch.from_numpy(logits.astype(np.float64))
        scores[0, ::2] = -float("inf")
        scores = TemperatureLogitsWarper(0.8)(None, scores)
        if typical_p < 1.0:
            scores = TypicalLogitsWarper(typical_p)(None, scores)
        allowed = set(torch.nonzero(scores[0] > -float("inf")).flatten().tolist())
        picker = TokenPicker(request)
        drawn = {picker.pick(logits.copy())[0] for _ in range(300)}
        assert drawn <= allowed and len(drawn) > 1, typical_p
        assert typical_p == 1.0 or len(allowed) < 150  # typical-p really cut the 200 ids left


@pytest.mark.parametrize("width", [500, 51_200])
def test_without_top_k_the_picker_keeps_the_nucleus_transformers_keeps(width):
    """top_k=0 (the adventurous preset): the ids top-p and typical-p keep are transformers' own (computed here in
    float64 over the whole row), found without sorting the vocabulary; the picker draws among them only."""
    import torch
    from transformers import TopPLogitsWarper, TypicalLogitsWarper

    from relay.backends.base import GenerationRequest
    from relay.backends.picker import TokenPicker, nucleus, typical

    rng = np.random.default_rng(7)
    for spread in (1.0, 3.0, 8.0):  # flat to peaked rows
        for top_p in (0.5, 0.9, 0.95, 0.99):
            row = (rng.standard_normal(width) * spread).astype(np.float32)
            reference = TopPLogitsWarper(top_p)(None, torch.from_numpy(row.astype(np.float64))[None])[0]
            expected = set(torch.nonzero(reference > -float("inf")).flatten().tolist())
            kept = nucleus(row, top_p)
            assert set(kept.tolist()) == expected and len(kept) == len(expected), (spread, top_p)
            assert list(row[kept]) == sorted(row[kept], reverse=True)  # likeliest first
            for mass in (0.2, 0.95):  # then typical-p on the nucleus, as transformers' warper keeps it
                logits = torch.from_numpy(row[kept].astype(np.float64))[None]
                expected = (TypicalLogitsWarper(mass)(None, logits)[0] > -float("inf")).numpy()
                assert (typical(row[kept].astype(np.float64), mass) == expected).all(), (spread, top_p, mass)

    settings = SamplingSettings(temperature=0.9, top_k=0, top_p=0.8, typical_p=0.95, repetition_penalty=1.0,
                                no_repeat_ngram_size=0, stop_at="length", min_new_tokens=0)
    request = GenerationRequest(prompt=[1, 2, 3], n=2, settings=settings, seed=4, adapter=None, never_ids=[0],
                                paragraph_end_ids=[], holds_paragraph_end=lambda row: False,
                                on_tokens=lambda step: [False, False], cancelled=lambda: False)
    picker = TokenPicker(request)
    logits = (rng.standard_normal((1, width)) * 4).astype(np.float32)
    allowed = set(nucleus(logits[0] / 0.9, 0.8).tolist()) - {0}
    drawn = set()
    for _ in range(100):
        drawn.update(picker.pick(np.repeat(logits, 2, axis=0)))
    assert drawn <= allowed and len(drawn) > 1  # only nucleus ids (never the banned 0), and really sampled


@pytest.fixture(scope="module", params=["int8", "int4"])
def real_width(request, tmp_path_factory, kogpt2_dir, relay_cache) -> Engine:
    """KoGPT-2's widths (768 wide, 12 heads, its 51,200-id vocabulary and tokenizer), 2 layers, random weights,
    int8 or int4 (RELAY_OPENVINO_PRECISION) through the real from_pretrained path: the CPU kernels the real model
    runs (a tiny model picks others; int4 runs other kernels again)."""
    from relay.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("kogpt2-width"), tokenizer_file=kogpt2_dir / "tokenizer.json",
                              n_layer=2, n_embd=768, n_head=12, n_positions=1024)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PRECISION_ENV, request.param)
        engine = Engine.from_pretrained(folder, backend="openvino")
    assert engine.backend.precision == request.param
    yield engine
    engine.close()


@pytest.mark.parametrize("neighbours", [1, 3, 7])
def test_a_seed_writes_the_same_text_beside_other_writers_at_kogpt2_widths(real_width, neighbours):
    mine = (STORY, SAMPLED.replace(seed=11, max_new_tokens=24))
    others = [(OTHER_STORIES[i % len(OTHER_STORIES)] + [f"{i}번째 이야기."], SAMPLED.replace(seed=60 + i, max_new_tokens=40))
              for i in range(neighbours)]
    alone = real_width.continue_story(*mine).text
    before = real_width.backend.stats()["widest_step"]
    together = write_at_once(real_width, [mine, *others])
    assert together[0] == alone
    assert real_width.backend.stats()["widest_step"] >= min(neighbours + 1, 2) or before >= 2  # it shared a batch


def first_logits_of(engine: Engine, seed: int, jobs) -> "np.ndarray":
    """The logits a story's last prompt position gets (its first token's) in the batcher's step, while `jobs` (the
    one with `seed` among them) are written at once."""
    import numpy as np

    batcher, seen = engine.backend._batchers[None], []
    real = batcher._infer

    def recording(entries, reading=False):
        logits = real(entries, reading)
        for index, (job, _, ids, past) in enumerate(entries):
            if job is not None and job.request.seed == seed and past + len(ids) == len(job.prompt):
                seen.append(np.array(logits[index]))
        return logits

    batcher._infer = recording
    try:
        write_at_once(engine, jobs)
    finally:
        del batcher._infer
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("neighbours", [1, 3, 7])
def test_a_story_s_first_logits_are_the_same_bit_for_bit_read_alone_or_beside_others(real_width, neighbours):
    """Where the CPU has bf16, stories are read by a bf16 graph (the writers' steps stay f32): a story read alone
    or beside others gives its first token the same logits, bit for bit (the reader always computes 5+ rows of
    logits: with 1-4 rows their last bits differ from 8 rows'), and its keys and values match too, or the texts
    above would part."""
    import numpy as np

    from relay.backends.openvino.backend import _reading_properties

    batcher = real_width.backend._batchers[None]
    mine = (STORY * 2, SAMPLED.replace(seed=21, max_new_tokens=2))
    reference = first_logits_of(real_width, 21, [(mine[0] + ["다른 끝."], mine[1])])  # warm, and another story
    alone = first_logits_of(real_width, 21, [mine])
    others = [(OTHER_STORIES[i % len(OTHER_STORIES)] + [f"{i}번째 옆 이야기."], SAMPLED.replace(seed=70 + i))
              for i in range(neighbours)]
    together = first_logits_of(real_width, 21, [mine, *others])
    assert np.array_equal(alone, together)
    assert not np.array_equal(reference, alone)  # the recording tells stories apart
    import openvino as ov
    assert (batcher.reader is not None) == (_reading_properties(ov.Core(), "int8") is not None)


def read_first_logits(engine: Engine, prompt: list[int]) -> tuple["np.ndarray", int]:
    """The logits `prompt`'s last position gets (its first token's) and how many of its ids came from kept blocks."""
    from relay.backends.base import GenerationRequest

    batcher, seen = engine.backend._batchers[None], []
    request = GenerationRequest(prompt=prompt, n=1, settings=SAMPLED.replace(max_new_tokens=1), seed=1, adapter=None,
                                never_ids=[], paragraph_end_ids=[], holds_paragraph_end=lambda row: False,
                                on_tokens=lambda ids: [True], cancelled=lambda: False)
    real = batcher._infer

    def recording(entries, reading=False):
        logits = real(entries, reading)
        for index, (job, _, ids, past) in enumerate(entries):
            if job is not None and job.request is request and past + len(ids) == len(prompt):
                seen.append(np.array(logits[index]))
        return logits

    batcher._infer = recording
    try:
        engine.backend.generate(request)
    finally:
        del batcher._infer
    assert len(seen) == 1
    return seen[0], request.cached_tokens


def test_a_retry_and_a_next_turn_read_on_from_kept_blocks_and_get_a_fresh_read_s_logits(real_width):
    """A story's read blocks are kept, its last, partly filled one too: a retry (or swipe) of the same prompt reads
    only its last 2 ids again, a next turn only the new ones. Wherever the story ends in a cache block, the first
    token gets the logits, bit for bit, that reading everything from nothing gives: keys are quantized position by
    position, and no call reads a lone position or fewer than 5 in bf16 (each computes them otherwise)."""
    batcher = real_width.backend._batchers[None]
    size = batcher.pool.size
    rng = np.random.default_rng(5)

    def fresh(prompt):
        with batcher.cond:  # the batcher is idle between turns: forget every kept block
            batcher.pool.reset()
        return read_first_logits(real_width, prompt)

    for length in (size, size + 1, size + 2, size + 3, size + 4, size + 5, 2 * size + 17, 3 * size - 2, 3 * size - 1):
        story = rng.integers(10, 50000, length).tolist()
        for added in (1, 2, 26):
            grown = story + rng.integers(10, 50000, added).tolist()
            first, cached = fresh(story)
            assert cached == 0
            again, cached = read_first_logits(real_width, story)
            assert np.array_equal(first, again), (length, "retry")
            assert cached == length - 2
            following, cached = read_first_logits(real_width, grown)
            assert cached == min(length, len(grown) - 2)
            assert np.array_equal(fresh(grown)[0], following), (length, added)


class _RoundingReader:
    """A compiled reader standing in for another CPU's kernels: its logits move in their last bits in the calls
    `differs(rows_of_logits, sequences)` names."""

    def __init__(self, compiled, differs):
        self.compiled, self.differs = compiled, differs

    def create_infer_request(self):
        return _RoundingRequest(self.compiled.create_infer_request(), self.differs)


class _RoundingRequest:
    def __init__(self, request, differs):
        self.request, self.differs = request, differs

    def __getattr__(self, name):
        return getattr(self.request, name)

    def infer(self, inputs, **options):
        outputs = self.request.infer(inputs, **options)
        if self.differs(len(inputs["logits_indices"]), len(inputs["past_lens"])):
            outputs["logits"][:] += np.float32(1e-3)
        return outputs


def test_a_cpu_whose_bf16_reading_depends_on_the_call_reads_in_f32(real_width, caplog):
    """The reader is kept only after a check at startup: a story read alone and beside 1, 3 and 8 others must give
    the same first logits. Where they differ (here: a reader whose logits move in their last bits when more than
    two stories share a call), stories are read by the f32 graph and the log says so."""
    import logging

    import relay.backends.openvino.batcher as batcher_module

    batcher = real_width.backend._batchers[None]
    if batcher.reader is None:
        pytest.skip("this CPU has no bf16 units: there is no reader to check")
    reader = batcher.reader.get_compiled_model()
    made = []

    def batcher_with(compiled):
        made.append(batcher_module._Batcher(batcher.compiled, 64 << 20, f"check-{len(made)}", reader=compiled))
        return made[-1]

    try:
        kept = batcher_with(reader)
        assert kept.reader is not None
        with caplog.at_level(logging.WARNING, logger="relay.backends.openvino.batcher"):
            dropped = batcher_with(_RoundingReader(reader, lambda rows, sequences: sequences > 2))
        assert dropped.reader is None
        assert "stories are read in f32" in caplog.text
        assert dropped.steps == 0 and dropped.widest == 0  # the check is not counted as a step
    finally:
        for made_batcher in made:
            made_batcher.close()


def constant_types(xml) -> dict[str, int]:
    """How many weight values of each element type a saved OpenVINO model holds."""
    import math

    import openvino as ov

    counts: dict[str, int] = {}
    for op in ov.Core().read_model(xml).get_ops():
        if op.get_type_name() == "Constant":
            name = op.get_output_element_type(0).get_type_name()
            counts[name] = counts.get(name, 0) + math.prod(op.get_output_shape(0))
    return counts


def test_int4_stores_4_bit_weights_in_its_own_cache_and_an_unknown_precision_is_refused(tiny_model_dir, relay_cache,
                                                                                        monkeypatch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    paths = {precision: cached_model_path(model, precision) for precision in ("int8", "int4", "fp32")}
    assert len({path.parent for path in paths.values()}) == 3  # an int8 conversion is never reused for int4
    sizes = {precision: (path.parent / "model.bin").stat().st_size for precision, path in paths.items()}
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"]
    int4, int8 = constant_types(paths["int4"]), constant_types(paths["int8"])
    assert int4.get("u4", 0) > int4.get("u8", 0)  # most weights in 4 bits (the embedding / output matrix in 8)
    assert "u4" not in int8 and int8.get("u8", 0) > int8.get("f32", 0)
    monkeypatch.setenv(PRECISION_ENV, "int3")
    with pytest.raises(BackendError, match="int8, int4, fp32"):
        OpenVinoBackend.from_model(model)


def decompressed(xml, matrix_name: str) -> "np.ndarray":
    """A compressed weight of a saved model as its decompression computes it, by hand: (u8 - zero point) * scale."""
    import openvino as ov

    for op in ov.Core().read_model(xml).get_ops():
        if op.get_type_name() == "Multiply" and matrix_name in op.get_friendly_name():
            subtract, scale = (op.input_value(i).get_node() for i in range(2))
            weight, zero = (subtract.input_value(i).get_node().input_value(0).get_node() for i in range(2))
            values = (weight.get_data().astype(np.float32) - zero.get_data().astype(np.float32))
            return (values * scale.get_data().astype(np.float32)).astype(np.float16)
    raise AssertionError(f"no compressed {matrix_name} in {xml}")


def test_the_reader_reads_the_compressed_weights_unpacked_and_an_older_cache_gets_them(tiny_model_dir, tmp_path,
                                                                                       monkeypatch):
    """int8 and int4 conversions keep, beside model.xml, the reader's model: the same graph with each compressed
    weight stored as the 16-bit values its decompression computes (the bf16 reader then converts them once, not at
    every call). A cache converted before the reader had its file gets it from `python -m relay.prepare` (and at
    the app's next start), shown as a stage."""
    import openvino as ov
    from transformers import AutoModelForCausalLM

    from relay.backends.openvino.convert import READER
    from relay.prepare import prepare

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for precision in ("int8", "int4"):
        xml = cached_model_path(model, precision, tmp_path)
        reader = xml.with_name(READER)
        types = constant_types(reader)
        assert not {"u8", "u4"} & set(types) and types["f16"] > types.get("f32", 0)
        assert cached_model_path(model, "fp32", tmp_path).with_name(READER).exists() is False
    xml = cached_model_path(model, "int8", tmp_path)
    table = decompressed(xml, "wte.weight")  # the embedding, as NNCF's decompression computes it
    assert any(op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() == "f16"
               and np.array_equal(op.get_data(), table) for op in ov.Core().read_model(xml.with_name(READER)).get_ops())

    for name in (READER, "reader.bin"):
        xml.with_name(name).unlink()  # as converted before this reader existed
    monkeypatch.setenv("RELAY_CACHE", str(tmp_path))
    preparation, _ = prepare(str(tiny_model_dir), {}, "int8", bar=False)  # python -m relay.prepare
    assert xml.with_name(READER).is_file() and preparation.converted == ["base"]
    assert preparation.durations.keys() == {"check", "cached", "unpack"}


def test_a_cache_the_reader_s_weights_cannot_be_written_into_reads_with_the_8_bit_weights(tiny_model_dir, tmp_path,
                                                                                           monkeypatch, caplog):
    import logging

    import openvino as ov
    from transformers import AutoModelForCausalLM

    from relay.backends.openvino.convert import READER, reader_model_path

    xml = cached_model_path(AutoModelForCausalLM.from_pretrained(tiny_model_dir), "int8", tmp_path)
    for name in (READER, "reader.bin"):
        xml.with_name(name).unlink()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ov, "save_model", disk_full)
    with caplog.at_level(logging.WARNING, logger="relay.backends.openvino.convert"):
        assert reader_model_path(xml) == xml  # the 8-bit model, read as before
    assert "No space left on device" in caplog.text and not list(xml.parent.glob("reader*"))


def test_the_read_precision_setting_is_checked_and_f32_reads_with_the_writers_graph(tiny_model_dir, relay_cache,
                                                                                    monkeypatch):
    from transformers import AutoModelForCausalLM

    from relay.backends.openvino.backend import READ_PRECISION_ENV

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    monkeypatch.setenv(READ_PRECISION_ENV, "fp16")
    with pytest.raises(BackendError, match="RELAY_OPENVINO_READ_PRECISION must be bf16 or f32; got 'fp16'"):
        OpenVinoBackend.from_model(model)
    monkeypatch.setenv(READ_PRECISION_ENV, "f32")
    backend = OpenVinoBackend.from_model(model)
    try:
        assert backend._batchers[None].reader is None
    finally:
        backend.close()


def test_stories_read_together_finish_together_and_a_short_read_starts_within_two_steps():
    """The batcher's share of a step among the stories being read (reading_pieces): whole cache blocks, never more
    than the budget or a story's rest; a story that arrived one step ahead is caught up with; a next turn's short
    read is not queued behind long ones; the whole budget is used while there is reading to do."""
    from relay.backends.openvino.batcher import reading_pieces

    def read(remaining, budget, arrivals=()):
        """Steps until each story is read, reading_pieces applied step after step; arrivals: (step, length)."""
        remaining, done, step, arrivals = list(remaining), {}, 0, list(arrivals)
        while any(remaining) or arrivals:
            while arrivals and arrivals[0][0] == step:
                remaining.append(arrivals.pop(0)[1])
            pieces = reading_pieces(remaining, budget, 32)
            assert all(0 <= p <= left and (p % 32 == 0 or p == left) for p, left in zip(pieces, remaining))
            assert sum(pieces) == min(budget, sum(remaining)) or budget - 32 * len(remaining) < sum(pieces) <= budget
            remaining = [left - p for left, p in zip(remaining, pieces)]
            step += 1
            done.update({i: step for i, left in enumerate(remaining) if not left and i not in done})
        return [done[i] for i in range(len(remaining))]

    ahead = read([512], 256, arrivals=[(1, 512), (1, 512), (1, 512)])  # one writer a step before three others
    assert max(ahead) - min(ahead) <= 1
    assert max(read([512] * 16, 256)) == 32  # 16 stories: all read in 8,192 / 256 steps, none left behind
    short = read([900, 900, 60], 256)
    assert short[2] <= 2 and max(short) == -(-(900 * 2 + 60) // 256)


def token_steps(engine: Engine, jobs, *, first: int) -> dict[int, list[int]]:
    """Write `jobs` at once, the first `first` of them admitted one step before the rest (the batcher waits until
    every job is queued, so thread start-up cannot change who goes when); per seed, the batcher's step at each
    token."""
    batcher = engine.backend._batchers[None]
    real_admit, real_generate, opened = batcher._admit, engine.backend.generate, []
    steps: dict[int, list[int]] = {}
    start = batcher.steps

    def admit():
        if opened:
            return real_admit()
        if len(batcher.waiting) == len(jobs):
            later = [batcher.waiting.pop() for _ in range(len(jobs) - first)]
            real_admit()
            batcher.waiting.extend(reversed(later))
            opened.append(True)

    def generate(request):
        inner = request.on_tokens

        def on_tokens(ids):
            steps.setdefault(request.seed, []).append(batcher.steps - start)
            return inner(ids)

        request.on_tokens = on_tokens
        return real_generate(request)

    batcher._admit, engine.backend.generate = admit, generate
    try:
        write_at_once(engine, jobs)
    finally:
        del batcher._admit, engine.backend.generate
    return steps


def test_a_writer_a_step_ahead_starts_with_the_others_and_no_writer_misses_a_step(fast, monkeypatch):
    import relay.backends.openvino.batcher as batcher_module

    monkeypatch.setattr(batcher_module, "STEP_TOKENS", 128)  # four cache blocks: the stories below take several steps
    jobs = [(story * 12, SAMPLED.replace(seed=80 + i, max_new_tokens=12)) for i, story in enumerate(OTHER_STORIES)]
    steps = token_steps(fast, jobs, first=1)
    firsts = [steps[80 + i][0] for i in range(len(jobs))]
    assert min(firsts) > 3  # reading took several steps, the first writer's too
    assert max(firsts) - min(firsts) <= 1  # its head start was caught up with: they write side by side
    for seen in steps.values():  # once writing, every step gives each writer its next token
        assert seen == list(range(seen[0], seen[0] + len(seen)))


def test_the_pool_counts_the_blocks_it_can_give_as_they_change(fast):
    """`available` (checked before every turn is admitted) is kept as a count, not recounted over the kept blocks:
    through random turns (takes, holds, releases, kept whole blocks and tails, evictions) it always equals the free
    blocks plus the kept ones nobody holds, and `take` gives exactly that many."""
    import random

    from relay.backends.openvino.pool import _Pool

    compiled = fast.backend._batchers[None].compiled
    pool = _Pool(compiled, compiled.create_infer_request(), 0, count=12)
    rng, held = random.Random(4), []
    stories = [[rng.randrange(50) for _ in range(3 * pool.size)] for _ in range(3)]  # turns of a few stories meet

    def counted():
        return len(pool.free) + sum(1 for block in pool.kept.values() if pool.refs[block] == 0)

    for turn in range(300):
        prompt = rng.choice(stories)[:rng.randrange(1, 3 * pool.size)]
        kept = pool.kept_prefix(prompt, (len(prompt) - 2) // pool.size)
        for block in kept:
            pool.hold(block)
        own = [pool.take() for _ in range(min(2, pool.available()))]
        blocks = kept + own
        for index in range(len(kept), min(len(blocks), len(prompt) // pool.size)):
            pool.keep(blocks[index], prompt, index)
        if len(prompt) % pool.size and pool.available():
            copy = pool.take()
            pool.keep_tail(copy, prompt)
            pool.release(copy)
        held.append(blocks)
        assert pool.available() == counted(), turn
        if rng.random() < 0.6 or len(held) > 3:  # a turn ends
            for block in held.pop(rng.randrange(len(held))):
                pool.release(block)
            assert pool.available() == counted(), turn
    for blocks in held:
        for block in blocks:
            pool.release(block)
    taken = [pool.take() for _ in range(pool.available())]
    assert sorted(taken) == list(range(pool.count)) and pool.available() == counted() == 0


def test_a_story_read_alone_reads_longer_steps_after_its_first(fast, monkeypatch):
    """Alone (nobody writing or waiting), a story reads STEP_TOKENS in its first step, as any story does, so others
    arriving meanwhile join it at the second; then LONE_STEPS times as many a step (longer calls read faster)."""
    import relay.backends.openvino.batcher as batcher_module

    monkeypatch.setattr(batcher_module, "STEP_TOKENS", 64)  # two cache blocks
    story = ["혼자 읽히는 이야기의 첫 줄."] + STORY * 12  # its own first line: no kept blocks
    settings = SAMPLED.replace(seed=86, max_new_tokens=4)
    length = len(fast.assemble(story, settings).ids)
    assert length > 3 * 64
    steps = token_steps(fast, [(story, settings)], first=1)
    assert steps[86][0] == 1 + -(-(length - 64) // 128)  # then 128 a step: fewer steps than 64 at a time


def test_a_story_read_in_small_pieces_beside_other_writers_gives_the_same_text(real_width, monkeypatch):
    import relay.backends.openvino.batcher as batcher_module

    mine = (STORY * 3, SAMPLED.replace(seed=12, max_new_tokens=16))
    alone = real_width.continue_story(*mine).text  # read in one piece
    monkeypatch.setattr(batcher_module, "STEP_TOKENS", 64)  # two cache blocks: pieces of one or two blocks
    others = [(story, SAMPLED.replace(seed=90 + i, max_new_tokens=30)) for i, story in enumerate(OTHER_STORIES[:3])]
    assert write_at_once(real_width, [mine, *others])[0] == alone
