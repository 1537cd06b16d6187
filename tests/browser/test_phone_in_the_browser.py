"""The desk on a phone (390x844 and 360x740) with a long story and a suggestion open, and one language per page
when a writer takes a name another writer uses in the story (Korean locale)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser

PHONES = [{"width": 390, "height": 844}, {"width": 360, "height": 740}]
TAP_TARGETS = ("#relay-add", "#relay-ai", "#relay-swipe-prev", "#relay-swipe-next", "#relay-desk-toggle")

# Every card's action buttons against its text: the boxes that intersect (none should).
ACTIONS_OVER_TEXT = """() => {
  const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const bad = [];
  for (const card of document.querySelectorAll('#relay-timeline .relay-para')) {
    const text = card.querySelector('.relay-text');
    const range = document.createRange();
    range.selectNodeContents(text);
    const lines = [...range.getClientRects()];
    for (const button of card.querySelectorAll('button.relay-act')) {
      const box = button.getBoundingClientRect();
      if (hit(box, text.getBoundingClientRect()) || lines.some((line) => hit(box, line))) bad.push(card.dataset.seq);
    }
  }
  return bad;
}"""


def _long_story(store, title: str) -> int:
    sid = store.create_story(title, "민지", turn_rule="free").id
    for i in range(200):
        store.add_paragraph(sid, f"{i + 1}번째 문단. 열차가 들어오는 소리가 멀리서 들렸고 사람들은 짐을 들었다.", "민지")
    return sid


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box, selector
    return box


def _overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.parametrize("viewport", PHONES, ids=["phone-390", "phone-360"])
def test_on_a_phone_the_desk_stays_small_the_actions_never_cover_text_and_nothing_covers_the_suggestion(
        new_page, relay_app, screenshots, viewport):
    sid = _long_story(relay_app.store, f"휴대폰 {viewport['width']}")
    page = new_page()
    page.set_viewport_size(viewport)
    w = RelayPage(page, relay_app.url).open(f"{relay_app.url}?story={sid}")
    w.sign_in("하린")
    expect(w.paragraphs).to_have_count(200)
    w.continue_with_ai()  # a suggestion is open
    expect(page.locator("#relay-suggestion").first).to_be_visible()

    assert page.evaluate(ACTIONS_OVER_TEXT) == []
    desk = _box(page, "#relay-desk")
    assert desk["height"] <= 0.45 * viewport["height"], desk
    for target in TAP_TARGETS:
        assert _box(page, target)["height"] >= 44, target
    assert _box(page, "#relay-timeline button.relay-act")["height"] >= 44

    page.evaluate("() => window.scrollBy(0, -3000)")  # read back up the story: "↓" shows, above the desk
    jump = page.locator("#relay-jump")
    expect(jump).to_be_visible()
    page.wait_for_timeout(600)
    assert not _overlap(_box(page, "#relay-jump"), _box(page, "#relay-suggestion"))
    assert _box(page, "#relay-jump")["y"] + _box(page, "#relay-jump")["height"] <= desk["y"] + 1
    page.screenshot(path=screenshots / f"phone-{viewport['width']}.png")

    # The writer folds the desk to its bar; the page remembers it after a reload, and it opens again.
    toggle = page.locator("#relay-desk-toggle")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#relay-composer")).to_be_hidden()
    assert _box(page, "#relay-desk")["height"] <= 80
    page.reload(wait_until="domcontentloaded")
    w.wait_loaded()
    expect(page.locator("#relay-desk-toggle")).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#relay-composer")).to_be_hidden()
    page.locator("#relay-desk-toggle").click()
    expect(page.locator("#relay-composer")).to_be_visible()


def test_on_a_desktop_the_actions_sit_beside_the_writer_line_not_over_the_text(new_page, relay_app, screenshots):
    sid = _long_story(relay_app.store, "넓은 화면")
    page = new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    w = RelayPage(page, relay_app.url).open(f"{relay_app.url}?story={sid}")
    w.sign_in("하린")
    expect(w.paragraphs).to_have_count(200)
    w.continue_with_ai()
    assert page.evaluate(ACTIONS_OVER_TEXT) == []
    last = w.paragraphs.last
    acts, meta = last.locator(".relay-acts").bounding_box(), last.locator(".relay-meta").bounding_box()
    assert abs(acts["y"] - meta["y"]) < 12  # on the writer's line, to its right
    page.evaluate("() => window.scrollBy(0, -3000)")
    expect(page.locator("#relay-jump")).to_be_visible()
    page.wait_for_timeout(600)
    assert not _overlap(_box(page, "#relay-jump"), _box(page, "#relay-desk"))
    page.screenshot(path=screenshots / "desktop-desk.png")


LATIN_SENTENCE = re.compile(r"[A-Za-z]{3,}(?:\s+[A-Za-z]{2,}){2,}")  # three English words in a row


def test_a_name_another_writer_uses_gets_korean_messages_from_every_button(new_page, relay_app):
    store = relay_app.store
    story = store.create_story("필명 시험", "관리자", turn_rule="free")
    other = store.new_writer_key()
    store.add_paragraph(story.id, "민지의 문단이다.", "민지", writer_key=other)  # 민지 is another writer's name here

    w = RelayPage(new_page("ko-KR"), relay_app.url).open(f"{relay_app.url}?story={story.id}")
    expect(w.paragraphs).to_have_count(1)
    w.sign_in("민지")
    seen = []
    for button in ("relay-ai", "relay-alts", "relay-regen", "relay-add", "relay-accept"):
        if button == "relay-add":
            w.type_draft("내가 쓴 문단이다.")
        w.press_disabled(button)
        toast = w.page.locator('[data-testid="toast-body"]').last
        expect(toast).to_be_visible(timeout=20_000)
        text = toast.inner_text()
        seen.append((button, text))
        assert not LATIN_SENTENCE.search(text), (button, text)
        assert re.search(r"[가-힣]", text), (button, text)
        w.page.evaluate("() => document.querySelectorAll('[data-testid=toast-close]').forEach((b) => b.click())")
        expect(w.page.locator('[data-testid="toast-body"]')).to_have_count(0)
    assert any("민지" in text for _, text in seen), seen
    assert [p.author for p in store.timeline(story.id)] == ["민지"]
