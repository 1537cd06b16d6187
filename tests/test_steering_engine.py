"""The engine generates from exactly the assembled context (memory, cards, story window, author's note) on every
backend: the ids `Engine.assemble` shows are the ids the backend receives (and, for the remote backend, the ids
sent to the server). The meta of what it wrote records which memory, note and card versions it read; memory
that leaves the story too little is refused before the model is touched, naming the block.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from relay.context import Card, Steering
from relay.engine import ContextTooLong, Engine, SamplingSettings
from test_engine import BACKENDS
from test_backend_openai import free_port

STORY = [
    "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.",
    "골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.",
    "\"정말 올 거라고 생각했어요?\" 그녀가 웃으며 물었다.",
    "나는 대답 대신 주머니 속의 편지를 만지작거렸다.",
]
STEERING = Steering(memory="할머니는 부엌에서 된장찌개를 끓이고 계셨다.", memory_version=3, note="창밖으로 눈이 내렸다.",
                    note_version=2, note_depth=2,
                    cards=(Card(id=5, name="편지", keys=("편지",), text="편지는 어머니가 썼다.", version=4),
                           Card(id=6, name="바다", keys=("바다",), text="바다는 잔잔했다.")))


def settings(**changes) -> SamplingSettings:
    return SamplingSettings(**{"seed": 7, "max_new_tokens": 24, "min_new_tokens": 0, **changes})


@pytest.fixture(scope="module")
def relay_serve(tiny_model_dir, tmp_path_factory):
    """A `python -m relay.serve` process on the tiny model (the remote backend's server); its URL."""
    import httpx

    port = free_port()
    env = {**os.environ, "RELAY_CACHE": str(tmp_path_factory.getbasetemp() / "relay-cache"), "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "relay.serve", "--model", str(tiny_model_dir), "--backend",
                                "transformers", "--port", str(port)],
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env, stdout=log,
                               stderr=subprocess.STDOUT)
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
                pytest.fail(f"relay.serve did not start: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# What the model reads is the same at every precision: one openvino run (its default, int8) is enough here.
RUNTIMES = [name for name in BACKENDS if "-" not in name] + ["openai"]


@pytest.fixture(scope="module", params=RUNTIMES)
def engine(request, tiny_model_dir, relay_cache):
    if request.param == "openai":
        url = request.getfixturevalue("relay_serve")
        return Engine.from_pretrained(tiny_model_dir, backend="openai", inference_url=url)
    return Engine.from_pretrained(tiny_model_dir, backend=request.param)


class Received:
    """Records the prompt of every request the backend gets (and, remote, every prompt sent to the server)."""

    def __init__(self, engine, monkeypatch):
        self.prompts, self.sent = [], []
        backend = engine.backend
        generate = backend.generate

        def recording(request):
            self.prompts.append(list(request.prompt))
            return generate(request)

        monkeypatch.setattr(backend, "generate", recording)
        if hasattr(backend, "_body"):
            body = backend._body

            def sending(request, prompt, *args, **kwargs):
                self.sent.append(list(prompt))
                return body(request, prompt, *args, **kwargs)

            monkeypatch.setattr(backend, "_body", sending)


def test_the_backend_receives_exactly_the_assembled_ids(engine, monkeypatch):
    received = Received(engine, monkeypatch)
    shown = engine.assemble(STORY, settings(), STEERING)
    assert [b.kind for b in shown.blocks] == ["memory", "card", "story", "note", "story"]
    stream = engine.continue_story(STORY, settings(), steering=STEERING)
    stream.text  # noqa: B018  (waits for the end)
    assert received.prompts == [shown.ids] == [[i for b in shown.blocks for i in b.ids]]
    if engine.backend_name == "openai":
        assert received.sent and received.sent[0] == shown.ids  # the very ids sent over HTTP
    assert stream.meta["prompt_tokens"] == len(shown.ids)


def test_alternatives_read_the_same_assembled_ids(engine, monkeypatch):
    received = Received(engine, monkeypatch)
    shown = engine.assemble(STORY, settings(temperature=1.0), STEERING)
    result = engine.alternatives(STORY, settings(temperature=1.0), 2, steering=STEERING)
    assert len(result) == 2 and received.prompts == [shown.ids]


def test_the_meta_records_which_memory_note_and_card_versions_were_read(engine):
    meta = engine.continue_story(STORY, settings(), steering=STEERING).meta
    assert meta["context"]["memory_version"] == 3 and meta["context"]["note_version"] == 2
    assert meta["context"]["cards"] == [{"id": 5, "version": 4, "key": "편지"}]
    plain = engine.continue_story(STORY, settings()).meta
    assert "context" not in plain  # without steering the meta is as before


def test_without_steering_the_model_reads_the_plain_story_window(engine):
    assert engine.assemble(STORY, settings()).ids == engine.assemble(STORY, settings(), Steering()).ids
    assert engine.context_text(STORY, settings()) == "\n".join(STORY) + "\n"


def test_memory_that_leaves_the_story_too_little_is_refused_before_the_model_runs(engine, monkeypatch):
    received = Received(engine, monkeypatch)
    crowded = Steering(memory="할머니는 부엌에서 된장찌개를 끓이고 계셨다. " * 12)
    with pytest.raises(ContextTooLong) as refused:
        engine.continue_story(STORY * 4, settings(max_new_tokens=120), steering=crowded)
    assert refused.value.problem.block == "memory" and refused.value.field == "memory"
    assert "story memory" in str(refused.value) and received.prompts == []
