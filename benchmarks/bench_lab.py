"""The sampling lab on the real KoGPT-2 shape (random weights), OpenVINO backend: batched vs one after another,
and a sweep beside a writer adding paragraphs.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_lab.py               # ~5 minutes busy
    .venv/bin/python benchmarks/bench_lab.py --repeat 1 --new-tokens 16 --points 2      # smoke run

Measured, in one process so a busy machine slows every cell alike (cells interleaved, median of --repeat):
1. A lab run of 3 columns x 4 samples (--new-tokens each, stop at the length limit so every sample writes the
   same amount): time until every sample is done, all started at once (relay/lab_runs.py LabRun: the batcher
   writes them in one batch) vs one sample after another (how the lab wrote its columns before issue 18).
2. A sweep of --points points x 4 samples x --new-tokens tokens (temperature 0.5..1.3): its time, while a
   writer thread adds a paragraph to a story through the store every 100 ms: the add latency's p50/p95
   during the sweep, and with the model idle, side by side.
Model build and conversion reuse benchmarks/bench_generation.py. Results: BENCHMARKS.md ("Sampling lab").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generation import build_model, story_lines, story_of_tokens  # noqa: E402

from relay.lab_runs import LabColumn, LabRun, Sweep  # noqa: E402
from relay.settings import PRESETS  # noqa: E402

ADD_EVERY_S = 0.1


def lab_columns(new_tokens: int) -> list[LabColumn]:
    """Three presets, four samples each, every one writing exactly `new_tokens` tokens."""
    return [LabColumn(PRESETS[name].replace(max_new_tokens=new_tokens, min_new_tokens=0, stop_at="length"), 4)
            for name in ("careful", "balanced", "adventurous")]


def time_batched(engine, story, columns, seed: int) -> float:
    start = time.perf_counter()
    LabRun(engine, story, columns, seed=seed).run()
    return time.perf_counter() - start


def time_one_after_another(engine, story, columns, seed: int) -> float:
    start = time.perf_counter()
    for column in columns:
        for i in range(column.samples):
            engine.continue_story(story, column.settings.replace(seed=seed + i)).text
    return time.perf_counter() - start


def add_latencies(store, story_id: int, stop: threading.Event, out: list[float]) -> None:
    """A writer adding a paragraph every ADD_EVERY_S until `stop`; each add's seconds into `out`."""
    n = 0
    while not stop.is_set():
        n += 1
        start = time.perf_counter()
        store.add_paragraph(story_id, f"작가가 {n}번째 문단을 썼다. 바람이 불었다.", "작가", kind="human")
        out.append(time.perf_counter() - start)
        stop.wait(ADD_EVERY_S)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure_adds(store, story_id: int, work) -> tuple[list[float], float]:
    """Add latencies while `work()` runs (and its seconds)."""
    stop, latencies = threading.Event(), []
    writer = threading.Thread(target=add_latencies, args=(store, story_id, stop, latencies))
    writer.start()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    stop.set()
    writer.join()
    return latencies, seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--points", type=int, default=5)
    parser.add_argument("--context", type=int, default=200, help="story tokens the model reads")
    args = parser.parse_args(argv)

    from relay.engine import Engine
    from relay.story_store import StoryStore

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("RELAY_CACHE", str(Path(tmp) / "cache"))
        folder = build_model(Path(tmp) / "kogpt2-random")
        started = time.perf_counter()
        engine = Engine.from_pretrained(folder, backend="openvino")
        print(f"model ready in {time.perf_counter() - started:.1f} s (backend {engine.backend_name})", flush=True)
        story = story_of_tokens(engine, story_lines(), args.context)
        columns = lab_columns(args.new_tokens)
        engine.continue_story(story, columns[0].settings.replace(seed=1, max_new_tokens=4)).text  # warm up

        batched, serial, ratios = [], [], []
        for run in range(args.repeat):  # pairs, the order alternating, so a burst of load hits both alike
            seed = 100 + run * 10
            if run % 2:
                serial.append(time_one_after_another(engine, story, columns, seed))
                batched.append(time_batched(engine, story, columns, seed))
            else:
                batched.append(time_batched(engine, story, columns, seed))
                serial.append(time_one_after_another(engine, story, columns, seed))
            ratios.append(serial[-1] / batched[-1])
            print(f"lab 3x4 run {run + 1}: together {batched[-1]:.2f} s, one after another {serial[-1]:.2f} s "
                  f"({ratios[-1]:.2f}x), load {os.getloadavg()[0]:.1f}", flush=True)
        b, s = statistics.median(batched), statistics.median(serial)
        print(f"\nLAB 3 columns x 4 samples x {args.new_tokens} tokens (median of {args.repeat}): together {b:.2f} s, "
              f"one after another {s:.2f} s; median of the pairs' ratios {statistics.median(ratios):.2f}x faster "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)", flush=True)

        store = StoryStore(Path(tmp) / "relay.db")
        story_id = store.create_story("벤치", "작가", turn_rule="free").id
        values = [round(0.5 + 0.8 * i / max(1, args.points - 1), 3) for i in range(args.points)]
        base = PRESETS["balanced"].replace(max_new_tokens=args.new_tokens, min_new_tokens=0, stop_at="length")
        idle, _ = measure_adds(store, story_id, lambda: time.sleep(5))
        during, sweep_times = [], []
        for run in range(args.repeat):
            latencies, seconds = measure_adds(
                store, story_id, lambda: Sweep(engine, story, base, "temperature", values, 4, seed=7).run())
            during += latencies
            sweep_times.append(seconds)
            print(f"sweep run {run + 1}: {seconds:.2f} s, {len(latencies)} paragraph adds meanwhile", flush=True)
        print(f"\nSWEEP {args.points} points x 4 samples x {args.new_tokens} tokens: {statistics.median(sweep_times):.2f} s "
              f"(median of {args.repeat})")
        print(f"paragraph add while sweeping: p50 {percentile(during, 0.5) * 1000:.1f} ms, "
              f"p95 {percentile(during, 0.95) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms ({len(during)} adds)")
        print(f"paragraph add, model idle:    p50 {percentile(idle, 0.5) * 1000:.1f} ms, "
              f"p95 {percentile(idle, 0.95) * 1000:.1f} ms ({len(idle)} adds)")
        print(f"load average: {os.getloadavg()}")
        engine.close()


if __name__ == "__main__":
    main()
