"""The live story in real Chromium tabs: co-writers watch the model's turn as it happens, a waiting
suggestion keeps the turn for its writer until it is decided or times out, and nothing a writer
was shown is lost to a reload, a second tab, a stop or a discard.

These tests run on an app whose model is big enough to take a few seconds per continuation (so a
stream can be watched, stopped and reloaded mid-way) and whose idle timeout is a few seconds.
"""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser

IDLE_S = 12.0  # the app's idle timeout for a waiting suggestion (3 minutes in production): room for a loaded
# machine to open a co-writer's page and try the turn before it runs out

# Records every distinct text of the co-writers' view of the model's turn, polled every few ms.
WATCH_TURN = """() => {
  window.__turnSeen = [];
  let last = null;
  window.__turnTimer = setInterval(() => {
    const box = document.querySelector('#relay-turn .relay-watch');
    const value = box ? box.className + '|' + box.innerText : '';
    if (value !== last) { last = value; window.__turnSeen.push(value); }
  }, 5);
}"""


@pytest.fixture(scope="module")
def slow_app(chromium_path, tmp_path_factory):
    """The app on a random model big enough that 200 tokens take seconds, with a short idle timeout."""
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.tiny import build_tiny_model
    from relay.ui.server import free_port, serve

    # KoGPT-2's layer shape (12 x 768) with a tiny vocabulary, in fp32: tens of milliseconds a token even on
    # an idle machine, so a stream lasts long enough to be watched, stopped and reloaded mid-way.
    folder = build_tiny_model(tmp_path_factory.mktemp("slow-model"), n_layer=12, n_embd=768, n_head=12, n_positions=512)
    engine = Engine.from_pretrained(model=str(folder), backend="transformers")
    store = StoryStore(tmp_path_factory.mktemp("live-db") / "relay.db")
    store.create_story("입구", "관리자", turn_rule="free")
    server = serve(app.build_demo(engine, store, tiny=True, ai_idle_s=IDLE_S), store, port=free_port(), block=False)
    server.store = store
    yield server
    server.close()


def writer(new_page, served, name: str, href: str | None = None, locale: str = "ko-KR") -> RelayPage:
    page = RelayPage(new_page(locale), served.url).open(href)
    page.sign_in(name)
    return page


def long_stream(w: RelayPage, tokens: int = 160) -> None:
    w.settings_for_long_stream(max_new_tokens=tokens)


def test_a_co_writer_watches_the_model_write_then_the_suggestion_then_the_paragraph(new_page, slow_app, screenshots):
    a = writer(new_page, slow_app, "민지")
    sid = a.create_story("같이 보는 밤")
    a.add("밤이 깊었다. 골목 끝에서 누군가 휘파람을 불었다.")
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))
    expect(b.paragraphs).to_have_count(1)
    b.page.evaluate("() => { window.__sameDocument = true; }")

    long_stream(a)
    b.page.evaluate(WATCH_TURN)
    a.page.locator("#relay-ai").click()
    # While the model writes for 민지, 준호 sees the draft grow, marked as a draft and for whom.
    draft = b.page.locator("#relay-turn .relay-watch-writing")
    expect(draft).to_contain_text("민지")
    expect(draft.locator(".relay-draft")).not_to_have_text("▍", timeout=20_000)
    b.page.screenshot(path=screenshots / "live-co-writer-watches-the-draft.png", full_page=True)

    expect(a.seed_info).to_contain_text("시드", timeout=90_000)
    final = a.preview.input_value()
    pending = b.page.locator("#relay-turn .relay-watch-pending")
    expect(pending).to_contain_text(final)
    expect(b.page.locator("#relay-status")).to_contain_text("민지")
    seen = b.page.evaluate("() => { clearInterval(window.__turnTimer); return window.__turnSeen; }")
    drafts = [v.split("|", 1)[1] for v in seen if "relay-watch-writing" in v]
    assert any(len(d.strip("▍ \n")) > 0 for d in drafts), seen  # text arrived while it was still being written
    b.page.screenshot(path=screenshots / "live-co-writer-sees-the-suggestion.png", full_page=True)

    a.page.locator("#relay-accept").click()
    expect(b.paragraphs).to_have_count(2)
    expect(b.paragraphs.nth(1).locator(".relay-text")).to_have_text(final)
    expect(b.page.locator("#relay-turn .relay-watch")).to_have_count(0)
    assert b.page.evaluate("() => window.__sameDocument === true")  # all of it without a reload
    assert [p.kind for p in slow_app.store.timeline(sid)] == ["human", "ai"]


