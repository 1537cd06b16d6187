"""What one step of the OpenVINO backend's batch costs with 1, 2, 4 and 8 sequences: the runtime alone.

    .venv/bin/python benchmarks/bench_batch_step.py            # context 512, 40 steps, 3 rounds (~2 minutes)
    .venv/bin/python benchmarks/bench_batch_step.py --context 900

Builds KoGPT-2's shape with random weights (as bench_generation.py does), loads it through
`Engine.from_pretrained(..., backend="openvino")`, reads one story per sequence into the backend's block
pool, then times decode steps through the batcher's own `_infer` (the paged graph, int8) with no picking and
no engine around it. Rounds are interleaved over batch sizes; the median is reported. The ratio "x one" is
tokens/s in all against one sequence: the ceiling for several writers at once, before the engine's share.
Also prints how far one sequence's logits move when it runs beside three others (0.0 expected).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]


class _Seq:
    """Stands in for a job: the backend's _infer reads only job.rows[row].blocks."""

    def __init__(self, blocks):
        from relay.backends.openvino import _Row

        self.rows = [_Row(blocks, 0)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args(argv)

    import numpy as np

    from bench_generation import SHARED, build_model
    from relay.engine import Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model")
        os.environ["RELAY_CACHE"] = str(Path(tmp) / "cache")
        engine = Engine.from_pretrained(folder, backend="openvino")
        batcher = engine.backend._batchers[None]  # idle: its thread waits for work, so the request is free
        pool, size = batcher.pool, batcher.pool.size
        need = -(-(args.context + args.steps + 1) // size)
        rng = np.random.default_rng(0)
        seqs = []
        for _ in range(max(args.batches)):
            seq = _Seq([pool.take() for _ in range(need)])
            batcher._infer([(seq, 0, rng.integers(5, 50000, args.context).tolist(), 0)])
            seqs.append(seq)
        print(f"load average before: {os.getloadavg()}; context {args.context}, {args.steps} steps, "
              f"{args.rounds} rounds interleaved, pool block {size} positions")
        times: dict[int, list[float]] = {b: [] for b in args.batches}
        for _ in range(args.rounds):
            for batch in args.batches:
                started = time.perf_counter()
                for step in range(args.steps):  # every round rewrites the same positions
                    batcher._infer([(seq, 0, [7], args.context + step) for seq in seqs[:batch]])
                times[batch].append((time.perf_counter() - started) / args.steps)
        print(f"load average after: {os.getloadavg()}")
        one = statistics.median(times[args.batches[0]])
        print("| sequences | ms per step | tokens/s in all | x one |")
        print("|---:|---:|---:|---:|")
        for batch in args.batches:
            step = statistics.median(times[batch])
            print(f"| {batch} | {step * 1000:.1f} | {batch / step:.0f} | {batch / step * one:.2f} |")
        # The same step of sequence 1 alone and as one of four: the logits must be bit for bit the same (seeds rely
        # on it). Both rewrite the same position with the same id, so the cache is the same either way. A copy: _infer
        # returns the runtime's output memory, which the next call overwrites.
        alone = np.array(batcher._infer([(seqs[1], 0, [7], args.context)])[0])
        together = batcher._infer([(seq, 0, [7], args.context) for seq in seqs[:4]])[1]
        print(f"largest logit difference, sequence alone vs in a batch of 4: {float(np.abs(alone - together).max())}")
        engine.close()


if __name__ == "__main__":
    main()
