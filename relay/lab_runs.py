"""Measured lab runs and sweeps: many samples written together, then measured (relay/lab_measures.py).

A lab run writes, for each column (settings, adapter, n samples), n samples with the seeds seed, seed+1, ...
Every sample is its own request; one per model variant starts first and, as soon as it has read the story,
all the others start at once (they find the story in the backend's kept prefix): the OpenVINO backend's
batcher writes concurrent requests in one batch (the transformers backend takes them in turn), and `LabRun`
multiplexes their streams so every column grows side by side. A column without a fixed seed takes the run's seed, so
columns differ only by their settings. One request per sample means each sample's seed and settings write
the same text again anywhere (the story's "use these settings" reproduces it).

A sweep varies one knob over a range of points, k samples per point (the same k seeds at every point), in
batches of at most MAX_CONCURRENT requests, and gives rows (point, measure, value) for a plot.

Both are model jobs under the writer's limits (`lab_allowance`): one model slot for the whole run, a model
request, and every sample counted as a lab sample (RELAY_LIMIT_LAB_SAMPLES); a run larger than a writer may
ask for in a minute is refused before anything starts (`LabTooBig`).
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from relay.lab_measures import MEASURES, SampleFacts, best_columns, column_measures, scalar
from relay.settings import SEED_MAX, SamplingSettings, SettingsError

MAX_SAMPLES = 8  # samples per column (one request each)
MAX_COLUMNS = 4
MAX_CONCURRENT = 8  # requests a sweep has in flight at once (the batcher's rows; the process runs 8 jobs)
MAX_SWEEP_POINTS = 10
SWEEP_KNOBS = ("temperature", "top_p", "top_k", "typical_p", "repetition_penalty", "no_repeat_ngram_size",
               "min_new_tokens", "max_new_tokens")
_DONE = object()


class LabTooBig(SettingsError):
    """A lab run or sweep asks for more samples than a writer may ask for in a minute."""

    def __init__(self, samples: int, allowed: int):
        super().__init__("samples", f"표본 {samples}개는 1분에 요청할 수 있는 {allowed}개보다 많습니다. 점이나 표본 수를 "
                                    f"줄이세요 / {samples} samples is more than the {allowed} a writer may ask for in "
                                    f"a minute; use fewer points or samples (RELAY_LIMIT_LAB_SAMPLES sets it).")
        self.samples, self.allowed = samples, allowed


@dataclass(frozen=True)
class LabColumn:
    """One column of a lab run: its settings, how many samples and which adapter (None: the base model)."""

    settings: SamplingSettings
    samples: int = 1
    adapter: str | None = None


@dataclass
class LabSample:
    """One sample while and after it is written."""

    column: int
    index: int
    seed: int
    streamed: str = ""  # what was shown while it was written
    text: str = ""  # its final text (shorter than `streamed` when the stop rule cut an unfinished sentence)
    meta: dict[str, Any] = field(default_factory=dict)
    done: bool = False

    @property
    def shown(self) -> str:
        return self.text if self.done else self.streamed

    @property
    def trimmed_chars(self) -> int:
        """Characters shown while writing that the final text dropped (the stop rule's cut)."""
        return max(0, len(self.streamed) - len(self.text)) if self.done else 0


def check_columns(columns: Sequence[LabColumn], engine) -> None:
    """SettingsError for a run that cannot start: no columns, too many, a bad sample count or adapter."""
    if not 1 <= len(columns) <= MAX_COLUMNS:
        raise SettingsError("columns", f"열은 1~{MAX_COLUMNS}개여야 합니다 / a lab run has 1 to {MAX_COLUMNS} "
                                       f"columns; got {len(columns)}")
    for column in columns:
        n = column.samples
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
            raise SettingsError("samples", f"표본 수는 1~{MAX_SAMPLES}이어야 합니다 / samples must be a whole number "
                                           f"from 1 to {MAX_SAMPLES}; got {n!r}")
        if column.adapter is not None and column.adapter not in engine.adapter_names:
            known = ", ".join(engine.adapter_names) or "없음 / none"
            raise SettingsError("adapter", f"알 수 없는 어댑터 '{column.adapter}' / unknown adapter "
                                           f"{column.adapter!r}; available: {known}")


def sample_seeds(seed: int, n: int) -> list[int]:
    """The seeds of n samples: seed, seed+1, ... (wrapping at SEED_MAX)."""
    return [(seed + i) % (SEED_MAX + 1) for i in range(n)]


class LabRun:
    """All samples of all columns written at once; iterate for progress (the samples so far), then read
    `.samples` (per column, its LabSample list) and `results()`. `close()` stops every sample within a token."""

    def __init__(self, engine, paragraphs: list[str], columns: Sequence[LabColumn], *, seed: int | None = None,
                 cancel: threading.Event | None = None, steering=None):
        check_columns(columns, engine)
        self.engine, self.columns = engine, list(columns)
        self.seed = secrets.randbelow(SEED_MAX + 1) if seed is None else seed
        self._cancel = cancel if cancel is not None else threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.samples: list[list[LabSample]] = []
        self.started = time.perf_counter()
        self.seconds = 0.0
        self._paragraphs, self._steering = paragraphs, steering
        for c, column in enumerate(self.columns):
            own = column.settings.seed
            seeds = sample_seeds(self.seed if own is None else own, column.samples)
            self.samples.append([LabSample(c, i, s) for i, s in enumerate(seeds)])
        every = [s for column in self.samples for s in column]
        self._left = len(every)
        # The first sample of each model variant reads the story; the rest start once one has read it, so
        # they find it in the backend's kept prefix instead of all reading it at the same time.
        firsts = list({self.columns[s.column].adapter: s for s in reversed(every)}.values())
        self._pending = [s for s in every if s not in firsts]
        self._start(firsts)

    def _start(self, samples: list[LabSample]) -> None:
        """Start one request per sample, each followed by a reader thread; on a refusal stop every one started."""
        try:
            for sample in samples:
                column = self.columns[sample.column]
                stream = self.engine.continue_story(self._paragraphs, column.settings.replace(seed=sample.seed),
                                                    adapter=column.adapter, cancel=self._cancel,
                                                    steering=self._steering)
                threading.Thread(target=self._follow, args=(sample, stream), name="relay-lab", daemon=True).start()
        except BaseException:
            self._cancel.set()
            raise

    def _follow(self, sample: LabSample, stream) -> None:
        """Reader thread of one sample: its chunks, then its end (or error), into the run's queue."""
        try:
            for chunk in stream:
                self._queue.put((sample, chunk))
            self._queue.put((sample, _DONE, stream.text, dict(stream.meta)))
        except BaseException as error:  # EngineError and the like: the run reports it
            self._queue.put((sample, error))
        finally:
            stream.close()

    def __iter__(self) -> Iterator[list[list[LabSample]]]:
        """Yields the samples (all columns) each time one grows or ends; an engine error is raised here."""
        try:
            while self._left:
                item = self._queue.get()
                if self._pending and not isinstance(item[1], BaseException):  # a first sample read the story
                    pending, self._pending = self._pending, []
                    self._start(pending)  # the others, at once
                sample = item[0]
                if isinstance(item[1], BaseException):
                    raise item[1]
                if item[1] is _DONE:
                    sample.text, sample.meta, sample.done = item[2], item[3], True
                    self._left -= 1
                else:
                    sample.streamed += item[1]
                yield self.samples
        finally:
            self.seconds = time.perf_counter() - self.started
            if self._left:
                self.close()

    def run(self) -> "LabRun":
        """Write to the end without following the progress."""
        for _ in self:
            pass
        return self

    def close(self) -> None:
        self._cancel.set()

    def results(self, *, with_tokens: bool = False) -> dict[str, Any]:
        """Per column: its samples and measures; the best column per measure; the run's seed and seconds."""
        columns = []
        for column, samples in zip(self.columns, self.samples):
            facts = [SampleFacts(s.text, self._ids(s.text), s.meta, s.trimmed_chars) for s in samples]
            columns.append({
                "settings": column.settings.to_dict(), "adapter": column.adapter,
                "samples": [sample_record(s, len(f.tokens), with_tokens) for s, f in zip(samples, facts)],
                "measures": column_measures(facts)})
        return {"seed": self.seed, "seconds": round(self.seconds, 3), "columns": columns,
                "best": best_columns([c["measures"] for c in columns])}

    def _ids(self, text: str) -> list[int]:
        return self.engine.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def sample_record(sample: LabSample, tokens: int, with_tokens: bool) -> dict[str, Any]:
    """A finished sample as results give it (its recorded token probabilities only when asked for)."""
    meta = sample.meta or {}
    record = {"seed": sample.seed, "text": sample.text, "tokens": tokens,
              "output_tokens": meta.get("output_tokens", 0), "stopped_by": meta.get("stopped_by"),
              "trimmed_chars": sample.trimmed_chars, "seconds": meta.get("seconds")}
    if with_tokens:
        record["token_probabilities"] = meta.get("tokens")
    return record


# -- sweeps ----------------------------------------------------------------------------------------


def sweep_values(knob: str, start: float, stop: float, points: int) -> list:
    """`points` evenly spaced values of `knob` from start to stop (whole numbers for an int knob, repeats
    dropped), each checked against the knob's range; SettingsError says what is wrong."""
    specs = {s.name: s for s in SamplingSettings.specs()}
    if knob not in SWEEP_KNOBS:
        raise SettingsError("knob", f"바꿔 볼 수 없는 설정 '{knob}' / cannot sweep {knob!r}; choose one of "
                                    f"{', '.join(SWEEP_KNOBS)}")
    if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_SWEEP_POINTS:
        raise SettingsError("points", f"점은 2~{MAX_SWEEP_POINTS}개여야 합니다 / points must be a whole number from "
                                      f"2 to {MAX_SWEEP_POINTS}; got {points!r}")
    spec = specs[knob]
    values = []
    for i in range(points):
        value = start + (stop - start) * i / (points - 1)
        value = int(round(value)) if spec.kind == "int" else round(float(value), 4)
        if value not in values:
            values.append(value)
    for value in values:  # the knob's own range check and message
        SamplingSettings().replace(**{knob: value})
    return values


class Sweep:
    """k samples at every value of one knob, written in batches of at most MAX_CONCURRENT requests; iterate
    for progress (samples done, samples in all, the batch's LabRun), then `rows()` and `points`."""

    def __init__(self, engine, paragraphs: list[str], settings: SamplingSettings, knob: str, values: list,
                 samples: int, *, adapter: str | None = None, seed: int | None = None,
                 cancel: threading.Event | None = None, steering=None, with_tokens: bool = False):
        self.engine, self.paragraphs, self.knob, self.values = engine, paragraphs, knob, list(values)
        self.with_tokens = with_tokens
        self.adapter, self.steering = adapter, steering
        self.columns = [LabColumn(settings.replace(**{knob: v}, seed=None), samples, adapter) for v in self.values]
        check_columns(self.columns[:1], engine)
        self.seed = (settings.seed if settings.seed is not None else secrets.randbelow(SEED_MAX + 1)) \
            if seed is None else seed
        self.cancel = cancel if cancel is not None else threading.Event()
        self.points: list[dict[str, Any]] = []  # per value: {"value", "samples", "measures"}
        self.total = samples * len(self.values)
        self.seconds = 0.0

    def __iter__(self) -> Iterator[tuple[int, int, LabRun]]:
        started = time.perf_counter()
        per_batch = max(1, MAX_CONCURRENT // self.columns[0].samples)
        done = 0
        try:
            for first in range(0, len(self.columns), per_batch):
                if self.cancel.is_set():
                    break
                batch = self.columns[first:first + per_batch]
                run = LabRun(self.engine, self.paragraphs, batch, seed=self.seed, cancel=self.cancel,
                             steering=self.steering)
                for samples in run:
                    now = sum(s.done for column in samples for s in column)
                    yield done + now, self.total, run
                done += sum(c.samples for c in batch)
                result = run.results(with_tokens=self.with_tokens)
                for value, column in zip(self.values[first:first + per_batch], result["columns"]):
                    self.points.append({"value": value, "samples": column["samples"], "measures": column["measures"]})
        finally:
            self.seconds = time.perf_counter() - started

    def run(self) -> "Sweep":
        for _ in self:
            pass
        return self

    def rows(self) -> list[dict[str, Any]]:
        """(point, measure, value) rows for a plot: one per measure with a value at each point."""
        return [{"point": p["value"], "measure": m.key, "value": round(scalar(p["measures"][m.key]), 6)}
                for p in self.points for m in MEASURES if scalar(p["measures"][m.key]) is not None]

    def results(self) -> dict[str, Any]:
        return {"knob": self.knob, "seed": self.seed, "seconds": round(self.seconds, 3),
                "points": self.points, "rows": self.rows()}


# -- limits ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def lab_allowance(limits, writer_id: str | None, ip: str | None, samples: int) -> Iterator[None]:
    """Hold what a lab run or sweep of `samples` samples needs under the writer's limits (relay/limits.py):
    refused at once when larger than a writer's lab samples per minute (LabTooBig) or over a rate
    (LimitExceeded); else one model request and `samples` lab samples are counted and one model slot (and
    a turn of the fair gate) is held for the whole run: a run is one job however many rows it batches."""
    allowed = max_lab_samples(limits)
    if samples > allowed:
        raise LabTooBig(samples, allowed)
    limits.check("model_turn", writer_id, ip)
    limits.check("lab_samples", writer_id, ip, cost=samples)
    with limits.model_slot(writer_id, ip):
        yield


def max_lab_samples(limits) -> int:
    """The most samples one lab run or sweep may write: what one writer may ask for in a minute."""
    return limits.rates.lab_samples[0]
