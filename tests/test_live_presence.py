"""Who is here, from the live stream (relay/live.py + relay/store/presence.py): a tab that names its writer
puts them among who is here while it is open, every tab on the story hears of it, and a writer id that is
not one is ignored."""

from __future__ import annotations

import json
import time

import pytest
import requests

from relay.story_store import StoryStore, writer_id_of


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The live route (and an empty Gradio page) over a store with one story 민지 writes in."""
    import gradio as gr

    from relay.ui.server import free_port, serve

    store = StoryStore(tmp_path_factory.mktemp("presence-live") / "relay.db")
    with gr.Blocks() as demo:
        gr.Markdown("relay")
    server = serve(demo, store, port=free_port(), block=False)
    server.store = store
    server.key = store.new_writer_key()
    server.story = store.create_story("누가 있나", "민지", turn_rule="free", writer_key=server.key)
    yield server
    server.close()
    store.close()


def open_tab(served, writer: str | None):
    params = {"story": served.story.id, "lang": "ko"} | ({"writer": writer} if writer else {})
    response = requests.get(f"{served.url}relay/live", params=params, stream=True, timeout=30)
    assert response.status_code == 200
    return response, response.iter_lines(decode_unicode=True)


def next_message(lines) -> dict:
    for line in lines:
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("the stream ended")


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_a_tab_naming_its_writer_shows_them_here_to_every_tab_until_it_closes(served):
    minji = writer_id_of(served.key)
    reader, reader_lines = open_tab(served, None)
    try:
        assert "민지" not in (next_message(reader_lines).get("presence") or "")
        tab, lines = open_tab(served, minji)
        next_message(lines)
        wait_until(lambda: served.store.here(served.story.id) == [(minji, "민지")])
        assert "민지" in next_message(reader_lines)["presence"]  # the reader's tab hears she arrived
        tab.close()
        wait_until(lambda: served.store.here(served.story.id) == [])
        assert "민지" not in next_message(reader_lines)["presence"]
    finally:
        reader.close()


def test_a_writer_id_that_is_not_one_is_ignored(served):
    tab, lines = open_tab(served, "<script>")
    try:
        next_message(lines)
        time.sleep(0.3)
        assert served.store.here(served.story.id) == []
    finally:
        tab.close()
