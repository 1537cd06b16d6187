"""Who runs in the next step: one batcher thread per model variant serves every writer at once.

Every step it runs, in one call of the runtime, the next token of every candidate being written and the next
piece of every story still being read, then picks each candidate's next id under its own request's rules and
seed (`TokenPicker`). The runtime does the ragged batching (one row per sequence, each with its own length and
cache blocks); the batcher only says who is in the step. A row's logits are bit for bit the same alone, beside
others or read in other pieces (checked on the real architecture), so a seed gives the same text however busy
the server is. A request (`_Job`) waits, in arrival order, until the pool (pool.py) has blocks for it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

import numpy as np

from relay.backends.base import BackendError, GenerationRequest, TokenPicker
from relay.backends.openvino.pool import KV_MB_ENV, _Pool

log = logging.getLogger(__name__)

# While another writer's candidates are being written, a story is read this many positions per step, so their
# next tokens come every ~50 ms instead of waiting for the whole story (a multiple of the cache block size).
PREFILL_CHUNK = 128


class _Row:
    """One candidate inside the batch: its cache blocks (in position order) and how many positions they hold."""

    def __init__(self, blocks: list[int], length: int):
        self.blocks = blocks
        self.length = length


class _Job:
    """One GenerationRequest inside a batcher: n candidates continuing one prompt.

    Once `_Batcher.run` has queued it, only the batcher thread works on it (reads the prompt, picks ids, calls
    the engine back); the writer's thread waits for `finished` and may set `closed` to cancel."""

    def __init__(self, request: GenerationRequest, picker: TokenPicker):
        self.request, self.picker = request, picker
        self.prompt, self.n, self.limit = list(request.prompt), request.n, request.settings.max_new_tokens
        self.rows: list[_Row] = []  # one reading row until the prompt is read, then n
        self.read = 0  # prompt positions whose keys and values are in the cache
        self.written = 0  # steps of ids picked
        self.next_ids: list[int] | None = None  # the ids to run at the next step
        self.spare: list[int] = []  # blocks taken for candidates 2..n until the prompt is read
        self.error: BaseException | None = None
        self.closed = False
        self.finished = threading.Event()  # set by the batcher once it has let go of the job


