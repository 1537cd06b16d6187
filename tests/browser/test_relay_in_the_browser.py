"""Relay in a real browser: Debian's Chromium, driven by Playwright, against the app with a tiny model.

Each test opens fresh browser contexts (separate localStorage, like separate people) on one
session-wide server. Screenshots of the main views land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser

XSS_IMG = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"


def writer_on(new_page, served, name: str, locale: str = "ko-KR", href: str | None = None) -> RelayPage:
    """A writer with their own browser, on the app (or a share link), name filled in."""
    relay = RelayPage(new_page(locale), served.url).open(href)
    relay.sign_in(name)
    return relay


def test_two_writers_relay_with_the_model_and_see_each_other_live(new_page, relay_app, screenshots):
    a = writer_on(new_page, relay_app, "민지")
    sid = a.create_story("함께 쓰는 밤")
    a.add("밤이 깊었다. 골목 끝에서 누군가 휘파람을 불었다.")

    share = a.share_link.get_attribute("href")
    assert share.endswith(f"?story={sid}")
    b = writer_on(new_page, relay_app, "준호", href=share)
    expect(b.header.locator(".relay-title")).to_contain_text("함께 쓰는 밤")
    expect(b.paragraphs).to_have_count(1)
    expect(b.paragraphs.first.locator(".relay-text")).to_have_text("밤이 깊었다. 골목 끝에서 누군가 휘파람을 불었다.")
    expect(b.paragraphs.first.locator(".relay-author")).to_have_text("민지")

    ai_text = b.continue_with_ai()
    assert ai_text.strip()
    b.page.locator("#relay-accept").click()
    expect(b.toast("info")).to_be_visible()
    for page in (b, a):  # a sees it live, without reloading
        expect(page.paragraphs).to_have_count(2, timeout=10_000)
        ai_card = page.paragraphs.nth(1)
        expect(ai_card).to_have_class(re.compile(r"\bkind-ai\b"))
        expect(ai_card.locator(".relay-text")).to_have_text(ai_text)
        expect(ai_card.locator(".relay-author")).to_contain_text("준호")
    expect(b.preview).to_have_value("")  # the accepted candidate left the preview

    a.add("휘파람 소리가 멎자 가로등이 하나씩 꺼졌다.")
    expect(b.paragraphs).to_have_count(3, timeout=10_000)
    last = b.paragraphs.nth(2)
    expect(last).to_have_class(re.compile(r"\bkind-human\b"))
    expect(last.locator(".relay-text")).to_have_text("휘파람 소리가 멎자 가로등이 하나씩 꺼졌다.")
    assert [p.kind for p in relay_app.store.timeline(sid)] == ["human", "ai", "human"]
    a.page.screenshot(path=screenshots / "02-story-timeline.png", full_page=True)


def test_the_story_list_puts_the_latest_activity_first_and_links_each_story(new_page, relay_app, screenshots):
    store = relay_app.store
    older = store.create_story("먼저 만든 이야기", "수아", turn_rule="free")
    newer = store.create_story("나중에 만든 이야기", "수아", turn_rule="free")
    store.add_paragraph(older.id, "오래된 이야기에 새 문단.", "수아", kind="human")

    page = RelayPage(new_page(), relay_app.url).open()
    links = page.page.locator("#relay-stories a.relay-story-link")
    titles = links.all_inner_texts()
    assert titles.index("먼저 만든 이야기") < titles.index("나중에 만든 이야기")
    row = page.page.locator("#relay-stories tr", has=page.page.locator(f'a[href="?story={older.id}"]'))
    expect(row.locator("td").nth(1)).to_have_text("1")
    page.page.screenshot(path=screenshots / "01-story-list.png", full_page=True)

    links.filter(has_text="나중에 만든 이야기").click()
    expect(page.header.locator(".relay-title")).to_contain_text("나중에 만든 이야기")
    assert page.story_id() == newer.id


def test_html_and_script_in_a_paragraph_show_as_text_and_run_nothing(new_page, relay_app, screenshots):
    w = writer_on(new_page, relay_app, "<b>굵은</b> 작가")
    w.create_story("<i>기울임</i> 제목", rule="free")
    hostile = f"그는 쪽지를 펼쳤다. {XSS_IMG} 그리고 {XSS_SCRIPT} 라고 적혀 있었다."
    w.add(hostile)

    card = w.paragraphs.last
    expect(card.locator(".relay-text")).to_have_text(hostile)
    expect(card.locator(".relay-author")).to_have_text("<b>굵은</b> 작가")
    expect(w.header.locator(".relay-title")).to_contain_text("<i>기울임</i> 제목")
    for tag in ("img", "script", "b:not(.relay-author)", "i"):
        expect(w.page.locator(f"#relay-timeline {tag}, #relay-header {tag}")).to_have_count(0)
    assert w.page.evaluate("() => window.__pwned") is None

    w.page.locator("#relay-reading input").check()
    novel = w.page.locator("#relay-live.relay-reading #relay-timeline")
    expect(novel).to_contain_text(hostile)
    expect(novel.locator(".relay-meta").first).to_be_hidden()  # just the novel: no writers, badges or times
    expect(w.timeline.locator("img, script")).to_have_count(0)
    assert w.page.evaluate("() => window.__pwned") is None
    w.page.screenshot(path=screenshots / "07-reading-view.png", full_page=True)

    # a second browser rendering the same story live is just as inert
    other = RelayPage(new_page(), relay_app.url).open(w.share_link.get_attribute("href"))
    expect(other.paragraphs.last.locator(".relay-text")).to_have_text(hostile)
    expect(other.page.locator("#relay-timeline img, #relay-timeline script")).to_have_count(0)
    assert other.page.evaluate("() => window.__pwned") is None


def test_a_writer_who_missed_a_paragraph_is_told_sees_it_and_keeps_the_draft(new_page, relay_app):
    a = writer_on(new_page, relay_app, "민지")
    sid = a.create_story("늦은 답장", rule="free")
    a.add("편지는 사흘 늦게 도착했다.")
    draft = "봉투 안에는 마른 꽃잎 하나뿐이었다."
    a.type_draft(draft)

    # Someone else writes while the draft is being typed; this page has not seen it yet (a slow network).
    a.page.evaluate("relayLive.hold(true)")
    relay_app.store.add_paragraph(sid, "그 사이 준호가 먼저 문단을 보탰다.", "준호", kind="human")
    expect(a.paragraphs).to_have_count(1)

    a.page.locator("#relay-add").click()
    expect(a.toast("warning")).to_contain_text("다른 작가가 문단을 추가")
    expect(a.paragraphs).to_have_count(2)
    expect(a.paragraphs.nth(1).locator(".relay-text")).to_have_text("그 사이 준호가 먼저 문단을 보탰다.")
    expect(a.composer).to_have_value(draft)
    assert [p.text for p in relay_app.store.timeline(sid)][-1] != draft

    a.page.locator("#relay-add").click()
    expect(a.paragraphs).to_have_count(3)
    expect(a.paragraphs.nth(2).locator(".relay-text")).to_have_text(draft)
    expect(a.composer).to_have_value("")
    assert [p.text for p in relay_app.store.timeline(sid)][-1] == draft


def test_the_turn_rule_refuses_a_second_human_paragraph_with_a_clear_message(new_page, relay_app):
    w = writer_on(new_page, relay_app, "수아")
    sid = w.create_story("번갈아 쓰기")
    w.add("첫 문단은 사람이 쓴다.")
    expect(w.page.locator("#relay-status")).to_contain_text("AI")

    w.type_draft("두 번째 사람 문단은 안 된다.")
    w.page.locator("#relay-add").click()
    # A warning toast says why; the composer keeps the draft, readable, with no error laid over it.
    expect(w.toast("warning")).to_contain_text("AI 차례")
    expect(w.paragraphs).to_have_count(1)
    expect(w.composer).to_have_value("두 번째 사람 문단은 안 된다.")
    expect(w.page.locator("#relay-composer .error")).to_have_count(0)
    w.page.locator("#relay-add").click()  # again: the new toast replaces the first instead of piling up
    expect(w.toast("warning")).to_have_count(1)
    w.page.wait_for_timeout(500)
    expect(w.toast("warning")).to_have_count(1)
    assert len(relay_app.store.timeline(sid)) == 1


def test_three_alternatives_show_side_by_side_and_the_picked_one_is_stored_with_its_seed(new_page, relay_app,
                                                                                           screenshots):
    w = writer_on(new_page, relay_app, "지호")
    sid = w.create_story("세 갈래 길")
    w.add("갈림길에서 그는 오래 망설였다.")

    w.page.locator("#relay-alts").click()
    boxes = [w.page.locator(f"#relay-alt-{i}") for i in range(4)]
    for box in boxes[:3]:
        expect(box).to_be_visible(timeout=30_000)
        expect(box.locator("textarea")).not_to_have_value("")
    expect(boxes[3]).to_be_hidden()
    expect(w.seed_info).to_contain_text("시드")
    tops = [box.bounding_box()["y"] for box in boxes[:3]]
    lefts = [box.bounding_box()["x"] for box in boxes[:3]]
    assert max(tops) - min(tops) < 5 and lefts == sorted(lefts) and len(set(lefts)) == 3, (tops, lefts)
    texts = [box.locator("textarea").input_value() for box in boxes[:3]]
    w.page.screenshot(path=screenshots / "04-alternatives.png", full_page=True)

    w.page.locator("#relay-pick-1").click()
    expect(w.preview).to_have_value(texts[1])
    seed = w.last_seed()
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    card = w.paragraphs.nth(1)
    expect(card).to_have_class(re.compile(r"\bkind-ai\b"))
    expect(card.locator(".relay-text")).to_have_text(texts[1])
    expect(card.locator(".relay-edited")).to_have_count(0)  # picked as generated, not edited

    card.locator("details.relay-details summary").click()
    details = card.locator("details.relay-details pre")
    expect(details).to_be_visible()
    meta = json.loads(details.inner_text())
    assert meta["seed"] == seed
    stored = relay_app.store.timeline(sid)[-1]
    assert stored.kind == "ai" and stored.text == texts[1] and stored.meta["seed"] == seed


def test_a_candidate_edited_before_accepting_is_stored_as_ai_text_a_person_edited(new_page, relay_app):
    w = writer_on(new_page, relay_app, "다은")
    sid = w.create_story("고쳐 쓰기")
    w.add("창밖으로 첫눈이 내렸다.")
    generated = w.continue_with_ai()
    edited = "아이들이 마당으로 뛰어나왔다."
    assert edited != generated
    w.preview.fill(edited)
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    card = w.paragraphs.nth(1)
    expect(card).to_have_class(re.compile(r"\bkind-ai\b"))
    expect(card.locator(".relay-text")).to_have_text(edited)
    expect(card.locator(".relay-edited")).to_have_text("사람이 고침")
    stored = relay_app.store.timeline(sid)[-1]
    assert stored.kind == "ai" and stored.edited and stored.text == edited


def test_the_writer_name_is_remembered_after_a_reload(new_page, relay_app):
    w = writer_on(new_page, relay_app, "기억하는 이름")
    # gr.BrowserState keeps it in this browser's localStorage once the change event has gone through.
    w.page.wait_for_function("() => !!window.localStorage.getItem('relay-writer-name')")
    w.page.reload(wait_until="domcontentloaded")
    w.wait_loaded()
    expect(w.writer).to_have_value("기억하는 이름")

    stranger = RelayPage(new_page(), relay_app.url).open()  # another browser does not know the name
    expect(stranger.writer).to_have_value("")


def test_the_tiny_model_banner_says_the_text_is_random_in_korean_and_english(new_page, relay_app):
    ko = RelayPage(new_page("ko-KR"), relay_app.url).open()
    expect(ko.page.locator("#relay-tiny-banner")).to_be_visible()
    expect(ko.page.locator("#relay-tiny-banner")).to_contain_text("무작위")
    expect(ko.page.locator("#relay-create")).to_have_text("이야기 만들기")

    en = RelayPage(new_page("en-US"), relay_app.url).open()
    expect(en.page.locator("#relay-tiny-banner")).to_contain_text("random")
    expect(en.page.locator("#relay-create")).to_have_text("Create story")
    expect(en.page.locator('button[role="tab"][data-tab-id="lab"]')).to_have_text("Sampling lab")


def test_while_the_model_writes_for_one_writer_the_others_see_it_and_cannot_start_another(new_page, relay_app):
    w = writer_on(new_page, relay_app, "민지")
    sid = w.create_story("한 번에 한 명")
    w.add("문이 열렸다.")
    relay_app.store.claim_ai_turn(sid, "준호", ttl=60)  # the model is writing for 준호 in another browser
    try:
        expect(w.page.locator("#relay-status")).to_contain_text("준호", timeout=10_000)
        w.expect_ai_refused("준호")  # disabled, saying for whom the model writes
        w.press_disabled("relay-ai")  # a page that had not heard yet: the server refuses too
        expect(w.toast("error")).to_contain_text("준호")
        expect(w.preview).to_have_value("")
    finally:
        relay_app.store.release_ai_turn(sid, "준호")
    expect(w.page.locator("#relay-status")).not_to_contain_text("준호", timeout=10_000)
    assert len(relay_app.store.timeline(sid)) == 1


def test_a_writer_name_made_of_html_shows_as_text_in_the_status_and_in_messages(new_page, relay_app):
    w = writer_on(new_page, relay_app, "민지")
    sid = w.create_story("이름에 태그")
    w.add("문이 열렸다.")
    holder = "준호<img src=x onerror=window.__pwned=4>"
    relay_app.store.claim_ai_turn(sid, holder, ttl=60)
    try:
        expect(w.page.locator("#relay-status")).to_contain_text(holder, timeout=10_000)
        w.expect_ai_refused(holder)  # the reason beside the button shows the name as text
        assert w.page.locator("#relay-ai-reason img").count() == 0
        w.press_disabled("relay-ai")
        expect(w.toast("error")).to_contain_text("준호")
        # Checked at once: an error toast closes itself after a few seconds, taking any injected tag with it.
        injected = w.page.locator("#relay-status img, [data-testid='toast-body'] img").count()
        expect(w.toast("error")).to_contain_text(holder, timeout=3_000)
        assert injected == 0
        assert w.page.evaluate("() => window.__pwned") is None
    finally:
        relay_app.store.release_ai_turn(sid, holder)


def test_the_sampling_lab_compares_settings_and_copies_one_into_the_story(new_page, relay_app, screenshots):
    w = writer_on(new_page, relay_app, "연구원")
    w.tab("lab")
    w.page.locator("#relay-lab-context textarea").fill("새벽 안개가 강을 덮었다.\n뱃사공은 노를 내려놓았다.")
    w.page.locator("#relay-lab-run").click()
    outputs = [w.page.locator(f"#relay-lab-out-{i} textarea") for i in range(2)]
    lab = w.page.locator('[role="tabpanel"]', has=w.page.locator("#relay-lab-run"))
    expect(w.page.locator("#relay-lab-summary")).to_contain_text("표본 4개", timeout=30_000)
    for box in outputs:
        expect(box).not_to_have_value("")
    w.page.screenshot(path=screenshots / "06-sampling-lab.png", full_page=True)

    column_seed = re.search(r"시드 (\d+)", outputs[0].input_value()).group(1)  # the first sample's seed

    # Column 1 starts from the "careful" preset (temperature 0.6); copy it into the story's settings,
    # with the seed that wrote its text, so the result can be reproduced in the story.
    lab.get_by_role("button", name="이 설정을 이야기에 적용").first.click()
    expect(w.toast("info")).to_be_visible()
    expect(w.page.locator('button[role="tab"][data-tab-id="story"]')).to_have_attribute("aria-selected", "true")
    w.open_sampling()
    expect(w.number("온도")).to_have_value("0.6")
    expect(w.seed_box).to_have_value(column_seed)


def test_an_empty_seed_draws_a_new_seed_for_every_generation_even_with_the_settings_open(new_page, relay_app):
    w = writer_on(new_page, relay_app, "서윤")
    w.create_story("매번 다르게")
    w.add("바람이 불었다.")
    w.open_sampling()  # looking at the settings must not pin the seed
    seeds = []
    for _ in range(2):
        w.continue_with_ai()
        seeds.append(w.last_seed())
        w.page.locator("#relay-discard").click()
        expect(w.seed_info).to_have_text("")
    assert seeds[0] != seeds[1], f"both generations used seed {seeds[0]}: an empty seed box is sent as a fixed seed"

    w.tab("lab")
    w.page.locator("#relay-lab-context textarea").fill("바람이 불었다.")
    summary = w.page.locator("#relay-lab-summary")
    lab_seeds = []
    for _ in range(2):  # every lab run draws its own first seed (its columns share it, to differ only by settings)
        w.page.locator("#relay-lab-run").click()
        if lab_seeds:  # the same seed again would leave the line as it is: wait at most 30 s for a new one
            expect(summary).not_to_contain_text(f"첫 시드 {lab_seeds[-1]}", timeout=30_000)
        expect(summary).to_contain_text("첫 시드", timeout=30_000)
        lab_seeds.append(int(re.search(r"첫 시드 (\d+)", summary.inner_text()).group(1)))
    assert lab_seeds[0] != lab_seeds[1], f"both lab runs used seed {lab_seeds[0]}"


@pytest.mark.parametrize("holder", ["준호<img src=//127.0.0.9/x.png>", "<form><button>로그인</button></form>"])
def test_a_hostile_name_in_a_toast_fetches_nothing_and_shows_no_form(new_page, relay_app, holder):
    w = writer_on(new_page, relay_app, "민지")
    sid = w.create_story("토스트")
    w.add("문이 열렸다.")
    fetched = []
    w.page.on("request", lambda r: fetched.append(r.url) if "127.0.0.9" in r.url else None)
    relay_app.store.claim_ai_turn(sid, holder, ttl=60)
    try:
        expect(w.page.locator("#relay-status")).to_contain_text(holder, timeout=10_000)
        w.press_disabled("relay-ai")
        toast = w.toast("error")
        expect(toast).to_contain_text(holder)  # shown as text
        assert toast.locator("img, form, button:not(.toast-close)").count() == 0
        assert w.page.locator("#relay-status img, #relay-status form").count() == 0
        assert fetched == []
    finally:
        relay_app.store.release_ai_turn(sid, holder)
