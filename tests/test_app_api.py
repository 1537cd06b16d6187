"""The app's named API endpoints, driven through gradio_client against a live server with a tiny model."""

from __future__ import annotations


import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client.exceptions import AppError  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """The whole app on a free port, with its own database; yields (client, store)."""
    import app
    from relay.engine import Engine
    from relay.ui.server import free_port, serve
    from relay.story_store import StoryStore

    engine = Engine.from_pretrained(model=str(tiny_model_dir))
    store = StoryStore(tmp_path_factory.mktemp("api-db") / "relay.db")
    demo = app.build_demo(engine, store, tiny=True)
    server = serve(demo, store, port=free_port(), block=False)
    client = gradio_client.Client(server.url, verbose=False)
    client.keys = {}  # one writer key per name (the store binds a name to one key per story)
    client.engine = engine
    yield client, store
    client.close()
    server.close()


def _key(client, author) -> str:
    """The writer key this test module uses for `author` (each name gets its own)."""
    if author not in client.keys:
        client.keys[author] = client.predict(api_name="/writer_key")
    return client.keys[author]


def _stream(client, story_id, author, settings=None):
    job = client.submit(story_id, author, settings or {"max_new_tokens": 24, "stop_at": "length", "seed": 7, "trim_incomplete": False},
                        None, _key(client, author), api_name="/continue_story")
    chunks = list(job)
    job.result()  # raises the server's error, if any
    return chunks


def test_api_lists_the_named_endpoints(served):
    client, _ = served
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/writer_key", "/list_stories", "/create_story", "/timeline", "/add_paragraph", "/undo_last",
            "/continue_story", "/accept", "/discard", "/edit_paragraph", "/hide_paragraph", "/block_writer"} <= names


def test_a_story_created_over_the_api_takes_paragraphs_and_lists_them(served):
    client, _ = served
    story = client.predict("달빛 아래", "민지", "alternate", _key(client, "민지"), api_name="/create_story")
    assert story["title"] == "달빛 아래" and story["turn_rule"] == "alternate"
    para = client.predict(story["id"], "밤이 깊었다. 골목에는 아무도 없었다.", "민지", 0, _key(client, "민지"), api_name="/add_paragraph")
    assert para["seq"] == 1 and para["kind"] == "human" and para["author"] == "민지"
    timeline = client.predict(story["id"], api_name="/timeline")
    assert [p["text"] for p in timeline] == ["밤이 깊었다. 골목에는 아무도 없었다."]
    listed = client.predict(api_name="/list_stories")
    assert listed[0]["id"] == story["id"] and listed[0]["paragraph_count"] == 1


def test_the_turn_rule_refuses_two_human_paragraphs_in_a_row(served):
    client, store = served
    story = client.predict("번갈아", "수아", "alternate", _key(client, "수아"), api_name="/create_story")
    first = client.predict(story["id"], "첫 문단.", "수아", 0, _key(client, "수아"), api_name="/add_paragraph")
    with pytest.raises(AppError, match="(?i)turn"):
        client.predict(story["id"], "또 사람 문단.", "준호", first["id"], _key(client, "준호"), api_name="/add_paragraph")
    assert [p.text for p in store.timeline(story["id"])] == ["첫 문단."]


def test_a_writer_who_missed_a_paragraph_is_refused_and_nothing_is_written(served):
    client, store = served
    story = client.predict("자유", "수아", "free", _key(client, "수아"), api_name="/create_story")
    first = client.predict(story["id"], "하나.", "수아", 0, _key(client, "수아"), api_name="/add_paragraph")
    client.predict(story["id"], "둘.", "준호", first["id"], _key(client, "준호"), api_name="/add_paragraph")
    with pytest.raises(AppError, match="(?i)moved on|stale|since|already"):
        client.predict(story["id"], "셋, 하지만 늦었다.", "수아", first["id"], _key(client, "수아"), api_name="/add_paragraph")
    assert [p.text for p in store.timeline(story["id"])] == ["하나.", "둘."]