class _Batcher:
    """Runs one compiled model for every writer at once: one thread, one infer request, one block pool.

    The thread also picks every job's ids (`TokenPicker`) and calls the engine back (`on_tokens`) between
    steps (~0.7 ms a candidate), so a step needs no hand-over between threads."""

    def __init__(self, compiled, budget_bytes: int, name: str, blocks: int | None = None):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.pool = _Pool(compiled, self.request, budget_bytes, blocks)
        self.cond = threading.Condition()
        self.waiting: deque[_Job] = deque()  # not yet given cache blocks, in arrival order
        self.active: list[_Job] = []
        self.stopped = False
        self.steps = 0
        self.widest = 0  # the most sequences one step carried
        self.thread = threading.Thread(target=self._run, name=f"openvino-batcher-{name}", daemon=True)
        self.thread.start()

    # -- the writer's side (any thread) --

    def run(self, request: GenerationRequest) -> None:
        """Generate `request` in the batch; returns when it is finished, or at once (after the batcher has let go
        of it) when `request.cancelled()`."""
        job = _Job(request, TokenPicker(request))
        with self.cond:
            if self.stopped:
                raise BackendError("the openvino backend was closed")
            self.waiting.append(job)
            self.cond.notify_all()
        while not job.finished.wait(0.05):
            if not self.thread.is_alive():
                raise BackendError("the openvino backend's batcher stopped; restart the app")
            if request.cancelled():  # e.g. while the story is still waiting or being read
                with self.cond:
                    job.closed = True
                    self.cond.notify_all()
                job.finished.wait()
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join(timeout=10)

    # -- the batcher thread --

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception as error:  # noqa: BLE001  a bug here must not leave writers waiting forever
                log.exception("the openvino batcher failed; failing the turns in progress")
                with self.cond:
                    for job in list(self.waiting) + self.active:
                        job.error = BackendError(f"the openvino backend failed: {error}")
                        job.finished.set()
                    self.waiting.clear()
                    self.active.clear()
                    self.pool.reset()

    def _step(self) -> bool:
        """Run one step for every job with input; False once the batcher is closed."""
        with self.cond:
            while True:
                if self.stopped:
                    for job in list(self.waiting) + self.active:
                        job.error = job.error or BackendError("the openvino backend was closed")
                        job.finished.set()
                    return False
                self._admit()
                entries = self._step_entries()
                if entries:
                    break
                self.cond.wait()
        try:
            logits = self._infer(entries)
        except Exception as error:  # noqa: BLE001  handed to every writer in the step
            log.exception("openvino step failed")
            with self.cond:
                for job in {id(entry[0]): entry[0] for entry in entries}.values():
                    job.error = BackendError(f"the openvino backend failed: {error}")
                    job.closed = True
            return True
        with self.cond:
            served = self._deliver(entries, logits)
        for job, job_logits in served:
            self._advance(job, job_logits)
        return True

    def _advance(self, job: _Job, logits) -> None:
        """Pick the job's next ids and hand them (and their probabilities) to the engine; the job ends when every candidate is finished,
        at max_new_tokens, or on a cancel (on_tokens then says all are finished)."""
        try:
            ids = job.picker.pick(logits)
            if job.picker.probs is not None:  # the step's probabilities, recorded by the picker from these logits
                job.request.on_probs(job.picker.probs)
            done = job.request.on_tokens(ids)
            job.written += 1
            if all(done) or job.written >= job.limit:
                job.closed = True
            else:
                job.next_ids = ids
        except BaseException as error:  # noqa: BLE001  the writer's thread raises it
            job.error, job.closed = error, True

    def _blocks_needed(self, job: _Job, kept: int) -> int:
        size = self.pool.size
        total = -(-(len(job.prompt) + job.limit) // size)  # every block one candidate's positions need
        shared = len(job.prompt) // size  # whole prompt blocks: one copy for all candidates
        return total - kept + (job.n - 1) * (total - shared)

    def _admit(self) -> None:
        """Give waiting jobs their cache blocks, in arrival order, while the pool has room; free finished jobs."""
        for job in [job for job in self.active if job.closed]:
            self.active.remove(job)
            for block in [block for row in job.rows for block in row.blocks] + job.spare:
                self.pool.release(block)
            job.finished.set()
        while self.waiting:
            job = self.waiting[0]
            if job.closed:
                self.waiting.popleft()
                job.finished.set()
                continue
            size = self.pool.size
            kept = self.pool.kept_prefix(job.prompt, (len(job.prompt) - 1) // size)  # read >= 1 id: its logits
            need = self._blocks_needed(job, len(kept))
            if need + len(kept) > self.pool.count:
                self.waiting.popleft()
                job.error = BackendError(
                    f"the story and max_new_tokens need {need + len(kept)} KV cache blocks, more than the openvino "
                    f"backend's pool of {self.pool.count}; raise {KV_MB_ENV} (now {self.pool.count} blocks)")
                job.finished.set()
                continue
            for block in kept:  # held first, so taking fresh blocks cannot give them up
                self.pool.hold(block)
            if need > self.pool.available():
                for block in kept:
                    self.pool.release(block)
                return  # it waits for blocks; later jobs wait behind it
            self.waiting.popleft()
            total = -(-(len(job.prompt) + job.limit) // size)
            first = _Row(kept + [self.pool.take() for _ in range(total - len(kept))], len(kept) * size)
            job.rows = [first]
            job.read = job.request.cached_tokens = first.length
            job.spare = [self.pool.take() for _ in range(need - (total - len(kept)))]  # the other candidates' blocks
            self.active.append(job)

    def _step_entries(self) -> list[tuple]:
        """(job, row, ids, past length) for every sequence that has input now."""
        entries = []
        writing = any(job.read == len(job.prompt) for job in self.active if not job.closed)
        for job in self.active:
            if job.closed:
                continue
            if job.read < len(job.prompt):
                end = min(len(job.prompt), job.read + PREFILL_CHUNK) if writing else len(job.prompt)
                entries.append((job, 0, job.prompt[job.read:end], job.read))
            elif job.next_ids is not None:
                for index, row in enumerate(job.rows):
                    entries.append((job, index, [job.next_ids[index]], row.length))
                job.next_ids = None
        return entries

    def _infer(self, entries) -> "np.ndarray":
        size = self.pool.size
        lengths = [len(ids) for _, _, ids, _ in entries]
        begins = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        tables = [job.rows[row].blocks[:-(-(past + len(ids)) // size)] for job, row, ids, past in entries]
        inputs = {
            "input_ids": np.fromiter((i for _, _, ids, _ in entries for i in ids), dtype=np.int64),
            "position_ids": np.concatenate([np.arange(past, past + len(ids)) for _, _, ids, past in entries]),
            "logits_indices": (begins[1:] - 1).astype(np.int64),
            "past_lens": np.array([past for *_, past in entries], dtype=np.int32),
            "subsequence_begins": begins,
            "block_indices": np.concatenate(tables).astype(np.int32),
            "block_indices_begins": np.concatenate([[0], np.cumsum([len(t) for t in tables])]).astype(np.int32),
            "max_context_len": np.array(max(past + len(ids) for _, _, ids, past in entries), dtype=np.int32),
        }
        logits = self.request.infer(inputs)["logits"]
        self.steps += 1
        self.widest = max(self.widest, len(entries))
        return np.array(logits)

    def _deliver(self, entries, logits) -> list[tuple[_Job, "np.ndarray"]]:
        """Book the step: each job's rows' logits [n, vocab]; a job whose prompt is now read fans out into its n
        candidates."""
        served: dict[int, _Job] = {}
        rows: dict[int, dict[int, "np.ndarray"]] = {}
        size = self.pool.size
        for (job, row, ids, past), row_logits in zip(entries, logits):
            if job.closed:
                continue
            if job.read < len(job.prompt):  # a piece of the prompt was read
                job.read = job.rows[0].length = past + len(ids)
                for index in range(past // size, job.read // size):  # whole blocks read as prompt: keep them
                    if index * size >= job.request.cached_tokens:
                        self.pool.keep(job.rows[0].blocks[index], job.prompt, index)
                if job.read == len(job.prompt):
                    self._fan_out(job)
                    rows[id(job)] = {index: row_logits for index in range(job.n)}
                    served[id(job)] = job
            else:
                job.rows[row].length += 1
                rows.setdefault(id(job), {})[row] = row_logits
                served[id(job)] = job
        return [(job, np.stack([rows[key][index] for index in range(job.n)])) for key, job in served.items()]

    def _fan_out(self, job: _Job) -> None:
        """Candidates 2..n share the read prompt's whole blocks and get a copy of its last, partial one."""
        first, size = job.rows[0], self.pool.size
        shared = len(job.prompt) // size
        own = len(first.blocks) - shared
        for _ in range(job.n - 1):
            blocks = first.blocks[:shared] + [job.spare.pop() for _ in range(own)]
            for block in first.blocks[:shared]:
                self.pool.hold(block)
            if len(job.prompt) % size:
                self.pool.copy(first.blocks[shared], blocks[shared])
            job.rows.append(_Row(blocks, len(job.prompt)))
