"""Trust over HTTP: writer keys, impersonation attempts, private handlers called by fn_index, limits, uploads.

One live server (tiny model) for the module; gradio_client for the named API and raw HTTP for what
a hostile client would send.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

gradio_client = pytest.importorskip("gradio_client")
from gradio_client.exceptions import AppError  # noqa: E402

SETTINGS = {"max_new_tokens": 12, "stop_at": "length", "seed": 7, "trim_incomplete": False}


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    """The whole app on a free port; yields (client, store, base url, demo)."""
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    engine = Engine.from_pretrained(model=str(tiny_model_dir))
    store = StoryStore(tmp_path_factory.mktemp("hardening-db") / "relay.db")
    demo = app.build_demo(engine, store, tiny=True)
    server = serve(demo, store, port=free_port(), block=False)
    client = gradio_client.Client(server.url, verbose=False)
    yield client, store, server.url, demo
    client.close()
    server.close()


def new_key(client) -> str:
    return client.predict(api_name="/writer_key")


def stream(client, *args) -> list[dict]:
    """Run /continue_story to its end; raises the server's refusal (iterating a job does not)."""
    job = client.submit(*args, api_name="/continue_story")
    chunks = list(job)
    job.result()
    return chunks


def alice_story(client, rule="free"):
    """A story by alice (with her key) holding one paragraph of hers: (key, story, paragraph)."""
    key = new_key(client)
    story = client.predict("앨리스의 이야기", "alice", rule, key, api_name="/create_story")
    para = client.predict(story["id"], "앨리스가 쓴 문단.", "alice", 0, key, api_name="/add_paragraph")
    return key, story, para


# -- raw HTTP, as a hostile client would call -------------------------------------------------

def config(url) -> dict:
    return requests.get(url + "config", timeout=30).json()


def fn_index(cfg, *, api_name=None, button_key=None, trigger=None) -> int:
    """The index of a dependency: by API name, or by the i18n key of the button that triggers it."""
    components = {c["id"]: c for c in cfg["components"]}
    for i, dep in enumerate(cfg["dependencies"]):
        if api_name is not None and dep.get("api_name") == api_name:
            return i
        for target, event in dep.get("targets") or []:
            if trigger is not None and event == trigger and len(dep.get("outputs") or []) > 2:
                return i  # the page's own load (the model-preparing banner has a load of two outputs too)
            value = str(components.get(target, {}).get("props", {}).get("value"))
            if button_key is not None and event == "click" and f'"key": "{button_key}"' in value:
                return i
    raise LookupError(api_name or button_key or trigger)


def raw_payload(cfg, index: int, *, name: str, key: str, story: int | None = None) -> list:
    """Input values for dependency `index` as a forger sends them: every text box says `name`, every
    browser-kept value is the forger's own `key`, the open story is `story`; server-side state cannot
    be sent (Gradio keeps it)."""
    components = {c["id"]: c for c in cfg["components"]}
    values = []
    for input_id in cfg["dependencies"][index]["inputs"]:
        kind = components[input_id]["type"]
        if components[input_id]["props"].get("elem_id") == "relay-story-id":
            values.append(story)
            continue
        values.append({"textbox": name, "checkbox": False, "browserstate": key}.get(kind))
    return values


def raw_call(url, index: int, data: list, session: str, query: str = "") -> dict:
    """POST /gradio_api/queue/join with an fn_index and wait for its process_completed message."""
    joined = requests.post(f"{url}gradio_api/queue/join{query}", timeout=30,
                           json={"data": data, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None})
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    with requests.get(f"{url}gradio_api/queue/data", params={"session_hash": session}, stream=True, timeout=120) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                return message
    raise AssertionError("the server never completed the event")


# -- writer keys ------------------------------------------------------------------------------

def test_writer_key_endpoint_issues_distinct_secret_keys(served):
    client, store, _, _ = served
    first, second = new_key(client), new_key(client)
    assert first != second and len(first) >= 24
    assert store.writer_id(first) != store.writer_id(second)


