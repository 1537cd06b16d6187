"""The model's turn belongs to the story, not to a browser tab (real Chromium, two writers' browsers).

A turn keeps writing when the tab that asked for it closes; a finished suggestion whose writer has
left can be taken over by a co-writer after a grace period; the holder's tab learns at once when its
turn was taken or expired; every tab shows who is here.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser

GRACE_S = 2.0  # how long a suggestion waits for its writer to come back (30 s in production)
IDLE_S = 8.0  # the idle release time (180 s in production)


@pytest.fixture(scope="module")
def slow_app(chromium_path, tmp_path_factory):
    """The app on a random model big enough that 120 tokens take seconds, with a short grace and idle time."""
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.tiny import build_tiny_model
    from relay.ui.server import free_port, serve

    folder = build_tiny_model(tmp_path_factory.mktemp("slow-model"), n_layer=12, n_embd=768, n_head=12, n_positions=512)
    engine = Engine.from_pretrained(model=str(folder), backend="transformers")
    store = StoryStore(tmp_path_factory.mktemp("handover-db") / "relay.db")
    store.create_story("입구", "관리자", turn_rule="free")
    before = os.environ.get("RELAY_TURN_GRACE_S")
    os.environ["RELAY_TURN_GRACE_S"] = str(GRACE_S)
    server = serve(app.build_demo(engine, store, tiny=True, ai_idle_s=IDLE_S), store, port=free_port(), block=False)
    server.store = store
    yield server
    server.close()
    if before is None:
        os.environ.pop("RELAY_TURN_GRACE_S", None)
    else:
        os.environ["RELAY_TURN_GRACE_S"] = before


def writer(new_page, served, name: str, href: str | None = None) -> RelayPage:
    page = RelayPage(new_page("ko-KR"), served.url).open(href)
    page.sign_in(name)
    return page


def wait_for(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_the_models_turn_keeps_writing_after_the_tab_that_asked_closes(new_page, slow_app):
    a = writer(new_page, slow_app, "민지")
    sid = a.create_story("닫힌 탭")
    a.add("등대지기는 밤마다 불을 켰다.")
    a.settings_for_long_stream(max_new_tokens=120)
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))
    a.page.locator("#relay-ai").click()
    expect(a.preview).not_to_have_value("", timeout=20_000)
    a.page.close()  # 1.5 s in: the writer closes the tab

    watch = b.page.locator("#relay-turn .relay-watch")
    expect(watch).to_be_visible(timeout=10_000)
    first = watch.inner_text()
    wait_for(lambda: len(watch.inner_text()) > len(first) if watch.count() else False, 30)  # still growing
    turn = wait_for(lambda: (t := slow_app.store.ai_turn(sid)) is not None and t.status == "pending" and t, 180)
    [candidate] = turn.candidates
    assert candidate.meta["stopped_by"] not in ("disconnect", "cancel")
    assert candidate.meta["output_tokens"] == 120 or candidate.meta["stopped_by"] == "eos"


@contextlib.contextmanager
def answered_late(store, method: str, delay_s: float = 1.5):
    """The store's `method` does its work at once but returns `delay_s` later (a slow answer to the page)."""
    real = getattr(store, method)

    def late(*args, **kwargs):
        result = real(*args, **kwargs)
        time.sleep(delay_s)
        return result

    setattr(store, method, late)
    try:
        yield
    finally:
        delattr(store, method)


def finished_suggestion(new_page, served, title: str) -> tuple[RelayPage, int, str]:
    """민지's story with a finished suggestion waiting in her model turn; her page, the story and its text."""
    a = writer(new_page, served, "민지")
    sid = a.create_story(title)
    a.add("편지는 사흘 늦게 도착했다.")
    a.settings_for_long_stream(max_new_tokens=20)
    return a, sid, a.continue_with_ai()


def test_every_tab_shows_who_is_here_and_drops_a_writer_whose_tab_closes(new_page, slow_app):
    a = writer(new_page, slow_app, "민지")
    a.create_story("누가 있나", rule="free")
    a.add("첫 문단.")
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))
    b.add("둘째 문단.")
    for page in (a, b):
        expect(page.page.locator("#relay-presence")).to_contain_text("민지")
        expect(page.page.locator("#relay-presence")).to_contain_text("준호")
    b.page.close()
    expect(a.page.locator("#relay-presence")).not_to_contain_text("준호", timeout=10_000)
    expect(a.page.locator("#relay-presence")).to_contain_text("민지")


def test_a_co_writer_takes_over_a_suggestion_whose_writer_left_and_both_are_credited(new_page, slow_app):
    a, sid, text = finished_suggestion(new_page, slow_app, "떠난 작가")
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))
    take = b.page.locator("#relay-takeover")
    expect(b.page.locator("#relay-presence")).to_contain_text("민지")
    expect(take).to_be_hidden()  # 민지 is here: her suggestion is hers
    a.page.close()
    expect(b.page.locator("#relay-presence")).to_contain_text("자리 비움", timeout=10_000)
    expect(take).to_be_visible(timeout=GRACE_S * 1000 + 10_000)  # after the grace period, without a reload
    b.page.evaluate("document.getElementById('relay-turn-sync').addEventListener('click', () => window.__syncs = 1)")
    with answered_late(slow_app.store, "take_over_ai_turn"):  # the turn changes hands before the page hears back
        take.click()
        expect(b.preview).to_have_value(text)
    b.preview.fill(text + " 그리고 끝.")
    # The desk was filled by the takeover's own answer: no second fill was asked that could land on the edit.
    assert b.page.evaluate("window.__syncs || 0") == 0
    b.page.locator("#relay-accept").click()
    expect(b.paragraphs).to_have_count(2)
    paragraph = slow_app.store.timeline(sid)[-1]
    assert paragraph.kind == "ai" and paragraph.text == text + " 그리고 끝."
    assert (paragraph.meta["asked_by"], paragraph.meta["chosen_by"]) == ("민지", "준호")


def test_the_holders_tab_shows_at_once_that_its_suggestion_was_taken(new_page, slow_app):
    a, sid, text = finished_suggestion(new_page, slow_app, "끊긴 작가")
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))
    expect(b.page.locator("#relay-presence")).to_contain_text("민지")
    # 민지's connection drops (the server sees her tab leave) while her page still shows the suggestion.
    slow_app.store.leave_story(sid, a.page.evaluate("window.__relayMe"))
    expect(b.page.locator("#relay-takeover")).to_be_visible(timeout=GRACE_S * 1000 + 10_000)
    b.page.locator("#relay-takeover").click()
    expect(b.preview).to_have_value(text)
    expect(a.preview).to_have_value(re.compile("준호님이 이 후보를 이어받았습니다"), timeout=10_000)  # no click
    expect(a.page.locator("#relay-accept")).to_be_disabled()


def test_the_holders_tab_shows_at_once_that_its_suggestion_expired(new_page, slow_app):
    a, sid, text = finished_suggestion(new_page, slow_app, "잠든 작가")
    expect(a.page.locator("#relay-accept")).to_be_enabled()
    expect(a.preview).to_have_value(re.compile("AI 차례가 풀렸습니다"), timeout=IDLE_S * 1000 + 10_000)
    expect(a.page.locator("#relay-accept")).to_be_disabled()
    assert slow_app.store.ai_turn(sid) is None
