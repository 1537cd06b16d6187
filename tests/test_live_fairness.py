"""No one client can hurt the others: a flood of model turns never delays a cheap request.

A hostile client joins 100 `/continue_story` events over raw HTTP and never reads their results.
Meanwhile another writer's add_paragraph and a new page load must still succeed at once: cheap
events do not queue behind model jobs, and one writer key (or address) may hold only a few model
jobs at a time. The live stream route is outside Gradio's queue altogether.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

gradio_client = pytest.importorskip("gradio_client")

FLOOD = 100
PROMPT_S = 15.0  # "promptly" on a loaded CI machine; an unfair queue takes minutes here


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    engine = Engine.from_pretrained(model=str(tiny_model_dir))
    store = StoryStore(tmp_path_factory.mktemp("fair-db") / "relay.db")
    server = serve(app.build_demo(engine, store, tiny=True), store, port=free_port(), block=False)
    yield server, store
    server.close()


def _fn_index(url: str, api_name: str) -> int:
    config = requests.get(f"{url}config", timeout=30).json()
    for i, dep in enumerate(config["dependencies"]):
        if dep.get("api_name") == api_name:
            return i
    raise LookupError(api_name)


def test_a_client_flooding_model_turns_cannot_delay_another_writer_or_a_page_load(served):
    server, store = served
    url = server.url
    client = gradio_client.Client(url, verbose=False)
    attacker_key = client.predict(api_name="/writer_key")
    story = client.predict("범람", "공격자", "free", attacker_key, api_name="/create_story")
    client.predict(story["id"], "첫 문단.", "공격자", 0, attacker_key, None, api_name="/add_paragraph")

    index = _fn_index(url, "continue_story")
    settings = {"max_new_tokens": 200, "stop_at": "length", "trim_incomplete": False}
    session = uuid.uuid4().hex
    joined = 0
    for _ in range(FLOOD):  # join and never read: no /queue/data stream is ever opened for this session
        r = requests.post(f"{url}gradio_api/queue/join", timeout=30, json={
            "data": [story["id"], "공격자", settings, None, attacker_key], "fn_index": index,
            "session_hash": session, "event_data": None, "trigger_id": None})
        joined += r.status_code == 200
    assert joined > 0

    # Another writer, on another story, in another session.
    other = gradio_client.Client(url, verbose=False)
    key = other.predict(api_name="/writer_key")
    mine = other.predict("평온", "민지", "free", key, api_name="/create_story")
    started = time.monotonic()
    para = other.predict(mine["id"], "밤이 깊었다.", "민지", 0, key, None, api_name="/add_paragraph")
    add_s = time.monotonic() - started
    assert para["text"] == "밤이 깊었다."

    started = time.monotonic()
    page = requests.get(url, timeout=PROMPT_S)
    page_s = time.monotonic() - started
    assert page.status_code == 200 and "gradio" in page.text.lower()
    with requests.get(f"{url}relay/live", params={"story": mine["id"], "lang": "ko"}, stream=True,
                      timeout=PROMPT_S) as live:
        first = next(line for line in live.iter_lines(decode_unicode=True) if line.startswith("data:"))
    assert json.loads(first[5:])["count"] == 1

    print(f"flood of {FLOOD} joined; add_paragraph {add_s:.2f} s, page {page_s:.2f} s")
    assert add_s < PROMPT_S and page_s < PROMPT_S
    # The flood itself got at most the per-writer cap of model turns: the rest were refused.
    time.sleep(1)
    turns = store.ai_turn(story["id"])
    assert turns is None or turns.holder == "공격자"
