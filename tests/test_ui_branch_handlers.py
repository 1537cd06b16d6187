"""Branching a suggestion at a token and "더 쓰기" (relay/ui/branch.py), the handlers called directly: a real store,
the tiny model. The page sends only the candidate, the position and the alternative's index."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from relay.settings import SamplingSettings
from relay.ui.branch import Branch
from relay.ui.composer import Composer
from relay.ui.controls import settings_to_values
from relay.ui.desk import Desk
from test_ui_story_handlers import browser, engine, services  # noqa: F401  (fixtures: the tiny model, a real store)

NAMES = tuple(s.name for s in SamplingSettings.specs())
# Stop at the length with nothing trimmed: every recorded token adds text, so positions are easy to reason about.
VALUES = settings_to_values(NAMES, SamplingSettings(min_new_tokens=6, max_new_tokens=12, stop_at="length",
                                                    trim_incomplete=False, seed=5))


def suggestion(services):
    """민지's story at the model's turn with one suggestion written: (story id, key, the desk's view)."""
    store = services.store
    key = store.new_writer_key()
    story_id = store.create_story("비 오는 밤", "민지", turn_rule="alternate", writer_key=key).id
    Composer(services).add(browser(), story_id, "창밖으로 비가 내렸다.", "민지", key, "ko", 0, "draft-1")
    *_, final = Desk(services).generate(browser(), story_id, "민지", key, None, "", "ko", *VALUES)
    return story_id, key, final[1]


def branch(services, story_id, key, view, candidate, at, choice, name="민지"):
    request = json.dumps({"candidate": candidate, "at": at, "choice": choice})
    *_, final = Branch(Desk(services)).branch(browser(), story_id, name, key, view, "", "ko", *VALUES, None, request)
    return final


def test_rewriting_with_another_token_adds_a_swipe_that_keeps_the_text_before_it_and_puts_that_token_there(services):
    story_id, key, view = suggestion(services)
    old = services.store.get_candidate(view["ids"][0])
    tokens = old.meta["tokens"]
    final = branch(services, story_id, key, view, old.id, 3, 1)
    text, new_view, swipe = final[0], final[1], final[2]
    assert new_view["ids"][0] == old.id and len(new_view["ids"]) == 2 and new_view["index"] == 1
    assert swipe == "후보 2/2"  # ← 2/2 →: a new swipe of the same turn
    new = services.store.get_candidate(new_view["ids"][1])
    assert new.text == text
    assert new.meta["tokens"]["ids"][:4] == tokens["ids"][:3] + [tokens["top"][3][1][0]]
    assert text.startswith("".join(tokens["text"][:3]))
    assert [c.id for c in services.store.ai_turn(story_id).candidates] == new_view["ids"]


def test_rewriting_from_here_keeps_the_text_before_the_token_and_lets_the_model_choose_again(services):
    story_id, key, view = suggestion(services)
    tokens = services.store.get_candidate(view["ids"][0]).meta["tokens"]
    final = branch(services, story_id, key, view, view["ids"][0], 2, None)
    new = services.store.get_candidate(final[1]["ids"][-1])
    assert new.meta["tokens"]["ids"][:2] == tokens["ids"][:2]
    assert final[0].startswith("".join(tokens["text"][:2]))


def test_writing_more_continues_the_suggestion_shown_into_a_longer_swipe(services):
    story_id, key, view = suggestion(services)
    old = services.store.get_candidate(view["ids"][0])
    *_, final = Branch(Desk(services)).extend(browser(), story_id, "민지", key, view, "", "ko", *VALUES, None)
    longer = services.store.get_candidate(final[1]["ids"][-1])
    assert final[1]["ids"] == [old.id, longer.id] and final[2] == "후보 2/2"
    assert longer.text.startswith(old.text.rstrip()) and len(longer.text) > len(old.text.rstrip())


def test_a_suggestion_this_tab_was_not_shown_or_a_bad_position_is_refused_in_korean_and_nothing_is_written(services):
    story_id, key, view = suggestion(services)
    with pytest.raises(gr.Error, match="다시 쓸 후보가 없습니다"):
        branch(services, story_id, key, view, view["ids"][0] + "x", 1, 0)
    with pytest.raises(gr.Error, match="그 자리에서는 다시 쓸 수 없습니다"):
        branch(services, story_id, key, view, view["ids"][0], 500, 0)
    with pytest.raises(gr.Error, match="그 자리에서는 다시 쓸 수 없습니다"):
        *_, final = Branch(Desk(services)).branch(browser(), story_id, "민지", key, view, "", "ko", *VALUES, None,
                                                  '{"candidate": "1; drop table", "at": 0}')
    assert len(services.store.ai_turn(story_id).candidates) == 1


def test_a_co_writer_cannot_rewrite_someone_elses_suggestion_even_knowing_its_id(services):
    story_id, key, view = suggestion(services)
    other = services.store.new_writer_key()
    with pytest.raises(gr.Error, match="민지"):
        branch(services, story_id, other, view, view["ids"][0], 1, 0, name="준호")
    assert len(services.store.ai_turn(story_id).candidates) == 1


def test_the_desk_shows_the_suggestions_tokens_with_a_key_and_says_when_its_text_was_edited(services):
    story_id, key, view = suggestion(services)
    candidate = services.store.get_candidate(view["ids"][0])
    panel, *columns = Branch(Desk(services)).token_panels(view, candidate.text, "ko")
    assert f'data-candidate="{candidate.id}"' in panel and 'data-branchable="1"' in panel
    assert "80% 이상" in panel and "사람이 고친" not in panel
    assert columns == ["", "", "", ""]
    assert "사람이 고친" not in Branch(Desk(services)).token_panels_for_view(view, "ko")[0]
    edited, *_ = Branch(Desk(services)).token_panels(view, candidate.text + " 그리고", "ko")
    assert "사람이 고친 문단입니다" in edited
    assert Branch(Desk(services)).token_panels(None, "", "ko") == ("", "", "", "", "")


def test_each_side_by_side_column_gets_its_own_token_view_to_rewrite_from(services):
    store = services.store
    key = store.new_writer_key()
    story_id = store.create_story("세 갈래", "민지", turn_rule="alternate", writer_key=key).id
    Composer(services).add(browser(), story_id, "창밖으로 비가 내렸다.", "민지", key, "ko", 0, "draft-1")
    *_, final = Desk(services).alternatives(browser(), story_id, "민지", key, None, 3, "", "ko", *VALUES)
    view = final[1]
    _, *columns = Branch(Desk(services)).token_panels_for_view(view, "ko")
    for candidate_id, column in zip(view["alts"], columns):
        assert f'data-candidate="{candidate_id}"' in column and 'data-branchable="1"' in column
        assert store.get_candidate(candidate_id).meta["tokens"]["ids"]  # each column's own record
    assert len(view["alts"]) == 3 and columns[3] == ""
