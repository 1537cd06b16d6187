"""Fair batches and the per-token cost outside the runtime: 1, 4, 8 and 16 writers on the OpenVINO backend.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_writers.py                 # ~4 minutes quiet
    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_writers.py --repeat 1 --writers 1 4   # smoke
    .venv/bin/python benchmarks/bench_writers.py --work /tmp/relay-writers   # keep the model and its conversion

Builds KoGPT-2's shape with random weights and the real tokenizer (bench_generation.build_model), converts it
to int8 once and runs every cell on two batchers of the same compiled model, interleaved, so a busy machine
slows both alike: the batcher, token picker and block pool of an older commit (`--baseline`, loaded from git
into temporary modules) and the ones in the working tree. Each writer continues its own story of about 512
tokens (a fresh first line each run, so no kept cache helps) by 64 tokens, balanced preset (or `--preset`), stop_at=length.

Printed per cell, median of `--repeat`: one writer's first token, decode tokens/s and the time per token outside
the runtime's infer call (picking, the engine's callback, bookkeeping, building inputs: the step's wall time
minus the infer call, timed by a wrapper around the infer request); N writers at once: each writer's decode
tokens/s from its own first token, the slowest against the batch mean, decode tokens/s in all against one
writer, and the 95th-percentile first token; and four writers on their next turns (each story read at its
writer's previous turn, one paragraph added). Results: BENCHMARKS.md ("Fair batches and per-token overhead").
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

BASELINE = "a94798a"  # the last commit before fair batches and the numpy picker (issue 21 items 1, 3)
PARAGRAPH = "그녀는 아무 대답도 하지 않고 창밖을 바라보았다. 비가 다시 내리기 시작했다."


def baseline_batcher_class(revision: str):
    """`_Batcher` as it was at `revision`, with that revision's TokenPicker and block pool (temporary modules)."""

    def source(path: str) -> str:
        return subprocess.run(["git", "show", f"{revision}:{path}"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout

    def load(name: str, path: str, imports: dict[str, str]):
        text = source(path)
        for old, new in imports.items():
            text = text.replace(f"from {old} import", f"from {new} import")
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(text, f"{revision}:{path}", "exec"), module.__dict__)  # noqa: S102  our own git history
        return module

    load("relay_baseline_base", "relay/backends/base.py", {})
    load("relay_baseline_pool", "relay/backends/openvino/pool.py", {})
    try:  # the picker has a module of its own since 2026-12-05
        load("relay_baseline_picker", "relay/backends/picker.py", {"relay.backends.base": "relay_baseline_base"})
    except subprocess.CalledProcessError:
        pass
    batcher = load("relay_baseline_batcher", "relay/backends/openvino/batcher.py",
                   {"relay.backends.base": "relay_baseline_base",
                    "relay.backends.openvino.pool": "relay_baseline_pool",
                    "relay.backends.picker": "relay_baseline_picker"})
    return batcher._Batcher


class TimedRequest:
    """Wraps a batcher's infer request: remembers when each infer call started and ended."""

    def __init__(self, request, calls: list | None = None):
        self.request = request
        self.calls: list[tuple[float, float]] = [] if calls is None else calls

    def infer(self, inputs, **options):
        started = time.perf_counter()
        outputs = self.request.infer(inputs, **options)
        self.calls.append((started, time.perf_counter()))
        return outputs

    def __getattr__(self, name):
        return getattr(self.request, name)


@dataclass
class Writer:
    """One writer's turn: when it asked, when its first text came, when it ended, how many tokens it wrote."""

    start: float
    first: float
    end: float
    tokens: int

    @property
    def first_token(self) -> float:
        return self.first - self.start

    @property
    def rate(self) -> float:
        """Decode tokens/s from this writer's own first token."""
        return (self.tokens - 1) / max(self.end - self.first, 1e-9)


def write(engine, story, settings) -> Writer:
    start = time.perf_counter()
    stream = engine.continue_story(story, settings)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return Writer(start, first or end, end, stream.meta["output_tokens"])


def writers_at_once(engine, stories, settings) -> list[Writer]:
    """Every story continued by its own thread, all let go together."""
    results: list[Writer | None] = [None] * len(stories)
    barrier = threading.Barrier(len(stories))

    def run(index):
        barrier.wait()
        results[index] = write(engine, stories[index], settings.replace(seed=100 + index))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stories))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def group_cells(writers: list[Writer]) -> dict[str, float]:
    rates = [w.rate for w in writers]
    decoding = sum(w.tokens - 1 for w in writers) / (max(w.end for w in writers) - min(w.first for w in writers))
    return {"slowest tok/s": min(rates), "mean tok/s": statistics.mean(rates),
            "slowest / mean": min(rates) / statistics.mean(rates), "decode tok/s in all": decoding,
            "first token p95 (s)": p95([w.first_token for w in writers])}


def one_writer_cells(engine, story, settings, timed: TimedRequest) -> dict[str, float]:
    """One writer: first token, decode tokens/s, and per token the infer call and everything outside it."""
    timed.calls.clear()
    writer = write(engine, story, settings)
    decode = [end - start for start, end in timed.calls if start >= writer.first]  # the steps after its first text
    per_token = (writer.end - writer.first) / (writer.tokens - 1)
    infer = statistics.mean(decode) if decode else float("nan")
    return {"first token (s)": writer.first_token, "decode tok/s": writer.rate,
            "infer ms/token": infer * 1000, "outside infer ms/token": (per_token - infer) * 1000}


