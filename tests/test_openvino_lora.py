"""Adapters at runtime on the OpenVINO backend: one LoRA graph serves every adapter, each adapter costs its LoRA
matrices, and writes what its merged model writes (exactly on fp32, within the int8 floor on int8); writers of the
base and of several adapters share the backend, each getting its own text and its seed's text.
"""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("openvino")

from relay.backends.base import BackendError, GenerationRequest  # noqa: E402
from relay.backends.openvino import OpenVinoBackend  # noqa: E402
from relay.engine import Engine, SamplingSettings, load_tokenizer  # noqa: E402
from relay.tiny import build_tiny_adapter  # noqa: E402
from test_backend_openvino import ids  # noqa: E402  the ids a continuation wrote

STORY = ["비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.", "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다."]
OTHER_STORIES = [
    ["할머니는 부엌에서 된장찌개를 끓이고 계셨다."],
    ["그날 밤 마을에는 이상한 소문이 돌았다.", "산 너머 절에서 종소리가 세 번 울렸다는 것이다."],
    ["바다는 잔잔했고, 배는 천천히 항구를 떠났다."],
]
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=30, min_new_tokens=0, stop_at="length", seed=1)
SAMPLED = SamplingSettings(max_new_tokens=30, min_new_tokens=0, stop_at="length")


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory) -> dict[str, str]:
    import torch

    folder = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)  # PEFT draws lora_A from torch's global generator
    return {"noir": str(build_tiny_adapter(tiny_model_dir, folder / "noir", seed=0)),
            "pulp": str(build_tiny_adapter(tiny_model_dir, folder / "pulp", seed=1))}


def base_model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


def merged_model(folder, adapter):
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model(folder), adapter).merge_and_unload()


def engine_of(model, folder, adapters, precision, cache=None) -> Engine:
    backend = OpenVinoBackend.from_model(model, adapters=adapters, precision=precision, cache=cache)
    return Engine(backend, load_tokenizer(folder), model_id=str(folder), adapter_names=list(adapters), device="cpu")


@pytest.fixture(scope="module")
def runtime(tiny_model_dir, adapters, relay_cache) -> dict[str, Engine]:
    """fp32 and int8 backends with both adapters at runtime (one LoRA graph each)."""
    engines = {precision: engine_of(base_model(tiny_model_dir), tiny_model_dir, adapters, precision)
               for precision in ("fp32", "int8")}
    yield engines
    for engine in engines.values():
        engine.close()


def next_logits(engine: Engine, prompt: list[int], adapter=None):
    """The logits the backend computes for the id after `prompt` (its batcher's step, read off as it runs)."""
    import numpy as np

    batcher, seen = engine.backend._batchers[adapter], []
    real = batcher._infer

    def recording(entries, reading=False):
        logits = real(entries, reading)
        seen.append(np.array(logits[0]))
        return logits

    request = GenerationRequest(prompt=prompt, n=1, settings=GREEDY.replace(max_new_tokens=1), seed=1,
                                adapter=adapter, never_ids=[], paragraph_end_ids=[],
                                holds_paragraph_end=lambda row: False, on_tokens=lambda step: [True],
                                cancelled=lambda: False)
    batcher._infer = recording
    try:
        engine.backend.generate(request)
    finally:
        del batcher._infer
    return seen[-1]


def logits_error(engine: Engine, exact: Engine, prompts, adapter=None, exact_adapter=None) -> float:
    """Mean distance of `engine`'s next-id logits from `exact`'s over `prompts`, relative to the exact logits'
    spread (0: the same numbers)."""
    import numpy as np

    errors = []
    for prompt in prompts:
        mine, truth = next_logits(engine, prompt, adapter), next_logits(exact, prompt, exact_adapter)
        errors.append(np.linalg.norm(mine - truth) / np.linalg.norm(truth - truth.mean()))
    return float(np.mean(errors))


