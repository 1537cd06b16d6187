"""Arbitrary arguments to every API endpoint get a clear refusal, never a crash, and store nothing.

The endpoint functions come from relay.ui.api.api_functions(), the same code the server registers;
they are called directly (not over HTTP) so hypothesis can try many cases quickly.
"""

from __future__ import annotations

import math
import sqlite3

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.story_store import StoryError

TABLES = ("stories", "paragraphs", "candidates")  # what a refused call must never add to or change
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_model_dir):
    """(endpoint functions by name, store, db path, a valid writer key, a story id with one paragraph)."""
    from relay.ui.api import api_functions  # first: relay.turns needs relay.ui imported before it
    from relay.engine import Engine
    from relay.limits import Limits, Rates
    from relay.story_store import StoryStore
    from relay.turns import AITurn

    db = tmp_path_factory.mktemp("fuzz-db") / "relay.db"
    store = StoryStore(db)
    engine = Engine.from_pretrained(model=str(tiny_model_dir))
    many = (10**6, 10**6)  # the fuzz is about arguments, not limits (tests/test_limits.py covers those)
    limits = Limits(Rates(paragraph=many, story=many, model_turn=many, candidates=many, model_slots=many))
    fns = api_functions(engine, store, AITurn(engine, store, escape_names=False), limits)
    key = fns["writer_key"]()
    story = fns["create_story"]("퍼즈", "민지", "free", key)
    fns["add_paragraph"](story["id"], "첫 문단.", "민지", 0, key)
    return fns, store, db, key, story["id"]


