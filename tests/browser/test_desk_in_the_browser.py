"""The writing desk's settings panel, history panel and messages in a real Chromium (Korean locale).

The panels run on the full page (`desk_app` is the session's app): the settings panel in the story
tab's settings accordion, the history panel in its "more" accordion, the card actions on the live
timeline's cards.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
import gradio as gr  # noqa: E402
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

ALLOWED_ASCII = {"AI", "JSON", "MB"}


@pytest.fixture(scope="module")
def desk_app(relay_app):
    """The full page: the panels sit in the story tab's settings and "more" accordions."""
    return relay_app


def open_desk(new_page, desk_app, story_id: int | None = None, name: str = "준호", locale: str = "ko-KR"):
    if story_id is None:  # the panels live in the story tab: open a story of one's own
        story_id = desk_app.store.create_story("설정 시험", name, turn_rule="free").id
    page = new_page(locale)
    page.goto(desk_app.url + (f"?story={story_id}" if story_id else ""), wait_until="domcontentloaded")
    writer = page.locator("#relay-writer :is(input, textarea)").first
    writer.fill(name)
    if story_id:
        expect(page.locator("#relay-header .relay-title")).to_contain_text(f"#{story_id}")
    return page


def open_accordion(page, elem_id: str):
    page.locator(f"#{elem_id} > button.label-wrap").first.click()


def toasts(page):
    return page.locator('[data-testid="toast-body"]')


def ascii_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z][A-Za-z_\-]*", text)) - ALLOWED_ASCII


def import_file(page, export) -> int:
    """Import `export` through the "more" panel's file box; the id of the story the page then opens."""
    expect(page).to_have_url(re.compile(r"\?story=\d+$"))
    before = page.url
    open_accordion(page, "relay-more")
    page.locator("#relay-history-import input[type=file]").set_input_files(str(export))
    expect(page).not_to_have_url(before)
    expect(page).to_have_url(re.compile(r"\?story=\d+$"))
    return int(re.search(r"story=(\d+)", page.url).group(1))


def story_with(store, texts, rule="free", authors=("준호",)):
    story = store.create_story("기록 시험", authors[0], turn_rule=rule)
    for i, text in enumerate(texts):
        store.add_paragraph(story.id, text, authors[i % len(authors)], kind="human")
    return story


def test_a_typed_out_of_range_value_gets_a_korean_message_naming_the_range(new_page, desk_app):
    page = open_desk(new_page, desk_app)
    open_accordion(page, "relay-sampling")
    box = page.locator('#relay-setting-temperature input[type="number"]')
    box.click()
    box.press("ControlOrMeta+a")
    box.press_sequentially("5")
    box.press("Tab")
    toast = toasts(page).first
    expect(toast).to_contain_text("온도는 0~2 사이의 숫자여야 합니다")
    expect(toast).to_contain_text("5 → 2")
    expect(toast.locator(".toast-title")).to_contain_text("알림")
    assert not ascii_words(toast.inner_text()), toast.inner_text()


def test_the_length_slider_stops_at_what_the_models_window_allows(new_page, desk_app, tiny_engine):
    page = open_desk(new_page, desk_app)
    open_accordion(page, "relay-sampling")
    limit = tiny_engine.context_window - 32
    expect(page.locator('#relay-setting-max_new_tokens input[type="range"]')).to_have_attribute("max", str(limit))


def test_the_active_preset_line_names_the_preset_then_says_custom_after_a_change(new_page, desk_app):
    page = open_desk(new_page, desk_app)
    open_accordion(page, "relay-sampling")
    line = page.locator("#relay-active-preset")
    expect(line).to_contain_text("균형 있게")
    page.locator('#relay-preset label:has(> input[value="careful"])').click()
    expect(line).to_contain_text("신중하게")
    expect(page.locator('#relay-setting-temperature input[type="number"]')).to_have_value("0.6")
    page.locator('#relay-setting-stop_at label:has(> input[value="sentence"])').click()
    expect(line).to_contain_text("사용자 설정")
    expect(page.locator('#relay-preset input[value="careful"]')).not_to_be_checked()