def write_at_once(engine: Engine, jobs) -> list[str]:
    """Every (story, settings, adapter) continued by its own thread, all started together; their texts in order."""
    texts: dict[int, str] = {}
    started = threading.Barrier(len(jobs))

    def write(index):
        story, settings, adapter = jobs[index]
        started.wait()
        texts[index] = engine.continue_story(story, settings, adapter=adapter).text

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [texts.get(i) for i in range(len(jobs))]


def test_an_adapter_at_runtime_writes_what_its_merged_model_writes(runtime, tiny_model_dir, adapters):
    merged = {precision: engine_of(merged_model(tiny_model_dir, adapters["noir"]), tiny_model_dir, {}, precision)
              for precision in ("fp32", "int8")}
    stories = [STORY] + OTHER_STORIES
    exact = [ids(merged["fp32"], story, GREEDY) for story in stories]
    assert [ids(runtime["fp32"], story, GREEDY, "noir") for story in stories] == exact  # fp32: the same ids
    seeded = SAMPLED.replace(seed=7)
    assert ids(runtime["fp32"], STORY, seeded, "noir") == ids(merged["fp32"], STORY, seeded)
    assert exact != [ids(runtime["fp32"], story, GREEDY) for story in stories]  # the adapter matters
    # int8: the base weights are rounded, the LoRA update is not, so the adapter at runtime is no further from the
    # exact model than the merged int8 model (whose rounding includes the update) and about as far as int8 is
    # without an adapter (measured: relative logits error 0.013 at runtime, 0.019-0.024 merged, 0.011 base).
    tokenizer = load_tokenizer(tiny_model_dir)
    prompts = [tokenizer.encode(" ".join(story))[:length] for story in stories for length in (4, 12, 24)]
    at_runtime = logits_error(runtime["int8"], merged["fp32"], prompts, "noir")
    assert at_runtime <= logits_error(merged["int8"], merged["fp32"], prompts)
    assert at_runtime < 2 * logits_error(runtime["int8"], runtime["fp32"], prompts)  # the base model's int8 error
    for engine in merged.values():
        engine.close()


def test_the_base_and_two_adapters_write_at_once_each_its_own_text(runtime, tiny_model_dir, adapters):
    exact = runtime["fp32"]
    reference = Engine.from_pretrained(tiny_model_dir, adapters=adapters, backend="transformers")
    for adapter in (None, "noir", "pulp"):  # each as PEFT writes it, unmerged
        assert ids(exact, STORY, GREEDY, adapter) == ids(reference, STORY, GREEDY, adapter)
    jobs = [(STORY, SAMPLED.replace(seed=30), adapter) for adapter in (None, "noir", "pulp", "noir")]
    alone = [exact.continue_story(story, s, adapter=adapter).text for story, s, adapter in jobs]
    assert len(set(alone[:3])) == 3  # base, noir and pulp write different text from the same story and seed
    before = exact.backend._batchers["noir"].widest
    assert write_at_once(exact, jobs) == alone
    assert exact.backend._batchers["noir"] is exact.backend._batchers["pulp"]  # one LoRA graph for both
    assert max(before, exact.backend._batchers["noir"].widest) >= 2  # the adapters' writers shared steps


def test_a_seeded_adapter_turn_writes_the_same_ids_alone_and_beside_other_writers(runtime):
    fast = runtime["int8"]
    mine = (STORY, SAMPLED.replace(seed=11), "noir")
    alone = fast.continue_story(*mine[:2], adapter="noir").text
    same_adapter = write_at_once(fast, [mine, (OTHER_STORIES[0], SAMPLED.replace(seed=12), "noir")])
    mixed = write_at_once(fast, [mine, (OTHER_STORIES[1], SAMPLED.replace(seed=13), "pulp"),
                                 (OTHER_STORIES[2], SAMPLED.replace(seed=14), None)])
    assert same_adapter[0] == alone and mixed[0] == alone


