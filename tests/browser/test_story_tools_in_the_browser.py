"""The story tools in a real browser: undo, fork, download, sampling presets, seed reuse, the adapter picker.

Same setup as test_relay_in_the_browser.py: Debian's Chromium through Playwright, a Korean browser,
the app with a tiny model. Each test checks what the page shows and what the story store holds.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

pytestmark = pytest.mark.browser


def writer_on(new_page, served, name: str, href: str | None = None) -> RelayPage:
    """A writer with their own Korean browser, on the app (or a share link), name filled in."""
    relay = RelayPage(new_page(), served.url).open(href)
    relay.sign_in(name)
    return relay


def texts(store, story_id: int) -> list[str]:
    return [p.text for p in store.timeline(story_id)]


def story_with(store, title: str, paragraphs: list[tuple[str, str]], rule: str = "free") -> int:
    """A story in the store with (author, text) human paragraphs; returns its id."""
    story = store.create_story(title, paragraphs[0][0] if paragraphs else "관리자", turn_rule=rule)
    for author, text in paragraphs:
        store.add_paragraph(story.id, text, author, kind="human")
    return story.id


def test_undo_removes_my_last_paragraph_and_refuses_to_remove_someone_elses(new_page, relay_app):
    store = relay_app.store
    w = writer_on(new_page, relay_app, "민지")
    sid = w.create_story("되돌리기", rule="free")
    w.add("창문이 덜컹거렸다.")
    w.add("이 문장은 마음에 들지 않는다.")
    w.open_more()

    w.undo()
    expect(w.toast("info")).to_contain_text("되돌렸습니다")
    expect(w.paragraphs).to_have_count(1)
    expect(w.paragraphs.last.locator(".relay-text")).to_have_text("창문이 덜컹거렸다.")
    assert texts(store, sid) == ["창문이 덜컹거렸다."]

    store.add_paragraph(sid, "준호가 이어 썼다.", "준호", kind="human")
    expect(w.paragraphs).to_have_count(2, timeout=10_000)  # arrives live
    w.undo()
    expect(w.toast("warning")).to_contain_text("되돌릴 수 있습니다")
    expect(w.paragraphs).to_have_count(2)
    expect(w.paragraphs.last.locator(".relay-text")).to_have_text("준호가 이어 썼다.")
    assert texts(store, sid) == ["창문이 덜컹거렸다.", "준호가 이어 썼다."]


def test_a_fork_opens_a_new_story_with_the_first_paragraphs_and_leaves_the_original_alone(new_page, relay_app,
                                                                                          screenshots):
    store = relay_app.store
    # Paragraphs of another story first, so paragraph ids and paragraph numbers differ below.
    story_with(store, "딴 이야기", [("수아", "하나."), ("수아", "둘."), ("수아", "셋.")])
    original = ["안개 낀 항구에 배 한 척이 들어왔다.", "선장은 아무 말도 하지 않았다.", "그날 밤 등대가 꺼졌다."]
    sid = story_with(store, "항구의 밤", [("민지", original[0]), ("준호", original[1]), ("민지", original[2])])
    stories_before = len(store.list_stories())

    w = writer_on(new_page, relay_app, "하린", href=f"{relay_app.url.rstrip('/')}/?story={sid}")
    expect(w.paragraphs).to_have_count(3)
    w.open_more()

    w.fork(9, "없는 문단에서")
    expect(w.toast("warning")).to_contain_text("9")
    expect(w.header.locator(".relay-title")).to_contain_text("항구의 밤")
    assert len(store.list_stories()) == stories_before

    w.fork(2, "등대가 켜진 밤")
    expect(w.toast("info")).to_contain_text("갈래")
    expect(w.header.locator(".relay-title")).to_contain_text("등대가 켜진 밤")
    fork_id = w.story_id()
    assert fork_id != sid
    expect(w.paragraphs).to_have_count(2)
    expect(w.paragraphs.locator(".relay-text")).to_have_text(original[:2])
    assert texts(store, fork_id) == original[:2]
    assert store.get_story(fork_id).forked_from[0] == sid
    assert texts(store, sid) == original  # the original is untouched
    w.page.screenshot(path=screenshots / "08-fork.png", full_page=True)

    w.tab("stories")
    links = w.page.locator("#relay-stories a.relay-story-link")
    expect(links.filter(has_text="항구의 밤")).to_have_attribute("href", f"?story={sid}")
    expect(links.filter(has_text="등대가 켜진 밤")).to_have_attribute("href", f"?story={fork_id}")

    # The header names the paragraph *number* the fork starts from, as the person typed it.
    w.tab("story")
    expect(w.header).to_contain_text(f"이야기 #{sid} 의 2번째 문단")


@pytest.mark.parametrize("fmt", ["txt", "md", "json"])
def test_download_gives_the_story_as_a_file_in_each_format(new_page, relay_app, fmt):
    store = relay_app.store
    paragraphs = ["첫눈이 내린 아침이었다.", "할머니는 장독대를 닦았다.", "<b>태그</b>도 글자 그대로 남는다."]
    sid = story_with(store, "첫눈", [("민지", paragraphs[0]), ("준호", paragraphs[1]), ("민지", paragraphs[2])])
    w = writer_on(new_page, relay_app, "민지", href=f"{relay_app.url.rstrip('/')}/?story={sid}")
    expect(w.paragraphs).to_have_count(3)
    w.open_more()

    name, content = w.download(fmt)
    assert name == f"relay-story-{sid}.{fmt}"
    expected = store.export(sid, fmt, lang="ko")  # the page is Korean: so are the md export's own words
    if fmt == "json":
        got, want = json.loads(content), json.loads(expected)
        assert [p["text"] for p in got["paragraphs"]] == paragraphs
        assert [p["author"] for p in got["paragraphs"]] == ["민지", "준호", "민지"]
        del got["exported_at"], want["exported_at"]  # the only field that differs between two exports
        assert got == want
    else:
        assert content == expected
        plain = content.replace("\\<", "<").replace("\\>", ">") if fmt == "md" else content  # md escapes markup
        assert all(p in plain for p in paragraphs)
    if fmt == "txt":
        assert "\n\n".join(paragraphs) in content  # the novel, paragraphs apart by a blank line


def test_a_preset_sets_its_values_and_reset_restores_the_story_defaults(new_page, relay_app):
    store = relay_app.store
    w = writer_on(new_page, relay_app, "서윤")
    # The settings in place when a story is created become its defaults.
    w.tab("story")
    w.open_sampling()
    w.set_number("온도", 1.3)
    w.set_number("후보 수 (top-k)", 77)
    sid = w.create_story("기본값 이야기")
    saved = store.get_story(sid).settings
    assert (saved["temperature"], saved["top_k"]) == (1.3, 77)
    w.add("골목 끝 빵집에 불이 켜졌다.")

    w.choose_preset("신중하게")
    expect(w.number("온도")).to_have_value("0.6")
    expect(w.number("후보 수 (top-k)")).to_have_value("40")
    expect(w.number("최대 길이 (토큰)")).to_have_value("100")

    w.reset_to_story_defaults()
    expect(w.number("온도")).to_have_value("1.3")
    expect(w.number("후보 수 (top-k)")).to_have_value("77")
    expect(w.number("최대 길이 (토큰)")).to_have_value("140")

    # What the page shows is what the model is asked to use.
    w.continue_with_ai()
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    used = store.timeline(sid)[-1].meta["settings"]
    assert (used["temperature"], used["top_k"], used["max_new_tokens"]) == (1.3, 77, 140)


def test_a_preset_chosen_again_after_a_reset_applies_again(new_page, relay_app):
    w = writer_on(new_page, relay_app, "서윤")
    w.create_story("다시 신중하게")
    w.open_sampling()
    w.choose_preset("신중하게")
    expect(w.number("온도")).to_have_value("0.6")
    w.reset_to_story_defaults()
    expect(w.number("온도")).to_have_value("0.8")

    w.choose_preset("신중하게")
    expect(w.number("온도")).to_have_value("0.6")


def test_fixing_the_reported_seed_reproduces_the_same_candidate(new_page, relay_app):
    store = relay_app.store
    w = writer_on(new_page, relay_app, "도윤")
    sid = w.create_story("같은 시드")
    w.add("기차가 터널로 들어갔다.")
    w.open_sampling()
    expect(w.seed_box).to_have_value("")  # a random seed, reported after the generation

    first = w.continue_with_ai()
    seed = w.last_seed()
    w.use_last_seed()
    expect(w.seed_box).to_have_value(str(seed))

    # Clear the first candidate, so what the preview shows next can only come from the regeneration.
    w.page.locator("#relay-discard").click()
    expect(w.seed_info).to_have_text("")
    expect(w.preview).to_have_value("")
    w.page.locator("#relay-ai").click()
    expect(w.seed_info).to_contain_text(f"시드 {seed}", timeout=30_000)
    expect(w.preview).to_have_value(first)
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    stored = store.timeline(sid)[-1]
    assert stored.kind == "ai" and stored.text == first and stored.meta["seed"] == seed
    assert stored.meta["settings"]["seed"] == seed


def test_the_model_picker_shows_only_with_adapters_and_the_chosen_adapter_is_saved(new_page, relay_app,
                                                                                  adapter_app, screenshots):
    plain = writer_on(new_page, relay_app, "지호")
    plain.create_story("어댑터 없음")
    plain.open_sampling()
    expect(plain.adapter_picker).to_be_hidden()

    w = writer_on(new_page, adapter_app, "지호")
    sid = w.create_story("문체 입히기")
    w.add("그 여름, 우리는 바다로 갔다.")
    w.open_sampling()
    expect(w.adapter_picker).to_be_visible()
    w.choose_adapter("style")
    w.page.screenshot(path=screenshots / "09-adapter-picker.png", full_page=True)

    text = w.continue_with_ai()
    w.page.locator("#relay-accept").click()
    expect(w.paragraphs).to_have_count(2)
    card = w.paragraphs.nth(1)
    card.locator("details.relay-details summary").click()
    assert json.loads(card.locator("details.relay-details pre").inner_text())["adapter"] == "style"
    stored = adapter_app.store.timeline(sid)[-1]
    assert stored.kind == "ai" and stored.text == text and stored.meta["adapter"] == "style"


def test_the_ai_button_on_a_persons_turn_says_so_and_writes_nothing(new_page, relay_app):
    store = relay_app.store
    w = writer_on(new_page, relay_app, "다은")
    sid = w.create_story("사람 먼저")
    w.expect_ai_refused("사람 차례")  # disabled, with the reason beside it
    expect(w.page.locator("#relay-stop")).to_be_disabled()  # nothing is being written
    w.press_disabled("relay-ai")  # and a stale page is refused by the server
    expect(w.toast("error")).to_contain_text("사람 차례")
    expect(w.preview).to_have_value("")
    expect(w.seed_info).to_have_text("")
    expect(w.paragraphs).to_have_count(0)
    assert store.timeline(sid) == [] and store.ai_turn_holder(sid) is None


def test_accepting_while_a_regeneration_streams_never_stores_half_written_text(new_page, relay_app):
    store = relay_app.store
    w = writer_on(new_page, relay_app, "예준")
    sid = w.create_story("성급한 채택")
    w.add("자정이 지나자 시계탑이 울렸다.")
    w.settings_for_long_stream(max_new_tokens=120, seed=7)
    first = w.continue_with_ai()
    w.set_seed(8)

    # Press 채택 from inside the page the moment the regeneration's first words replace the first candidate.
    w.page.evaluate("""(first) => {
      const timer = setInterval(() => {
        const box = document.querySelector('#relay-preview textarea');
        if (box && box.value && box.value !== first) { clearInterval(timer); document.querySelector('#relay-accept').click(); }
      }, 1);
    }""", first)
    w.page.locator("#relay-regen").click()
    expect(w.seed_info).to_contain_text("시드 8", timeout=30_000)
    regenerated = w.preview.input_value()
    # The early press met a disabled button: a suggestion cannot be accepted while it is half written.
    expect(w.page.locator("#relay-accept")).to_be_enabled()

    stored = [p for p in store.timeline(sid) if p.kind == "ai"]
    assert all(p.text in (first, regenerated) and not p.edited for p in stored), (
        f"an AI paragraph holds text nobody accepted whole: {[(p.text, p.edited) for p in stored]!r}")
    expect(w.paragraphs).to_have_count(1 + len(stored))