@pytest.mark.parametrize("bad_key, message", [(None, "/writer_key"), ("", "/writer_key"), ("short", "malformed")])
def test_every_writing_endpoint_refuses_a_missing_or_malformed_key_and_writes_nothing(served, bad_key, message):
    client, store, _, _ = served
    key, story, para = alice_story(client)
    calls = [
        lambda: client.predict("제목", "bob", "free", bad_key, api_name="/create_story"),
        lambda: client.predict(story["id"], "문단.", "bob", para["id"], bad_key, api_name="/add_paragraph"),
        lambda: client.predict(story["id"], "alice", bad_key, api_name="/undo_last"),
        lambda: client.predict(story["id"], "alice", bad_key, api_name="/discard"),
        lambda: client.predict("c-1", "alice", None, None, bad_key, api_name="/accept"),
        lambda: stream(client, story["id"], "bob", SETTINGS, None, bad_key),
        lambda: client.predict(story["id"], para["id"], "고친 글.", "alice", bad_key, api_name="/edit_paragraph"),
        lambda: client.predict(story["id"], para["id"], bad_key, api_name="/hide_paragraph"),
        lambda: client.predict(story["id"], "0123456789abcdef", bad_key, api_name="/block_writer"),
    ]
    stories = len(store.list_stories())
    for call in calls:
        with pytest.raises(AppError, match=message):
            call()
    assert len(store.list_stories()) == stories
    assert [p.text for p in store.timeline(story["id"])] == ["앨리스가 쓴 문단."]


# -- impersonation ----------------------------------------------------------------------------

def test_typing_another_writers_name_with_your_own_key_cannot_undo_or_write_as_them(served):
    client, store, _, _ = served
    _, story, para = alice_story(client)
    bob = new_key(client)
    with pytest.raises(AppError):
        client.predict(story["id"], "alice", bob, api_name="/undo_last")
    with pytest.raises(AppError, match="(?i)name"):
        client.predict(story["id"], "앨리스인 척하는 글.", "alice", para["id"], bob, api_name="/add_paragraph")
    assert [(p.text, p.author) for p in store.timeline(story["id"])] == [("앨리스가 쓴 문단.", "alice")]


def test_another_writer_cannot_accept_or_discard_alices_model_candidate(served):
    client, store, _, _ = served
    alice, story, _ = alice_story(client)
    final = stream(client, story["id"], "alice", SETTINGS, None, alice)[-1]
    bob = new_key(client)
    with pytest.raises(AppError):
        client.predict(final["candidate_id"], "alice", None, final["expected_head"], bob, api_name="/accept")
    with pytest.raises(AppError):
        client.predict(story["id"], "alice", bob, api_name="/discard")
    assert len(store.timeline(story["id"])) == 1
    accepted = client.predict(final["candidate_id"], "alice", None, final["expected_head"], alice, api_name="/accept")
    assert accepted["kind"] == "ai" and len(store.timeline(story["id"])) == 2


def test_only_the_writer_edits_a_paragraph_and_only_the_creator_hides_or_blocks(served):
    client, store, _, _ = served
    alice = new_key(client)
    story = client.predict("차례대로", "alice", "alternate", alice, api_name="/create_story")
    para = client.predict(story["id"], "앨리스의 원문.", "alice", 0, alice, api_name="/add_paragraph")
    bob = new_key(client)
    with pytest.raises(AppError):
        client.predict(story["id"], para["id"], "밥이 고친 글.", "alice", bob, api_name="/edit_paragraph")
    with pytest.raises(AppError, match="(?i)creator"):
        client.predict(story["id"], para["id"], bob, api_name="/hide_paragraph")
    with pytest.raises(AppError, match="(?i)creator"):
        client.predict(story["id"], store.writer_id(alice), bob, api_name="/block_writer")
    assert [p.text for p in store.timeline(story["id"])] == ["앨리스의 원문."]
    edited = client.predict(story["id"], para["id"], "앨리스가 고친 글.", "alice", alice, api_name="/edit_paragraph")
    assert edited["text"] == "앨리스가 고친 글." and edited["edited"]
    client.predict(story["id"], store.writer_id(bob), alice, api_name="/block_writer")
    with pytest.raises(AppError, match="(?i)blocked"):
        client.predict(story["id"], "차단된 밥의 글.", "bob", None, bob, api_name="/add_paragraph")
    client.predict(story["id"], para["id"], alice, api_name="/hide_paragraph")
    assert store.timeline(story["id"]) == []


