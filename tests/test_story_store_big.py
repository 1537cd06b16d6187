"""Big stories stay cheap (issue 20): a story holds at most MAX_PARAGRAPHS_PER_STORY paragraphs, and a
window of its newest paragraphs (or a page before a seq) is read with one indexed range scan."""

from __future__ import annotations

import pytest

from relay.store.validation import MAX_PARAGRAPHS_PER_STORY
from relay.story_store import InvalidInput, NotFound, StoryError, StoryFull, StoryStore

pytestmark = pytest.mark.usefixtures("db")  # every test runs on SQLite and on PostgreSQL


@pytest.fixture
def store():
    with StoryStore() as s:
        yield s


def story_of(store: StoryStore, n: int, turn_rule: str = "free", **flags):
    """A story of `n` paragraphs ("문단 1" …), written in one import (thousands of appends would take minutes).

    `flags`: {seq: {"hidden": True} or {"deleted": True}} for chosen paragraphs.
    """
    when = "2026-12-01T00:00:00.000000+00:00"
    paragraphs = [{"seq": i, "author": "민지", "kind": "human", "text": f"문단 {i}", "created_at": when,
                   **flags.get(str(i), {})} for i in range(1, n + 1)]
    return store.import_json({"format": "relay-story", "version": 2, "paragraphs": paragraphs,
                              "story": {"title": "긴 이야기", "created_by": "민지", "created_at": when,
                                        "turn_rule": turn_rule}})


# --- the cap ------------------------------------------------------------------------------------


def test_a_full_story_refuses_the_next_paragraph_saying_to_fork_or_continue_in_a_new_story(store):
    story = story_of(store, MAX_PARAGRAPHS_PER_STORY - 1)
    last = store.add_paragraph(story.id, "마지막 자리", "준호", expected_head=None)
    assert last.seq == MAX_PARAGRAPHS_PER_STORY
    with pytest.raises(StoryFull, match="full") as refused:
        store.add_paragraph(story.id, "한 문단 더", "준호")
    assert isinstance(refused.value, StoryError)
    assert "new story" in str(refused.value) and f"{MAX_PARAGRAPHS_PER_STORY:,}" in str(refused.value)
    assert store.head(story.id).id == last.id
    assert store.get_story(story.id).paragraph_count == MAX_PARAGRAPHS_PER_STORY


def test_a_full_story_refuses_an_accepted_suggestion_and_keeps_it_acceptable_after_an_undo(store):
    story = story_of(store, MAX_PARAGRAPHS_PER_STORY - 1)
    store.add_paragraph(story.id, "마지막 자리", "준호")
    store.claim_ai_turn(story.id, "준호")
    candidate = store.add_candidate(story.id, "준호", "AI의 문단", {})
    with pytest.raises(StoryFull):
        store.accept_candidate(candidate, "준호")
    assert store.head(story.id).text == "마지막 자리"
    store.undo_last(story.id, "준호")  # room again: the same suggestion goes in
    assert store.accept_candidate(candidate, "준호").seq == MAX_PARAGRAPHS_PER_STORY


def test_redo_cannot_push_a_story_past_the_cap(store):
    story = story_of(store, MAX_PARAGRAPHS_PER_STORY - 1)
    mine = store.add_paragraph(story.id, "내 문단", "준호")
    store.undo_last(story.id, "준호")
    assert store.redo_last(story.id, "준호").id == mine.id  # back in its place: the count is the cap again
    with pytest.raises(StoryFull):
        store.add_paragraph(story.id, "넘치는 문단", "준호")


def test_undone_paragraphs_do_not_count_but_hidden_ones_do(store):
    # Hidden paragraphs stay stored (and numbered) in the story, so they take room; undone ones gave it back.
    story = story_of(store, MAX_PARAGRAPHS_PER_STORY - 1, **{"7": {"hidden": True}})
    store.add_paragraph(story.id, "마지막 자리", "준호")
    with pytest.raises(StoryFull):
        store.add_paragraph(story.id, "넘치는 문단", "준호")
    store.undo_last(story.id, "준호")
    assert store.add_paragraph(story.id, "다시 마지막 자리", "준호").seq == MAX_PARAGRAPHS_PER_STORY


