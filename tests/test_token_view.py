"""The token probability view's HTML (relay/ui/token_view.py) and the branch request the page sends
(relay/ui/branch.py): what a writer sees of a recorded generation, and that no record can inject markup."""

from __future__ import annotations

import html
import json
import re

import pytest

from relay.ui.branch import check_position, parse_branch_request
from relay.ui.token_view import band, legend_html, token_html

RECORD = {
    "v": 1,
    "ids": [11, 12, 13, 14],
    "text": ["비가", " 내렸다", "", "."],
    "p": [0.92, 0.031, 0.5, 0.2],
    "top": [
        [[11, "비가", 0.92], [21, "눈이", 0.04], [22, "바람이", 0.02], [23, "해가", 0.01], [24, "달이", 0.005]],
        [[31, " 왔다", 0.6], [12, " 내렸다", 0.031], [32, " 그쳤다", 0.2], [33, " 샜다", 0.1], [34, " 멎었다", 0.05]],
        [[13, "", 0.5], [41, "!", 0.3], [42, "?", 0.1], [43, "…", 0.05], [44, ",", 0.05]],
        [[14, ".", 0.2], [51, "\n", 0.7], [52, "!", 0.05], [53, "?", 0.03], [54, "…", 0.02]],
    ],
}


def spans(markup: str) -> list[dict]:
    """Each token span of the view: its position, band, p, alternatives and the text it shows."""
    found = re.findall(r'<span class="relay-tk relay-pb(\d)" data-i="(\d+)" data-p="([^"]+)" data-top=\'([^\']*)\''
                       r'[^>]*>(.*?)</span>', markup, flags=re.S)
    return [{"band": int(b), "i": int(i), "p": float(p), "top": json.loads(html.unescape(top)),
             "text": html.unescape(text)} for b, i, p, top, text in found]


