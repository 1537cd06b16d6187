"""The model's turn belongs to the story, not to a browser tab (real Chromium, two writers' browsers).

A turn keeps writing when the tab that asked for it closes; a finished suggestion whose writer has
left can be taken over by a co-writer after a grace period; the holder's tab learns at once when its
turn was taken or expired; every tab shows who is here.
"""

from __future__ import annotations

import os
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
