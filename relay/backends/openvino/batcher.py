"""Who runs in the next step: one batcher thread per compiled model (the base, the LoRA graph) serves every writer.

Every step it runs, in one call of the runtime, the next token of every candidate being written and a piece
of every story still being read, then picks each candidate's next id under its own request's rules and seed
(`TokenPicker`). The runtime does the ragged batching (one row per sequence, each with its own length and cache
blocks); the batcher only says who is in the step (`_step_entries`, `reading_pieces`): every writing row, and
pieces of the stories being read within a budget of STEP_TOKENS positions, shared so that stories read at the
same time finish together (then their writers decode side by side at the same pace) and a short read finishes
within a step or two. A row's logits are bit for bit the same alone, beside others or read in other pieces
(checked on the real architecture), so a seed gives the same text however busy the server is. A request
(`_Job`) waits, in arrival order, until the pool (pool.py) has blocks for it. `StepClock` says where the
thread's time goes (for benchmarks/bench_writers.py). The LoRA graph's batcher serves every adapter in the same
steps: each position's row of lora_mask (lora.py) says whose low-rank update it gets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, fields, replace
from itertools import chain
from types import SimpleNamespace

import numpy as np

from relay.backends.base import BackendError, GenerationRequest
from relay.backends.openvino.pool import KV_MB_ENV, SCRATCH_POSITIONS, _Pool
from relay.backends.picker import TokenPicker

log = logging.getLogger(__name__)

# Positions one step carries at most: every writing row's next token first (never left out), then pieces of the
# stories being read. Bounds the pause a reading puts between a writer's tokens (~0.1 s on 2 cores) and lets a
# story that arrives while others are read join them after one step. OpenVINO GenAI's default is also 256.
STEP_TOKENS = 256
# A story read alone, with nobody writing or waiting, reads this many times STEP_TOKENS a step after its first
# step (longer calls read faster: a 900-token story's first token ~0.2 s against ~0.22). Not from its first
# step: stories that arrive together (a few ms apart) join it at the second step and share it level.
LONE_STEPS = 2
# While few stories are read at once, each gets at least this many positions of every step (a cache block at
# least), so a short read (a next turn: the new paragraph on top of kept blocks) starts writing within a step or two.
MIN_PIECE = 32
# Rows of logits a reader's call computes at least (repeating the last story's): see _Batcher._infer.
READ_LOGITS = 8
# The bf16 kernels read a call of a multiple of this many positions fastest (a story's 244-position last piece
# takes as long as 256 with 12 more); a reader's call is padded up to one when that adds at most a third.
READ_ALIGN = 128
# Positions a reader's call carries at least (padded): bf16's matrix kernels compute a call of 1-4 positions
# otherwise than one of 5 or more, keys and values included.
READ_LEAST = 8
# Positions a story's piece has at least, unless the story has fewer left: the attention computes a lone new
# position (its one-query kernel, a writer's step) otherwise than one among others, keys and values included.
LEAST_PIECE = 2


def reading_pieces(remaining: list[int], budget: int, block: int) -> list[int]:
    """How many positions of each story being read (`remaining` each, in arrival order) the next step reads.

    Pieces are whole cache blocks (but the one that ends a story): with the int8 cache the CPU plugin gives the
    same logits only when a story is read in the same blocks, whoever else is in the step (a piece that ends
    inside a block changes the next piece's logits). Each story gets MIN_PIECE while that takes at most half the
    budget; the rest goes to the stories with the most left, bringing them down to one level, so stories that
    arrive together (or a step apart) finish reading together. At least one block is read per step."""
    blocks = [-(-left // block) for left in remaining]
    shares = _level(blocks, max(budget // block, 1), max(MIN_PIECE // block, 1))
    return [min(share * block, left) for share, left in zip(shares, remaining)]


def _level(remaining: list[int], budget: int, least: int) -> list[int]:
    """Shares of `budget` (whole units): `least` each while that takes at most half of it, then the largest
    remainders brought down to one level."""
    shares = [0] * len(remaining)
    if sum(1 for left in remaining if left) * least * 2 <= budget:
        shares = [min(left, least) for left in remaining]
        budget -= sum(shares)
    left = [total - share for total, share in zip(remaining, shares)]
    order = sorted(range(len(left)), key=lambda i: -left[i])
    taken = 0  # sum of left over order[:k]
    for k, index in enumerate(order, start=1):
        taken += left[index]
        below = left[order[k]] if k < len(order) else 0
        if taken - k * below >= budget:  # the k with the most left come down to one level, >= `below`
            level = (taken - budget) // k
            over = taken - k * level - budget  # < k: the earliest arrivals among equals get the extra unit
            for rank, top in enumerate(order[:k]):
                shares[top] += left[top] - level - (rank >= k - over)
            return shares
    return [share + rest for share, rest in zip(shares, left)]  # every story finishes in this step


@dataclass
class StepClock:
    """Where the batcher thread's time goes: perf_counter sums in seconds, steps run and ids picked."""

    steps: int = 0
    ids: int = 0  # ids picked: one per writing candidate per step
    plan: float = 0.0  # admitting jobs, choosing the step's rows
    inputs: float = 0.0  # building the runtime's inputs
    infer: float = 0.0  # the runtime's infer call
    book: float = 0.0  # booking the step: lengths, kept blocks, fan-out
    pick: float = 0.0  # TokenPicker.pick, its probabilities included
    engine: float = 0.0  # the engine's callbacks (on_probs, on_tokens): stop rules, text, streaming

    def since(self, earlier: "StepClock") -> "StepClock":
        return replace(self, **{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)})

    def outside_infer(self) -> float:
        """Seconds of the thread's work outside the runtime's infer call."""
        return self.plan + self.inputs + self.book + self.pick + self.engine

    def summary(self) -> str:
        per = 1000 / max(self.ids, 1)
        parts = ", ".join(f"{name} {getattr(self, name) * per:.3f}" for name in
                          ("plan", "inputs", "book", "pick", "engine", "infer"))
        return (f"{self.steps} steps, {self.ids} ids; ms per id: outside infer {self.outside_infer() * per:.3f} "
                f"({parts})")


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