def test_an_api_endpoint_called_by_fn_index_checks_the_key_like_its_named_route(served):
    client, store, url, _ = served
    _, story, _ = alice_story(client)
    cfg = config(url)
    undo = fn_index(cfg, api_name="undo_last")
    forged = raw_call(url, undo, [story["id"], "alice", new_key(client)], uuid.uuid4().hex)
    assert forged["success"] is False
    assert [p.author for p in store.timeline(story["id"])] == ["alice"]


def test_the_private_undo_handler_called_by_fn_index_with_alices_name_cannot_undo_her_paragraph(served):
    client, store, url, _ = served
    alice_key = new_key(client)
    story = client.predict("페이지에서 쓴 이야기", "alice", "free", alice_key, api_name="/create_story")
    cfg = config(url)
    load, add, undo = fn_index(cfg, trigger="load"), fn_index(cfg, button_key="add"), fn_index(cfg, button_key="undo")
    assert cfg["dependencies"][undo].get("api_visibility") == "private"

    def browser(name: str, key: str) -> str:
        """A session that opened the story's shared link (?story=ID), as a browser does on load."""
        session = uuid.uuid4().hex
        raw_call(url, load, raw_payload(cfg, load, name=name, key=key), session, query=f"?story={story['id']}")
        return session

    alice = browser("alice", alice_key)
    added = raw_call(url, add, raw_payload(cfg, add, name="alice", key=alice_key, story=story["id"]), alice)  # alice writes on the page
    assert added["success"] is True and [p.author for p in store.timeline(story["id"])] == ["alice"]

    forger_key = new_key(client)
    forged = raw_call(url, undo, raw_payload(cfg, undo, name="alice", key=forger_key, story=story["id"]),
                      browser("alice", forger_key))
    assert [p.author for p in store.timeline(story["id"])] == ["alice"], "a forged undo removed alice's paragraph"
    # The history panel refuses with a warning toast and no error status (no stale red badge), so the
    # event itself completes; what matters is that nothing was undone.
    assert forged["msg"] == "process_completed"


# -- limits and strict ids over HTTP ------------------------------------------------------------

def test_a_writer_adding_paragraphs_too_fast_is_told_to_wait_and_the_extra_one_is_not_stored(served):
    from relay.limits import PARAGRAPHS_PER_MINUTE

    client, store, _, _ = served
    key = new_key(client)
    story = client.predict("빠른 손", "flash", "free", key, api_name="/create_story")
    for i in range(PARAGRAPHS_PER_MINUTE[0]):
        client.predict(story["id"], f"문단 {i}.", "flash", None, key, api_name="/add_paragraph")
    with pytest.raises(AppError, match=r"(?i)too fast.*at most \d+ a minute.*try again in \d+ s"):
        client.predict(story["id"], "하나 더.", "flash", None, key, api_name="/add_paragraph")
    assert len(store.timeline(story["id"])) == PARAGRAPHS_PER_MINUTE[0]


