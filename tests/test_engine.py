"""The generation engine on tiny random GPT-2 models loaded through the real `from_pretrained` path.

Every test that takes one of the engine fixtures runs once per available backend (transformers, and
openvino when it is installed): the engine's contract is the same on all of them.

Random models write nonsense, so behaviour that depends on *what* the model prefers (ending a paragraph,
ending a sentence, emitting special tokens) is tested on "fixed-preference" models built here: the final
layer norm is set to output a constant vector and the tied embedding matrix is edited so every step's
logits are exactly 0 except for a few chosen tokens. Everything else (tokenizer, config, loading,
generate, decoding) is the real path.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import threading
from pathlib import Path

import pytest

from relay.engine import (Continuation, Engine, EngineError, ModelLoadError, SamplingSettings, SettingsError,
                          StreamDecoder)
from relay.tiny import build_tiny_adapter

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
    "\"정말 올 거라고 생각했어요?\" 그녀가 웃으며 물었다.",
]
PLAIN = dict(repetition_penalty=1.0, no_repeat_ngram_size=0, top_k=0, top_p=1.0, typical_p=1.0)
MARKUP = ("<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "<d>", "</d>", "<unused")


def fixed_preference_model(source: Path, target: Path, preferred: dict[str, float]) -> Path:
    """Copy the model in `source` so that every next-token logit is 0 except `preferred` tokens (token -> logit)."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = GPT2LMHeadModel.from_pretrained(source)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0  # every position's final hidden state is the unit vector e0
        embeddings = model.get_output_embeddings().weight  # tied with the input embeddings
        embeddings[:, 0] = 0.0
        for token, logit in preferred.items():
            token_id = tokenizer.convert_tokens_to_ids(token)
            assert token_id != tokenizer.unk_token_id or token == "<unk>", token
            embeddings[token_id, 0] = logit
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, target / name)
    return target


def settings(**changes) -> SamplingSettings:
    return SamplingSettings(**{"seed": 7, "max_new_tokens": 40, "min_new_tokens": 0, **changes})


# openvino runs the contract twice: at its default int8 and at int4 (RELAY_OPENVINO_PRECISION), whose other kernels
# and NNCF's group-wise compression must keep every rule too.
BACKENDS = ["transformers"] + (["openvino", "openvino-int4"] if importlib.util.find_spec("openvino") else [])


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request, relay_cache):
    """The backend's name; for "openvino-int4", "openvino" with RELAY_OPENVINO_PRECISION=int4 while its tests run."""
    name, _, precision = request.param.partition("-")
    with pytest.MonkeyPatch.context() as patch:
        if precision:
            patch.setenv("RELAY_OPENVINO_PRECISION", precision)
        yield name


def rules_only_once() -> None:
    """Skip at int4: the fixed-preference and real-vocabulary models test rules of the token loop and the decoder,
    the same code at every precision, so they are converted once (int8) rather than again at int4. The int4 run
    keeps what int4 changes: the weights and kernels under seeds, batches, streams, cancels and adapters."""
    if os.environ.get("RELAY_OPENVINO_PRECISION") == "int4":
        pytest.skip("a rule of the token loop, the same code at every precision: tested at int8")


@pytest.fixture(scope="module")
def engine(tiny_model_dir, backend) -> Engine:
    return Engine.from_pretrained(tiny_model_dir, backend=backend)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return build_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "noir")


@pytest.fixture(scope="module")
def adapted_engine(tiny_model_dir, adapter_dir, backend) -> Engine:
    return Engine.from_pretrained(tiny_model_dir, adapters={"noir": str(adapter_dir)}, backend=backend)


@pytest.fixture(scope="module")
def newline_engine(tiny_model_dir, tmp_path_factory, backend) -> Engine:
    """A model that always prefers "\\n" (so it ends the paragraph as soon as it may)."""
    rules_only_once()
    folder = fixed_preference_model(tiny_model_dir, tmp_path_factory.mktemp("newline"), {"\n": 12.0})
    return Engine.from_pretrained(folder, backend=backend)


