"""Big stories stay cheap on the live stream (issue 20): a tab gets a window of the newest cards, each
change sends only the cards that changed, older cards come in pages from `/relay/older`, rendered
cards are reused (and bounded), and a story's snapshot goes when its last tab closes."""

from __future__ import annotations

import json
import time

import pytest
import requests

from relay.live import LiveHub, _message
from relay.story_store import StoryStore
from relay.ui import render as render_module
from relay.store.validation import MAX_TEXT_CHARS
from relay.ui.demo import MAX_OLDER_PAGE, OLDER_PAGE, WINDOW, older_cards, story_parts
from relay.ui.render import CardCache

BIG = 3000


def story_of(store: StoryStore, n: int, title: str = "긴 이야기", text: str = "바람이 불었다."):
    """A free-rule story of `n` paragraphs ("문단 1" …), written in one import."""
    when = "2026-12-01T00:00:00.000000+00:00"
    paragraphs = [{"seq": i, "author": "민지", "kind": "human", "text": f"문단 {i}. {text}", "created_at": when}
                  for i in range(1, n + 1)]
    return store.import_json({"format": "relay-story", "version": 2, "paragraphs": paragraphs,
                              "story": {"title": title, "created_by": "민지", "created_at": when, "turn_rule": "free"}})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The live routes (and an empty Gradio page) over a store holding a story of 3,000 paragraphs."""
    import gradio as gr

    from relay.ui.server import free_port, serve

    store = StoryStore(tmp_path_factory.mktemp("big-live") / "relay.db")
    with gr.Blocks() as demo:
        gr.Markdown("relay")
    server = serve(demo, store, port=free_port(), block=False)
    server.store = store
    server.big = story_of(store, BIG)
    yield server
    server.close()
    store.close()


class Tab:
    """One open tab's event stream, read line by line."""

    def __init__(self, url: str, story: int, lang: str = "ko"):
        self.response = requests.get(f"{url}relay/live", params={"story": story, "lang": lang}, stream=True, timeout=30)
        assert self.response.status_code == 200
        self.lines = self.response.iter_lines(decode_unicode=True)

    def next(self) -> tuple[dict, int]:
        """The next message and its size in bytes as sent."""
        for line in self.lines:
            if line.startswith("data: "):
                return json.loads(line[6:]), len(line.encode("utf-8"))
        raise AssertionError("the stream ended")

    def close(self) -> None:
        self.response.close()


def test_a_story_of_3000_paragraphs_opens_with_a_message_under_200_kb_holding_its_newest_cards(served):
    tab = Tab(served.url, served.big.id)
    try:
        first, size = tab.next()
    finally:
        tab.close()
    assert first["kind"] == "full" and size < 200_000, size
    assert [seq for _, seq, _ in first["cards"]] == list(range(BIG - WINDOW + 1, BIG + 1))
    assert first["more"] is True and first["count"] == BIG and first["first"] == BIG - WINDOW + 1
    assert first["older"] == "이전 문단 더 보기"
    assert f"문단 {BIG}." in first["cards"][-1][2] and "문단 1." not in json.dumps(first, ensure_ascii=False)


def test_paragraphs_of_the_longest_kind_make_a_shorter_window_and_pages_but_never_a_bigger_message(served):
    store = served.store
    story = story_of(store, 300, "아주 긴 문단들", text="가" * (MAX_TEXT_CHARS - 20))
    tab = Tab(served.url, story.id)
    try:
        first, size = tab.next()
    finally:
        tab.close()
    assert size < 200_000 and first["more"] is True
    shown = [seq for _, seq, _ in first["cards"]]
    assert 1 <= len(shown) < WINDOW and shown == list(range(301 - len(shown), 301)) and first["first"] == shown[0]
    page = older_cards(store, story.id, shown[0], "ko", limit=MAX_OLDER_PAGE)
    assert page["more"] and 1 <= len(page["cards"]) < MAX_OLDER_PAGE
    assert [seq for _, seq, _ in page["cards"]] == list(range(shown[0] - len(page["cards"]), shown[0]))
    assert len(json.dumps(page, ensure_ascii=False).encode("utf-8")) < 200_000


def test_an_add_to_a_big_story_sends_only_the_new_card(served):
    store, story = served.store, story_of(served.store, BIG, "더하는 이야기")
    tab = Tab(served.url, story.id)
    try:
        tab.next()
        added = store.add_paragraph(story.id, "새 문단 <b>하나</b>", "준호")
        message, size = tab.next()
    finally:
        tab.close()
    assert message["kind"] == "update" and "cards" not in message and "remove" not in message
    assert [card[:2] for card in message["upsert"]] == [[added.id, BIG + 1]]
    assert "새 문단 &lt;b&gt;하나&lt;/b&gt;" in message["upsert"][0][2]
    assert message["head"] == added.id and message["count"] == BIG + 1 and message["first"] == BIG - WINDOW + 2
    assert size < 5_000, size


def test_older_pages_come_in_seq_order_down_to_the_first_paragraph(served):
    url, story = served.url, served.big
    before, seqs = BIG - WINDOW + 1, []
    while True:
        r = requests.get(f"{url}relay/older", params={"story": story.id, "before": before, "lang": "ko"}, timeout=30)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        page = r.json()
        assert len(page["cards"]) <= OLDER_PAGE
        seqs = [seq for _, seq, _ in page["cards"]] + seqs
        assert all(f"문단 {seq}." in html and f'data-seq="{seq}"' in html for _, seq, html in page["cards"])
        if not page["more"]:
            break
        before = page["cards"][0][1]
    assert seqs == list(range(1, BIG - WINDOW + 1))
    english = requests.get(f"{url}relay/older", params={"story": story.id, "before": 3, "lang": "en", "limit": 2},
                           timeout=30).json()
    assert [seq for _, seq, _ in english["cards"]] == [1, 2] and not english["more"]
    assert "human" in english["cards"][0][2]  # the English badge