def test_a_refusal_on_a_korean_page_has_no_english_word_and_leaves_no_error_badge(new_page, desk_app):
    story = story_with(desk_app.store, ["첫 문단입니다."], rule="alternate", authors=("서윤",))
    page = open_desk(new_page, desk_app, story.id, name="준호")
    open_accordion(page, "relay-more")
    for button in ("relay-history-undo", "relay-history-redo"):
        page.locator(f"#{button}").click()
        toast = toasts(page).last
        expect(toast).to_be_visible()
        text = toast.inner_text()
        assert not ascii_words(text), text
    page.locator("#relay-history-seq input").fill("9")
    page.locator("#relay-history-load").click()
    expect(toasts(page).last).to_contain_text("문단 번호 9")
    expect(page.locator("#relay-history")).not_to_contain_text("오류")
    for toast in toasts(page).all():
        assert not ascii_words(toast.inner_text()), toast.inner_text()


def test_fork_here_from_a_card_opens_the_fork_and_the_address_bar_shows_it(new_page, desk_app):
    store = desk_app.store
    story = story_with(store, ["하나", "둘", "셋"])
    page = open_desk(new_page, desk_app, story.id)
    expect(page.locator('#relay-timeline button.relay-act[data-act="fork"]')).to_have_count(3)
    page.locator('#relay-timeline button.relay-act[data-act="fork"][data-seq="2"]').click()
    expect(page).not_to_have_url(re.compile(rf"story={story.id}$"))
    expect(page).to_have_url(re.compile(r"\?story=(\d+)$"))
    new_id = int(re.search(r"story=(\d+)", page.url).group(1))
    assert new_id != story.id
    assert [p.text for p in store.timeline(new_id)] == ["하나", "둘"]
    assert store.get_story(new_id).title == "기록 시험 (갈래)"
    expect(page.locator("#relay-header .relay-title")).to_contain_text(f"#{new_id}")  # the fork is open, live


def test_continue_from_here_opens_a_fork_without_that_paragraph(new_page, desk_app):
    store = desk_app.store
    story = story_with(store, ["하나", "둘", "셋"])
    page = open_desk(new_page, desk_app, story.id)
    page.locator('#relay-timeline button.relay-act[data-act="rewrite"][data-seq="3"]').click()
    expect(page).not_to_have_url(re.compile(rf"story={story.id}$"))
    new_id = int(re.search(r"story=(\d+)", page.url).group(1))
    assert [p.text for p in store.timeline(new_id)] == ["하나", "둘"]


def test_importing_a_json_export_opens_the_same_story(new_page, desk_app, tmp_path):
    store = desk_app.store
    story = story_with(store, ["첫 줄\n둘째 줄", "<b>굵게?</b>", "끝."], authors=("준호", "서윤"))
    export = tmp_path / "relay-story.json"
    export.write_text(store.export(story.id, "json"), encoding="utf-8")
    page = open_desk(new_page, desk_app, None)
    new_id = import_file(page, export)
    assert new_id != story.id
    original, imported = store.timeline(story.id), store.timeline(new_id)
    assert [(p.text, p.author, p.kind) for p in imported] == [(p.text, p.author, p.kind) for p in original]
    expect(page.locator("#relay-timeline .relay-text").nth(1)).to_have_text("<b>굵게?</b>")
    # The importer (준호, this browser's key) is the new story's creator; the file's writers stay as names only.
    copy = store.get_story(new_id)
    assert copy.created_by == "준호" and copy.creator_id is not None
    assert copy.origin["writers"] == ["준호", "서윤"] and copy.origin["imported_by"] == "준호"
    assert all(p.writer_id is None for p in imported)