class _ReadProbe:
    """Stands in for a job in `_Batcher._reader_keeps_seeds`: what `_infer` reads of one (its story, blocks)."""

    def __init__(self, prompt: list[int], blocks: list[int]):
        self.prompt = prompt
        self.rows = [_Row(blocks, 0)]
        self.request = SimpleNamespace(adapter=None)  # the base model's rows (a LoRA graph's lora_mask: none)


class _Batcher:
    """Runs one compiled model for every writer at once: one thread, one infer request, one block pool.

    The thread also picks every job's ids (`TokenPicker`) and calls the engine back (`on_tokens`) between
    steps, so a step needs no hand-over between threads; `clock` sums where its time goes."""

    def __init__(self, compiled, budget_bytes: int, name: str, blocks: int | None = None, adapters=None,
                 reader=None):
        """adapters: the `AdapterSet` bound into a LoRA graph (each step then gets its lora_mask), else None.
        reader: the same graph compiled to read stories (in bf16 where the CPU has it), else None: stories are
        read by `compiled` in the writers' step."""
        self.compiled = compiled
        self.adapters = adapters
        self.request = compiled.create_infer_request()
        self.pool = _Pool(compiled, self.request, budget_bytes, blocks)
        self.reader = None
        if reader is not None:  # its own infer request on the same cache blocks
            self.reader = reader.create_infer_request()
            self.pool.bind(self.reader)
        self.cond = threading.Condition()
        self.waiting: deque[_Job] = deque()  # not yet given cache blocks, in arrival order
        self.active: list[_Job] = []
        self.stopped = False
        self.steps = 0
        self.widest = 0  # the most sequences one step carried
        self.clock = StepClock()
        self.padding = (None, 0, [0], 0)  # a one-id row in the pool's scratch blocks (see _infer)
        self.padding_rows = [_Row(self.pool.scratch, 0)]
        if self.reader is not None and not self._reader_keeps_seeds():
            log.warning("openvino: on this CPU a story read in bf16 gets other logits beside other stories; "
                        "stories are read in f32 (seeds hold, first tokens come slower)")
            self.reader = None
        self.clock = StepClock()  # the check's runtime calls are not work anyone asked for
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
        clock = self.clock
        with self.cond:
            while True:
                if self.stopped:
                    for job in list(self.waiting) + self.active:
                        job.error = job.error or BackendError("the openvino backend was closed")
                        job.finished.set()
                    return False
                started = time.perf_counter()
                self._admit()
                entries = self._step_entries()
                clock.plan += time.perf_counter() - started
                if entries:
                    break
                self.cond.wait()
        try:
            results = [(part, self._infer(part, reading)) for part, reading in self._calls(entries)]
        except Exception as error:  # noqa: BLE001  handed to every writer in the step
            log.exception("openvino step failed")
            with self.cond:
                for job in {id(entry[0]): entry[0] for entry in entries}.values():
                    job.error = BackendError(f"the openvino backend failed: {error}")
                    job.closed = True
            return True
        clock.steps += 1
        self.steps += 1  # a step: one or two runtime calls (the writers', the reader's)
        self.widest = max(self.widest, len(entries))
        started = time.perf_counter()
        with self.cond:
            served = [job_logits for part, logits in results for job_logits in self._deliver(part, logits)]
        clock.book += time.perf_counter() - started
        for job, job_logits in served:
            self._advance(job, job_logits)
        started = time.perf_counter()
        for job, _ in served:  # after the first ids are out, before anyone writes in the tail's block
            if job.written == 1:
                self._keep_tail(job)
        clock.book += time.perf_counter() - started
        return True

    def _advance(self, job: _Job, logits) -> None:
        """Pick the job's next ids and hand them (and their probabilities) to the engine; the job ends when every
        candidate is finished, at max_new_tokens, or on a cancel (on_tokens then says all are finished)."""
        clock = self.clock
        try:
            started = time.perf_counter()
            ids = job.picker.pick(logits)
            picked = time.perf_counter()
            clock.pick += picked - started
            clock.ids += len(ids)
            if job.picker.probs is not None:  # the step's probabilities, recorded by the picker from these logits
                job.request.on_probs(job.picker.probs)
            done = job.request.on_tokens(ids)
            clock.engine += time.perf_counter() - picked
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
            # Read LEAST_PIECE ids at least: the last one's logits, and no lone position (see _step_entries).
            most = len(job.prompt) - min(LEAST_PIECE, len(job.prompt))
            kept = self.pool.kept_prefix(job.prompt, most // size, job.request.adapter)
            need = self._blocks_needed(job, len(kept))
            if need + len(kept) > self.pool.count:
                self.waiting.popleft()
                job.error = BackendError(
                    f"the story and max_new_tokens need {need + len(kept)} KV cache blocks, more than the openvino "
                    f"backend's pool of {self.pool.count}; raise {KV_MB_ENV} (now {self.pool.count} blocks)")
                job.finished.set()
                continue
            # The kept block holding the most of the next block's first ids: copied into the job's own block.
            part = self.pool.kept_part(job.prompt, len(kept), most - len(kept) * size, job.request.adapter)
            for block in kept + ([part[0]] if part else []):  # held first: taking fresh blocks cannot give them up
                self.pool.hold(block)
            if part and need > self.pool.available():  # the pool is that full: read those positions again
                self.pool.release(part[0])
                part = None
            if need > self.pool.available():
                for block in kept:
                    self.pool.release(block)
                return  # it waits for blocks; later jobs wait behind it
            self.waiting.popleft()
            total = -(-(len(job.prompt) + job.limit) // size)
            first = _Row(kept + [self.pool.take() for _ in range(total - len(kept))], len(kept) * size)
            if part:
                self.pool.copy(part[0], first.blocks[len(kept)])
                self.pool.release(part[0])
                first.length += part[1]
            job.rows = [first]
            job.read = job.request.cached_tokens = first.length
            job.spare = [self.pool.take() for _ in range(need - (total - len(kept)))]  # the other candidates' blocks
            self.active.append(job)

    def _step_entries(self) -> list[tuple]:
        """(job, row, ids, past length) for every sequence in the next step: each writing candidate's next id,
        then the pieces `reading_pieces` gives the stories being read, within STEP_TOKENS positions."""
        entries, reading = [], []
        for job in self.active:
            if job.closed:
                continue
            if job.read < len(job.prompt):
                reading.append(job)
            elif job.next_ids is not None:
                for index, row in enumerate(job.rows):
                    entries.append((job, index, job.next_ids[index:index + 1], row.length))
                job.next_ids = None
        budget = max(STEP_TOKENS - len(entries), MIN_PIECE)
        alone = not entries and len(reading) == 1 and not self.waiting
        if alone and reading[0].read > reading[0].request.cached_tokens:  # and since its first step
            budget = LONE_STEPS * STEP_TOKENS
        size = self.pool.size
        # From the block's start: a story whose kept part ends inside a block reads to that block's end first.
        remaining = [len(job.prompt) - job.read + job.read % size for job in reading]
        for job, piece in zip(reading, reading_pieces(remaining, budget, size)):
            left, piece = len(job.prompt) - job.read, piece - job.read % size
            if piece <= 0:
                continue
            if piece < LEAST_PIECE <= left:  # a kept part ending a position short of a block's end
                piece = min(piece + size, left)
            if 0 < left - piece < LEAST_PIECE:  # never leave a lone position for the next step
                piece = left
            entries.append((job, 0, job.prompt[job.read:job.read + piece], job.read))
        return entries

    def _reader_keeps_seeds(self) -> bool:
        """Whether this CPU's bf16 kernels keep a story's first logits independent of the call, as measured where
        the reader was built (keys and values the same whatever else is read; 1-4 rows of logits rounding
        otherwise than 5+ where weights are decompressed at each call, which READ_LOGITS covers): a story read
        alone in one call, then in whole blocks with its end beside 1, 3 and 8 other stories (the last a call with
        more rows of logits than READ_LOGITS), must give bit for bit the same first logits each time. True
        without trying when the pool lacks the blocks (a test's tiny pool)."""
        size = self.pool.size
        length = 2 * size + 5
        if self.pool.available() < -(-length // size) + 8:
            return True
        rng = np.random.default_rng(7)
        vocab = int(self.compiled.output("logits").get_partial_shape()[-1].get_length())
        story = rng.integers(1, vocab, length).tolist()
        taken = []

        def probe(ids: list[int], blocks: int) -> _ReadProbe:
            taken.extend(self.pool.take() for _ in range(blocks))
            return _ReadProbe(ids, taken[len(taken) - blocks:])

        mine = probe(story, -(-length // size))
        others = [probe(rng.integers(1, vocab, size // 2).tolist(), 1) for _ in range(8)]
        try:
            alone = np.array(self._infer([(mine, 0, story, 0)], reading=True)[0])
            for begin in range(0, length - 5, size):  # whole blocks alone, then the end beside the others
                self._infer([(mine, 0, story[begin:begin + size], begin)], reading=True)
            for count in (1, 3, 8):
                together = self._infer([(mine, 0, story[length - 5:], length - 5)]
                                       + [(other, 0, other.prompt, 0) for other in others[:count]], reading=True)[0]
                if not np.array_equal(alone, together):
                    return False
            return True
        finally:
            for block in taken:
                self.pool.release(block)

    def _calls(self, entries) -> list[tuple[list, bool]]:
        """The runtime calls of a step, (entries, reading): one for every row; with a reader, the writing rows
        (each a next id, first in `entries`) in one and the stories' pieces in the reader's."""
        if self.reader is None:
            return [(entries, False)]
        split = sum(1 for job, *_ in entries if job.read == len(job.prompt))
        return [(part, reading) for part, reading in ((entries[:split], False), (entries[split:], True)) if part]

    def _infer(self, entries, reading: bool = False) -> "np.ndarray":
        """Run the step (with `reading`, the reader's call of the stories' pieces); its logits [sequences, vocab]:
        the runtime's output memory, which pickers may change in place and which the next step overwrites.

        A call of one id (one writer alone) gets a second, padding row: the CPU plugin computes a step of one
        id with other kernels than a step of several, whose logits differ in the last bits, and the int8 cache
        can round that up into another id; with two rows or more a row's logits are the same bit for bit
        whatever else is in the step, so a seed writes the same text alone and beside other writers. In bf16 the
        output matrix's kernel for up to 4 rows of logits rounded otherwise than for 5 or more (with weights
        decompressed at each call; unpacked ones were not seen to, but no kernel promises it), so a reader's call
        where a story ends its reading asks for at least READ_LOGITS rows, repeating its last story's: a story's
        first logits are then the same read alone or beside any number of others, for ~2 % of the call; a call
        where none ends asks for one row. The other matrix kernels do the same with 1-4 positions, keys and
        values included, so a reader's call has READ_LEAST positions at least (a padding row in the scratch
        blocks). The reader's bf16 kernels are fastest on a multiple of READ_ALIGN positions (256 read faster than
        244, and than 257: a one-id padding row slowed reading by a third), so a reader's call is padded up to one
        instead when that adds at most a third."""
        started = time.perf_counter()
        count = len(entries)
        rows_of_logits = None  # every sequence's last position
        if reading:
            positions = sum(len(ids) for _, _, ids, _ in entries)
            pad = -positions % READ_ALIGN
            if not 0 < pad <= min(positions // 3, SCRATCH_POSITIONS):
                pad = max(READ_LEAST - positions, 0)
            if pad:
                entries = [*entries, (None, 0, [0] * pad, 0)]
            if any(past + len(ids) == len(job.prompt) for job, _, ids, past in entries[:count]):
                rows_of_logits = max(READ_LOGITS, len(entries))
            else:  # no story ends its reading here: nobody reads these logits, so one row will do
                rows_of_logits = 1
        elif count == 1 and len(entries[0][2]) == 1:
            entries = [entries[0], self.padding]
        size, rows = self.pool.size, len(entries)
        lengths = np.fromiter((len(ids) for _, _, ids, _ in entries), np.int32, rows)
        pasts = np.fromiter((past for *_, past in entries), np.int32, rows)
        begins = np.zeros(rows + 1, np.int32)
        np.cumsum(lengths, out=begins[1:])
        ends = pasts + lengths
        held = (ends + size - 1) // size  # the blocks each sequence reads and writes in this step
        tables = np.zeros(rows + 1, np.int32)
        np.cumsum(held, out=tables[1:])
        total = int(begins[-1])
        inputs = {
            "input_ids": np.fromiter(chain.from_iterable(ids for _, _, ids, _ in entries), np.int64, total),
            "position_ids": np.arange(total, dtype=np.int64) - np.repeat((begins[:-1] - pasts).astype(np.int64),
                                                                         lengths),
            "logits_indices": _last_positions(begins, rows_of_logits),
            "past_lens": pasts,
            "subsequence_begins": begins,
            "block_indices": np.fromiter(chain.from_iterable(self._rows(job)[row].blocks[:n] for (job, row, _, _), n
                                                             in zip(entries, held.tolist())), np.int32, tables[-1]),
            "block_indices_begins": tables,
            "max_context_len": np.array(ends.max(), dtype=np.int32),
        }
        if self.adapters is not None:  # each position gets its writer's adapter (the padding row: none)
            inputs["lora_mask"] = self.adapters.mask([job.request.adapter if job is not None else None
                                                      for job, *_ in entries], lengths)
        infer = time.perf_counter()
        # The output's own memory, not a copy: every picker is done with it before the next step overwrites it.
        request = self.reader if reading else self.request
        logits = request.infer(inputs, share_inputs=True, share_outputs=True)["logits"][:count]
        done = time.perf_counter()
        self.clock.inputs += infer - started
        self.clock.infer += done - infer
        return logits

    def _rows(self, job: _Job | None) -> list[_Row]:
        return job.rows if job is not None else self.padding_rows

    def _deliver(self, entries, logits) -> list[tuple[_Job, "np.ndarray"]]:
        """Book the step: each job's rows' logits [n, vocab]; a job whose prompt is now read fans out into its n
        candidates (each its own copy of the logits, which pickers change in place)."""
        served: dict[int, tuple[_Job, "np.ndarray"]] = {}
        size = self.pool.size
        for index, (job, row, ids, past) in enumerate(entries):
            if job.closed:
                continue
            if job.read < len(job.prompt):  # a piece of the prompt was read
                job.read = job.rows[0].length = past + len(ids)
                for block in range(past // size, job.read // size):  # whole blocks read as prompt: keep them
                    self.pool.keep(job.rows[0].blocks[block], job.prompt, block, job.request.adapter)
                if job.read == len(job.prompt):
                    self._fan_out(job)
                    served[id(job)] = (job, np.repeat(logits[index:index + 1], job.n, axis=0))
            else:
                job.rows[row].length += 1
                if row == 0:  # a job's rows are consecutive entries, in row order (_step_entries)
                    served[id(job)] = (job, logits[index:index + job.n])
        return list(served.values())

    def _keep_tail(self, job: _Job) -> None:
        """Keep a copy of the read prompt's last, partly filled block (its candidates write on in theirs), when the
        pool has a block to spare (a kept block nobody holds counts: the oldest gives way)."""
        size, adapter = self.pool.size, job.request.adapter
        if not len(job.prompt) % size or self.pool.keeps_tail(job.prompt, adapter) or not self.pool.available():
            return
        copy = self.pool.take()
        self.pool.copy(job.rows[0].blocks[len(job.prompt) // size], copy)
        self.pool.keep_tail(copy, job.prompt, adapter)
        self.pool.release(copy)

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


def _last_positions(begins: "np.ndarray", rows: int | None) -> "np.ndarray":
    """logits_indices: each sequence's last position (`begins` [sequences + 1]); with `rows`, that many, the last
    sequence's repeated past the sequences, or only the first's."""
    last = begins[1:] - 1
    if rows is not None:
        last = np.concatenate([last, np.repeat(last[-1:], max(rows - len(last), 0))])[:rows]
    return last.astype(np.int64)
