"""The sampling lab in Chromium: columns stream side by side, a sweep draws its plot, a sample goes to the story."""

from __future__ import annotations

import contextlib
import re
import time

import pytest

pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
from playwright.sync_api import expect  # noqa: E402
from relay_page import RelayPage  # noqa: E402

# Records, every 20 ms, whether the lab's first `n` boxes all had text while none of their columns had finished
# (a column is finished once none of its samples says "쓰는 중…").
WATCH_COLUMNS = """(n) => {
  window.__sideBySide = false;
  window.__labWatch = setInterval(() => {
    const boxes = [...Array(n).keys()].map(i => document.querySelector(`#relay-lab-out-${i} textarea`));
    if (boxes.some(b => !b)) return;
    const values = boxes.map(b => b.value);
    const written = values.every(v => v.split("\\n").slice(1).join("").trim().length > 0);
    const running = values.every(v => v.includes("쓰는 중"));
    if (written && running) window.__sideBySide = true;
  }, 20);
}"""


@contextlib.contextmanager
def tokens_every(engine, seconds: float):
    """While open, the model takes at least `seconds` per token step of each request (as on a slower machine),
    so a run streams over many paints even on a machine whose load lets the page see few of them."""
    real = engine.backend.generate

    def generate(request):
        on_tokens = request.on_tokens

        def slowly(ids):
            time.sleep(seconds)
            return on_tokens(ids)

        request.on_tokens = slowly
        return real(request)

    engine.backend.generate = generate
    try:
        yield
    finally:
        del engine.backend.generate


def lab_page(new_page, served, name: str | None = None, locale: str = "ko-KR") -> RelayPage:
    w = RelayPage(new_page(locale), served.url).open()
    if name:
        w.sign_in(name)
    w.tab("lab")
    return w


def test_a_three_column_lab_run_streams_every_column_before_any_finishes(new_page, relay_app, tiny_engine,
                                                                        screenshots):
    w = lab_page(new_page, relay_app)
    page = w.page
    page.locator("#relay-lab-context textarea").fill("새벽 안개가 강을 덮었다.\n\n뱃사공은 노를 내려놓았다.")
    columns = page.locator("#relay-lab-columns input[type=number]")
    columns.fill("3")
    columns.press("Enter")
    expect(page.locator("#relay-lab-out-2")).to_be_visible()
    for i in range(3):  # write to the length limit (100-180 tokens), four samples a column
        samples = page.locator(f"#relay-lab-samples-{i} input[type=number]")
        samples.fill("4")
        samples.press("Enter")
    for accordion in page.get_by_role("button", name=re.compile("설정 조절")).all()[:3]:
        accordion.click()
    for i in range(3):
        page.locator(f'#relay-lab-stop_at-{i} label:has(> input[value="length"])').click()
    page.evaluate(WATCH_COLUMNS, 3)
    summary = page.locator("#relay-lab-summary")
    with tokens_every(tiny_engine, 0.005):  # the tiny model alone writes all 12 samples in a few paints
        page.locator("#relay-lab-run").click()
        expect(summary).to_contain_text("표본 12개", timeout=60_000)
    assert page.evaluate("() => window.__sideBySide"), "the columns were not all writing at the same time"
    for i in range(3):
        text = page.locator(f"#relay-lab-out-{i} textarea").input_value()
        assert "쓰는 중" not in text and text.count("시드") == 4
        expect(page.locator(f"#relay-lab-measures-{i} tr[data-measure=distinct_1]")).to_be_visible()
    expect(page.locator(".relay-lab-best").first).to_be_visible()  # the best column per measure is starred
    page.screenshot(path=screenshots / "lab-columns-ko.png", full_page=True)


def test_a_sweep_draws_its_plot_and_keeps_the_texts_one_click_away(new_page, relay_app, screenshots):
    w = lab_page(new_page, relay_app)
    page = w.page
    page.locator("#relay-lab-context textarea").fill("바람이 불었다.")
    page.locator("#relay-sweep-run").click()
    expect(page.locator("#relay-sweep-progress")).to_contain_text("끝: 표본 15개", timeout=60_000)
    plot = page.locator("#relay-sweep-plot")
    expect(plot.get_by_text("어휘 다양성 (distinct-1)")).to_be_visible()  # the legend names the plotted measures
    expect(plot.locator("canvas, svg").first).to_be_visible()
    plot.scroll_into_view_if_needed()
    plot.screenshot(path=screenshots / "lab-sweep-plot-ko.png")
    page.locator("#relay-sweep-texts").get_by_role("button").first.click()
    table = page.locator("#relay-sweep-table")
    expect(table).to_contain_text("온도")
    expect(table).to_contain_text("시드")
    expect(table.get_by_text("1.4", exact=True).first).to_be_visible()  # the last point's samples are listed


def test_use_this_text_puts_a_lab_sample_into_the_story_as_the_writers_suggestion_and_presets_are_shared(new_page, relay_app):
    w = RelayPage(new_page(), relay_app.url).open()
    w.sign_in("연구원")
    sid = w.create_story("실험실에서 온 글")
    w.tab("lab")
    page = w.page
    use_text = page.locator("#relay-lab-use-text-1")
    page.locator("#relay-lab-context textarea").fill("바람이 불었다.")
    use_text.click()  # nothing written yet: said so, nothing stored
    expect(w.toast("error")).to_contain_text("아직 이 열에 쓴 글이 없습니다")
    page.locator("#relay-lab-run").click()
    expect(page.locator("#relay-lab-summary")).to_contain_text("표본 4개", timeout=60_000)

    use_text.click()  # an empty alternate story: it is not the model's turn
    expect(w.toast("error").last).to_contain_text("차례")
    assert relay_app.store.ai_turn(sid) is None

    w.tab("story")
    w.add("강물이 불어 있었다.")
    w.tab("lab")
    use_text.click()
    expect(page.locator('button[role="tab"][data-tab-id="story"]')).to_have_attribute("aria-selected", "true")
    turn = relay_app.store.ai_turn(sid)
    assert turn is not None and len(turn.candidates) == 1
    suggestion = turn.candidates[0].text
    column = page.locator("#relay-lab-out-1 textarea").input_value()
    assert suggestion and suggestion in column  # column 2's first sample
    expect(w.preview).to_have_value(suggestion)

    # Column 1's settings, saved as a preset of the story, are offered in every column's preset list.
    w.tab("lab")
    page.locator("#relay-lab-preset-name-0 input, #relay-lab-preset-name-0 textarea").first.fill("차분한 밤")
    page.locator("#relay-lab-save-preset-0").click()
    expect(w.toast("info").last).to_contain_text("차분한 밤")
    from relay.store.presets import story_presets

    assert story_presets(relay_app.store.get_story(sid).settings)["차분한 밤"]["temperature"] == 0.6  # "careful"
    page.locator("#relay-lab-preset-1 input").click()
    expect(page.get_by_role("option", name="이 이야기: 차분한 밤")).to_be_visible()

    # ... and at once in the story tab's preset choice, without reopening the story; choosing it applies it.
    w.tab("story")
    w.open_sampling()
    saved = page.locator('#relay-preset label:has(> input[value="story:차분한 밤"])')
    expect(saved).to_contain_text("이 이야기: 차분한 밤")
    saved.click()
    expect(page.locator('#relay-setting-temperature input[type="number"]')).to_have_value("0.6")