def test_adapters_add_no_converted_model_and_cost_only_their_lora_weights(tiny_model_dir, adapters, tmp_path):
    cache = tmp_path / "cache"
    first = engine_of(base_model(tiny_model_dir), tiny_model_dir, {"noir": adapters["noir"]}, "int8", cache)
    converted = sorted(path.parent.name for path in cache.glob("openvino/*/model.xml"))
    assert len(converted) == 2  # the base graph and the LoRA graph
    assert first.backend.preparation.converted == ["base", "adapters"]
    retrained = build_tiny_adapter(tiny_model_dir, tmp_path / "noir-2", seed=2)
    second = engine_of(base_model(tiny_model_dir), tiny_model_dir, {**adapters, "noir-2": str(retrained)}, "int8",
                       cache)
    assert sorted(path.parent.name for path in cache.glob("openvino/*/model.xml")) == converted  # nothing new
    assert second.backend.preparation.converted == []
    sizes = second.backend.adapters.nbytes  # what each adapter holds: its A and B matrices
    model_bin = min((cache / "openvino" / name / "model.bin").stat().st_size for name in converted)
    assert set(sizes) == {"noir", "pulp", "noir-2"} and max(sizes.values()) < model_bin / 2
    assert second.continue_story(STORY, SAMPLED.replace(seed=3), adapter="noir-2").text
    first.close()
    second.close()


def test_an_adapter_the_lora_graph_cannot_run_is_refused_at_startup(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    dora = tmp_path / "dora"
    get_peft_model(base_model(tiny_model_dir), LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True,
                                                          use_dora=True)).save_pretrained(dora)
    with pytest.raises(BackendError, match="DoRA"):
        OpenVinoBackend.from_model(base_model(tiny_model_dir), adapters={"dora": str(dora)}, cache=tmp_path)


def test_a_seeded_adapter_turn_is_the_same_beside_other_writers_at_kogpt2_widths(kogpt2_dir, tmp_path_factory,
                                                                                  relay_cache):
    """KoGPT-2's widths (768 wide, its 51,200-id vocabulary), 2 layers, int8: the CPU kernels the real model runs."""
    import torch

    from relay.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("kogpt2-width"), tokenizer_file=kogpt2_dir / "tokenizer.json",
                              n_layer=2, n_embd=768, n_head=12, n_positions=1024)
    torch.manual_seed(0)
    adapters = {"noir": str(build_tiny_adapter(folder, tmp_path_factory.mktemp("wide") / "noir", seed=0)),
                "pulp": str(build_tiny_adapter(folder, tmp_path_factory.mktemp("wide") / "pulp", seed=1))}
    engine = engine_of(base_model(folder), folder, adapters, "int8")
    try:
        mine = (STORY, SAMPLED.replace(seed=11, max_new_tokens=24), "noir")
        alone = engine.continue_story(*mine[:2], adapter="noir").text
        others = [(OTHER_STORIES[i % 3] + [f"{i}번째 이야기."], SAMPLED.replace(seed=60 + i), adapter)
                  for i, adapter in enumerate(["noir", "pulp", "noir", None])]
        assert write_at_once(engine, [mine, *others[:1]])[0] == alone  # beside a writer of the same adapter
        assert write_at_once(engine, [mine, *others])[0] == alone  # and of another adapter, and of the base
        assert engine.backend._batchers["noir"].widest >= 3
    finally:
        engine.close()


def test_prepare_converts_the_lora_graph_once_and_a_new_adapter_needs_no_preparation(tiny_model_dir, adapters,
                                                                                     tmp_path, monkeypatch):
    from relay.prepare import prepare

    monkeypatch.setenv("RELAY_CACHE", str(tmp_path / "cache"))
    first, cache = prepare(str(tiny_model_dir), {"noir": adapters["noir"]}, "int8", bar=False)
    assert first.variants == ["base", "adapters"] and first.converted == ["base", "adapters"]
    again, _ = prepare(str(tiny_model_dir), adapters, "int8", bar=False)  # "pulp" added: nothing to convert
    assert again.converted == [] and len(list(cache.glob("openvino/*/model.xml"))) == 2
