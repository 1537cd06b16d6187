"""What a writer does on the Relay page, in Playwright terms (the elem_ids app.py gives its components)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

# Records every distinct value the AI preview takes, polled each animation frame and every few ms,
# because a textarea's value is a property (a MutationObserver never sees it change).
WATCH_PREVIEW = """() => {
  window.__previewSeen = [];
  let last = null;
  const look = () => {
    const box = document.querySelector('#relay-preview textarea');
    const value = box ? box.value : null;
    if (value !== null && value !== last) { last = value; window.__previewSeen.push(value); }
  };
  window.__previewTimer = setInterval(look, 2);
  const frame = () => { look(); window.__previewFrame = requestAnimationFrame(frame); };
  frame();
}"""

STOP_WATCHING = """() => {
  clearInterval(window.__previewTimer);
  cancelAnimationFrame(window.__previewFrame);
  return window.__previewSeen;
}"""


class RelayPage:
    """One browser tab on the app."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.url = url.rstrip("/") + "/"

    # -- navigation ----------------------------------------------------------------------

    def open(self, href: str | None = None) -> "RelayPage":
        """Go to the app (or a share link) and wait until the page's load event has rendered the story list."""
        self.page.goto(href or self.url, wait_until="domcontentloaded")
        self.wait_loaded()
        return self

    def wait_loaded(self) -> None:
        """The page's load event has run: it fills the story list, which always holds at least one story."""
        expect(self.page.locator("#relay-stories a.relay-story-link").first).to_be_attached()

    def tab(self, tab_id: str) -> None:
        self.page.locator(f'button[role="tab"][data-tab-id="{tab_id}"]').click()

    # -- writer and stories --------------------------------------------------------------

    @property
    def writer(self) -> Locator:
        return self.page.locator("#relay-writer :is(input, textarea)").first

    def sign_in(self, name: str) -> None:
        self.writer.fill(name)
        expect(self.writer).to_have_value(name)

    def create_story(self, title: str, rule: str = "alternate") -> int:
        """Create a story from the stories tab; returns its id (read from the header's share link)."""
        self.tab("stories")
        self.page.locator("#relay-new-title :is(input, textarea)").first.fill(title)
        self.page.locator(f'label:has(> input[type="radio"][value="{rule}"])').click()
        self.page.locator("#relay-create").click()
        expect(self.header.locator(".relay-title")).to_contain_text(title)
        return self.story_id()

    @property
    def header(self) -> Locator:
        return self.page.locator("#relay-header")

    @property
    def share_link(self) -> Locator:
        return self.header.locator("a.relay-share")

    def story_id(self) -> int:
        href = self.share_link.get_attribute("href") or ""
        match = re.search(r"[?&]story=(\d+)", href)
        assert match, f"share link without ?story=ID: {href!r}"
        return int(match.group(1))

    # -- timeline and composer -----------------------------------------------------------

    @property
    def timeline(self) -> Locator:
        return self.page.locator("#relay-timeline")

    @property
    def paragraphs(self) -> Locator:
        return self.timeline.locator(".relay-para")

    @property
    def composer(self) -> Locator:
        return self.page.locator("#relay-composer textarea")

    def type_draft(self, text: str) -> None:
        self.composer.fill(text)
        expect(self.composer).to_have_value(text)

    def add(self, text: str) -> None:
        """Write a paragraph and add it; waits until the timeline shows it."""
        before = self.paragraphs.count()
        self.type_draft(text)
        self.page.locator("#relay-add").click()
        expect(self.paragraphs).to_have_count(before + 1)
        expect(self.paragraphs.last.locator(".relay-text")).to_have_text(text)

    def toast(self, kind: str) -> Locator:
        """Gradio's toasts for gr.Warning / gr.Error / gr.Info ("warning", "error", "info")."""
        return self.page.locator(f'[data-testid="toast-body"].{kind}')


    # -- the model's turn ----------------------------------------------------------------

    @property
    def preview(self) -> Locator:
        return self.page.locator("#relay-preview textarea")

    @property
    def seed_info(self) -> Locator:
        return self.page.locator("#relay-seed-info")

    def open_sampling(self) -> Locator:
        panel = self.page.locator("#relay-sampling")
        panel.get_by_role("button").first.click()
        expect(self.number("최대 길이 (토큰)")).to_be_visible()
        return panel

    def number(self, label: str) -> Locator:
        """The number box of a sampling slider (Gradio labels it "number input for <label>")."""
        return self.page.locator(f'#relay-sampling input[type="number"][aria-label="number input for {label}"]')

    def set_number(self, label: str, value: int | float) -> None:
        box = self.number(label)
        slider = self.page.locator(f'#relay-sampling input[type="range"][aria-label="range slider for {label}"]')
        # The slider's range input follows its number box once Svelte has taken the typed value;
        # a value typed while the freshly opened accordion is still mounting can be dropped, so retype.
        for attempt in range(3):
            box.click()
            box.press("ControlOrMeta+a")
            box.press_sequentially(str(value))
            box.press("Tab")
            try:
                expect(slider).to_have_value(str(value), timeout=3_000)
                return
            except AssertionError:
                if attempt == 2:
                    raise

    def set_seed(self, seed: int) -> None:
        box = self.page.locator("#relay-sampling .relay-seed").locator("textarea, input").first
        box.fill(str(seed))
        box.blur()
        expect(box).to_have_value(str(seed))

    def set_stop_at(self, choice: str) -> None:
        label = self.page.locator(f'#relay-sampling label:has(> input[type="radio"][value="{choice}"])')
        label.click()
        expect(label.locator("input")).to_be_checked()

    def set_trim_incomplete(self, on: bool) -> None:
        box = self.page.locator("#relay-sampling label.checkbox-container", has_text="끊긴 문장 버리기").locator("input")
        box.set_checked(on)
        expect(box).to_be_checked(checked=on)

    def settings_for_long_stream(self, max_new_tokens: int = 120, seed: int = 7) -> None:
        """Settings under which one continuation arrives in many chunks: no trimming, stop only at the length."""
        self.open_sampling()
        self.set_number("최대 길이 (토큰)", max_new_tokens)
        self.set_stop_at("length")
        self.set_trim_incomplete(False)
        self.set_seed(seed)

    def start_watching_preview(self) -> None:
        self.page.evaluate(WATCH_PREVIEW)

    def stop_watching_preview(self) -> list[str]:
        return self.page.evaluate(STOP_WATCHING)

    def continue_with_ai(self) -> str:
        """Press "AI 이어쓰기" and wait for the finished candidate; returns the preview's final text."""
        self.page.locator("#relay-ai").click()
        expect(self.seed_info).to_contain_text("시드", timeout=30_000)
        return self.settled_preview()

    def settled_preview(self, quiet_ms: int = 250) -> str:
        """The box's text once it has stopped changing: on a loaded machine the last streamed words were seen to
        land in the box a paint after the seed line that comes with them."""
        previous = None
        for _ in range(120):
            value = self.preview.input_value()
            if value and value == previous:
                return value
            previous = value
            self.page.wait_for_timeout(quiet_ms)
        raise AssertionError(f"the suggestion box kept changing (or stayed empty): {previous!r}")

    def press_disabled(self, elem_id: str) -> None:
        """Press a button the page disabled, as a page with stale state would: the server still refuses."""
        self.page.evaluate("(id) => { const b = document.getElementById(id); b.disabled = false; b.click(); }", elem_id)

    def expect_ai_refused(self, reason: str) -> None:
        """"AI 이어쓰기" is disabled with `reason` shown beside it."""
        expect(self.page.locator("#relay-ai")).to_be_disabled()
        expect(self.page.locator("#relay-ai-reason")).to_contain_text(reason)

    def last_seed(self) -> int:
        match = re.search(r"시드\s*`?(\d+)`?", self.seed_info.inner_text())
        assert match, f"no seed in {self.seed_info.inner_text()!r}"
        return int(match.group(1))

    # -- sampling presets, seed and model picker -----------------------------------------

    @property
    def seed_box(self) -> Locator:
        """The seed box of the sampling settings (text: empty means a random seed)."""
        return self.page.locator("#relay-sampling .relay-seed").locator("textarea, input").first

    def choose_preset(self, label: str) -> None:
        """Pick a preset by its Korean label ("신중하게", "균형 있게", "과감하게")."""
        self.page.locator("#relay-sampling").get_by_label(label, exact=True).check()

    def reset_to_story_defaults(self) -> None:
        self.page.locator("#relay-sampling").get_by_role("button", name="이야기 기본값으로").click()

    def use_last_seed(self) -> None:
        """Press "이 시드 고정": the seed of the candidate in the preview goes into the seed box."""
        self.page.get_by_role("button", name="이 시드 고정").click()

    @property
    def adapter_picker(self) -> Locator:
        """The 모델 / 어댑터 dropdown (only shown when the server has adapters)."""
        return self.page.locator("#relay-sampling").get_by_label("모델 / 어댑터")

    def choose_adapter(self, name: str) -> None:
        self.adapter_picker.click()
        self.page.get_by_role("option", name=name, exact=True).click()
        expect(self.adapter_picker).to_have_value(name)

    # -- more: undo, fork, download ------------------------------------------------------

    def open_more(self) -> None:
        """Open the "더 보기" accordion that holds the history panel (undo, fork, …) and download."""
        self.page.locator("#relay-more > button.label-wrap").first.click()
        expect(self.page.locator("#relay-history-undo")).to_be_visible()

    def undo(self) -> None:
        self.page.locator("#relay-history-undo").click()

    def fork(self, seq: int, title: str) -> None:
        """Ask for a fork at paragraph number `seq` titled `title` (the result is up to the caller to check)."""
        number = self.page.locator("#relay-history-seq input")
        number.fill(str(seq))
        number.press("Tab")
        expect(number).to_have_value(str(seq))
        title_box = self.page.locator("#relay-history-fork-title :is(input, textarea)").first
        title_box.fill(title)
        expect(title_box).to_have_value(title)
        self.page.locator("#relay-history-fork").click()

    def download(self, fmt: str) -> tuple[str, str]:
        """Export the open story as `fmt`, then click the file link the page offers; returns (file name, text)."""
        choice = self.page.locator(f'label:has(> input[type="radio"][value="{fmt}"])')
        choice.click()
        expect(choice.locator("input")).to_be_checked()
        self.page.get_by_role("button", name="내려받기", exact=True).click()
        link = self.page.locator(f'#relay-export-file a[data-testid="download-link"][download$=".{fmt}"]')
        expect(link).to_be_visible(timeout=20_000)
        with self.page.expect_download() as info:
            link.click()
        download = info.value
        return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")