@pytest.fixture(scope="module")
def sentence_engine(tiny_model_dir, tmp_path_factory, backend) -> Engine:
    """A model that writes only "었다." and "▁그녀", at random: sentences end whenever "었다." meets "▁그녀"."""
    rules_only_once()
    folder = fixed_preference_model(tiny_model_dir, tmp_path_factory.mktemp("sentence"),
                                    {"었다.": 10.0, "▁그녀": 10.0})
    return Engine.from_pretrained(folder, backend=backend)


# ------------------------------------------------------------------ loading


def test_engine_reports_model_device_window_adapters_and_backend(engine, adapted_engine, tiny_model_dir, backend):
    assert engine.model_id == str(tiny_model_dir)
    assert engine.device == "cpu"
    assert engine.context_window == 256 and engine.max_new_tokens_limit == 256 - 32
    assert engine.backend_name == backend and engine.unsupported_settings == frozenset()
    assert engine.adapter_names == []
    assert adapted_engine.adapter_names == ["noir"]
    assert engine.count_tokens("") == 0 and engine.count_tokens("그녀가 웃으며 물었다.") > 0


def test_auto_picks_the_fast_cpu_backend_when_it_is_installed_and_an_unknown_backend_is_refused(tiny_model_dir,
                                                                                               relay_cache):
    auto = Engine.from_pretrained(tiny_model_dir, backend="auto", device="cpu")
    assert auto.backend_name == ("openvino" if "openvino" in BACKENDS else "transformers")
    assert auto.continue_story(STORY, settings()).meta["backend"] == auto.backend_name
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained(tiny_model_dir, backend="onnx")
    assert "transformers" in str(caught.value) and "openvino" in str(caught.value)