def _add(one, other):
    """Two StepClocks summed."""
    from dataclasses import fields, replace

    return replace(one, **{f.name: getattr(one, f.name) + getattr(other, f.name) for f in fields(one)})


def fresh(story: list[str], tag: str) -> list[str]:
    """The same story with a different first line, so no kept cache helps."""
    return [f"({tag}번째 이야기)"] + story[1:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--preset", default="balanced", help="the sampling preset (adventurous: top-k 0, top-p 0.95)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the batcher to compare with")
    parser.add_argument("--no-baseline", action="store_true", help="only the working tree's batcher")
    parser.add_argument("--work", type=Path, help="keep the model and its conversion here (default: a temp dir)")
    args = parser.parse_args(argv)

    from bench_generation import SHARED, kept_model, story_lines, story_of_tokens
    from relay.engine import PRESETS, Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    settings = PRESETS[args.preset].replace(stop_at="length", max_new_tokens=args.new_tokens, min_new_tokens=0,
                                           trim_incomplete=False, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = kept_model(args.work or Path(tmp))
        started = time.perf_counter()
        engine = Engine.from_pretrained(folder, backend="openvino")
        print(f"loaded in {time.perf_counter() - started:.1f} s (conversion included the first time)")
        backend = engine.backend
        current = backend._batchers[None]
        batchers = {"now": current}
        if not args.no_baseline:
            baseline = baseline_batcher_class(args.baseline)
            reading = {}  # a baseline that knows the bf16 reader gets the same one
            if current.reader is not None and "reader" in inspect.signature(baseline.__init__).parameters:
                reading["reader"] = current.reader.get_compiled_model()
            old = baseline(current.compiled, 256 * 1024 * 1024, "baseline", **reading)
            batchers = {f"baseline {args.baseline}": old, "now": current}
        timers = {}
        for name, batcher in batchers.items():
            batcher.request = timers[name] = TimedRequest(batcher.request)
            if getattr(batcher, "reader", None) is not None:  # stories read by the bf16 graph: its calls count as infer
                batcher.reader = TimedRequest(batcher.reader, timers[name].calls)

        lines = story_lines()
        widest = max(args.writers)
        stories = [story_of_tokens(engine, lines[: len(lines) - 200 * i], args.context) for i in range(widest)]
        print(f"{os.cpu_count()} CPUs; context {args.context}, {args.new_tokens} new tokens, {args.preset} preset, "
              f"stop_at=length; median of {args.repeat}, interleaved; load average before: {os.getloadavg()}")
        for batcher in batchers.values():  # warm-up
            backend._batchers[None] = batcher
            write(engine, fresh(stories[0], "warm"), settings.replace(max_new_tokens=4))
        cells: dict[tuple[str, str, str], list[float]] = {}
        alone_clock = {}  # the batcher's own clock over the one-writer runs (the working tree's batcher has one)

        def add(name, group, values: dict[str, float]):
            for key, value in values.items():
                cells.setdefault((group, key, name), []).append(value)

        for run in range(args.repeat):
            for name, batcher in batchers.items():
                backend._batchers[None] = batcher
                tag = f"{run}{name[:4]}"
                if 1 in args.writers:
                    clock = getattr(batcher, "clock", None)
                    before = clock.since(type(clock)()) if clock is not None else None
                    add(name, "1 writer", one_writer_cells(engine, fresh(stories[0], f"{tag}-1"), settings,
                                                           timers[name]))
                    if before is not None:
                        spent = clock.since(before)
                        alone_clock[name] = _add(alone_clock[name], spent) if name in alone_clock else spent
                for count in [c for c in args.writers if c > 1]:
                    group = [fresh(s, f"{tag}-{count}") for s in stories[:count]]
                    add(name, f"{count} writers at once", group_cells(writers_at_once(engine, group, settings)))
                if 4 in args.writers:
                    group = [fresh(s, f"{tag}-next") for s in stories[:4]]
                    for story in group:  # the previous turns read the stories
                        write(engine, story, settings.replace(max_new_tokens=2))
                    cells_next = group_cells(writers_at_once(engine, [s + [PARAGRAPH] for s in group], settings))
                    add(name, "4 writers, next turns", cells_next)
        load_after = os.getloadavg()
        for batcher in batchers.values():
            if batcher is not current:
                batcher.close()
        backend._batchers[None] = current
        engine.close()

    names = list(batchers)
    print(f"load average after: {load_after}")
    print("| writers | measure | " + " | ".join(names) + (" | now / baseline |" if len(names) > 1 else " |"))
    print("|---|---|" + "---:|" * (len(names) + (len(names) > 1)))
    groups = dict.fromkeys(group for group, _, _ in cells)
    medians = {key: statistics.median(values) for key, values in cells.items()}
    for group in groups:
        for key in dict.fromkeys(k for g, k, _ in cells if g == group):
            values = [medians.get((group, key, name)) for name in names]
            row = " | ".join(f"{v:.3g}" if v is not None else "" for v in values)
            ratio = f" | {values[-1] / values[0]:.2f}" if len(names) > 1 and values[0] else ""
            print(f"| {group} | {key} | {row}{ratio} |")
    for name in names:
        one = medians.get(("1 writer", "decode tok/s", name))
        for group in [g for g in groups if g != "1 writer"]:
            many = medians.get((group, "decode tok/s in all", name))
            if one and many:
                print(f"{name}: {group}: decode in all {many / one:.2f}x one writer's tokens/s")
    for name, clock in alone_clock.items():
        print(f"{name}, one writer, the batcher's own clock: {clock.summary()}")


if __name__ == "__main__":
    main()