@pytest.mark.parametrize("params", [
    {"before": 10}, {"story": "x", "before": 10}, {"story": 0, "before": 10}, {"story": "1.5", "before": 10},
    {"story": "²", "before": 10}, {"story": 2**63, "before": 10}, {"story": 1}, {"story": 1, "before": 0},
    {"story": 1, "before": -1}, {"story": 1, "before": 2**31}, {"story": 1, "before": 10, "lang": "fr"},
    {"story": 1, "before": 10, "limit": 0}, {"story": 1, "before": 10, "limit": MAX_OLDER_PAGE + 1},
    {"story": 1, "before": 10, "limit": "ten"},
])
def test_older_refuses_every_malformed_parameter(served, params):
    r = requests.get(f"{served.url}relay/older", params=params, timeout=30)
    assert r.status_code in (400, 422), r.text
    assert "error" in r.json() or "detail" in r.json()


def test_older_pages_of_an_unknown_story_say_so(served):
    r = requests.get(f"{served.url}relay/older", params={"story": 999_999, "before": 10, "lang": "ko"}, timeout=30)
    assert r.status_code == 404 and "999999" in r.json()["error"]


def test_a_change_renders_only_the_new_card_and_the_cache_stays_within_its_bound(relay_db, monkeypatch):
    rendered = []
    real = render_module.render_card
    monkeypatch.setattr(render_module, "render_card", lambda p, lang: rendered.append(p.seq) or real(p, lang))
    with StoryStore() as store:
        story = story_of(store, 500)
        cards = CardCache()
        for lang in ("ko", "en"):
            story_parts(store, story.id, lang, cards)
        assert len(rendered) == 2 * WINDOW
        rendered.clear()
        store.add_paragraph(story.id, "하나 더", "준호")
        parts = {lang: story_parts(store, story.id, lang, cards) for lang in ("ko", "en")}
        assert rendered == [501, 501]
        assert len(parts["ko"]["cards"]) == WINDOW and parts["ko"]["cards"][-1][1] == 501
        small = CardCache(max_chars=20_000)
        story_parts(store, story.id, "ko", small)
        assert 0 < small.chars <= 20_000 and len(small) < WINDOW


def test_a_card_is_rendered_again_when_its_text_changes(relay_db):
    with StoryStore() as store:
        story = story_of(store, 3)
        cards = CardCache()
        before = story_parts(store, story.id, "ko", cards)
        store.edit_paragraph(story.id, before["cards"][1][0], "고친 문단", "민지")
        after = story_parts(store, story.id, "ko", cards)
        message = _message(after, before)
        assert [(pid, seq) for pid, seq, _ in message["upsert"]] == [(before["cards"][1][0], 2)]
        assert "고친 문단" in message["upsert"][0][2] and "remove" not in message


def parts(*seqs: int, more: bool = False) -> dict:
    """Snapshot parts whose cards have the given seqs (id = seq * 10, fingerprint = seq)."""
    return {"cards": [(s * 10, s, s, f"<div data-seq='{s}'></div>") for s in seqs], "first": seqs[0] if seqs else 0,
            "more": more, "head": seqs[-1] * 10 if seqs else 0}


def test_a_card_sliding_out_of_the_window_stays_on_the_page_and_an_undone_one_goes():
    slid = _message(parts(*range(2, 202), more=True), parts(*range(1, 201), more=True))
    assert [c[1] for c in slid["upsert"]] == [201] and "remove" not in slid
    undone = _message(parts(*range(1, 200), more=True), parts(*range(2, 201), more=True))
    assert undone["remove"] == [2000] and [c[1] for c in undone["upsert"]] == [1]
    emptied = _message(parts(), parts(1))
    assert emptied["remove"] == [10] and "upsert" not in emptied
    assert _message(parts(1, 2), parts(1, 2)) is None


def test_the_hub_drops_a_story_snapshot_when_its_last_tab_closes(served):
    hub = served.hub
    tabs = [Tab(served.url, served.big.id) for _ in range(3)]
    try:
        for tab in tabs:
            tab.next()
        assert served.big.id in hub._latest
    finally:
        for tab in tabs:
            tab.close()
    deadline = time.monotonic() + 10
    while (served.big.id in hub._latest or hub.subscriber_count()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.big.id not in hub._latest and hub.subscriber_count() == 0


def test_when_a_story_s_last_tab_closes_the_freed_memory_goes_back_to_the_os(served, monkeypatch):
    import relay.live

    deadline = time.monotonic() + 15
    while served.hub._release_pending and time.monotonic() < deadline:  # one left by an earlier test
        time.sleep(0.1)
    released = []
    monkeypatch.setattr(relay.live, "RELEASE_AFTER_S", 0.1)
    monkeypatch.setattr(relay.live, "RELEASE_EVERY_S", 0.0)
    monkeypatch.setattr(relay.live, "give_back_memory", lambda: released.append(time.monotonic()) or True)
    tabs = [Tab(served.url, served.big.id) for _ in range(2)]
    for tab in tabs:
        tab.next()
    tabs[0].close()
    time.sleep(1.0)
    assert released == []  # another tab still shows the story
    tabs[1].close()
    deadline = time.monotonic() + 10
    while not released and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(released) == 1
    assert relay.live.give_back_memory.__name__ == "<lambda>"


def test_giving_memory_back_is_harmless_where_there_is_nothing_to_give():
    from relay.live import give_back_memory

    assert give_back_memory() in (True, False)
