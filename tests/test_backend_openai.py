"""The remote backend against a real `python -m relay.serve` process on the tiny model (no mocks).

The server runs the OpenVINO backend in fp32 when it is installed (exact, so its text can be compared with
transformers'), else transformers; the app side uses backend "openai".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from relay.engine import Engine, EngineError, SamplingSettings, SettingsError
from relay.tiny import build_tiny_adapter

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
]
MARKUP = ("<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>")


def settings(**changes) -> SamplingSettings:
    return SamplingSettings(**{"seed": 7, "max_new_tokens": 30, "min_new_tokens": 0, **changes})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    return build_tiny_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "noir")


@pytest.fixture(scope="module")
def server(tiny_model_dir, adapter_dir, tmp_path_factory):
    """A relay.serve process on a free port; its URL."""
    import httpx

    port = free_port()
    try:
        import openvino  # noqa: F401
        backend = "openvino"
    except ImportError:
        backend = "transformers"
    env = {**os.environ, "RELAY_CACHE": str(tmp_path_factory.getbasetemp() / "relay-cache"), "HF_HUB_OFFLINE": "1",
           "RELAY_OPENVINO_PRECISION": "fp32"}
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "relay.serve", "--model", str(tiny_model_dir), "--adapter", f"noir={adapter_dir}",
         "--backend", backend, "--port", str(port)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/relay", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"relay.serve did not start: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def remote(server, tiny_model_dir, adapter_dir) -> Engine:
    return Engine.from_pretrained(tiny_model_dir, adapters={"noir": str(adapter_dir)}, backend="openai",
                                  inference_url=server)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, adapter_dir) -> Engine:
    return Engine.from_pretrained(tiny_model_dir, adapters={"noir": str(adapter_dir)}, backend="transformers")


def test_greedy_text_from_the_server_equals_the_local_transformers_text(remote, reference):
    for changes in ({}, {"no_repeat_ngram_size": 0}, {"stop_at": "length"}):
        greedy = settings(temperature=0.0, **changes)
        assert remote.continue_story(STORY, greedy).text == reference.continue_story(STORY, greedy).text
    greedy = settings(temperature=0.0, stop_at="length")
    styled = remote.continue_story(STORY, greedy, adapter="noir")
    assert styled.text == reference.continue_story(STORY, greedy, adapter="noir").text
    assert styled.meta["adapter"] == "noir"


def test_the_remote_stream_streams_reproduces_seeds_and_reports_its_backend(remote):
    stream = remote.continue_story(STORY, settings(stop_at="length", trim_incomplete=False))
    chunks = list(stream)
    assert len(chunks) > 1 and "".join(chunks) == stream.text
    assert stream.meta["backend"] == "openai" and stream.meta["output_tokens"] == 30
    assert remote.continue_story(STORY, settings(stop_at="length", trim_incomplete=False)).text == stream.text
    others = {remote.continue_story(STORY, settings(seed=s, stop_at="length")).text for s in (1, 2, 3)}
    assert len(others) == 3
    assert remote.unsupported_settings == frozenset()  # relay.serve honours every setting


def test_a_remote_paragraph_never_ends_before_min_new_tokens_and_never_shows_markup(remote):
    for seed in range(4):
        stream = remote.continue_story(STORY, settings(seed=seed, min_new_tokens=8, temperature=1.5, top_k=0,
                                                        top_p=1.0, max_new_tokens=60))
        assert stream.meta["output_tokens"] >= 8
        assert "\n" not in stream.text and not any(token in stream.text for token in MARKUP)


def test_cancel_stops_the_remote_stream_within_a_few_tokens(remote):
    cancel = threading.Event()
    stream = remote.continue_story(STORY, settings(stop_at="length", max_new_tokens=200, trim_incomplete=False),
                                   cancel=cancel)
    received = [next(stream)]
    cancel.set()
    received += list(stream)
    assert stream.meta["stopped_by"] == "cancel" and stream.meta["output_tokens"] < 200
    assert "".join(received) == stream.text


def test_remote_alternatives_are_distinct_and_reproducible(remote):
    alternatives = remote.alternatives(STORY, settings(stop_at="length"), 3)
    assert len(set(alternatives)) == 3 and all(alternatives)
    assert list(remote.alternatives(STORY, settings(stop_at="length"), 3)) == list(alternatives)


def test_a_server_that_is_down_gives_a_message_naming_the_url_and_what_to_start(tiny_model_dir):
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = Engine.from_pretrained(tiny_model_dir, backend="openai", inference_url=url)
    with pytest.raises(EngineError) as caught:
        engine.continue_story(STORY, settings()).text
    assert url in str(caught.value) and "relay.serve" in str(caught.value)
    # A server that is not relay.serve (vLLM, or unknown because it was down) has no typical-p: refused, not ignored.
    assert engine.unsupported_settings == {"typical_p", "no_repeat_ngram_size"}
    with pytest.raises(SettingsError) as refused:
        engine.continue_story(STORY, settings(typical_p=0.9))
    assert refused.value.field == "typical_p" and "openai" in str(refused.value)


# --- token probabilities (issue 18): relay.serve serves the engine's recording as OpenAI logprobs ---------------


def test_remote_probabilities_are_a_softmax_over_the_logits_the_server_sampled_from(remote, reference):
    from test_token_probs import SAMPLED, _model_logits, _reference, assert_matches_reference

    knobs = SamplingSettings(**SAMPLED)
    result = remote.continue_story(STORY, knobs)
    tokens = result.meta["tokens"]
    assert "".join(tokens["text"]) == result.text and len(tokens["ids"]) == knobs.max_new_tokens
    prompt = reference.assemble(STORY, knobs).ids
    logits = _model_logits(reference, prompt, tokens["ids"])  # the server runs the same weights (fp32)
    assert_matches_reference(tokens, _reference(reference, knobs, prompt, tokens["ids"], logits))
    # A paragraph written in two requests (paragraph ends held back first) still has one entry per id.
    held = remote.continue_story(STORY, settings(min_new_tokens=6, max_new_tokens=40))
    assert "".join(held.meta["tokens"]["text"]) == held.text
    assert len(held.meta["tokens"]["p"]) == held.meta["output_tokens"] and None not in held.meta["tokens"]["p"]


def test_a_remote_branch_keeps_the_ids_before_the_token(remote):
    greedy = settings(temperature=0.0, stop_at="length", max_new_tokens=16)
    original = remote.continue_story(STORY, greedy).meta["tokens"]
    other = original["top"][5][1][0]
    branch = remote.branch(STORY, greedy, original["ids"][:5] + [other])
    assert branch.meta["tokens"]["ids"][:6] == original["ids"][:5] + [other]
    assert "".join(branch.meta["tokens"]["text"]) == branch.text


def test_relay_serve_answers_logprobs_like_the_openai_completions_api(server):
    import httpx

    body = {"prompt": "비가 그친 저녁", "max_tokens": 5, "temperature": 0.8, "seed": 3, "logprobs": 3}
    choice = httpx.post(f"{server}/completions", json=body, timeout=60).json()["choices"][0]
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == 5
    assert all(value < 0 for value in logprobs["token_logprobs"])
    assert all(len(top) == 3 and list(top.values()) == sorted(top.values(), reverse=True)
               for top in logprobs["top_logprobs"])
    starts = [0]
    for token in logprobs["tokens"][:-1]:
        starts.append(starts[-1] + len(token))
    assert logprobs["text_offset"] == starts  # where each token's text starts in the completion
    with httpx.stream("POST", f"{server}/completions", json={**body, "stream": True}, timeout=60) as response:
        chunks = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:") and line[5:].strip() != "[DONE]"]
    streamed = [c["choices"][0]["logprobs"] for c in chunks if c["choices"][0]["finish_reason"] is None]
    assert [v for lp in streamed for v in lp["token_logprobs"]] == pytest.approx(logprobs["token_logprobs"])
    assert [o for lp in streamed for o in lp["text_offset"]] == logprobs["text_offset"]
    refused = httpx.post(f"{server}/completions", json={**body, "logprobs": 6}, timeout=60)
    assert refused.status_code == 400 and "logprobs" in refused.json()["error"]["message"]