def test_an_export_over_the_size_limit_is_imported_without_its_token_probabilities(new_page, desk_app, tmp_path):
    from relay.ui.history import MAX_IMPORT_BYTES

    store = desk_app.store
    story = story_with(store, ["하나", "둘", "셋"])
    data = json.loads(store.export(story.id, "json"))
    pieces = ["가나다라마바"] * 30_000  # a record far bigger than a real one, so three paragraphs pass the limit
    for paragraph in data["paragraphs"]:
        paragraph["meta"] = {**(paragraph.get("meta") or {}),
                             "tokens": {"v": 1, "ids": list(range(30_000)), "text": pieces, "p": [0.5] * 30_000}}
    export = tmp_path / "relay-story.json"
    export.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert export.stat().st_size > MAX_IMPORT_BYTES
    new_id = import_file(open_desk(new_page, desk_app, None), export)
    imported = store.timeline(new_id)
    assert new_id != story.id and [p.text for p in imported] == ["하나", "둘", "셋"]
    assert all("tokens" not in (p.meta or {}) for p in imported)


def test_a_file_that_is_not_an_export_is_refused_in_korean(new_page, desk_app, tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps({"hello": 1}), encoding="utf-8")
    page = open_desk(new_page, desk_app, None)
    open_accordion(page, "relay-more")
    page.locator("#relay-history-import input[type=file]").set_input_files(str(bad))
    expect(toasts(page).last).to_contain_text("릴레이에서 내려받은 JSON 이야기가 아니거나")


def test_times_show_in_the_browsers_time_zone(chromium, desk_app):
    story = story_with(desk_app.store, ["시간"])
    context = chromium.new_context(locale="ko-KR", timezone_id="Asia/Seoul")
    try:
        page = context.new_page()
        page.goto(desk_app.url + f"?story={story.id}", wait_until="domcontentloaded")
        when = page.locator("#relay-timeline time.relay-time").first
        expect(when).to_have_attribute("data-local", "1")
        utc = desk_app.store.timeline(story.id)[0].created_at
        from datetime import datetime, timedelta, timezone

        seoul = datetime.fromisoformat(utc).astimezone(timezone(timedelta(hours=9)))
        expect(when).to_have_text(seoul.strftime("%Y-%m-%d %H:%M"))
        # The story list too: its last-activity column is in the browser's zone, not UTC.
        page.goto(desk_app.url, wait_until="domcontentloaded")
        row = page.locator(f'#relay-stories tr:has(a[href="?story={story.id}"])')
        listed = row.locator("time.relay-time")
        expect(listed).to_have_attribute("data-local", "1")
        active = datetime.fromisoformat(desk_app.store.get_story(story.id).last_activity)
        expect(listed).to_have_text(active.astimezone(timezone(timedelta(hours=9))).strftime("%Y-%m-%d %H:%M"))
    finally:
        context.close()


needs_history_store = pytest.mark.skipif(
    not all(hasattr(__import__("relay.story_store", fromlist=["StoryStore"]).StoryStore, m)
            for m in ("edit_paragraph", "paragraph_versions", "redo_last")),
    reason="the store's history (edit_paragraph, paragraph_versions, redo_last: store contract part 3) is not merged")


@needs_history_store
def test_editing_an_accepted_paragraph_keeps_its_earlier_version_visible(new_page, desk_app, screenshots):
    store = desk_app.store
    story = story_with(store, ["그는 문을 열었다.", "비가 왔다."])
    page = open_desk(new_page, desk_app, story.id)
    page.locator('#relay-timeline button.relay-act[data-act="edit"][data-seq="1"]').click()
    text = page.locator("#relay-history-text textarea")
    expect(text).to_have_value("그는 문을 열었다.")
    text.fill("그는 천천히 문을 열었다.")
    page.locator("#relay-history-save").click()
    versions = page.locator("#relay-history-versions")
    expect(versions.locator(".relay-version")).to_have_count(2)
    expect(versions.locator("ins")).to_have_text("천천히")
    expect(versions.locator(".relay-version").last).to_contain_text("그는 문을 열었다.")
    expect(versions).to_contain_text("준호")
    assert store.timeline(story.id)[0].text == "그는 천천히 문을 열었다."
    page.locator("#relay-history").screenshot(path=screenshots / "desk-history-panel.png")


