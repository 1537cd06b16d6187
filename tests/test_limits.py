"""Limits per writer key and per address (relay/limits.py), their messages, and the escaping of toasts."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from relay.limits import (CANDIDATES_PER_MINUTE, MAX_CONTEXT_CHARS, MODEL_SLOTS, MODEL_TURNS_PER_MINUTE,
                          PARAGRAPHS_PER_MINUTE, STORIES_PER_HOUR, WRITER_KEYS_PER_HOUR, LimitExceeded, Limits, Rates,
                          check_trusted_proxies, client_ip)
from relay.fairness import FairGate, GateFull
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
    for action in ("paragraph", "story", "model_turn", "candidates", "writer_key", "model_slots", "model_busy",
                   "context"):
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


# -- fair model time (relay/fairness.py) ------------------------------------------------------

def _wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class _Jobs:
    """Model jobs on a FairGate, each in its own thread; the test ends them one at a time, oldest first."""

    def __init__(self, gate):
        self.gate, self.granted, self.running, self.threads = gate, [], [], []
        self._lock = threading.Lock()

    def start(self, address):
        def job():
            ticket = self.gate.acquire(address)
            with self._lock:
                self.granted.append(ticket)
                self.running.append(ticket)
        self.threads.append(threading.Thread(target=job))
        self.threads[-1].start()

    def end_oldest(self):
        with self._lock:
            ticket = self.running.pop(0)
        self.gate.release(ticket)

    def drain(self):
        while any(t.is_alive() for t in self.threads) or self.running:
            if self.running:
                self.end_oldest()
            time.sleep(0.002)


def test_a_writer_arriving_during_a_flood_from_ten_addresses_runs_after_one_job_ends():
    gate = FairGate(capacity=2, max_waiting=100, wait_s=30)
    jobs = _Jobs(gate)
    for _ in range(4):  # ten addresses, four jobs each
        for i in range(10):
            jobs.start(f"flood-{i}")
    _wait_until(lambda: len(jobs.granted) == 2 and gate.stats()["waiting"] == 38)
    while len(jobs.granted) < 20:  # the flood runs for a while: every address is served twice
        jobs.end_oldest()
        _wait_until(lambda n=len(jobs.granted): len(jobs.granted) == n + 1)
    jobs.start("victim")
    _wait_until(lambda: gate.stats()["waiting"] == 21)
    jobs.end_oldest()  # one running job ends: the victim goes next, ahead of 20 waiting flood jobs
    _wait_until(lambda: len(jobs.granted) == 21)
    assert jobs.granted[-1] == "victim"
    jobs.drain()
    assert len(jobs.granted) == 41 and gate.stats() == {"running": 0, "waiting": 0}


def test_waiting_addresses_take_turns_and_the_least_recently_served_goes_first():
    gate = FairGate(capacity=1, max_waiting=100, wait_s=30)
    jobs = _Jobs(gate)
    for n, address in enumerate(["a", "a", "a", "a", "b", "c"]):
        jobs.start(address)
        _wait_until(lambda n=n: len(jobs.granted) + gate.stats()["waiting"] == n + 1)
    for n in range(2, 7):
        jobs.end_oldest()
        _wait_until(lambda n=n: len(jobs.granted) == n)
    assert jobs.granted == ["a", "b", "c", "a", "a", "a"]
    jobs.drain()


def test_too_many_waiting_jobs_or_a_long_wait_are_refused_with_the_busy_message():
    limits = Limits(Rates(model_slots=(5, 5), model_jobs=1, model_waiting=1, model_wait_s=1))
    with limits.model_slot("w1", "1.1.1.1"):
        waiter = threading.Thread(target=lambda: pytest.raises(GateFull, limits.gate.acquire, "2.2.2.2"))
        waiter.start()
        _wait_until(lambda: limits.gate.stats()["waiting"] == 1)
        with pytest.raises(LimitExceeded) as refused:  # a second waiter: refused at once
            with limits.model_slot("w3", "3.3.3.3"):
                pass
        assert refused.value.action == "model_busy"
        assert "AI" in limit_text.limit_message("ko", refused.value)
        waiter.join(5)
    with limits.model_slot("w1", "1.1.1.1"):  # everything was given back
        assert limits.gate.stats() == {"running": 1, "waiting": 0}


# -- limits as settings --------------------------------------------------------------------------

def test_every_limit_is_a_setting_with_todays_value_as_default():
    assert Rates.from_env({}) == Rates()
    rates = Rates.from_env({"RELAY_LIMIT_PARAGRAPHS": "10/60", "RELAY_LIMIT_MODEL_JOBS": "4",
                            "RELAY_LIMIT_CONTEXT_CHARS": " 9000 "})
    assert rates.paragraph == (10, 60) and rates.model_jobs == 4 and rates.max_context_chars == 9000
    assert rates.story == STORIES_PER_HOUR
    for bad in ("10", "a/b", "0/5", "5/5/5", "-1/3"):
        with pytest.raises(ValueError, match="RELAY_LIMIT_PARAGRAPHS"):
            Rates.from_env({"RELAY_LIMIT_PARAGRAPHS": bad})
    with pytest.raises(ValueError, match="RELAY_LIMIT_MODEL_JOBS"):
        Rates.from_env({"RELAY_LIMIT_MODEL_JOBS": "4/4"})


def test_a_named_proxy_is_trusted_only_for_connections_that_come_from_it(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    via_proxy = SimpleNamespace(headers={"x-forwarded-for": "6.6.6.6, 1.2.3.4, 10.1.1.1"},
                                client=SimpleNamespace(host="127.0.0.1"))
    assert client_ip(via_proxy) == "1.2.3.4"  # right to left, past the proxies we named
    direct = SimpleNamespace(headers={"x-forwarded-for": "1.2.3.4"}, client=SimpleNamespace(host="203.0.113.9"))
    assert client_ip(direct) == "203.0.113.9"  # not from a named proxy: its header is the client's own words
    monkeypatch.setenv("RELAY_TRUSTED_PROXIES", "nginx.local")
    with pytest.raises(ValueError, match="RELAY_TRUSTED_PROXIES"):
        check_trusted_proxies()
    assert client_ip(direct) == "203.0.113.9"


def test_a_refused_action_does_not_use_up_the_rate():
    limits = Limits(Rates(paragraph=(2, 10)))
    for _ in range(5):  # five paragraphs the store refuses (too long, out of turn...)
        with pytest.raises(ValueError):
            with limits.counted("paragraph", "writer", "1.1.1.1"):
                raise ValueError("refused by the store")
    for _ in range(2):
        with limits.counted("paragraph", "writer", "1.1.1.1"):
            pass
    with pytest.raises(LimitExceeded):
        with limits.counted("paragraph", "writer", "1.1.1.1"):
            pass