def test_a_fork_of_a_full_story_has_room_again_once_it_forks_before_the_end(store):
    story = story_of(store, MAX_PARAGRAPHS_PER_STORY)
    at = store.timeline_page(story.id, 2)[0][0]  # the next-to-last paragraph
    fork = store.fork(story.id, at.id, "갈래", "준호")
    assert store.add_paragraph(fork.id, "갈래의 새 문단", "준호").seq == MAX_PARAGRAPHS_PER_STORY


# --- windows of the timeline --------------------------------------------------------------------


def test_the_window_is_the_newest_paragraphs_in_order_and_says_whether_older_ones_remain(store):
    story = story_of(store, 300)
    window, more = store.timeline_page(story.id, 200)
    assert [p.seq for p in window] == list(range(101, 301)) and more
    page, more = store.timeline_page(story.id, 60, before=window[0].seq)
    assert [p.seq for p in page] == list(range(41, 101)) and more
    page, more = store.timeline_page(story.id, 60, before=page[0].seq)
    assert [p.seq for p in page] == list(range(1, 41)) and not more
    assert store.timeline_page(story.id, 60, before=1) == ([], False)
    whole, more = store.timeline_page(story.id, 300)
    assert whole == store.timeline(story.id) and not more


def test_the_window_skips_undone_and_hidden_paragraphs_like_the_timeline(store):
    story = story_of(store, 10, **{"9": {"hidden": True}, "4": {"hidden": True}})
    store.add_paragraph(story.id, "되돌릴 문단", "준호")
    store.undo_last(story.id, "준호")
    window, more = store.timeline_page(story.id, 3)
    assert [p.seq for p in window] == [7, 8, 10] and more
    page, more = store.timeline_page(story.id, 3, before=7)
    assert [p.seq for p in page] == [3, 5, 6] and more
    page, more = store.timeline_page(story.id, 3, before=3)
    assert [p.seq for p in page] == [1, 2] and not more
    assert [p.seq for p in store.timeline_page(story.id, 100)[0]] == [p.seq for p in store.timeline(story.id)]


def test_an_empty_story_has_an_empty_window_and_an_unknown_story_is_not_found(store):
    story = store.create_story("빈 이야기", "민지")
    assert store.timeline_page(story.id, 200) == ([], False)
    with pytest.raises(NotFound):
        store.timeline_page(story.id + 1000, 200)


@pytest.mark.parametrize("limit, before", [(0, None), (MAX_PARAGRAPHS_PER_STORY + 1, None), (True, None), (1.5, None),
                                           ("5", None), (10, 0), (10, -3), (10, "7"), (10, True)])
def test_a_window_of_no_size_or_before_no_paragraph_is_refused(store, limit, before):
    story = story_of(store, 3)
    with pytest.raises(InvalidInput):
        store.timeline_page(story.id, limit, before=before)


def test_one_paragraph_is_read_by_id_with_its_flags(store):
    story = story_of(store, 3, **{"2": {"hidden": True}})
    other = store.create_story("다른 이야기", "민지")
    hidden = store.timeline_page(story.id, 1, before=3)[0]
    first = store.timeline(story.id)[0]
    assert store.paragraph(story.id, first.id) == first
    second = store.paragraph(story.id, first.id + 1)
    assert second.seq == 2 and second.hidden and hidden == [first]
    with pytest.raises(NotFound):
        store.paragraph(other.id, first.id)


def test_a_window_read_is_an_index_range_scan_not_a_read_of_the_story(store, db):
    sql = ("SELECT id FROM paragraphs WHERE story_id = 1 AND deleted = 0 AND hidden = 0 AND seq < 4000"
           " ORDER BY seq DESC LIMIT 201")
    if db.backend == "sqlite":
        plan = " ".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "(story_id=? AND seq<?)" in plan and "TEMP B-TREE" not in plan  # no sort: the index gives the order
    else:
        plan = " ".join(r[0] for r in db.execute(f"SET LOCAL enable_seqscan = off; EXPLAIN {sql}"))
        assert "Index Scan Backward using paragraphs_" in plan and "Sort" not in plan