@needs_history_store
def test_an_earlier_version_can_be_brought_back_as_a_new_version(new_page, desk_app):
    store = desk_app.store
    story = story_with(store, ["그는 문을 열었다.", "비가 왔다."])
    page = open_desk(new_page, desk_app, story.id)
    page.locator('#relay-timeline button.relay-act[data-act="edit"][data-seq="1"]').click()
    text = page.locator("#relay-history-text textarea")
    expect(text).to_have_value("그는 문을 열었다.")
    text.fill("그는 문을 부쉈다.")
    page.locator("#relay-history-save").click()
    versions = page.locator("#relay-history-versions .relay-version")
    expect(versions).to_have_count(2)
    page.locator("#relay-history-restore-number input").fill("1")
    page.locator("#relay-history-restore").click()
    expect(versions).to_have_count(3)  # a new version: nothing of the history is lost
    expect(text).to_have_value("그는 문을 열었다.")
    expect(page.locator("#relay-timeline .relay-text").first).to_have_text("그는 문을 열었다.")
    assert [v.text for v in store.paragraph_versions(store.timeline(story.id)[0].id)] == [
        "그는 문을 열었다.", "그는 문을 부쉈다.", "그는 문을 열었다."]
    page.locator("#relay-history-restore-number input").fill("9")
    page.locator("#relay-history-restore").click()
    expect(page.locator(".toast-body").last).to_contain_text("9판이 없습니다")


@needs_history_store
def test_undo_then_redo_brings_my_paragraph_back(new_page, desk_app):
    store = desk_app.store
    story = story_with(store, ["하나", "둘"])
    page = open_desk(new_page, desk_app, story.id)
    open_accordion(page, "relay-more")
    page.locator("#relay-history-undo").click()
    expect(page.locator("#relay-timeline .relay-text")).to_have_count(1)
    page.locator("#relay-history-redo").click()
    expect(page.locator("#relay-timeline .relay-text")).to_have_count(2)
    assert [p.text for p in store.timeline(story.id)] == ["하나", "둘"]


def test_the_lab_keeps_a_multi_line_paragraph_whole(new_page, relay_app):
    store = relay_app.store
    story = store.create_story("여러 줄", "연구원", turn_rule="free")
    store.add_paragraph(story.id, "그날 밤,\n바람이 불었다.", "연구원", kind="human")
    store.add_paragraph(story.id, "아침이 왔다.", "연구원", kind="human")
    w = RelayPage(new_page(), relay_app.url).open(f"{relay_app.url.rstrip('/')}/?story={story.id}")
    expect(w.header.locator(".relay-title")).to_contain_text("여러 줄")
    w.tab("lab")
    w.page.get_by_role("button", name="열린 이야기에서 가져오기").click()
    context = w.page.locator("#relay-lab-context textarea")
    expect(context).to_have_value("그날 밤,\n바람이 불었다.\n\n아침이 왔다.")
    from relay.ui.lab import lab_paragraphs

    assert lab_paragraphs(context.input_value()) == ["그날 밤,\n바람이 불었다.", "아침이 왔다."]
    w.page.get_by_role("button", name=re.compile("설정 조절")).first.click()  # every knob, folded per column
    expect(w.page.locator("#relay-lab-max_new_tokens-0")).to_be_visible()
    expect(w.page.locator("#relay-lab-stop_at-0")).to_be_visible()


@pytest.fixture(scope="module")
def gradio_words_app(chromium_path):
    """A page with one slow event and one that raises, served with the desk's head scripts: what Gradio
    itself writes on it (toast titles, progress text) is what a Korean page would show."""
    import time

    from relay.ui.history import head_scripts
    from relay.ui.messages import user_error
    from relay.ui.server import free_port

    def slow():
        time.sleep(3)
        return "끝"

    def refuse():
        raise user_error("ko", "이 일은 할 수 없습니다.")

    with gr.Blocks() as demo:
        out = gr.Textbox(elem_id="words-out")
        gr.Button("slow", elem_id="words-slow").click(slow, None, out)
        gr.Button("refuse", elem_id="words-refuse").click(refuse, None, None)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                            head=head_scripts())
    yield url
    demo.close()