def test_a_waiting_suggestion_keeps_the_turn_until_the_idle_timeout_and_its_writer_is_told(new_page, slow_app):
    a = writer(new_page, slow_app, "민지")
    sid = a.create_story("기다리는 후보")
    a.add("편지는 사흘 늦게 도착했다.")
    a.settings_for_long_stream(max_new_tokens=20)
    b = writer(new_page, slow_app, "준호", href=a.share_link.get_attribute("href"))  # here before the turn starts
    a.continue_with_ai()  # finished: the suggestion waits for 민지

    expect(b.page.locator("#relay-status")).to_contain_text("민지")
    b.expect_ai_refused("민지")  # 준호 cannot overtake the waiting suggestion
    b.press_disabled("relay-ai")
    expect(b.toast("error")).to_contain_text("민지")
    assert slow_app.store.ai_turn(sid).holder == "민지"

    # 민지 goes quiet; after the idle timeout the turn is free and 준호's model turn goes ahead.
    expect(b.page.locator("#relay-status")).not_to_contain_text("민지", timeout=IDLE_S * 1000 + 10_000)
    b.settings_for_long_stream(max_new_tokens=20)
    b.continue_with_ai()
    assert slow_app.store.ai_turn(sid).holder == "준호"

    # 민지's tab was told without a click: in place of her suggestion, why; nothing to accept, nothing stored.
    expect(a.preview).to_have_value(re.compile("AI 차례가 풀렸습니다"))
    expect(a.page.locator("#relay-accept")).to_be_disabled()
    assert [p.kind for p in slow_app.store.timeline(sid)] == ["human"]


def test_regenerate_and_swiping_past_the_last_keep_every_suggestion_and_the_writer_flips_back_to_the_first(
        new_page, slow_app):
    w = writer(new_page, slow_app, "하린")
    sid = w.create_story("되돌아보기")
    w.add("비가 그친 뒤 시장 골목은 다시 붐볐다.")
    w.settings_for_long_stream(max_new_tokens=16)
    w.seed_box.fill("")  # a new seed for every suggestion
    w.seed_box.blur()
    first = w.continue_with_ai()
    w.page.locator("#relay-regen").click()
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("2/2", timeout=90_000)
    second = w.preview.input_value()
    assert second != first
    w.page.locator("#relay-swipe-next").click()  # past the last suggestion: the model writes a new one
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("3/3", timeout=90_000)
    assert len(slow_app.store.ai_turn(sid).candidates) == 3

    w.page.keyboard.press("Alt+ArrowLeft")  # the keyboard flips too
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("2/3")
    w.page.keyboard.press("Alt+ArrowLeft")
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("1/3")
    expect(w.preview).to_have_value(first)
    w.preview.press("Control+Enter")  # and accepts
    expect(w.paragraphs).to_have_count(2)
    stored = slow_app.store.timeline(sid)[-1]
    assert stored.kind == "ai" and stored.text == first


def test_a_reload_mid_stream_follows_the_same_turn_to_its_end(new_page, slow_app):
    w = writer(new_page, slow_app, "서윤")
    sid = w.create_story("끊긴 연결")
    w.add("기차는 밤새 달렸다.")
    long_stream(w, tokens=120)
    w.page.locator("#relay-ai").click()
    expect(w.preview).not_to_have_value("", timeout=20_000)
    partial = w.preview.input_value()

    w.page.reload(wait_until="domcontentloaded")
    w.wait_loaded()
    expect(w.preview).not_to_have_value("", timeout=30_000)  # the stream is back in the box, still growing
    expect(w.seed_info).to_contain_text("시드", timeout=180_000)  # and it ran to its end
    turn = slow_app.store.ai_turn(sid)
    assert turn is not None and turn.holder == "서윤" and turn.status == "pending"
    [candidate] = turn.candidates
    assert candidate.meta["stopped_by"] not in ("disconnect", "cancel")
    assert candidate.text.startswith(partial[:5]) and len(candidate.text) > len(partial)
    expect(w.preview).to_have_value(candidate.text)
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)


def test_partial_text_of_a_continuation_is_visible_before_it_finishes(new_page, slow_app, screenshots):
    # On the slow model: on the tiny one an idle machine writes all 120 tokens between two paints of the box.
    w = writer(new_page, slow_app, "하린")
    w.create_story("조각조각")
    w.add("비가 그친 뒤 시장 골목은 다시 사람들로 붐볐다.")
    w.settings_for_long_stream(max_new_tokens=120)
    w.page.screenshot(path=screenshots / "05-sampling-settings.png", full_page=True)

    w.start_watching_preview()
    final = w.continue_with_ai()
    seen = w.stop_watching_preview()

    partial = [v for v in seen if v and v != final and final.startswith(v)]
    print(f"preview values seen: {len(seen)}, strict prefixes of the final text: {len(partial)}")
    assert partial, f"the preview never showed a strict prefix of the final text; values seen: {seen!r}"
    assert "길이 한도" in w.seed_info.inner_text()  # stopped at the length limit, as configured
    w.page.screenshot(path=screenshots / "03-ai-preview.png", full_page=True)


def test_discard_while_the_model_writes_leaves_nothing_to_accept(new_page, slow_app):
    w = writer(new_page, slow_app, "도윤")
    sid = w.create_story("버린 초안")
    w.add("문이 열렸다.")
    long_stream(w, tokens=200)
    w.page.locator("#relay-ai").click()
    expect(w.preview).not_to_have_value("", timeout=20_000)
    w.page.locator("#relay-discard").click()
    expect(w.preview).to_have_value("")
    time.sleep(2)
    expect(w.preview).to_have_value("")  # nothing pours back in
    expect(w.page.locator("#relay-accept")).to_be_hidden()  # nothing left to accept
    assert slow_app.store.ai_turn(sid) is None
    assert len(slow_app.store.timeline(sid)) == 1


