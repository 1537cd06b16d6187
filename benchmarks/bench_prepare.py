"""The first start on the real KoGPT-2 shape (random weights): converting it, and starting again from the cache.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_prepare.py                 # int8 (~1-2 min)
    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_prepare.py --precisions int8 int4 fp32

Builds GPT2LMHeadModel(GPT2Config.from_pretrained(../shared/kogpt2)) with random weights and the real tokenizer
(bench_generation.build_model) in a temp folder, then for each precision, into an empty cache:
1. `python -m relay.prepare --model FOLDER --precision P` as a process, as a Space build runs it: wall time, and
   each stage's seconds from its summary line (check, convert, compress, save);
2. the same command again: the cache hit ("nothing to do");
3. what the app's start then costs: `Engine.from_pretrained(FOLDER, backend="openvino")` in this process
   (load the weights, hash them, find the cache, compile), to the first token of a short story.
Conversion time does not depend on the weights' values, so random ones measure the real model. Results in
BENCHMARKS.md ("First start").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def run_prepare(folder: Path, precision: str, cache: Path) -> tuple[float, str, str]:
    """Wall seconds, stdout and the stage summary of one `python -m relay.prepare` run."""
    env = {**os.environ, "RELAY_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "relay.prepare", "--model", str(folder), "--precision", precision],
                          cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"relay.prepare failed ({done.returncode}):\n{done.stderr[-2000:]}")
    summary = re.search(r"model ready in .*", done.stderr)
    return seconds, done.stdout.strip(), summary.group(0) if summary else ""


def app_start(folder: Path, precision: str, cache: Path) -> tuple[float, float]:
    """Seconds for the app's engine to load from the cache, and then to write its first token."""
    from relay.engine import Engine, SamplingSettings

    start = time.perf_counter()
    engine = Engine.from_pretrained(folder, backend="openvino",
                                    openvino_options={"cache": cache, "precision": precision})
    loaded = time.perf_counter() - start
    try:
        assert engine.backend.preparation.converted == [], "the app's start converted again"
        start = time.perf_counter()
        stream = engine.continue_story(["비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다."],
                                       SamplingSettings(max_new_tokens=1, min_new_tokens=0, stop_at="length", seed=1))
        next(iter(stream), None)
        return loaded, time.perf_counter() - start
    finally:
        engine.close()


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    from bench_generation import build_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precisions", nargs="+", default=["int8"])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "kogpt2-random")
        rows = []
        for precision in args.precisions:
            cache = Path(tmp) / f"cache-{precision}"
            first, said, stages = run_prepare(folder, precision, cache)
            print(f"[{precision}] {said}\n[{precision}] {stages}", flush=True)
            again, said_again, _ = run_prepare(folder, precision, cache)
            print(f"[{precision}] {said_again}", flush=True)
            loaded, first_token = app_start(folder, precision, cache)
            rows.append((precision, first, again, loaded, first_token, folder_mb(cache)))
        print(f"\nload average at end {os.getloadavg()}")
        print("| precision | relay.prepare, empty cache | again (cache hit) | app engine start from the cache | "
              "then first token | cache size |")
        print("|---|---|---|---|---|---|")
        for precision, first, again, loaded, first_token, size in rows:
            print(f"| {precision} | {first:.1f} s | {again:.1f} s | {loaded:.1f} s | {first_token:.2f} s | "
                  f"{size:.0f} MB |")


if __name__ == "__main__":
    main()
