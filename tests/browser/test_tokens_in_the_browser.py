"""Token probabilities and branching at a token in a real Chromium: the "확률 보기" view on a suggestion and on an
accepted AI paragraph, its popover by hover (desktop) and by tap (phone), rewriting from an alternative token as a
new swipe a co-writer sees, and "더 쓰기". Screenshots (Korean, English, a 390x844 phone) go to artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

from relay.settings import SamplingSettings  # noqa: E402

POPOVER = "#relay-tk-pop"


def first_worded_position(tokens: dict, start: int) -> int:
    """The first position from `start` whose text has a letter and whose alternatives are recorded."""
    for i in range(start, len(tokens["text"])):
        if tokens["text"][i].strip() and len(tokens["top"][i]) >= 5:
            return i
    raise AssertionError(f"no worded token after {start}: {tokens['text']}")


def test_a_writer_sees_the_alternatives_of_a_token_rewrites_from_one_and_writes_more_and_a_co_writer_sees_it(
        new_page, relay_app, screenshots):
    store = relay_app.store
    sid = store.create_story("토큰 갈래", "민지", turn_rule="alternate").id
    store.add_paragraph(sid, "창밖으로 비가 내렸다.", "민지", kind="human")
    writer = RelayPage(new_page(), relay_app.url).open(f"{relay_app.url}?story={sid}")
    writer.sign_in("민지")
    co_writer = RelayPage(new_page(), relay_app.url).open(f"{relay_app.url}?story={sid}")
    co_writer.sign_in("준호")
    page = writer.page

    writer.settings_for_long_stream(max_new_tokens=16)
    first = writer.continue_with_ai()
    tokens = store.ai_turn(sid).candidates[0].meta["tokens"]
    page.locator("#relay-probs input").check()
    view = page.locator("#relay-preview-tokens .relay-tokens")
    expect(view).to_be_visible()
    expect(page.locator("#relay-preview-tokens")).not_to_contain_text("사람이 고친")  # nothing edited yet
    expect(page.locator("#relay-probs-key .relay-tk-legend").first).to_be_visible()

    at = first_worded_position(tokens, 2)
    token = view.locator(f'.relay-tk[data-i="{at}"]')
    token.hover()
    popover = page.locator(POPOVER)
    expect(popover).to_be_visible()
    expect(popover).to_contain_text("이 자리의 후보")
    expect(popover.locator("tr")).to_have_count(len(tokens["top"][at]))
    assert len(tokens["top"][at]) >= 5
    expect(popover.locator(".relay-pop-head").first).to_contain_text("고른 토큰")
    page.screenshot(path=str(screenshots / "tokens-popover-ko.png"))

    # Rewrite with the second likeliest token there: the text before it is kept, that token follows.
    chosen_id, chosen_piece = tokens["top"][at][1][0], tokens["top"][at][1][1]
    popover.locator("tr").nth(1).locator("button.relay-pop-branch").click()
    expect(page.locator("#relay-swipe-info")).to_contain_text("2/2", timeout=30_000)
    kept = "".join(tokens["text"][:at])
    branched = writer.preview.input_value()
    assert branched.startswith(kept + chosen_piece), (kept, chosen_piece, branched)
    candidates = store.ai_turn(sid).candidates
    assert candidates[1].meta["tokens"]["ids"][:at + 1] == tokens["ids"][:at] + [chosen_id]
    assert candidates[0].text == first

    # The co-writer watches the turn's suggestions: the new one is there.
    watched = co_writer.page.locator("#relay-turn .relay-watch-candidates li")
    expect(watched).to_have_count(2)
    expect(watched.nth(1)).to_have_text(branched)

    # 더 쓰기: the suggestion shown, continued into a longer third swipe.
    page.locator("#relay-extend").click()
    expect(page.locator("#relay-swipe-info")).to_contain_text("3/3", timeout=30_000)
    longer = writer.preview.input_value()
    assert longer.startswith(branched.rstrip()) and len(longer) > len(branched.rstrip())
    expect(watched).to_have_count(3)

    # The co-writer turns "확률 보기" on: the waiting suggestions show coloured, with their alternatives; only
    # the writer whose turn it is may rewrite them.
    co_writer.page.locator("#relay-probs input").check()
    view = watched.nth(0).locator(".relay-tokens")
    expect(view).to_be_visible()
    expect(watched.nth(0).locator(".relay-text")).to_be_hidden()  # the coloured view stands in for the text
    expect(watched.nth(2).locator(".relay-tokens")).to_be_visible()
    view.locator(f'.relay-tk[data-i="{at}"]').hover()
    popover = co_writer.page.locator(POPOVER)
    expect(popover).to_contain_text("이 자리의 후보")
    expect(popover.locator("tr")).to_have_count(len(tokens["top"][at]))
    expect(popover.locator("button.relay-pop-branch")).to_have_count(0)
    co_writer.page.screenshot(path=str(screenshots / "tokens-co-writer-watches-ko.png"), full_page=True)


def accepted_ai_paragraph(store, engine, title: str) -> int:
    """A story whose second paragraph is the model's, accepted with its token record."""
    sid = store.create_story(title, "민지", turn_rule="free").id
    store.add_paragraph(sid, "창밖으로 비가 내렸다.", "민지", kind="human")
    continuation = engine.continue_story(["창밖으로 비가 내렸다."], SamplingSettings(
        max_new_tokens=24, min_new_tokens=12, seed=3, stop_at="length", trim_incomplete=False))
    for _ in continuation:
        pass
    store.add_paragraph(sid, continuation.text, "민지", kind="ai", meta=continuation.meta)
    return sid