def test_a_writer_with_two_model_jobs_waiting_or_running_is_refused_a_third_at_once(served):
    from relay.limits import MODEL_SLOTS

    client, _, _, _ = served
    key = new_key(client)
    long_turn = {"max_new_tokens": 200, "min_new_tokens": 200, "stop_at": "length", "seed": 3}
    stories = []
    for i in range(MODEL_SLOTS[0] + 2):
        story = client.predict(f"동시에 {i}", "slots", "free", key, api_name="/create_story")
        client.predict(story["id"], "시작.", "slots", None, key, api_name="/add_paragraph")
        stories.append(story["id"])
    jobs = [client.submit(sid, "slots", long_turn, None, key, api_name="/continue_story") for sid in stories]
    outcomes = []
    for job in jobs:
        try:
            job.result()
            outcomes.append("done")
        except AppError as e:
            outcomes.append(str(e))
    refused = [o for o in outcomes if "model jobs waiting or running" in o]
    assert refused and outcomes.count("done") >= MODEL_SLOTS[0], outcomes


def test_a_retried_add_with_the_same_client_id_stores_one_paragraph(served):
    client, store, _, _ = served
    key, story, para = alice_story(client)
    first = client.predict(story["id"], "다시 보내도 한 번.", "alice", None, key, "draft-42", api_name="/add_paragraph")
    again = client.predict(story["id"], "다시 보내도 한 번.", "alice", None, key, "draft-42", api_name="/add_paragraph")
    assert first["id"] == again["id"]
    assert [p.text for p in store.timeline(story["id"])].count("다시 보내도 한 번.") == 1


@pytest.mark.parametrize("bad", [True, 1.5, "1", None])
def test_a_story_id_that_is_not_a_positive_int_is_refused_over_http(served, bad):
    client, _, _, _ = served
    with pytest.raises(AppError, match="story_id must be a whole number of 1 or more"):
        client.predict(bad, api_name="/timeline")


# -- uploads and server hygiene -------------------------------------------------------------------

def test_uploads_over_the_documented_size_are_refused(served):
    from relay.ui.common import MAX_UPLOAD_SIZE

    _, _, url, _ = served
    limit = int(MAX_UPLOAD_SIZE.removesuffix("mb")) * 1024 * 1024
    small = requests.post(url + "gradio_api/upload", files={"files": ("story.json", b"{}")}, timeout=30)
    assert small.status_code == 200
    big = requests.post(url + "gradio_api/upload", files={"files": ("big.json", b"x" * (limit + 1))}, timeout=60)
    assert big.status_code == 413


def test_the_server_cleans_its_file_cache_by_age(served):
    from relay.ui.common import CACHE_CLEANUP

    _, _, _, demo = served
    assert demo.delete_cache == CACHE_CLEANUP


def test_old_exports_are_deleted_when_a_new_one_is_made(tmp_path, monkeypatch):
    import os
    import time

    from relay.ui import common

    monkeypatch.setattr(common, "EXPORT_DIR", tmp_path / "exports")
    old = common.export_path(1, "txt")
    old.write_text("old")
    stale = time.time() - common.EXPORT_MAX_AGE_S - 60
    os.utime(old.parent, (stale, stale))
    fresh = common.export_path(2, "md")
    assert not old.parent.exists() and fresh.parent.is_dir() and fresh.name == "relay-story-2.md"


# -- identity without a server ----------------------------------------------------------------------

