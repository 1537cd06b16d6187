"""Preparing the model, shown as it happens: stages, a bar on a terminal, log lines elsewhere, a percentage.

`Preparation` is told each stage as it starts (convert.py's `progress(stage)` hook, and the backend's
"compile") for each graph: "base", then "adapters" (the LoRA graph every adapter runs on) when there are any. On
a terminal it draws a tqdm bar on stderr; when stderr is not a terminal (a Space's log, systemd, a test) it
writes one log line a stage.
The page reads `percent` and `stage` from another thread while the model is prepared in the background.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time

log = logging.getLogger(__name__)

# Each stage's share of one variant's first preparation, from the real KoGPT-2 shape converted to int8 (NNCF)
# on 2 cores at load ~1.5 (BENCHMARKS.md "First start": 0.7 / 2.7 / 2.7 / 0.7 / 3.6 s, compiling ~0.5 s; on a
# very busy machine tracing and compressing grow most): hashing the weights, tracing to OpenVINO, compressing the
# weights, writing the cache, writing the reader's unpacked weights (convert.py `reader_model_path`), compiling
# for the CPU. "cached" (a conversion found on disk) skips to "compile".
STAGE_SHARES = {"check": 0.06, "convert": 0.25, "compress": 0.25, "save": 0.06, "unpack": 0.33, "compile": 0.05}
STAGE_WORDS = {"check": "checking the cache", "cached": "found in the cache", "convert": "converting to OpenVINO",
               "compress": "compressing the weights", "save": "saving to the cache",
               "unpack": "unpacking the weights for reading", "compile": "compiling for the CPU"}
_ORDER = list(STAGE_SHARES)


def _start_of(stage: str) -> float:
    """The share of a variant's work done when `stage` starts."""
    position = _ORDER.index("compile" if stage == "cached" else stage)
    return sum(STAGE_SHARES[s] for s in _ORDER[:position])


class Preparation:
    """Progress of preparing every model variant; thread-safe to read (`percent`, `stage`, `ready`, `error`)."""

    def __init__(self, variants: list[str], precision: str, *, stream=None, bar: bool | None = None):
        """variants: the names shown ("base", then "adapters"). bar: draw a tqdm bar (default: stderr is a TTY)."""
        self.variants = list(variants)
        self.precision = precision
        self.stream = stream or sys.stderr
        self.use_bar = self.stream.isatty() if bar is None else bar
        self.stage: str | None = None
        self.converted: list[str] = []  # variants converted now (the rest were found in the cache)
        self.durations: dict[str, float] = {}  # seconds per stage, over every variant
        self.ready = False
        self.error: str | None = None
        self._variant = -1
        self._fraction = 0.0
        self._started = self._stage_started = time.monotonic()
        self._bar = None
        self._lock = threading.Lock()

    @property
    def percent(self) -> int:
        """How much of the preparation is done, 0..100 (100 only once it is ready)."""
        return 100 if self.ready else min(99, int(self._fraction * 100))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def next_variant(self) -> "Preparation":
        """The next variant (in `variants` order) starts; returns self, whose `__call__` is the stage hook."""
        with self._lock:
            self._close_stage()
            self._variant = min(self._variant + 1, len(self.variants) - 1)
            self.stage = None
        return self

    def __call__(self, stage: str) -> None:
        """`stage` starts for the current variant (convert.py's progress hook)."""
        with self._lock:
            self._close_stage()
            self.stage = stage
            if stage in ("convert", "unpack") and self.variants[self._variant] not in self.converted:
                self.converted.append(self.variants[self._variant])  # "unpack" alone: a cache from before
            # never back: a cache from before unpacks its reader's weights ("unpack") after "cached"
            self._fraction = max(self._fraction, (self._variant + _start_of(stage)) / len(self.variants))
            self._show()

    def finish(self) -> None:
        """Every variant is prepared: the bar ends at 100 % and a summary line is written."""
        with self._lock:
            self._close_stage()
            self.ready, self.stage, self._fraction = True, None, 1.0
            self._show()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            spent = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in self.durations.items())
            what = (f"converted {', '.join(self.converted)} to OpenVINO {self.precision}" if self.converted
                    else f"every variant found in the cache ({self.precision}), nothing converted")
            log.info("model ready in %.1f s: %s (%s)", self.elapsed, what, spent)

    def fail(self, message: str) -> None:
        """Preparing stopped with an error (the page and every waiting turn say so)."""
        with self._lock:
            self.error = message
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def _close_stage(self) -> None:
        now = time.monotonic()
        if self.stage is not None:
            self.durations[self.stage] = self.durations.get(self.stage, 0.0) + now - self._stage_started
        self._stage_started = now

    def _label(self) -> str:
        variant = self.variants[self._variant] if self._variant >= 0 else ""
        where = f"{variant} {self._variant + 1}/{len(self.variants)}" if len(self.variants) > 1 else variant
        return f"preparing the model ({where}, {self.precision}): {STAGE_WORDS.get(self.stage, 'ready')}"

    def _show(self) -> None:
        if not self.use_bar:
            if self.stage is not None:
                log.info("%s (%d %%, %.1f s)", self._label(), self.percent, self.elapsed)
            return
        if self._bar is None:
            from tqdm import tqdm

            # A terminal that reports no size (a pty under `script`, some CI runners) would hide tqdm's bar.
            size = shutil.get_terminal_size((120, 24))
            self._bar = tqdm(total=100, file=self.stream, unit="%", ncols=max(size.columns, 60),
                             nrows=max(size.lines, 5), bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        self._bar.set_description_str(self._label(), refresh=False)
        self._bar.n = self.percent
        self._bar.refresh()
