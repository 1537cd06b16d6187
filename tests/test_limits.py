"""Limits per writer key and per address (relay/limits.py), their messages, and the escaping of toasts."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from relay.limits import (CANDIDATES_PER_MINUTE, MAX_CONTEXT_CHARS, MODEL_SLOTS, MODEL_TURNS_PER_MINUTE,
                          PARAGRAPHS_PER_MINUTE, STORIES_PER_HOUR, WRITER_KEYS_PER_HOUR, LimitExceeded, Limits, Rates, client_ip)
from relay.ui import limit_text
from relay.ui.common import toast_text


@pytest.mark.parametrize("action, amounts, period_s", [
    ("paragraph", PARAGRAPHS_PER_MINUTE, 60),
    ("story", STORIES_PER_HOUR, 3600),
    ("model_turn", MODEL_TURNS_PER_MINUTE, 60),
    ("candidates", CANDIDATES_PER_MINUTE, 60),
    ("writer_key", WRITER_KEYS_PER_HOUR, 3600),
])
def test_each_rate_refuses_one_writer_past_its_default_and_says_when_to_retry(action, amounts, period_s):
    limits = Limits()
    per_key, _ = amounts
    for _ in range(per_key):
        limits.check(action, "writer-a", "10.0.0.1")
    with pytest.raises(LimitExceeded) as refused:
        limits.check(action, "writer-a", "10.0.0.1")
    assert refused.value.action == action and refused.value.limit == per_key
    assert 0 < refused.value.retry_after_s <= period_s
    limits.check(action, "writer-b", "10.0.0.2")  # another writer elsewhere is not affected
    for lang in ("ko", "en"):
        message = limit_text.limit_message(lang, refused.value)
        assert str(per_key) in message and str(refused.value.retry_after_s) in message


def test_many_keys_from_one_address_hit_the_address_limit():
    limits = Limits(Rates(paragraph=(2, 5)))
    for i in range(5):
        limits.check("paragraph", f"writer-{i}", "10.0.0.9")
    with pytest.raises(LimitExceeded) as refused:
        limits.check("paragraph", "writer-new", "10.0.0.9")
    assert refused.value.limit == 5
    limits.check("paragraph", "writer-new", "10.0.0.10")


def test_a_refused_request_does_not_count():
    limits = Limits(Rates(story=(1, 10)))
    limits.check("story", "w", "ip")
    for _ in range(5):
        with pytest.raises(LimitExceeded):
            limits.check("story", "w", "ip")
    for i in range(9):  # the address still has 9 left: the 5 refusals were not counted against it
        limits.check("story", f"other-{i}", "ip")


def test_alternatives_count_each_candidate():
    limits = Limits(Rates(candidates=(4, 40)))
    limits.check("candidates", "w", "ip", cost=3)
    with pytest.raises(LimitExceeded):
        limits.check("candidates", "w", "ip", cost=2)
    limits.check("candidates", "w", "ip", cost=1)


def test_model_slots_cap_jobs_waiting_or_running_per_writer_and_free_when_a_job_ends():
    limits = Limits()
    per_key, per_ip = MODEL_SLOTS
    with limits.model_slot("w", "ip"), limits.model_slot("w", "ip"):
        with pytest.raises(LimitExceeded) as refused:
            with limits.model_slot("w", "ip"):
                pass
        assert refused.value.action == "model_slots" and refused.value.limit == per_key
        assert "2" in limit_text.limit_message("en", refused.value)
    with limits.model_slot("w", "ip"):  # both came back
        pass


def test_a_failing_job_gives_its_model_slot_back():
    limits = Limits(Rates(model_slots=(1, 1)))
    with pytest.raises(RuntimeError):
        with limits.model_slot("w", "ip"):
            raise RuntimeError("the model broke")
    with limits.model_slot("w", "ip"):
        pass


def test_model_slots_hold_across_threads():
    limits = Limits(Rates(model_slots=(2, 100)))
    entered, release, refused = threading.Barrier(3), threading.Event(), []

    def job():
        with limits.model_slot("w", "ip"):
            entered.wait()
            release.wait(5)

    workers = [threading.Thread(target=job) for _ in range(2)]
    for w in workers:
        w.start()
    entered.wait()
    try:
        limits.take_model_slot("w", "ip")
    except LimitExceeded:
        refused.append(True)
    release.set()
    for w in workers:
        w.join()
    assert refused == [True]


def test_a_context_past_the_documented_maximum_is_refused_with_its_length():
    limits = Limits()
    limits.check_context("가" * MAX_CONTEXT_CHARS)
    with pytest.raises(LimitExceeded) as refused:
        limits.check_context("가" * (MAX_CONTEXT_CHARS + 1))
    message = limit_text.limit_message("ko", refused.value, length=MAX_CONTEXT_CHARS + 1)
    assert f"{MAX_CONTEXT_CHARS:,}" in message and f"{MAX_CONTEXT_CHARS + 1:,}" in message


def test_a_long_story_is_cut_to_its_last_paragraphs_for_the_model():
    limits = Limits(Rates(max_context_chars=25))
    assert limits.tail_context(["a" * 10, "b" * 10, "c" * 10]) == ["b" * 10, "c" * 10]
    assert limits.tail_context(["x" * 100]) == ["x" * 25]


def test_limits_can_share_a_storage_named_by_uri(monkeypatch):
    monkeypatch.setenv("RELAY_LIMITS_STORAGE", "memory://")
    Limits().check("paragraph", "w", "ip")
    monkeypatch.setenv("RELAY_LIMITS_STORAGE", "nosuchscheme://x")
    with pytest.raises(Exception, match="(?i)nosuchscheme|storage"):
        Limits()


def test_every_limit_has_a_korean_and_an_english_message():
    for key, (ko, en) in limit_text.TEXT.items():
        assert ko and en and ko != en, key
    for action in ("paragraph", "story", "model_turn", "candidates", "writer_key", "model_slots", "context"):
        assert f"limit_{action}" in limit_text.TEXT


def test_the_client_address_comes_from_the_proxy_only_when_one_is_trusted(monkeypatch):
    request = SimpleNamespace(headers={"x-forwarded-for": "6.6.6.6, 1.2.3.4"}, client=SimpleNamespace(host="10.0.0.1"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("RELAY_TRUSTED_PROXIES", raising=False)
    assert client_ip(request) == "10.0.0.1"  # a client cannot pick its own address
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "1")
    assert client_ip(request) == "1.2.3.4"  # the entry our proxy added, not the one the client sent
    assert client_ip(None) == "unknown"


def test_toast_text_escapes_every_value_but_keeps_numbers_formattable():
    payload = '<img src=//evil.example/x><form action=//evil.example><button>로그인</button></form>'
    message = toast_text("en", "ai_busy", holder=payload)
    assert "<img" not in message and "<form" not in message and "&lt;img src=//evil.example/x&gt;" in message
    assert "<b>" in toast_text("ko", "ai_busy_status", holder="x")  # our own markup stays
    assert "3.5초" in toast_text("ko", "last_seed", seed=1, tokens=2, seconds=3.5, stopped="<i>")
    assert "&lt;i&gt;" in toast_text("ko", "last_seed", seed=1, tokens=2, seconds=3.5, stopped="<i>")
    assert "&lt;b&gt;" in toast_text("en", "name_taken", name="<b>alice</b>")