def test_a_signed_in_account_gets_the_same_key_everywhere_and_other_accounts_do_not(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from relay.identity import identity_from_profile, server_secret
    from relay.story_store import StoryStore

    monkeypatch.delenv("RELAY_SECRET", raising=False)
    secret = server_secret(tmp_path)
    assert server_secret(tmp_path) == secret  # kept in a file beside the database
    assert (tmp_path / "relay-secret").stat().st_mode & 0o077 == 0  # readable by the server's user only
    minji = SimpleNamespace(username="minji", name="민지")
    name, key = identity_from_profile(minji, secret)
    assert name == "민지" and identity_from_profile(minji, secret) == (name, key)
    assert identity_from_profile(SimpleNamespace(username="minji2", name="민지"), secret)[1] != key
    assert identity_from_profile(minji, b"another secret")[1] != key
    assert identity_from_profile(None, secret) is None
    StoryStore(tmp_path / "relay.db").writer_id(key)  # the store accepts it as a writer key
    monkeypatch.setenv("RELAY_SECRET", "from-the-environment")
    assert server_secret(tmp_path) == b"from-the-environment"


def test_auth_logins_come_from_repeated_flags_or_the_environment(monkeypatch):
    import app

    assert app.parse_args(["--auth", "editor:s3cret:with:colons", "--auth", "guest:pw"]).auth == [
        ("editor", "s3cret:with:colons"), ("guest", "pw")]
    monkeypatch.setenv("RELAY_AUTH", "a:1,b:2")
    assert app.parse_args([]).auth == [("a", "1"), ("b", "2")]
    monkeypatch.delenv("RELAY_AUTH")
    assert app.parse_args([]).auth is None
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "no-password"])


def test_a_browser_keeps_its_key_a_tampered_one_is_replaced_and_a_signed_in_account_wins(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from relay.story_store import StoryStore
    from relay.ui.common import page_writer

    monkeypatch.delenv("RELAY_SECRET", raising=False)
    store = StoryStore(tmp_path / "relay.db")
    first, name = page_writer(store, None)
    assert name is None and store.writer_id(first)
    assert page_writer(store, first) == (first, None)  # the BrowserState's key is kept
    replaced, _ = page_writer(store, "<script>tampered")
    assert replaced not in (first, "<script>tampered")
    account = SimpleNamespace(username="minji", name="민지")
    key, name = page_writer(store, first, account)
    assert name == "민지" and key != first and page_writer(store, replaced, account) == (key, "민지")
    assert (tmp_path / "relay-secret").exists()  # the secret lives beside the database


# -- client addresses, request bodies, live streams (issue 20) --------------------------------

@pytest.fixture
def strict_server(tmp_path, tiny_model_dir, monkeypatch):
    """A fresh app whose per-address limits are small (set by environment, as an operator would)."""
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("RELAY_LIMIT_PARAGRAPHS", "100/3")  # 3 paragraphs a minute per address
    monkeypatch.setenv("RELAY_LIMIT_LIVE_TABS", "2")

    def start():
        engine = Engine.from_pretrained(model=str(tiny_model_dir))
        store = StoryStore(tmp_path / f"relay-{uuid.uuid4().hex}.db")
        server = serve(app.build_demo(engine, store, tiny=True), store, port=free_port(), block=False)
        started.append(server)
        return server.url, store

    started = []
    yield start
    for server in started:
        server.close()


def add_from(url, forged_address: str, story_id: int) -> bool:
    """One paragraph by a new writer whose requests claim to come from `forged_address`; True if stored."""
    client = gradio_client.Client(url, verbose=False, headers={"X-Forwarded-For": forged_address})
    try:
        key = new_key(client)
        client.predict(story_id, f"{forged_address}의 문단.", f"w{uuid.uuid4().hex[:6]}", None, key,
                       api_name="/add_paragraph")
        return True
    except AppError as e:
        assert "too fast" in str(e) or "너무 빨리" in str(e)
        return False
    finally:
        client.close()


def test_a_forged_x_forwarded_for_on_a_local_connection_does_not_escape_the_address_limit(strict_server, monkeypatch):
    monkeypatch.delenv("RELAY_TRUSTED_PROXIES", raising=False)
    url, store = strict_server()
    story = store.create_story("주소 제한", "host", "free")
    stored = [add_from(url, f"10.66.0.{i}", story.id) for i in range(5)]
    assert stored == [True, True, True, False, False]  # five "addresses", one real one: its limit holds
    assert len(store.timeline(story.id)) == 3


def test_a_proxy_the_operator_names_passes_on_the_client_address(strict_server, monkeypatch):
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "127.0.0.1")  # e.g. nginx or a tunnel on this host
    url, store = strict_server()
    story = store.create_story("프록시 뒤", "host", "free")
    assert [add_from(url, f"10.66.0.{i}", story.id) for i in range(5)] == [True] * 5
    assert [add_from(url, "10.66.0.1", story.id) for _ in range(3)] == [True, True, False]  # 3 a minute from .1