def counts(db) -> dict[str, str]:
    """A fingerprint of every row of the tables a refused call must leave alone."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {t: repr(conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()) for t in TABLES}


def ids():
    """Anything a client might send where an id belongs."""
    return st.one_of(
        st.integers(min_value=-2**70, max_value=2**70), st.booleans(), st.none(),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1, 1.0, "1", "abc", "", [], {}, [1], math.nan]),
        st.text(max_size=20), st.lists(st.integers(), max_size=3),
    )


def texts():
    return st.one_of(st.text(max_size=60), st.none(), st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=2),
                     st.sampled_from(["", "   ", "<img src=//x>", "가" * 5000, "\x00", "\ud800"]))


def keys(valid: str):
    return st.one_of(st.just(valid), st.none(), st.just(""), st.text(max_size=30), st.integers(), st.booleans(),
                     st.sampled_from(["short", "A" * 200, "not a key!!!!!!!!!!!", valid + "x"]))


def settings_dicts():
    knob = st.sampled_from(["temperature", "top_k", "top_p", "max_new_tokens", "seed", "bogus", ""])
    value = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=5))
    return st.one_of(st.none(), st.dictionaries(knob, value, max_size=3), st.integers(), st.text(max_size=5), st.lists(st.integers()),
                     st.just({"max_new_tokens": 12, "min_new_tokens": 1, "seed": 1, "stop_at": "length"}))


def call_refused_or_ok(db, fn, *args):
    """Call an endpoint; a refusal must be gr.Error/StoryError with a message and must leave the store unchanged."""
    before = counts(db)
    try:
        result = fn(*args)
        if hasattr(result, "__next__"):  # a streaming endpoint: run it to the end
            result = list(result)
    except (gr.Error, StoryError) as e:
        message = getattr(e, "message", None) or str(e)
        assert isinstance(message, str) and message.strip(), f"{type(e).__name__} without a message"
        assert counts(db) == before, f"a refused call changed the store: {message}"
        return None
    return result


@FUZZ
@given(story_id=ids())
def test_timeline_refuses_anything_but_a_story_id_clearly(api, story_id):
    fns, _, db, _, _ = api
    call_refused_or_ok(db, fns["timeline"], story_id)


@FUZZ
@given(title=texts(), author=texts(), rule=st.one_of(st.sampled_from(["alternate", "free", "x"]), texts()), key=st.data())
def test_create_story_refuses_bad_arguments_clearly(api, title, author, rule, key):
    fns, _, db, valid, _ = api
    call_refused_or_ok(db, fns["create_story"], title, author, rule, key.draw(keys(valid)))


@FUZZ
@given(story_id=ids(), text=texts(), author=texts(), head=ids(), client_id=st.one_of(st.none(), texts()), key=st.data())
def test_add_paragraph_refuses_bad_arguments_clearly(api, story_id, text, author, head, client_id, key):
    fns, _, db, valid, _ = api
    call_refused_or_ok(db, fns["add_paragraph"], story_id, text, author, head, key.draw(keys(valid)), client_id)


@FUZZ
@given(story_id=ids(), author=texts(), key=st.data())
def test_undo_and_discard_refuse_bad_arguments_clearly(api, story_id, author, key):
    fns, _, db, valid, _ = api
    k = key.draw(keys(valid))
    call_refused_or_ok(db, fns["undo_last"], story_id, author, k)
    call_refused_or_ok(db, fns["discard"], story_id, author, k)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(story_id=ids(), author=texts(), sampling=settings_dicts(), adapter=st.one_of(st.none(), texts()), key=st.data())
def test_continue_story_refuses_bad_arguments_clearly(api, story_id, author, sampling, adapter, key):
    fns, _, db, valid, _ = api
    call_refused_or_ok(db, fns["continue_story"], story_id, author, sampling, adapter, key.draw(keys(valid)))


@FUZZ
@given(candidate_id=texts(), author=texts(), text=texts(), head=ids(), key=st.data())
def test_accept_refuses_bad_arguments_clearly(api, candidate_id, author, text, head, key):
    fns, _, db, valid, _ = api
    call_refused_or_ok(db, fns["accept"], candidate_id, author, text, head, key.draw(keys(valid)))


@FUZZ
@given(story_id=ids(), paragraph_id=ids(), text=texts(), author=texts(), writer_id=texts(), version=ids(), key=st.data())
def test_edit_hide_purge_and_block_refuse_bad_arguments_clearly(api, story_id, paragraph_id, text, author, writer_id,
                                                                 version, key):
    fns, _, db, valid, _ = api
    k = key.draw(keys(valid))
    call_refused_or_ok(db, fns["edit_paragraph"], story_id, paragraph_id, text, author, k)
    call_refused_or_ok(db, fns["hide_paragraph"], story_id, paragraph_id, k)
    call_refused_or_ok(db, fns["purge"], story_id, paragraph_id, version, k)
    call_refused_or_ok(db, fns["block_writer"], story_id, writer_id, k)


def test_the_endpoint_list_names_every_endpoint_that_writes(api):
    from relay.ui.api import WRITING_ENDPOINTS
    from relay.ui.lab_api import LAB_ENDPOINTS

    fns, *_ = api
    reading = {"writer_key", "list_stories", "timeline", "steering", "steering_versions", "what_the_model_reads"}
    assert set(WRITING_ENDPOINTS) | set(LAB_ENDPOINTS) == set(fns) - reading


@pytest.mark.parametrize("bad", [True, False, 1.0, 1.5, "1", None, "abc", [], math.nan, 2**63, 0, -1])
def test_a_story_id_that_is_not_a_positive_int_is_refused_with_what_to_send(api, bad):
    fns, _, db, key, story_id = api
    assert story_id == 1  # so True, 1.0 and "1" would name a real story if they were coerced
    before = counts(db)
    for call in (lambda: fns["timeline"](bad), lambda: fns["add_paragraph"](bad, "글.", "민지", None, key),
                 lambda: list(fns["continue_story"](bad, "민지", None, None, key))):
        with pytest.raises(gr.Error, match="story_id must be a whole number of 1 or more"):
            call()
    assert counts(db) == before


def test_every_writing_endpoint_without_a_writer_key_says_where_to_get_one(api):
    from relay.ui.api import WRITING_ENDPOINTS
    from relay.ui.lab_api import LAB_ENDPOINTS

    fns, store, db, key, story_id = api
    # A paragraph of our own: the fuzz tests before this one may have undone the story's first one.
    head = fns["add_paragraph"](story_id, "키 없는 요청들의 과녁.", "민지", None, key)["id"]
    args = {  # plausible arguments, all but the key
        "create_story": ("열쇠 없이", "민지", "free"), "add_paragraph": (story_id, "열쇠 없이.", "민지", None),
        "undo_last": (story_id, "민지"), "continue_story": (story_id, "민지", None, None),
        "accept": ("candidate", "민지", None, None), "discard": (story_id, "민지"),
        "edit_paragraph": (story_id, head, "고친 글.", "민지"), "hide_paragraph": (story_id, head),
        "purge": (story_id, head, None),
        "block_writer": (story_id, "0123456789abcdef"),
        "set_memory": (story_id, "기억.", "민지"), "set_note": (story_id, "짧게.", 3, "민지"),
        "set_scan_depth": (story_id, 4, "민지"), "save_card": (story_id, {"name": "민지", "text": "글."}, "민지"),
        "delete_card": (story_id, 1, "민지"), "lock_steering": (story_id, True),
        "branch_suggestion": (story_id, "민지", "candidate", 0, None, None, None),
        "extend_suggestion": (story_id, "민지", "candidate", None, None),
        # model jobs that write nothing, but count against the writer's limits
        "lab_run": ("이야기.", [{"settings": {}, "samples": 1}], None),
        "lab_sweep": ("이야기.", "temperature", 0.5, 1.0, 2, 1, None, None, None),
    }
    before = counts(db)
    for name in (*WRITING_ENDPOINTS, *LAB_ENDPOINTS):
        with pytest.raises(gr.Error, match="/writer_key"):
            result = fns[name](*args[name], None)
            if hasattr(result, "__next__"):
                list(result)
    assert counts(db) == before