def test_each_token_is_coloured_by_the_band_its_probability_falls_in():
    assert [band(p) for p in (0.0, 0.049, 0.05, 0.19, 0.2, 0.49, 0.5, 0.79, 0.8, 1.0)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    shown = spans(token_html(RECORD, "ko", branchable=False))
    assert [(s["i"], s["band"]) for s in shown] == [(0, 4), (1, 0), (3, 2)]  # position 2 wrote no text
    assert "".join(s["text"] for s in shown) == "비가 내렸다."


def test_the_popover_data_holds_the_chosen_probability_and_five_alternatives_with_the_chosen_one_marked():
    second = spans(token_html(RECORD, "en", branchable=True))[1]
    assert second["p"] == pytest.approx(0.031)
    assert [piece for piece, *_ in second["top"]] == [" 왔다", " 내렸다", " 그쳤다", " 샜다", " 멎었다"]
    assert [index for _, _, index, _ in second["top"]] == [0, 1, 2, 3, 4]  # what a branch sends back
    assert [chosen for *_, chosen in second["top"]] == [0, 1, 0, 0, 0]


def test_text_and_alternatives_that_look_like_markup_stay_inert():
    record = {"v": 1, "ids": [1, 2], "text": ['<img src=x onerror="alert(1)">', "</span><script>x()</script>"],
              "p": [0.5, 0.5], "top": [[[1, '"><svg onload=alert(2)>', 0.5]], [[2, "&amp;", 0.5]]]}
    markup = token_html(record, "ko", branchable=True)
    assert "<img" not in markup and "<script" not in markup and "<svg" not in markup
    shown = spans(markup)
    assert [s["text"] for s in shown] == record["text"]
    assert shown[0]["top"][0][0] == '"><svg onload=alert(2)>'
    assert shown[1]["top"][0][0] == "&amp;"


def test_a_record_that_cannot_be_shown_says_so_instead_of_guessing():
    for bad in ({}, {"v": 2, "text": ["a"], "p": [0.5]}, {"v": 1, "text": ["a", "b"], "p": [0.5]},
                {"v": 1, "text": [1], "p": [0.5]}, {"v": 1, "text": "ab", "p": "x"}, None):
        markup = token_html(bad, "en", branchable=True)
        assert "No token probabilities were recorded" in markup and 'class="relay-tk ' not in markup


def test_impossible_probabilities_and_malformed_alternatives_are_left_out():
    record = {"v": 1, "ids": [1], "text": ["가"], "p": [float("nan")],
              "top": [[[1, "가", 2.0], [2, "나", 0.3], "junk", [3, 5, 0.1], [4, "라" * 500, 0.1], [5, "다", 0.2]]]}
    markup = token_html(record, "ko", branchable=False)
    assert 'data-p=' not in markup  # no band, no number for a p that is not a probability
    top = json.loads(html.unescape(re.search(r"data-top='([^']*)'", markup).group(1)))
    assert [(piece, index) for piece, _, index, _ in top] == [("나", 1), ("다", 5)]


def test_an_edited_paragraph_shows_its_original_text_with_a_note():
    ko = token_html(RECORD, "ko", branchable=False, edited=True)
    assert "사람이 고친 문단입니다" in ko
    assert "".join(s["text"] for s in spans(ko)) == "비가 내렸다."
    assert "A person edited this text" in token_html(RECORD, "en", branchable=False, edited=True)
    assert "relay-tk-edited" not in token_html(RECORD, "en", branchable=False)


def test_only_a_branchable_view_offers_rewriting_and_the_words_follow_the_page_language():
    assert 'data-branchable="1"' in token_html(RECORD, "ko", branchable=True)
    assert 'data-branchable="0"' in token_html(RECORD, "ko", branchable=False)
    words = json.loads(html.unescape(re.search(r"data-words='([^']*)'", token_html(RECORD, "ko", branchable=True))
                                     .group(1)))
    assert words["branch"] == "이 토큰으로 다시 쓰기" and words["here"] == "여기서부터 다시 쓰기"
    assert "80% or more" in legend_html("en") and "80% 이상" in legend_html("ko")


def test_the_page_can_only_ask_for_a_candidate_a_position_and_an_alternative():
    assert parse_branch_request('{"candidate": "3P6CHUynW_-Q", "at": 3, "choice": 1}') == ("3P6CHUynW_-Q", 3, 1)
    assert parse_branch_request('{"candidate": "abc", "at": 0, "choice": null}') == ("abc", 0, None)
    for bad in ("", "nope", "[]", '{"candidate": 7, "at": 1}', '{"candidate": "abc", "at": -1}',
                '{"candidate": "", "at": 1}', '{"candidate": "abc", "at": 1, "choice": 99}',
                '{"candidate": "a\\"><b>", "at": 1}', '{"candidate": "abc", "at": 1.5}',
                '{"candidate": "abc", "at": true}', "x" * 500, None):
        assert parse_branch_request(bad) is None, bad


def test_a_position_or_alternative_the_record_does_not_have_is_refused_in_the_pages_language():
    check_position(RECORD, 3, 4, "ko")
    check_position(RECORD, 0, None, "ko")
    with pytest.raises(Exception, match="다시 쓸 수 없습니다"):
        check_position(RECORD, 4, None, "ko")
    with pytest.raises(Exception, match="cannot be rewritten"):
        check_position(RECORD, 1, 5, "en")
    with pytest.raises(Exception, match="no token record"):
        check_position(None, 0, None, "en")


def test_a_paragraphs_view_is_served_only_for_a_visible_ai_paragraph_that_has_a_record(tmp_path):
    from relay.story_store import StoryStore
    from relay.ui.render import render_card
    from relay.ui.token_route import paragraph_tokens_html

    store = StoryStore(tmp_path / "relay.db")
    key = store.new_writer_key()
    sid = store.create_story("비 오는 밤", "민지", turn_rule="free", writer_key=key).id
    human = store.add_paragraph(sid, "창밖으로 비가 내렸다.", "민지", kind="human", writer_key=key)
    ai = store.add_paragraph(sid, "비가 내렸다.", "민지", kind="ai", meta={"tokens": RECORD}, writer_key=key)
    bare = store.add_paragraph(sid, "오래된 문단.", "민지", kind="ai", meta={}, writer_key=key)
    # The card only says it has a record; the view comes on demand, in the page's language.
    assert 'data-tokens="1"' in render_card(ai, "ko") and "relay-tk-text" not in render_card(ai, "ko")
    assert "data-tokens" not in render_card(bare, "ko")
    assert "".join(s["text"] for s in spans(paragraph_tokens_html(store, sid, ai.seq, "en"))) == "비가 내렸다."
    assert paragraph_tokens_html(store, sid, human.seq, "ko") is None
    assert paragraph_tokens_html(store, sid, bare.seq, "ko") is None
    assert paragraph_tokens_html(store, sid, 99, "ko") is None
    store.edit_paragraph(sid, ai.id, "비가 그쳤다.", "민지", writer_key=key)
    assert "사람이 고친 문단입니다" in paragraph_tokens_html(store, sid, ai.seq, "ko")
    store.hide_paragraph(sid, ai.id, writer_key=key)
    assert paragraph_tokens_html(store, sid, ai.seq, "ko") is None  # a hidden paragraph shows nothing


def test_a_waiting_suggestions_view_is_served_to_co_writers_by_turn_and_place_never_by_its_key(tmp_path):
    from relay.story_store import StoryStore
    from relay.ui.render import render_turn
    from relay.ui.token_route import suggestion_tokens_html

    store = StoryStore(tmp_path / "relay.db")
    key = store.new_writer_key()
    sid = store.create_story("비 오는 밤", "민지", turn_rule="free", writer_key=key).id
    store.add_paragraph(sid, "창밖으로 비가 내렸다.", "민지", kind="human", writer_key=key)
    store.claim_ai_turn(sid, "민지", writer_key=key)
    with_record = store.add_candidate(sid, "민지", "비가 내렸다.", {"tokens": RECORD}, writer_key=key)
    store.add_candidate(sid, "민지", "눈이 왔다.", {}, writer_key=key)
    turn = store.ai_turn(sid)
    watched = render_turn(turn, "ko")
    # The first suggestion says where its view is; the second has none; neither shows the key it is accepted by.
    assert f'data-tokens="1" data-turn="{turn.turn_id}" data-n="0"' in watched
    assert watched.count("data-tokens") == 1 and with_record not in watched
    view = suggestion_tokens_html(store, sid, turn.turn_id, 0, "en")
    assert "".join(s["text"] for s in spans(view)) == "비가 내렸다." and "relay-pop-branch" not in view
    assert suggestion_tokens_html(store, sid, turn.turn_id, 1, "ko") is None  # no record
    assert suggestion_tokens_html(store, sid, turn.turn_id, 2, "ko") is None  # no such place
    assert suggestion_tokens_html(store, sid, "another-turn", 0, "ko") is None
    store.discard_ai_turn(sid, "민지", writer_key=key)
    assert suggestion_tokens_html(store, sid, turn.turn_id, 0, "ko") is None  # thrown away: nothing to show


def test_the_token_route_answers_a_bad_or_unknown_request_with_a_plain_error(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from relay.story_store import StoryStore
    from relay.ui.token_route import add_token_route

    store = StoryStore(tmp_path / "relay.db")
    key = store.new_writer_key()
    sid = store.create_story("비 오는 밤", "민지", turn_rule="free", writer_key=key).id
    store.add_paragraph(sid, "창밖으로 비가 내렸다.", "민지", kind="human", writer_key=key)
    turn_id = store.claim_ai_turn(sid, "민지", writer_key=key)
    store.add_candidate(sid, "민지", "비가 내렸다.", {"tokens": RECORD}, writer_key=key)
    app = FastAPI()
    add_token_route(app, store)
    client = TestClient(app)
    ok = client.get("/relay/tokens", params={"story": sid, "turn": turn_id, "n": 0, "lang": "ko"})
    assert ok.status_code == 200 and "relay-tk-text" in ok.text
    for params in ({"story": sid, "turn": turn_id, "n": "²"}, {"story": sid, "turn": turn_id, "n": "-1"},
                   {"story": sid, "turn": "<b>", "n": 0}, {"story": sid, "seq": 1, "turn": turn_id, "n": 0},
                   {"story": sid}, {"story": "x", "seq": 1}, {"story": sid, "turn": turn_id, "n": 0, "lang": "fr"}):
        answer = client.get("/relay/tokens", params=params)
        assert answer.status_code == 400 and "error" in answer.json(), params
    for params in ({"story": sid, "turn": turn_id, "n": 1}, {"story": sid, "turn": "other-turn", "n": 0},
                   {"story": sid + 1, "turn": turn_id, "n": 0}):
        assert client.get("/relay/tokens", params=params).status_code == 404, params
