"""History helpers: times a browser can localise, card buttons and version lists that stay inert HTML."""

from __future__ import annotations

from types import SimpleNamespace

from relay.ui.history import paragraph_actions_html, render_time, render_versions


def version(n, text, editor, at="2026-11-25T03:21:11.123+00:00"):
    return SimpleNamespace(version=n, text=text, editor=editor, edited_at=at)


def test_a_time_is_marked_up_in_utc_for_the_browser_to_localise():
    assert render_time("2026-11-25T12:21:11.123+09:00") == (
        '<time class="relay-time" datetime="2026-11-25T03:21:11.123000+00:00">2026-11-25 03:21 UTC</time>')
    assert render_time("") == ""


def test_card_buttons_carry_the_paragraph_number_and_words_in_the_pages_language():
    ko = paragraph_actions_html(SimpleNamespace(seq=7), "ko")
    assert ko.count('data-seq="7"') == 3
    assert 'data-act="edit"' in ko and 'data-act="fork"' in ko and 'data-act="rewrite"' in ko
    assert "갈래" in ko and "Fork" not in ko
    assert "Fork" in paragraph_actions_html(SimpleNamespace(seq=7), "en")


def test_versions_show_newest_first_with_who_and_what_changed_all_escaped():
    html = render_versions([version(1, "그는 <b>문</b>을 열었다.", "준호"),
                            version(2, "그는 천천히 <b>문</b>을 열었다.", "<script>x</script>")], "ko")
    assert html.index('data-version="2"') < html.index('data-version="1"')
    assert "<ins>천천히</ins>" in html
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;님이 고침" in html
    assert "처음 글 · 준호" in html


def test_a_paragraph_nobody_edited_says_so():
    assert "아직 아무도 고치지 않았습니다" in render_versions([version(1, "하나", "준호")], "ko")
    assert "Nobody has edited it yet" in render_versions([version(1, "하나", "준호")], "en")
