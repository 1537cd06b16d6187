"""A long story in real Chromium (issue 20): the page opens on its newest paragraphs only, and the reader
gets earlier ones, in order, by scrolling up or pressing "이전 문단 더 보기"; new paragraphs still arrive
live at the end. Also on a phone-sized screen."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

from relay.ui.demo import OLDER_PAGE, WINDOW  # noqa: E402

pytestmark = pytest.mark.browser

LENGTH = 650  # the window (200) and four older pages (100, 100, 100, 50)


def story_of(store, n: int, title: str):
    when = "2026-12-01T00:00:00.000000+00:00"
    paragraphs = [{"seq": i, "author": "민지", "kind": "human", "text": f"문단 {i}. 골목에 바람이 불었다.", "created_at": when}
                  for i in range(1, n + 1)]
    return store.import_json({"format": "relay-story", "version": 2, "paragraphs": paragraphs,
                              "story": {"title": title, "created_by": "민지", "created_at": when, "turn_rule": "free"}})


def seqs(page: RelayPage) -> list[int]:
    return page.page.eval_on_selector_all("#relay-timeline .relay-para", "els => els.map(e => Number(e.dataset.seq))")


def open_story(new_page, relay_app, story, locale: str = "ko-KR", viewport: dict | None = None) -> RelayPage:
    page = new_page(locale)
    if viewport:
        page.set_viewport_size(viewport)
    reader = RelayPage(page, relay_app.url).open(f"{relay_app.url}?story={story.id}")
    expect(reader.paragraphs.last.locator(".relay-text")).to_have_text(f"문단 {story.paragraph_count}. 골목에 바람이 불었다.")
    return reader


def test_a_long_story_opens_on_its_newest_paragraphs_and_earlier_ones_load_in_order(new_page, relay_app):
    story = story_of(relay_app.store, LENGTH, "아주 긴 이야기")
    reader = open_story(new_page, relay_app, story)
    expect(reader.paragraphs).to_have_count(WINDOW)
    assert seqs(reader) == list(range(LENGTH - WINDOW + 1, LENGTH + 1))
    older = reader.page.locator("#relay-older")
    expect(older).to_be_visible()
    expect(older).to_have_text("이전 문단 더 보기")

    # Scrolling up to the top brings the next page in above.
    reader.page.mouse.move(400, 400)
    for _ in range(60):
        if reader.paragraphs.count() > WINDOW:
            break
        reader.page.mouse.wheel(0, -3000)
        reader.page.wait_for_timeout(50)
    expect(reader.paragraphs).to_have_count(WINDOW + OLDER_PAGE)
    assert seqs(reader) == list(range(LENGTH - WINDOW - OLDER_PAGE + 1, LENGTH + 1))

    # Pressing the button does the same, without moving what the reader is looking at, down to the
    # first paragraph; then it goes away. (A click event, not a scroll up to the button, which loads by itself.)
    while older.is_visible():
        top_seq = seqs(reader)[0]
        card = reader.page.locator(f'#relay-timeline .relay-para[data-seq="{top_seq}"]')
        before = card.bounding_box()["y"]
        older.dispatch_event("click")
        expect(reader.paragraphs.first).not_to_have_attribute("data-seq", str(top_seq))
        assert abs(card.bounding_box()["y"] - before) < 3
    assert seqs(reader) == list(range(1, LENGTH + 1))
    expect(reader.paragraphs.first.locator(".relay-text")).to_have_text("문단 1. 골목에 바람이 불었다.")

    # A co-writer's new paragraph still arrives live, at the end, and nothing is shown twice.
    relay_app.store.add_paragraph(story.id, "새로 온 문단.", "준호")
    expect(reader.paragraphs).to_have_count(LENGTH + 1)
    expect(reader.paragraphs.last.locator(".relay-text")).to_have_text("새로 온 문단.")
    assert seqs(reader) == list(range(1, LENGTH + 2))


def test_an_undo_after_loading_earlier_paragraphs_takes_out_only_the_undone_one(new_page, relay_app):
    story = story_of(relay_app.store, WINDOW + 30, "되돌리는 긴 이야기")
    reader = open_story(new_page, relay_app, story)
    reader.page.locator("#relay-older").dispatch_event("click")  # (scrolling to it would load the page by itself)
    expect(reader.paragraphs).to_have_count(WINDOW + 30)
    expect(reader.page.locator("#relay-older")).to_be_hidden()
    mine = relay_app.store.add_paragraph(story.id, "곧 되돌릴 문단.", "준호")
    expect(reader.paragraphs).to_have_count(WINDOW + 31)
    relay_app.store.undo_last(story.id, "준호")
    expect(reader.page.locator(f'#relay-timeline .relay-para[data-id="{mine.id}"]')).to_have_count(0)
    assert seqs(reader) == list(range(1, WINDOW + 31))


def test_on_a_phone_the_earlier_paragraphs_button_fits_and_loads(new_page, relay_app, screenshots):
    story = story_of(relay_app.store, WINDOW + 40, "휴대폰으로 읽는 긴 이야기")
    reader = open_story(new_page, relay_app, story, viewport={"width": 390, "height": 844})
    held = []  # the older page's request, held so the screenshot shows the button the reader scrolled to
    reader.page.route("**/relay/older?*", lambda route: held.append(route))
    reader.page.mouse.move(200, 300)
    older = reader.page.locator("#relay-older")
    for _ in range(80):
        if held:
            break
        reader.page.mouse.wheel(0, -2000)
        reader.page.wait_for_timeout(50)
    assert held, "scrolling up to the button asked for no earlier paragraphs"
    older.scroll_into_view_if_needed()
    expect(older).to_be_in_viewport()
    box = older.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    reader.page.screenshot(path=screenshots / "big-story-phone-older-button.png")
    held[0].continue_()
    expect(reader.paragraphs).to_have_count(WINDOW + 40)
    expect(older).to_be_hidden()
    reader.paragraphs.first.scroll_into_view_if_needed()
    expect(reader.paragraphs.first.locator(".relay-text")).to_have_text("문단 1. 골목에 바람이 불었다.")
    assert seqs(reader) == list(range(1, WINDOW + 41))
    reader.page.screenshot(path=screenshots / "big-story-phone-first-paragraph.png")
