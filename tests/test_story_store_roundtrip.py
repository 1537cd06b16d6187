"""Arbitrary Unicode, Korean included, survives add -> timeline -> export json -> import_json unchanged."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from relay.story_store import (
    MAX_TEXT_CHARS,
    InvalidInput,
    StoryStore,
    validate_author,
    validate_text,
)


def _accepted(validator):
    def ok(value):
        try:
            validator(value)
        except InvalidInput:
            return False
        return True

    return ok


HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
JAMO = st.characters(min_codepoint=0x1100, max_codepoint=0x11FF) | st.characters(min_codepoint=0x3131, max_codepoint=0x318E)
ANY_CHAR = st.characters(codec="utf-8")  # every code point but surrogates, controls included
MIXED = st.one_of(HANGUL, JAMO, ANY_CHAR, st.sampled_from(" \n\t.,!?\"'…「」—"))

# What the store would rightly refuse (empty, control characters, too long) is filtered out
# with the store's own validators; test_story_store.py checks that it is refused.
TEXTS = st.text(MIXED, min_size=1, max_size=300).filter(_accepted(validate_text))
NAMES = st.text(MIXED, min_size=1, max_size=20).filter(_accepted(validate_author)).map(validate_author)  # stored canonical (NFC)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(ANY_CHAR, max_size=30)
# "model" is left out: an AI paragraph's model name is made public on export (never a server folder).
META = st.dictionaries(st.text(ANY_CHAR, max_size=10).filter(lambda k: k != "model"), st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(ANY_CHAR, max_size=5), c, max_size=3), max_leaves=6), max_size=4)
PARAGRAPHS = st.lists(st.tuples(TEXTS, NAMES, st.sampled_from(["human", "ai"]), st.booleans(), META), min_size=1, max_size=6)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_store(request):
    """One store for all examples of a module, on each backend: the autouse per-test database
    fixture is function-scoped, which hypothesis rightly refuses to share between examples."""
    if request.param == "postgresql":
        with StoryStore(request.getfixturevalue("pg_server").new_schema()) as store:
            yield store
        return
    with tempfile.TemporaryDirectory() as tmp:
        with StoryStore(Path(tmp) / "roundtrip.db") as store:
            yield store


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=NAMES, creator=NAMES, paragraphs=PARAGRAPHS, settings_=META, undo=st.booleans())
def test_any_text_survives_add_timeline_export_and_import(shared_store, title, creator, paragraphs, settings_, undo):
    store = shared_store
    story = store.create_story(title, creator, turn_rule="free", settings=settings_)
    added = [
        store.add_paragraph(story.id, text, author, kind=kind, edited=edited, meta=meta)
        for text, author, kind, edited, meta in paragraphs
    ]
    if undo:
        store.undo_last(story.id, added[-1].author)
    live = added[:-1] if undo else added

    timeline = store.timeline(story.id)
    assert timeline == live
    assert [(p.text, p.author, p.kind, p.edited, p.meta) for p in timeline] == [
        (t, a, k, e, json.loads(json.dumps(m))) for t, a, k, e, m in paragraphs[: len(live)]
    ]

    exported = store.export(story.id, "json")
    copy = store.import_json(exported)
    original = store.get_story(story.id)
    for name in ("title", "created_by", "created_at", "turn_rule", "settings", "forked_from", "paragraph_count"):
        assert getattr(copy, name) == getattr(original, name)
    fields = lambda p: (p.seq, p.author, p.kind, p.text, p.created_at, p.edited, p.meta)  # noqa: E731
    assert [fields(p) for p in store.timeline(copy.id)] == [fields(p) for p in timeline]
    strip = lambda data: [{k: v for k, v in p.items() if k != "id"} for p in json.loads(data)["paragraphs"]]  # noqa: E731
    assert strip(store.export(copy.id, "json")) == strip(exported)
    txt = store.export(copy.id, "txt")
    assert all(p.text in txt for p in timeline)


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(categories=["Cc", "Cs"]), min_size=1, max_size=5), pad=TEXTS)
def test_text_with_control_characters_or_surrogates_is_refused(text, pad):
    assume(not set(text) <= {"\n", "\t"})  # newlines and tabs are the allowed controls
    bad = pad + text + pad
    with pytest.raises(InvalidInput):
        validate_text(bad)


def test_longest_allowed_korean_paragraph_round_trips(shared_store):
    text = ("가나다라마바사아자차카타파하 " * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS]
    story = shared_store.create_story("긴 글", "민수", turn_rule="free")
    shared_store.add_paragraph(story.id, text, "민수")
    copy = shared_store.import_json(shared_store.export(story.id, "json"))
    assert shared_store.timeline(copy.id)[0].text == text


def test_paragraph_text_cannot_forge_markup_in_the_markdown_export(tmp_path):
    """Headings, author lines, links and raw HTML typed into a paragraph stay text in the .md export."""
    from relay.story_store import StoryStore

    store = StoryStore(tmp_path / "md.db")
    sid = store.create_story("진짜 제목", "민지", turn_rule="free").id
    forged = "# 가짜 제목\n**9. 관리자 · AI**\n<img src=//evil.example/x.png>\n[눌러요](http://evil.example)\n1. 목록\n> 인용"
    store.add_paragraph(sid, forged, "민지")
    md = store.export(sid, "md")
    body = md.split("---", 1)[1]
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines[0] == "**1. 민지**"  # the only author line
    assert not any(line.startswith(("#", "**9", "<", "[", "1.", ">")) for line in lines[1:]), lines
    unescaped = md.replace("\\<", "").replace("\\]", "")
    assert "<img" not in unescaped and "](http" not in unescaped  # only as escaped, inert text
    assert md.count("\n# ") == 0 and md.startswith("# 진짜 제목")