def test_gradios_own_words_are_korean_on_a_korean_page(new_page, gradio_words_app):
    page = new_page("ko-KR")
    page.goto(gradio_words_app, wait_until="domcontentloaded")
    page.locator("#words-slow").click()
    progress = page.locator("#words-out .progress-text, #words-out .meta-text").first
    expect(progress).to_contain_text("처리 중")
    assert "processing" not in page.locator("#words-out").inner_text()
    page.locator("#words-refuse").click()
    toast = page.locator('[data-testid="toast-body"].error')
    expect(toast.locator(".toast-title")).to_have_text(re.compile(r"^\s*오류"))
    assert not ascii_words(toast.inner_text()), toast.inner_text()


def test_gradios_own_words_stay_english_on_an_english_page(new_page, gradio_words_app):
    page = new_page("en-US")
    page.goto(gradio_words_app, wait_until="domcontentloaded")
    page.locator("#words-refuse").click()
    expect(page.locator('[data-testid="toast-body"].error .toast-title')).to_have_text(re.compile(r"^\s*Error"))


@needs_history_store
def test_on_a_turn_taking_story_only_the_writer_may_edit_and_the_refusal_is_korean(new_page, desk_app):
    store = desk_app.store
    story = story_with(store, ["서윤이 쓴 문단."], rule="alternate", authors=("서윤",))
    page = open_desk(new_page, desk_app, story.id, name="준호")
    page.locator('#relay-timeline button.relay-act[data-act="edit"][data-seq="1"]').click()
    text = page.locator("#relay-history-text textarea")
    expect(text).to_have_value("서윤이 쓴 문단.")
    text.fill("준호가 바꾼 문단.")
    page.locator("#relay-history-save").click()
    toast = toasts(page).last
    expect(toast).to_contain_text("자기가 쓴 문단만 고칠 수 있습니다")
    assert not ascii_words(toast.inner_text()), toast.inner_text()
    expect(text).to_have_value("준호가 바꾼 문단.")  # the person's edit stays in the box
    assert store.timeline(story.id)[0].text == "서윤이 쓴 문단."
    expect(page.locator("#relay-history")).not_to_contain_text("오류")


def test_on_an_english_page_the_same_refusals_are_english_only(new_page, desk_app):
    story = story_with(desk_app.store, ["첫 문단입니다."], rule="alternate", authors=("서윤",))
    page = open_desk(new_page, desk_app, story.id, name="Juno", locale="en-US")
    open_accordion(page, "relay-more")
    page.locator("#relay-history-undo").click()
    toast = toasts(page).last
    expect(toast).to_contain_text("You can only undo the last paragraph when you wrote or accepted it.")
    expect(toast.locator(".toast-title")).to_have_text(re.compile(r"^\s*Warning"))
    assert not re.search(r"[\uac00-\ud7a3]", toast.inner_text()), toast.inner_text()


def test_the_composers_unsent_draft_survives_a_reload_and_is_forgotten_once_added(new_page, desk_app):
    story = story_with(desk_app.store, ["첫 문단."])
    page = open_desk(new_page, desk_app, story.id, name="서윤")
    composer = page.locator("#relay-composer textarea")
    composer.fill("아직 보내지 않은 글")
    page.wait_for_timeout(300)
    page.reload(wait_until="domcontentloaded")
    expect(page.locator("#relay-header .relay-title")).to_contain_text(f"#{story.id}")
    expect(composer).to_have_value("아직 보내지 않은 글")
    page.locator("#relay-writer :is(input, textarea)").first.fill("서윤")
    page.locator("#relay-add").click()
    expect(page.locator("#relay-timeline .relay-para").last.locator(".relay-text")).to_have_text("아직 보내지 않은 글")
    expect(composer).to_have_value("")
    page.wait_for_timeout(800)
    page.reload(wait_until="domcontentloaded")
    expect(page.locator("#relay-header .relay-title")).to_contain_text(f"#{story.id}")
    page.wait_for_timeout(800)
    expect(composer).to_have_value("")