def test_request_bodies_over_the_cap_are_refused_before_they_are_read(served):
    import socket
    from urllib.parse import urlsplit

    from relay.ui.http_guards import MAX_BODY_BYTES

    _, _, url, _ = served
    big = requests.post(url + "gradio_api/call/timeline", data=b"x" * (MAX_BODY_BYTES + 1), timeout=30,
                        headers={"Accept-Language": "ko-KR", "Content-Type": "application/json"})
    assert big.status_code == 413 and "요청이 너무 큽니다" in big.json()["error"]
    chunked = requests.post(url + "gradio_api/call/timeline", data=iter([b"x" * 65536] * (MAX_BODY_BYTES // 65536 + 2)), timeout=30)
    assert chunked.status_code == 413 and "too large" in chunked.json()["error"]
    # A declared 100 MB body is refused from its headers alone: the answer comes with nothing sent.
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /gradio_api/call/timeline HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 104857600\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.1 413")
    assert requests.post(url + "gradio_api/call/timeline", json={"data": [1]}, timeout=30).status_code == 200


def test_one_address_cannot_hold_more_live_streams_than_its_share(strict_server):
    url, store = strict_server()
    story = store.create_story("탭", "host", "free")
    live = f"{url}relay/live?story={story.id}&lang=ko"
    first, second = (requests.get(live, stream=True, timeout=10) for _ in range(2))
    try:
        third = requests.get(live, stream=True, timeout=10)
        assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
        third.close()
    finally:
        first.close()
        second.close()
    deadline = time.monotonic() + 10
    while True:  # closed tabs give their share back
        again = requests.get(live, stream=True, timeout=10)
        again.close()
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert again.status_code == 200


# -- imports, keys and exports (issue 20) ---------------------------------------------------------

def import_index(cfg) -> int:
    """The page's import event: a click on the hidden button the page script presses after reading a file."""
    target = next(c["id"] for c in cfg["components"] if c["props"].get("elem_id") == "relay-import-go")
    return next(i for i, dep in enumerate(cfg["dependencies"]) if [target, "click"] in [list(t) for t in dep["targets"]])


def import_payload(cfg, index: int, text, *, name: str, key: str) -> list:
    payload = raw_payload(cfg, index, name=name, key=key)
    payload[0] = text  # the first input is the file's text, read by the browser
    return payload


def test_the_import_handler_never_reads_a_server_path_and_needs_a_writer_key(served, tmp_path):
    client, store, url, _ = served
    cfg = config(url)
    index = import_index(cfg)
    secret_export = tmp_path / "someone-elses-export.json"  # a real export lying on the server's disk
    story = store.create_story("남의 이야기", "someone", "free")
    store.add_paragraph(story.id, "비밀 문단", "someone")
    secret_export.write_text(store.export(story.id, "json"), encoding="utf-8")
    key = new_key(client)
    before = len(store.list_stories())
    answers = []
    for forged in (str(secret_export), str(tmp_path / "missing.json"), "../../../../etc/passwd",
                   {"path": str(secret_export), "meta": {"_type": "gradio.FileData"}}):
        answer = raw_call(url, index, import_payload(cfg, index, forged, name="mallory", key=key), uuid.uuid4().hex)
        answers.append(json.dumps(answer.get("output", {}), ensure_ascii=False))
    assert len(store.list_stories()) == before  # nothing imported from a path
    assert not any("Errno" in a or "No such file" in a or "directory" in a for a in answers)
    # The real file's text, sent as the browser sends it, imports only with a writer key the site issued.
    text = secret_export.read_text(encoding="utf-8")
    for bad_key in ("", "Z" * 16):
        raw_call(url, index, import_payload(cfg, index, text, name="mallory", key=bad_key), uuid.uuid4().hex)
    assert len(store.list_stories()) == before
    raw_call(url, index, import_payload(cfg, index, text, name="mallory", key=key), uuid.uuid4().hex)
    (imported,) = [s for s in store.list_stories() if s.title == "남의 이야기" and s.id != story.id]
    assert imported.creator_id == store.writer_id(key) and imported.created_by == "mallory"
    assert imported.origin["created_by"] == "someone" and imported.origin["imported_by"] == "mallory"


def test_imports_count_as_new_stories(served):
    from relay.limits import STORIES_PER_HOUR

    client, store, url, _ = served
    cfg = config(url)
    index = import_index(cfg)
    story = store.create_story("원본", "someone", "free")
    text = store.export(story.id, "json")
    key = new_key(client)
    before = len(store.list_stories())
    for _ in range(STORIES_PER_HOUR[0] + 2):
        raw_call(url, index, import_payload(cfg, index, text, name="importer", key=key), uuid.uuid4().hex)
    assert len(store.list_stories()) == before + STORIES_PER_HOUR[0]


def test_a_made_up_writer_key_is_refused_by_every_writing_endpoint(served):
    client, store, _, _ = served
    story = store.create_story("열린 이야기", "host", "free")
    made_up = "ZZZZZZZZZZZZZZZZ"  # the right shape, never issued
    with pytest.raises(AppError, match="not issued"):
        client.predict(story.id, "위조 키로 쓴 글.", "forger", None, made_up, api_name="/add_paragraph")
    with pytest.raises(AppError, match="not issued"):
        client.predict("위조 이야기", "forger", "free", made_up, api_name="/create_story")
    assert store.timeline(story.id) == [] and not store.writer_key_issued(made_up)


def test_the_page_issues_new_keys_only_under_the_writer_key_limit(strict_server, monkeypatch):
    monkeypatch.setenv("RELAY_LIMIT_WRITER_KEYS", "100/3")
    url, store = strict_server()
    cfg = config(url)
    load = fn_index(cfg, trigger="load")
    keys = []
    for _ in range(5):  # five page loads with no key kept: each asks for a new key
        answer = raw_call(url, load, raw_payload(cfg, load, name="", key=""), uuid.uuid4().hex)
        keys.append(answer["output"]["data"][2])
    assert [bool(k) for k in keys] == [True, True, True, False, False]
    assert all(store.writer_key_issued(k) for k in keys[:3])


def test_hidden_paragraphs_leave_the_page_export_for_all_but_the_creator(served):
    client, store, url, _ = served
    creator, other = new_key(client), new_key(client)
    story = client.predict("숨긴 글", "creator", "free", creator, api_name="/create_story")
    client.predict(story["id"], "보통 문단.", "creator", None, creator, api_name="/add_paragraph")
    phone = client.predict(story["id"], "제 번호는 010-9999-0000", "guest", None, other, api_name="/add_paragraph")
    client.predict(story["id"], phone["id"], creator, api_name="/hide_paragraph")
    cfg = config(url)
    export = fn_index(cfg, button_key="export")

    def exported(key: str) -> str:
        payload = raw_payload(cfg, export, name="", key=key, story=story["id"])
        payload[1] = "json"  # the format radio
        answer = raw_call(url, export, payload, uuid.uuid4().hex)
        path = answer["output"]["data"][0]["path"]
        return requests.get(f"{url}gradio_api/file={path}", timeout=30).text

    assert "010-9999-0000" not in exported(other) and "010-9999-0000" not in exported("")
    assert "010-9999-0000" in exported(creator)
    client.predict(story["id"], phone["id"], None, creator, api_name="/purge")
    assert "010-9999-0000" not in exported(creator)
