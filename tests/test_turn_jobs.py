"""Model turns as server-side jobs (relay/turn_jobs.py): a turn runs to its end whoever follows it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from relay.turn_jobs import TurnJobs, job_key


def counting(n: int, gate: threading.Event | None = None, delay: float = 0.0):
    """Work that writes n words, one at a time, then finishes with its suggestion info."""
    def work():
        text = ""
        for i in range(n):
            if gate is not None:
                gate.wait(5)
            time.sleep(delay)
            text += f"{i} "
            yield [text], None
        yield [text], {"candidate_id": "c1"}
    return work


def test_a_follower_sees_the_progress_and_then_the_finished_suggestion():
    job = TurnJobs().start("1:w", counting(5))
    seen = list(job.follow())
    assert seen[-1] == (["0 1 2 3 4 "], {"candidate_id": "c1"})
    assert job.finished


def test_a_job_runs_to_its_end_when_its_follower_goes_away():
    jobs = TurnJobs()
    job = jobs.start("1:w", counting(20, delay=0.01))
    follower = job.follow()
    next(follower)
    follower.close()  # the tab that asked was closed
    assert job.wait(10)
    assert jobs.running("1:w") is None


def test_a_second_follower_joins_the_same_job_where_it_is():
    jobs, gate = TurnJobs(), threading.Event()
    job = jobs.start("1:w", counting(3, gate=gate))
    assert jobs.running("1:w") is job  # a reloaded tab finds the running turn by story and writer
    gate.set()
    assert list(job.follow())[-1] == (["0 1 2 "], {"candidate_id": "c1"})


def test_the_same_writer_cannot_run_two_jobs_on_one_story_at_once():
    jobs, gate = TurnJobs(), threading.Event()
    jobs.start("1:w", counting(2, gate=gate))
    with pytest.raises(RuntimeError):
        jobs.start("1:w", counting(1))
    jobs.start("2:w", counting(1)).wait(5)  # another story is another turn
    gate.set()


def test_what_the_job_holds_is_given_back_when_it_ends_even_on_an_error():
    released = []

    @contextmanager
    def slot():
        yield
        released.append(True)

    held = slot()
    held.__enter__()

    def failing():
        yield ["a"], None
        raise ValueError("model failed")

    job = TurnJobs().start("1:w", failing, held, on_end=lambda: released.append("end"))
    with pytest.raises(ValueError):
        list(job.follow())
    assert released == [True, "end"]


def test_jobs_are_keyed_by_the_writers_key_not_by_their_tab():
    assert job_key(3, "민지", None) == "3:name:민지"
    from relay.store.validation import new_writer_key

    key = new_writer_key()
    assert job_key(3, "민지", key) == job_key(3, "다른 이름", key) != job_key(3, "민지", new_writer_key())
