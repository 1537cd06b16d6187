"""Steering the model in real Chromium tabs: a writer sets the story memory and a story card and a co-writer's
tab shows them live; "what the model reads" shows a card once its key appears with a Korean particle and puts
the author's note at its depth; a memory that crowds out the story is named, in the page's language.

The app runs a tiny random model with the real KoGPT-2 tokenizer and window (1,024 tokens), so what the model
reads is real Korean text with real token counts.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser

MEMORY = "배경은 1970년대 부산. 민지는 열일곱 살, 우체국 집 딸이다."
CARD_TEXT = "민지는 겁이 많지만 편지를 대신 읽어 주는 일을 좋아한다."


@pytest.fixture(scope="module")
def steer_app(chromium_path, kogpt2_tiny_model_dir, tmp_path_factory):
    """The app on a tiny random model with KoGPT-2's tokenizer and 1,024-token window."""
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    engine = Engine.from_pretrained(model=str(kogpt2_tiny_model_dir), backend="transformers")
    store = StoryStore(tmp_path_factory.mktemp("steer-db") / "relay.db")
    store.create_story("입구", "관리자", turn_rule="free")
    server = serve(app.build_demo(engine, store, tiny=True), store, port=free_port(), block=False)
    server.store = store
    yield server
    server.close()


def writer(new_page, served, name: str, href: str | None = None, locale: str = "ko-KR") -> RelayPage:
    page = RelayPage(new_page(locale), served.url).open(href)
    page.sign_in(name)
    return page


def open_steering(w: RelayPage) -> None:
    """Open the steering panel and wait for its first view of what the model reads."""
    w.page.locator("#relay-steering").get_by_role("button").first.click()
    expect(w.page.locator("#relay-memory textarea")).to_be_visible()
    expect(w.page.locator("#relay-reads .relay-reads-summary")).to_be_visible()


def save_memory(w: RelayPage, text: str) -> None:
    w.page.locator("#relay-memory textarea").fill(text)
    w.page.locator("#relay-memory-save").click()


def save_card(w: RelayPage, name: str, keys: str, text: str) -> None:
    w.page.locator("#relay-card-name textarea, #relay-card-name input").first.fill(name)
    w.page.locator("#relay-card-keys textarea, #relay-card-keys input").first.fill(keys)
    w.page.locator("#relay-card-text textarea").fill(text)
    w.page.locator("#relay-card-save").click()


def close_toasts(w: RelayPage) -> None:
    """Close every toast, so a screenshot shows the page under them."""
    for button in w.page.locator('[data-testid="toast-close"]').all():
        if button.is_visible():
            button.click()
    expect(w.page.locator('[data-testid="toast-body"]')).to_have_count(0)


def reads(w: RelayPage):
    return w.page.locator("#relay-reads")


def free_story_with(w: RelayPage, title: str, paragraphs: list[str]) -> int:
    sid = w.create_story(title, rule="free")
    for text in paragraphs:
        w.add(text)
    return sid


def test_memory_and_a_card_set_by_one_writer_show_live_in_a_co_writers_tab(new_page, steer_app):
    a = writer(new_page, steer_app, "민지")
    sid = free_story_with(a, "달빛 아래", ["비가 그친 저녁이었다."])
    b = writer(new_page, steer_app, "준호", href=a.share_link.get_attribute("href"))
    expect(b.paragraphs).to_have_count(1)
    open_steering(b)
    b.page.evaluate("() => { window.__sameDocument = true; }")

    open_steering(a)
    save_memory(a, MEMORY)
    expect(a.toast("info")).to_contain_text("기억을 저장했습니다")
    save_card(a, "민지", "민지, 민지야", CARD_TEXT)
    expect(a.toast("info").last).to_contain_text("민지")

    shared = b.page.locator("#relay-steering-live")
    expect(shared).to_contain_text(MEMORY)
    expect(shared.locator(".relay-steer-card")).to_contain_text(CARD_TEXT)
    expect(shared).to_contain_text("민지, 민지야")
    expect(shared.locator(".relay-steer-memory")).to_contain_text("민지")  # who changed it
    expect(b.page.locator("#relay-memory textarea")).to_have_value(MEMORY)  # B had not edited the box
    assert b.page.evaluate("() => window.__sameDocument === true")  # all of it without a reload
    steering = steer_app.store.steering(sid)
    assert (steering.memory, steering.memory_by, [c.name for c in steering.cards]) == (MEMORY, "민지", ["민지"])

    # A edits the same card (the picker kept it after the save): one card, version 2, live in B's tab.
    a.page.locator("#relay-card-text textarea").fill(CARD_TEXT + " 비 오는 날을 싫어한다.")
    a.page.locator("#relay-card-save").click()
    expect(shared.locator(".relay-steer-card")).to_contain_text("비 오는 날을 싫어한다.")
    expect(shared.locator(".relay-steer-card")).to_have_count(1)
    assert [(c.name, c.version) for c in steer_app.store.steering(sid).cards] == [("민지", 2)]