def test_a_missing_model_folder_gives_a_model_load_error_that_says_what_to_pass(tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained(tmp_path / "no-such-model")
    assert "no-such-model" in str(caught.value) and "folder" in str(caught.value)


def test_a_hub_id_while_offline_gives_a_model_load_error_suggesting_a_local_folder():
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained("relay-tests/kogpt2-that-does-not-exist")
    assert "local folder" in str(caught.value)


def test_a_folder_without_weights_gives_a_model_load_error(tmp_path, tiny_model_dir):
    folder = tmp_path / "tokenizer-only"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained(folder)
    assert str(folder) in str(caught.value)


def test_an_adapter_from_a_missing_folder_gives_a_model_load_error(tiny_model_dir, tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained(tiny_model_dir, adapters={"ghost": str(tmp_path / "ghost-adapter")})
    assert "ghost" in str(caught.value)


def test_an_adapter_made_for_a_base_model_of_another_shape_gives_a_model_load_error(tiny_model_dir, tmp_path):
    from relay.tiny import build_tiny_model

    wider = build_tiny_model(tmp_path / "wider", n_embd=32, n_head=2)
    adapter = build_tiny_adapter(wider, tmp_path / "wider-adapter")
    with pytest.raises(ModelLoadError) as caught:
        Engine.from_pretrained(tiny_model_dir, adapters={"wide": str(adapter)})
    assert "different base model" in str(caught.value)


# ------------------------------------------------------------------ generating


def test_the_stream_yields_chunks_that_join_to_the_text_and_meta_describes_the_run(engine):
    stream = engine.continue_story(STORY, settings(stop_at="length", trim_incomplete=False))
    assert isinstance(stream, Continuation)
    chunks = list(stream)
    assert len(chunks) > 1 and all(chunks)
    assert "".join(chunks) == stream.text
    assert stream.text == stream.text.strip()
    meta = stream.meta
    # A model loaded from a server folder is "local model" in what stories keep (never the server's path).
    assert meta["model"] == "local model" and engine.model_id not in str(meta) and meta["adapter"] is None
    assert meta["seed"] == 7 and meta["settings"]["seed"] == 7
    assert SamplingSettings.from_dict(meta["settings"]) == settings(stop_at="length", trim_incomplete=False)
    assert meta["prompt_tokens"] == engine.count_tokens("\n".join(STORY) + "\n")
    assert meta["output_tokens"] == 40 and meta["stopped_by"] == "length"
    assert meta["seconds"] >= 0


def test_the_same_seed_settings_and_story_give_the_same_text(engine):
    first = engine.continue_story(STORY, settings(seed=123)).text
    assert engine.continue_story(STORY, settings(seed=123)).text == first
    others = {engine.continue_story(STORY, settings(seed=seed, stop_at="length")).text for seed in (1, 2, 3)}
    assert len(others) == 3


def test_without_a_seed_one_is_picked_reported_and_reproduces_the_text(engine):
    stream = engine.continue_story(STORY, settings(seed=None, stop_at="length"))
    seed = stream.meta["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert stream.meta["settings"]["seed"] == seed
    again = engine.continue_story(STORY, settings(seed=seed, stop_at="length"))
    assert again.text == stream.text


def test_max_new_tokens_is_never_exceeded(engine):
    for limit in (1, 5, 33):
        stream = engine.continue_story(STORY, settings(stop_at="length", max_new_tokens=limit))
        assert stream.meta["output_tokens"] == limit
        assert len(list(engine.continue_story(STORY, settings(stop_at="length", max_new_tokens=limit,
                                                              trim_incomplete=False)))) <= limit


def test_max_new_tokens_that_leaves_no_room_for_the_story_is_refused(engine):
    with pytest.raises(SettingsError) as caught:
        engine.continue_story(STORY, settings(max_new_tokens=250))
    assert caught.value.field == "max_new_tokens"


def test_an_empty_story_still_gets_an_opening(engine):
    stream = engine.continue_story([], settings(stop_at="length", trim_incomplete=False))
    assert stream.text and stream.meta["prompt_tokens"] == 1


def test_stop_at_paragraph_ends_at_the_first_newline_after_min_new_tokens(newline_engine):
    stream = newline_engine.continue_story(STORY, settings(temperature=0.0, min_new_tokens=5, **PLAIN))
    assert stream.meta["stopped_by"] == "paragraph"
    assert stream.meta["output_tokens"] == 6  # five words it was forced to write, then "\n"
    assert stream.text and "\n" not in stream.text


def test_a_paragraph_never_ends_before_it_has_any_text(newline_engine):
    stream = newline_engine.continue_story(STORY, settings(temperature=0.0, min_new_tokens=0, **PLAIN))
    assert stream.meta["stopped_by"] == "paragraph"
    assert stream.meta["output_tokens"] == 2  # one word, then the newline it prefers
    assert stream.text and "\n" not in stream.text


def test_stop_at_sentence_ends_right_after_the_first_sentence(sentence_engine):
    for seed in range(5):
        stream = sentence_engine.continue_story(STORY, settings(seed=seed, stop_at="sentence", **PLAIN))
        text = stream.text
        assert stream.meta["stopped_by"] == "sentence"
        assert text.endswith("었다.") and text.count("었다. ") == 0


def test_trim_incomplete_drops_the_unfinished_last_sentence_but_still_streams_word_by_word(sentence_engine):
    for seed in range(5):
        common = settings(seed=seed, stop_at="length", max_new_tokens=15, **PLAIN)
        untrimmed = sentence_engine.continue_story(STORY, common.replace(trim_incomplete=False)).text
        stream = sentence_engine.continue_story(STORY, common.replace(trim_incomplete=True))
        chunks = list(stream)
        assert "".join(chunks) == untrimmed  # the writer watched every token arrive
        assert len(chunks) > 1
        assert untrimmed.startswith(stream.text)
        if "었다." in untrimmed:
            assert stream.text.endswith("었다.")
            assert stream.text == untrimmed[:untrimmed.rindex("었다.") + 3]


def test_cancel_stops_generation_within_a_few_tokens(engine):
    cancel = threading.Event()
    stream = engine.continue_story(STORY, settings(stop_at="length", max_new_tokens=200, trim_incomplete=False),
                                   cancel=cancel)
    received = [next(stream)]
    cancel.set()
    received += list(stream)
    assert stream.meta["stopped_by"] == "cancel"
    assert stream.meta["output_tokens"] < 200
    assert "".join(received) == stream.text


def test_a_cancel_set_before_the_turn_starts_writes_nothing(engine):
    cancel = threading.Event()
    cancel.set()
    stream = engine.continue_story(STORY, settings(), cancel=cancel)
    assert list(stream) == [] and stream.text == ""
    assert stream.meta["stopped_by"] == "cancel" and stream.meta["output_tokens"] == 0


def test_an_abandoned_or_closed_stream_frees_the_engine_for_the_next_writer(engine):
    long = settings(stop_at="length", max_new_tokens=200, trim_incomplete=False)
    closed = engine.continue_story(STORY, long)
    next(closed)
    closed.close()
    assert closed.meta["stopped_by"] == "cancel" and closed.meta["output_tokens"] < 200

    abandoned = engine.continue_story(STORY, long)
    next(abandoned)
    channel = abandoned._channel  # to see that collecting the stream closed it
    del abandoned
    gc.collect()
    assert channel.closed.is_set()
    done = threading.Event()
    result = []
    threading.Thread(target=lambda: (result.append(engine.continue_story(STORY, settings()).text), done.set()),
                     daemon=True).start()
    assert done.wait(timeout=60), "the engine stayed locked after the stream was abandoned"


def test_concurrent_writers_all_finish_with_the_same_text_as_when_alone(engine):
    seeds = [11, 12, 13, 14]
    alone = {seed: engine.continue_story(STORY, settings(seed=seed, stop_at="length")).text for seed in seeds}
    together: dict[int, str] = {}
    errors = []

    def write(seed):
        try:
            stream = engine.continue_story(STORY, settings(seed=seed, stop_at="length"))
            assert "".join(stream).startswith(stream.text)  # streamed in full, then trimmed at the end
            together[seed] = stream.text
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in seeds]
    threads.append(threading.Thread(target=lambda: together.setdefault(
        0, "|".join(engine.alternatives(STORY, settings(seed=99), 2)))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert {seed: together[seed] for seed in seeds} == alone
    assert together[0] == "|".join(engine.alternatives(STORY, settings(seed=99), 2))


def test_a_generation_error_reaches_the_reader_as_an_engine_error(engine):
    with pytest.raises(SettingsError):
        engine.continue_story(STORY, {"temperature": 0.5})
    with pytest.raises(SettingsError):
        engine.continue_story("a story as one string", settings())
    assert issubclass(SettingsError, EngineError) and issubclass(ModelLoadError, EngineError)


# ------------------------------------------------------------------ alternatives


def test_alternatives_are_n_distinct_candidates_from_one_call(engine):
    alternatives = engine.alternatives(STORY, settings(stop_at="length"), 3)
    assert isinstance(alternatives, list) and len(alternatives) == 3
    assert len(set(alternatives)) == 3 and all(alternatives)
    meta = alternatives.meta
    assert meta["n"] == 3 and meta["seed"] == 7 and meta["stopped_by"] == "length"
    assert [c["output_tokens"] for c in meta["candidates"]] == [40, 40, 40]
    assert meta["output_tokens"] == 120
    assert list(engine.alternatives(STORY, settings(stop_at="length"), 3)) == list(alternatives)


@pytest.mark.parametrize("n", [0, 5, -1, True, 2.0])
def test_alternatives_outside_one_to_four_are_refused(engine, n):
    with pytest.raises(SettingsError) as caught:
        engine.alternatives(STORY, settings(), n)
    assert caught.value.field == "n"


def test_alternatives_with_temperature_zero_are_refused_because_they_would_be_identical(engine):
    with pytest.raises(SettingsError) as caught:
        engine.alternatives(STORY, settings(temperature=0.0), 2)
    assert caught.value.field == "temperature"
    assert len(engine.alternatives(STORY, settings(temperature=0.0), 1)) == 1


def test_alternatives_stop_each_candidate_at_its_own_paragraph_end(newline_engine):
    alternatives = newline_engine.alternatives(STORY, settings(min_new_tokens=3, temperature=0.7, **PLAIN), 4)
    assert len(alternatives) == 4
    assert all("\n" not in text for text in alternatives)
    assert {c["stopped_by"] for c in alternatives.meta["candidates"]} == {"paragraph"}


# ------------------------------------------------------------------ adapters


def test_an_adapter_changes_the_text_and_no_adapter_restores_the_base_model_exactly(engine, adapted_engine):
    greedy = settings(temperature=0.0, stop_at="length")
    base = engine.continue_story(STORY, greedy).text
    assert adapted_engine.continue_story(STORY, greedy).text == base
    styled = adapted_engine.continue_story(STORY, greedy, adapter="noir")
    assert styled.text != base and styled.meta["adapter"] == "noir"
    assert adapted_engine.continue_story(STORY, greedy, adapter=None).text == base
    sampled = settings(stop_at="length", seed=5)
    assert adapted_engine.continue_story(STORY, sampled).text == engine.continue_story(STORY, sampled).text


def test_an_unknown_adapter_name_is_refused_listing_the_available_ones(adapted_engine):
    with pytest.raises(SettingsError) as caught:
        adapted_engine.continue_story(STORY, settings(), adapter="romance")
    assert "noir" in str(caught.value) and caught.value.field == "adapter"


# ------------------------------------------------------------------ decoding on the small tokenizer


def test_stream_decoder_keeps_the_space_before_the_first_new_word(engine):
    tokenizer = engine.tokenizer
    prompt = tokenizer("비가 그친 저녁,", add_special_tokens=False)["input_ids"]
    new = tokenizer("비가 그친 저녁, 나는 그녀를 기다렸다.", add_special_tokens=False)["input_ids"][len(prompt):]
    decoder = StreamDecoder(tokenizer, prompt, frozenset())
    seen = ""
    for token_id in new:
        text = decoder.add(token_id)
        assert text.startswith(seen)
        seen = text
    assert seen == " 나는 그녀를 기다렸다."


# ------------------------------------------------------------------ the real KoGPT-2 tokenizer (tiny random model)


@pytest.fixture(scope="module")
def kogpt2_engine(kogpt2_tiny_model_dir, backend) -> Engine:
    rules_only_once()
    return Engine.from_pretrained(kogpt2_tiny_model_dir, backend=backend)


@pytest.fixture(scope="module")
def novel_lines(corpus_dir, kogpt2_engine) -> list[str]:
    """The novels' lines (a sentence or paragraph each), in order, without the few holding characters that
    KoGPT-2's vocabulary lacks (those become <unk>, which would make text comparisons below fuzzy)."""
    lines = []
    for path in sorted(corpus_dir.glob("*.txt")):
        lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    unk = kogpt2_engine.tokenizer.unk_token_id
    encoded = kogpt2_engine.tokenizer(lines, add_special_tokens=False)["input_ids"]
    return [line for line, ids in zip(lines, encoded) if unk not in ids]


def normalized(engine: Engine, text: str) -> str:
    """What the tokenizer's normalizer makes of `text` (NFKC: "…" becomes "...")."""
    return engine.tokenizer.backend_tokenizer.normalizer.normalize_str(text)


def encode(engine: Engine, text: str) -> list[int]:
    return engine.tokenizer(text, add_special_tokens=False)["input_ids"]


def story_of(lines: list[str], chars: int) -> list[str]:
    story, total = [], 0
    for line in lines:
        story.append(line)
        total += len(line) + 1
        if total >= chars:
            return story
    raise AssertionError("corpus too small")


def test_a_long_real_story_is_cut_at_a_paragraph_boundary_and_fills_but_never_exceeds_the_window(
        kogpt2_engine, novel_lines):
    story = story_of(novel_lines, 20_000)
    wanted = settings(max_new_tokens=100, stop_at="length")
    context = kogpt2_engine.context_text(story, wanted)
    assert context.endswith("\n")
    kept = context[:-1].split("\n")
    assert kept == [normalized(kogpt2_engine, p) for p in story[-len(kept):]]
    stream = kogpt2_engine.continue_story(story, wanted)
    budget = kogpt2_engine.context_window - 100
    assert stream.meta["prompt_tokens"] <= budget
    one_more = kogpt2_engine.count_tokens("\n".join(story[-len(kept) - 1:]) + "\n")
    assert one_more > budget
    assert stream.meta["output_tokens"] == 100


def test_a_50000_character_story_works_as_paragraphs_as_one_paragraph_and_as_one_endless_sentence(
        kogpt2_engine, novel_lines):
    wanted = settings(max_new_tokens=60, stop_at="length")
    budget = kogpt2_engine.context_window - 60
    story = story_of(novel_lines, 50_000)
    assert sum(map(len, story)) >= 49_000
    assert kogpt2_engine.continue_story(story, wanted).meta["prompt_tokens"] <= budget

    one_paragraph = " ".join(story)
    context = kogpt2_engine.context_text([one_paragraph], wanted)[:-1]
    whole = normalized(kogpt2_engine, one_paragraph)
    assert whole.endswith(context) and len(context) < len(whole)
    before = whole[:len(whole) - len(context)]
    assert before.endswith(" ") and before.rstrip()[-1] in ".?!'\""  # cut where a sentence starts
    assert kogpt2_engine.continue_story([one_paragraph], wanted).meta["prompt_tokens"] <= budget

    endless = " ".join(line.replace(".", "").replace("?", "").replace("!", "") for line in story)
    stream = kogpt2_engine.continue_story([endless], wanted)
    assert stream.meta["prompt_tokens"] == budget  # cut at a token: the window is exactly full
    assert stream.meta["output_tokens"] == 60


def test_decoding_round_trips_real_paragraphs_token_by_token(kogpt2_engine, novel_lines):
    tokenizer = kogpt2_engine.tokenizer
    for previous, paragraph in zip(novel_lines[:400:2], novel_lines[1:400:2]):
        prompt = encode(kogpt2_engine, previous + "\n")
        joined = encode(kogpt2_engine, previous + "\n" + paragraph + "\n")
        assert joined[:len(prompt)] == prompt
        decoder = StreamDecoder(tokenizer, prompt, frozenset())
        seen = ""
        for token_id in joined[len(prompt):]:
            text = decoder.add(token_id)
            assert text.startswith(seen)  # append-only: what was shown stays true
            seen = text
        assert seen == normalized(kogpt2_engine, paragraph) + "\n"


def test_emoticons_emoji_and_typed_jamo_come_out_exactly_as_written(kogpt2_engine):
    line = "그는 웃었다 :) 😊 ㅋㅋ ^^ (-:"
    prompt = encode(kogpt2_engine, "그녀가 물었다.\n")
    decoder = StreamDecoder(kogpt2_engine.tokenizer, prompt, frozenset(kogpt2_engine.tokenizer.all_special_ids))
    for token_id in encode(kogpt2_engine, "그녀가 물었다.\n" + line)[len(prompt):]:
        decoder.add(token_id)
    assert decoder.text == line
    assert kogpt2_engine.context_text(["ㅋㅋ :) 좋아"], settings()) == "ㅋㅋ :) 좋아\n"


def test_no_special_markup_or_unk_token_reaches_the_output_even_when_the_model_prefers_them(
        kogpt2_tiny_model_dir, tmp_path, backend):
    rules_only_once()
    markup = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>", "<d>", "</d>", "<unused0>", "<unused99>"]
    preferred = {token: 12.0 for token in markup}
    preferred.update({":)": 10.0, "😊": 10.0, "▁그는": 10.0, "었다.": 10.0})
    engine = Engine.from_pretrained(fixed_preference_model(kogpt2_tiny_model_dir, tmp_path / "markup", preferred),
                                    backend=backend)
    stream = engine.continue_story(STORY, settings(stop_at="length", max_new_tokens=200, temperature=1.0,
                                                   trim_incomplete=False, **PLAIN))
    text = stream.text
    assert stream.meta["output_tokens"] == 200
    assert ":)" in text and "😊" in text and "그는" in text
    assert not any(token in text for token in MARKUP) and "\ufffd" not in text

    paragraph = engine.continue_story(STORY, settings(stop_at="paragraph", min_new_tokens=3, temperature=0.0))
    assert paragraph.meta["stopped_by"] == "paragraph" and paragraph.meta["output_tokens"] == 4  # then </s>
    assert paragraph.text and not any(token in paragraph.text for token in MARKUP)


def test_a_random_model_over_many_sampled_tokens_shows_only_clean_text(kogpt2_engine):
    alternatives = kogpt2_engine.alternatives(STORY, settings(stop_at="length", max_new_tokens=150, top_k=0,
                                                              top_p=1.0, temperature=1.5, trim_incomplete=False), 4)
    assert alternatives.meta["output_tokens"] == 600
    for text in alternatives:
        assert text and text == text.strip()
        assert not any(token in text for token in MARKUP) and "\ufffd" not in text