def test_an_accepted_paragraphs_tokens_open_by_hover_in_english_and_by_tap_on_a_phone(
        new_page, relay_app, tiny_engine, screenshots):
    sid = accepted_ai_paragraph(relay_app.store, tiny_engine, "Tokens")
    page = new_page("en-US")
    RelayPage(page, relay_app.url).open(f"{relay_app.url}?story={sid}")
    page.locator("#relay-probs input").check()
    card = page.locator("#relay-timeline .relay-para.kind-ai")
    expect(card.locator(".relay-text")).to_be_hidden()  # the coloured view stands in for the plain text
    token = card.locator(".relay-tk[data-i]").filter(has_text=re.compile(r"\S")).nth(2)
    token.hover()
    popover = page.locator(POPOVER)
    expect(popover).to_contain_text("Candidates at this position")
    expect(popover.locator("tr")).to_have_count(5)
    expect(popover.locator("button.relay-pop-branch")).to_have_count(0)  # accepted text is not rewritten here
    page.screenshot(path=str(screenshots / "tokens-popover-en.png"))
    page.reload(wait_until="domcontentloaded")  # the browser remembers the toggle, and the view comes back
    expect(page.locator("#relay-probs input")).to_be_checked()
    expect(card.locator(".relay-tokens .relay-tk[data-i]").first).to_be_visible()

    phone = page.context.browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844},
                                             is_mobile=True, has_touch=True)
    try:
        tab = phone.new_page()
        RelayPage(tab, relay_app.url).open(f"{relay_app.url}?story={sid}")
        tab.locator("#relay-probs input").check()
        token = tab.locator("#relay-timeline .relay-para.kind-ai .relay-tk[data-i]").filter(
            has_text=re.compile(r"\S")).nth(2)
        token.tap()
        popover = tab.locator(POPOVER)
        expect(popover).to_contain_text("이 자리의 후보")
        box = popover.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        tab.screenshot(path=str(screenshots / "tokens-popover-phone.png"))
        tab.locator(f"{POPOVER} .relay-pop-close").tap()
        expect(popover).to_be_hidden()
    finally:
        phone.close()