def test_what_the_model_reads_shows_a_card_once_its_key_appears_with_a_particle(new_page, steer_app, screenshots):
    w = writer(new_page, steer_app, "하린")
    free_story_with(w, "우체국 골목", ["비가 그친 저녁이었다.", "골목 끝에서 누군가 휘파람을 불었다."])
    open_steering(w)
    save_memory(w, MEMORY)
    save_card(w, "민지", "민지", CARD_TEXT)
    view = reads(w)
    expect(view).to_contain_text("키가 아직 최근 4문단에 없는 카드: 민지")
    expect(view.locator(".relay-read-card")).to_have_count(0)

    w.add("민지는 우산을 접고 편지를 꺼냈다.")
    card = view.locator(".relay-read-card")
    expect(card).to_have_count(1)  # the view refreshed itself when the paragraph arrived
    expect(card.locator(".relay-read-title")).to_contain_text("'민지는'에서 키 '민지'")
    expect(card.locator(".relay-read-text")).to_have_text(CARD_TEXT + "\n")
    expect(view.locator(".relay-reads-summary")).to_contain_text("/ 1,024 토큰")
    expect(view.locator(".relay-reads-summary")).to_contain_text("카드 1개")
    close_toasts(w)
    w.page.screenshot(path=screenshots / "steering-ko.png", full_page=True)


def test_the_authors_note_lands_at_its_depth(new_page, steer_app):
    w = writer(new_page, steer_app, "도윤")
    lines = ["첫째 문단이다.", "둘째 문단이다.", "셋째 문단이다.", "넷째 문단이다.", "다섯째 문단이다."]
    free_story_with(w, "다섯 문단", lines)
    open_steering(w)
    w.page.locator("#relay-note textarea").fill("짧은 문장으로, 긴장감 있게.")
    depth = w.page.locator("#relay-note-depth input")
    depth.fill("2")
    depth.press("Tab")
    w.page.locator("#relay-note-save").click()
    expect(w.toast("info")).to_contain_text("작가의 말을 저장했습니다")
    sections = reads(w).locator("section.relay-read")
    expect(sections).to_have_count(3)
    assert [s.get_attribute("class").split()[-1] for s in sections.all()] == [
        "relay-read-story", "relay-read-note", "relay-read-story"]
    expect(sections.nth(0).locator(".relay-read-text")).to_have_text("\n".join(lines[:3]) + "\n")
    expect(sections.nth(1).locator(".relay-read-text")).to_have_text("[작가의 말: 짧은 문장으로, 긴장감 있게.]\n")
    expect(sections.nth(1).locator(".relay-read-title")).to_contain_text("끝에서 2문단 앞")
    expect(sections.nth(2).locator(".relay-read-text")).to_have_text("\n".join(lines[3:]) + "\n")


def test_a_memory_that_crowds_out_the_story_is_named_in_english(new_page, steer_app, screenshots):
    w = writer(new_page, steer_app, "Mina", locale="en-US")
    sid = w.create_story("Crowded", rule="free")
    store = steer_app.store
    key = store.new_writer_key()
    for n in range(24):  # more story than the quarter of the window it always keeps
        store.add_paragraph(sid, f"{n}번째 문단: 비가 그친 저녁, 골목 끝에서 누군가 휘파람을 불었다.", "편집자", writer_key=key)
    store.set_note(sid, "짧은 문장으로, 긴장감 있게. " * 12, 3, "편집자", writer_key=key)
    expect(w.paragraphs).to_have_count(24)
    w.page.locator("#relay-sampling").get_by_role("button").first.click()
    expect(w.number("Max length (tokens)")).to_be_visible()
    w.set_number("Max length (tokens)", 512)  # the model's room to write: 512 of its 1,024 tokens
    open_steering(w)

    save_memory(w, "할머니는 부엌에서 된장찌개를 끓이고 계셨다. " * 30)  # over 500 characters
    expect(w.toast("warning")).to_contain_text("The story memory can be at most 500 characters")
    save_memory(w, "할머니는 부엌에서 된장찌개를 끓이고 계셨다. " * 19)  # fits the cap, crowds out the story
    expect(w.toast("warning").last).to_contain_text("The story memory is too long")
    problem = reads(w).locator(".relay-reads-problem")
    expect(problem).to_contain_text("Shorten the memory")
    assert problem.get_attribute("data-block") == "memory"
    close_toasts(w)
    reads(w).scroll_into_view_if_needed()
    w.page.screenshot(path=screenshots / "steering-en.png", full_page=False)

    w.page.locator("#relay-ai").click()
    expect(w.toast("error")).to_contain_text("The story memory is too long")
    assert store.ai_turn(sid) is None and len(store.timeline(sid)) == 24  # nothing generated, nothing cut


def test_the_panel_on_a_phone(new_page, steer_app, screenshots):
    w = RelayPage(new_page("ko-KR"), steer_app.url)
    w.page.set_viewport_size({"width": 390, "height": 844})
    w.open()
    w.sign_in("서연")
    free_story_with(w, "손바닥 소설", ["비가 그친 저녁이었다.", "민지는 우산을 접었다."])
    open_steering(w)
    save_memory(w, MEMORY)
    save_card(w, "민지", "민지", CARD_TEXT)
    expect(reads(w).locator(".relay-read-card")).to_have_count(1)
    width = w.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390 + 1, width  # nothing wider than the phone
    close_toasts(w)
    reads(w).scroll_into_view_if_needed()
    w.page.screenshot(path=screenshots / "steering-phone.png", full_page=False)