def test_stop_keeps_what_was_written_as_a_suggestion(new_page, slow_app):
    w = writer(new_page, slow_app, "지호")
    sid = w.create_story("멈춘 문장")
    w.add("바람이 불었다.")
    long_stream(w, tokens=200)
    w.page.locator("#relay-ai").click()
    expect(w.preview).not_to_have_value("", timeout=20_000)
    w.page.locator("#relay-stop").click()
    expect(w.seed_info).to_contain_text("중지됨", timeout=20_000)  # stopped by the writer, not by the length
    tokens = int(re.search(r"(\d+)토큰", w.seed_info.inner_text()).group(1))
    assert 0 < tokens < 200
    kept = w.preview.input_value()
    assert kept.strip()
    turn = slow_app.store.ai_turn(sid)
    assert turn is not None and turn.status == "pending" and turn.candidates[-1].text == kept


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_in_a_long_story_the_newest_paragraphs_and_the_composer_are_on_screen_together(new_page, slow_app, viewport):
    store = slow_app.store
    sid = store.create_story("이백 문단", "민지", turn_rule="free").id
    for i in range(200):
        store.add_paragraph(sid, f"{i + 1}번째 문단. 비가 그친 뒤 시장 골목은 다시 사람들로 붐볐다.", "민지")
    page = new_page()
    page.set_viewport_size(viewport)
    w = RelayPage(page, slow_app.url).open(f"{slow_app.url}?story={sid}")
    expect(w.paragraphs).to_have_count(200)
    time.sleep(0.5)
    for target in ("#relay-composer textarea", "#relay-add", "#relay-ai"):
        box = page.locator(target).bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= viewport["height"], (target, box)
    newest = w.paragraphs.last.bounding_box()
    assert 0 <= newest["y"] < viewport["height"], newest  # the newest paragraph is on screen, above the desk


WATCH_COLUMNS = """() => {
  window.__columns = [];
  window.__columnsTimer = setInterval(() => {
    const values = [0, 1, 2].map(i => { const box = document.querySelector(`#relay-alt-${i} textarea`); return box ? box.value : ""; });
    window.__columns.push(values);
  }, 20);
}"""


def test_three_alternatives_stream_side_by_side_and_stop_keeps_each_as_a_swipe(new_page, slow_app):
    w = writer(new_page, slow_app, "연우")
    sid = w.create_story("세 갈래")
    w.add("갈림길에서 그는 오래 망설였다.")
    long_stream(w, tokens=200)
    w.seed_box.fill("")
    w.seed_box.blur()
    w.page.evaluate(WATCH_COLUMNS)
    w.page.locator("#relay-alts").click()
    for i in range(3):  # every column shows text while all three are still being written
        expect(w.page.locator(f"#relay-alt-{i} textarea")).not_to_have_value("", timeout=30_000)
    assert w.page.locator("#relay-swipe-info").inner_text().strip() == ""  # none finished yet
    w.page.locator("#relay-stop").click()
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("1/3", timeout=20_000)
    seen = w.page.evaluate("() => { clearInterval(window.__columnsTimer); return window.__columns; }")
    partial = [v for v in seen if all(v) and any(v)]
    assert partial, "never saw all three columns with text before they finished"
    turn = slow_app.store.ai_turn(sid)
    assert turn is not None and len(turn.candidates) == 3
    assert all(c.meta.get("stopped_by") != "length" or c.meta.get("output_tokens", 0) < 200 for c in turn.candidates)
    w.page.locator("#relay-pick-2").click()
    expect(w.page.locator("#relay-swipe-info")).to_contain_text("3/3")
    expect(w.preview).to_have_value(turn.candidates[2].text)


def test_the_live_view_speaks_the_pages_language(new_page, slow_app):
    store = slow_app.store
    sid = store.create_story("두 언어", "민지", turn_rule="free").id
    store.add_paragraph(sid, "밤이 깊었다.", "민지")
    for locale, badge, status in (("ko-KR", "사람", "자유"), ("en-US", "human", "Free rule")):
        page = RelayPage(new_page(locale), slow_app.url).open(f"{slow_app.url}?story={sid}")
        expect(page.paragraphs.first.locator(".relay-badge").first).to_have_text(badge)
        expect(page.page.locator("#relay-status")).to_contain_text(status)


def test_a_second_tab_of_the_same_writer_gets_the_waiting_suggestion(new_page, slow_app):
    w = writer(new_page, slow_app, "하늘")
    sid = w.create_story("두 탭")
    w.add("창밖에 눈이 내렸다.")
    second = RelayPage(w.page.context.new_page(), slow_app.url).open(f"{slow_app.url}?story={sid}")  # same browser
    expect(second.paragraphs).to_have_count(1)
    w.settings_for_long_stream(max_new_tokens=20)
    text = w.continue_with_ai()
    expect(second.preview).to_have_value(text, timeout=20_000)  # the other tab picks it up, live
    second.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    assert slow_app.store.timeline(sid)[-1].text == text
