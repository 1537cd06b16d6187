"""Model turns as server-side jobs: once started, a turn runs to its end whatever happens to the tab
that asked for it.

A browser tab can close, reload or lose the network mid-stream; the model's turn belongs to the
story, so it must not stop with the tab (only the writer's stop or discard, or their limits, stop
it). `TurnJobs` runs each turn in a thread of its own; the page's handler only follows the job's
progress, and a handler that goes away (its generator closed with the tab) leaves the job running.
A reloaded tab, or another tab of the same writer, follows the same job where it is.

Jobs are keyed by story and writer (`job_key`), the same key the stop and discard buttons use, so
any tab of that writer can stop what another of their tabs started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from relay.story_store import writer_id_of

log = logging.getLogger(__name__)

FOLLOW_WAIT_S = 1.0  # a follower re-checks at least this often (a missed wake-up costs at most this)


def job_key(story_id: int, name: str, writer_key: str | None) -> str:
    """Whose turn on which story: the writer's public id when they have a key, else their name."""
    who = writer_id_of(writer_key) if writer_key else f"name:{name}"
    return f"{int(story_id)}:{who}"


class TurnJob:
    """One model turn running in its own thread: its latest progress, for any number of followers.

    Progress is (texts so far, None) while the model writes, then (final texts, suggestion info).
    """

    def __init__(self, key: str):
        self.key = key
        self._cond = threading.Condition()
        self._version = 0
        self._progress: tuple[list[str], dict | None] = ([], None)
        self._error: BaseException | None = None
        self._finished = False

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._finished

    def publish(self, texts: list[str], done: dict | None) -> None:
        with self._cond:
            self._progress = (list(texts), done)
            self._version += 1
            self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._error = error
            self._finished = True
            self._cond.notify_all()

    def follow(self) -> Iterator[tuple[list[str], dict | None]]:
        """The job's progress as it changes (only the latest state: a slow follower skips what it missed),
        ending when the job does; the job's error, if any, is raised here. Closing this iterator leaves
        the job running."""
        seen = 0
        while True:
            with self._cond:
                if self._version == seen and not self._finished:
                    self._cond.wait(FOLLOW_WAIT_S)
                version, progress, finished, error = self._version, self._progress, self._finished, self._error
            if version != seen:
                seen = version
                yield progress
            if finished and version == seen:
                if error is not None:
                    raise error
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)


class TurnJobs:
    """The running model turns of this process, at most one per story and writer."""

    def __init__(self):
        self._jobs: dict[str, TurnJob] = {}
        self._lock = threading.Lock()

    def running(self, key: str) -> TurnJob | None:
        with self._lock:
            job = self._jobs.get(key)
        return job if job is not None and not job.finished else None

    def start(self, key: str, work: Callable[[], Iterator[tuple[list[str], dict | None]]],
              held: AbstractContextManager | None = None, *, on_end: Callable[[], None] | None = None) -> TurnJob:
        """Run `work()` (a generator of progress) to its end in a new thread and return its job.

        `held` (already entered, e.g. the writer's model slot) is exited when the job ends, so it is held
        for the job's whole life; `on_end` runs then too. RuntimeError if this writer's job on the story
        is still running.
        """
        job = TurnJob(key)
        with self._lock:
            current = self._jobs.get(key)
            if current is not None and not current.finished:
                raise RuntimeError(f"a model turn is already running for {key}")
            self._jobs[key] = job
        thread = threading.Thread(target=self._run, args=(job, work, held, on_end), name=f"relay-turn-{key}",
                                  daemon=True)
        thread.start()
        return job

    def _run(self, job: TurnJob, work, held, on_end) -> None:
        error: BaseException | None = None
        try:
            for texts, done in work():
                job.publish(texts, done)
        except BaseException as e:  # handed to the followers, who show it
            error = e
        finally:
            try:
                if held is not None:
                    held.__exit__(None, None, None)
                if on_end is not None:
                    on_end()
            except Exception:
                log.exception("ending model turn %s", job.key)
            with self._lock:
                if self._jobs.get(job.key) is job:
                    del self._jobs[job.key]
            job.finish(error)