def test_a_streamed_continuation_is_accepted_and_appears_with_its_metadata(served):
    client, store = served
    story = client.predict("AI와 함께", "하린", "alternate", _key(client, "하린"), api_name="/create_story")
    human = client.predict(story["id"], "비가 그친 저녁, 나는 우체국 앞에서 그녀를 기다렸다.", "하린", 0, _key(client, "하린"), api_name="/add_paragraph")

    chunks = _stream(client, story["id"], "하린")
    partial, final = [c for c in chunks if not c["done"]], chunks[-1]
    assert final["done"] and final["candidate_id"] and final["expected_head"] == human["id"]
    assert len(partial) >= 2, "the continuation should arrive in pieces, not all at once"
    assert all(final["text"].startswith(c["text"]) for c in partial)
    assert final["meta"]["seed"] == 7 and final["meta"]["settings"]["max_new_tokens"] == 24

    stored = client.predict(final["candidate_id"], "하린", None, final["expected_head"], _key(client, "하린"), api_name="/accept")
    assert stored["kind"] == "ai" and stored["author"] == "하린" and not stored["edited"]
    assert stored["text"] == final["text"]
    last = client.predict(story["id"], api_name="/timeline")[-1]
    assert last["id"] == stored["id"]
    assert last["meta"]["seed"] == 7 and last["meta"]["model"] and "settings" in last["meta"]
    assert last["meta"]["output_tokens"] > 0


def test_an_edited_candidate_is_marked_edited_and_a_candidate_is_used_once(served):
    client, _ = served
    story = client.predict("고쳐 쓰기", "도윤", "alternate", _key(client, "도윤"), api_name="/create_story")
    client.predict(story["id"], "문이 열렸다.", "도윤", 0, _key(client, "도윤"), api_name="/add_paragraph")
    final = _stream(client, story["id"], "도윤")[-1]
    stored = client.predict(final["candidate_id"], "도윤", "그가 들어왔다.", final["expected_head"], _key(client, "도윤"), api_name="/accept")
    assert stored["edited"] and stored["text"] == "그가 들어왔다."
    assert stored["meta"]["original_text"] == final["text"]
    with pytest.raises(AppError):
        client.predict(final["candidate_id"], "도윤", None, None, _key(client, "도윤"), api_name="/accept")


def test_the_model_does_not_write_when_it_is_a_humans_turn(served):
    client, store = served
    story = client.predict("빈 이야기", "서연", "alternate", _key(client, "서연"), api_name="/create_story")
    with pytest.raises(AppError, match="(?i)human"):
        _stream(client, story["id"], "서연")
    assert store.timeline(story["id"]) == []


def test_model_turns_of_different_stories_run_at_once_in_one_batch(served):
    """Three writers ask for the model in three stories at the same moment: every turn finishes, and the
    backend wrote them side by side (far fewer model steps than tokens), not one after another."""
    from concurrent.futures import ThreadPoolExecutor

    client, _ = served
    backend = client.engine.backend
    if not hasattr(backend, "stats"):
        pytest.skip(f"the {backend.name} backend runs one turn at a time")
    writers = ["나래", "보람", "한결"]
    stories = []
    for name in writers:
        story = client.predict(f"{name}의 밤", name, "free", _key(client, name), api_name="/create_story")
        client.predict(story["id"], "밤이 깊었다. 골목에는 아무도 없었다.", name, 0, _key(client, name), api_name="/add_paragraph")
        stories.append(story["id"])
    settings = {"max_new_tokens": 200, "min_new_tokens": 0, "stop_at": "length", "trim_incomplete": False}
    before = backend.stats()["steps"]
    with ThreadPoolExecutor(len(writers)) as pool:
        finals = list(pool.map(lambda pair: _stream(client, pair[0], pair[1], {**settings, "seed": 11})[-1],
                               zip(stories, writers)))
    steps = backend.stats()["steps"] - before
    tokens = sum(final["meta"]["output_tokens"] for final in finals)
    assert all(final["done"] and final["text"] and final["candidate_id"] for final in finals)
    assert tokens >= 3 * 150
    assert steps < 0.75 * tokens  # one after another would take one step per token


def test_a_second_model_turn_on_the_same_story_is_refused_while_one_runs(served):
    client, store = served
    story = client.predict("한 번에 하나", "서연", "free", _key(client, "서연"), api_name="/create_story")
    store.claim_ai_turn(story["id"], "지호", ttl=60)
    try:
        with pytest.raises(AppError, match="지호"):
            _stream(client, story["id"], "서연")
    finally:
        store.release_ai_turn(story["id"], "지호")
    assert store.ai_turn_holder(story["id"]) is None


def test_bad_input_comes_back_as_a_clear_error(served):
    client, _ = served
    with pytest.raises(AppError, match="(?i)title"):
        client.predict("   ", "서연", "alternate", _key(client, "서연"), api_name="/create_story")
    with pytest.raises(AppError, match="(?i)story"):
        client.predict(999999, api_name="/timeline")
    story = client.predict("설정 오류", "서연", "free", _key(client, "서연"), api_name="/create_story")
    client.predict(story["id"], "시작.", "서연", None, _key(client, "서연"), api_name="/add_paragraph")
    with pytest.raises(AppError, match="temperature"):
        _stream(client, story["id"], "서연", {"temperature": 99})
