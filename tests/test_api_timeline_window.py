"""`/timeline` pages through a long story (issue 20): with no `limit` or `before` it is the whole timeline
as always; `limit` keeps the newest paragraphs (at most the cap), `before` those numbered below a seq;
a full story refuses another paragraph with a message saying to fork."""

from __future__ import annotations

import gradio as gr
import pytest

from relay.store.validation import MAX_PARAGRAPHS_PER_STORY


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_model_dir):
    from relay.ui.api import api_functions  # first: relay.turns needs relay.ui imported before it
    from relay.engine import Engine
    from relay.limits import Limits
    from relay.story_store import StoryStore
    from relay.turns import AITurn

    store = StoryStore(tmp_path_factory.mktemp("timeline-api") / "relay.db")
    engine = Engine.from_pretrained(model=str(tiny_model_dir))
    fns = api_functions(engine, store, AITurn(engine, store, escape_names=False), Limits())
    when = "2026-12-01T00:00:00.000000+00:00"
    paragraphs = [{"seq": i, "author": "민지", "kind": "human", "text": f"문단 {i}", "created_at": when}
                  for i in range(1, MAX_PARAGRAPHS_PER_STORY + 1)]
    full = store.import_json({"format": "relay-story", "version": 2, "paragraphs": paragraphs,
                              "story": {"title": "가득 찬 이야기", "created_by": "민지", "created_at": when,
                                        "turn_rule": "free"}})
    yield fns, full
    store.close()


def seqs(page: list[dict]) -> list[int]:
    return [p["seq"] for p in page]


def test_without_limit_or_before_the_timeline_is_the_whole_story(api):
    fns, story = api
    assert seqs(fns["timeline"](story.id)) == list(range(1, MAX_PARAGRAPHS_PER_STORY + 1))


def test_limit_and_before_page_back_through_the_story_in_order(api):
    fns, story = api
    newest = fns["timeline"](story.id, 100)
    assert seqs(newest) == list(range(MAX_PARAGRAPHS_PER_STORY - 99, MAX_PARAGRAPHS_PER_STORY + 1))
    older = fns["timeline"](story.id, 100, newest[0]["seq"])
    assert seqs(older) == list(range(MAX_PARAGRAPHS_PER_STORY - 199, MAX_PARAGRAPHS_PER_STORY - 99))
    assert seqs(fns["timeline"](story.id, 3, 3)) == [1, 2] and fns["timeline"](story.id, 3, 1) == []
    assert seqs(fns["timeline"](story.id, None, 4)) == [1, 2, 3]
    assert len(fns["timeline"](story.id, 10**9)) == MAX_PARAGRAPHS_PER_STORY  # at most the cap
    assert newest[-1] == fns["timeline"](story.id)[-1]  # the same records as the whole timeline


@pytest.mark.parametrize("limit, before", [(0, None), (-1, None), (True, None), (1.5, None), ("10", None),
                                           (10, 0), (10, "3"), (10, False), (10, 2.0)])
def test_a_limit_or_before_that_is_not_a_positive_whole_number_is_refused_with_its_name(api, limit, before):
    fns, story = api
    with pytest.raises(gr.Error, match="limit" if before in (None,) else "before"):
        fns["timeline"](story.id, limit, before)


def test_a_full_story_refuses_another_paragraph_saying_to_fork_it(api):
    fns, story = api
    key = fns["writer_key"]()
    with pytest.raises(gr.Error, match="full.*(Fork|new story)"):
        fns["add_paragraph"](story.id, "한 문단 더.", "준호", None, key)
