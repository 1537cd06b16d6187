"""Reading stories in bf16: what the OpenVINO backend's reader graph saves against the writers' f32 graph.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_reading.py [--rounds 5] [--work DIR]  (~1 minute)

Builds KoGPT-2's shape with random weights (as bench_generation.py does; --work keeps it and its conversion),
loads it through `Engine.from_pretrained(..., backend="openvino")` and reads random stories into the backend's
block pool through the batcher's own `_infer`, in the pieces the batcher gives a lone story (STEP_TOKENS
positions, then the rest), with no picking and no engine around it:

- f32: the writers' graph (what `RELAY_OPENVINO_READ_PRECISION=f32` reads with);
- bf16: the reader graph as shipped: its weights unpacked to 16 bits (convert.py `unpack_weights`), at least
  READ_LOGITS rows of logits, calls padded to READ_ALIGN;
- bf16, 1 row of logits: without READ_LOGITS;
- bf16, 8-bit weights: the reader as it was before, compiled from the 8-bit model (decompressing its weights at
  every call);
- bf16, unaligned: as shipped without the READ_ALIGN padding.

Rows: a story of 512 and of 900 positions read from nothing (the first token's read), a next turn's read as it
was while keys were quantized per block (44 positions on 480 kept: a ~26-token paragraph plus the story's last,
partly filled block read again) and as it is (26 on 498: the kept tail serves), and a retry or swipe of a
498-token story (its last 2 positions; see _Batcher._admit). Rounds are interleaved
over variants; the median is reported. It also prints how far a story's first logits move when it is read beside
7 others (0.0 expected: seeds rely on it). Needs a CPU with bf16 units (AMX, AVX512-BF16): elsewhere the backend
has no reader and the script says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_batch_step import _Seq  # noqa: E402


@contextmanager
def patched(module, **values):
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--work", type=Path, help="keep the model and its conversion here (default: a temp dir)")
    args = parser.parse_args(argv)

    import numpy as np

    import relay.backends.openvino.batcher as batcher_module
    from bench_generation import SHARED, kept_model
    from relay.engine import Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = kept_model(args.work or Path(tmp))
        engine = Engine.from_pretrained(folder, backend="openvino")
        batcher = engine.backend._batchers[None]  # idle: its thread waits for work, so the requests are free
        if batcher.reader is None:
            sys.exit("this CPU has no bf16 units (or RELAY_OPENVINO_READ_PRECISION=f32): the backend has no reader")
        shipped = batcher.reader
        before = eight_bit_reader(folder)
        batcher.pool.bind(before)
        pool, size, step = batcher.pool, batcher.pool.size, batcher_module.STEP_TOKENS
        rng = np.random.default_rng(0)
        story = rng.integers(5, 50000, 1000).tolist()
        seq = _Seq([pool.take() for _ in range(-(-1000 // size))])

        def read(length: int, start: int = 0) -> None:
            seq.prompt = story[:length]  # the reader asks for the first token's logits when the story's end is read
            for begin in range(start, length, step):
                batcher._infer([(seq, 0, story[begin:min(begin + step, length)], begin)], reading)

        variants = {"f32 (writers' graph)": (False, shipped, {}),
                    "bf16 (as shipped: unpacked weights)": (True, shipped, {}),
                    "bf16, 1 row of logits": (True, shipped, {"READ_LOGITS": 1}),
                    "bf16, 8-bit weights (before)": (True, before, {}),
                    "bf16, unaligned": (True, shipped, {"READ_ALIGN": 1})}
        cells = {"story of 512": lambda: read(512), "story of 900": lambda: read(900),
                 "next turn, last block again: 44 on 480": lambda: read(524, 480),
                 "next turn: 26 on 498": lambda: read(524, 498), "retry: 2 on 496": lambda: read(498, 496)}
        times = {(variant, cell): [] for variant in variants for cell in cells}
        print(f"load average before: {os.getloadavg()}; {args.rounds} rounds interleaved, pieces of {step}, "
              f"pool block {size} positions")
        for round_ in range(args.rounds + 1):  # round 0 warms every shape up
            for variant, (reading, reader, values) in variants.items():
                batcher.reader = reader
                with patched(batcher_module, **values):
                    for cell, run in cells.items():
                        read(480)  # the next turn's kept story (and the same cache for every cell)
                        started = time.perf_counter()
                        run()
                        if round_:
                            times[(variant, cell)].append(time.perf_counter() - started)
        print(f"load average after: {os.getloadavg()}")
        print("| reading | " + " | ".join(f"{cell} (ms)" for cell in cells) + " |")
        print("|---|" + "---:|" * len(cells))
        base = {cell: statistics.median(times[(next(iter(variants)), cell)]) for cell in cells}
        for variant in variants:
            values = [statistics.median(times[(variant, cell)]) for cell in cells]
            print(f"| {variant} | " + " | ".join(f"{v * 1000:.1f} ({base[c] / v:.2f}x)" for v, c in zip(values, cells))
                  + " |")

        batcher.reader = shipped
        others = [_Seq([pool.take() for _ in range(-(-300 // size))]) for _ in range(7)]
        seq.prompt = story[:300]
        for i, other in enumerate(others):
            other.prompt = story[300 + 30 * i:600 + 30 * i]
        alone = batcher._infer([(seq, 0, story[:300], 0)], True)[0].copy()
        together = batcher._infer([(seq, 0, story[:300], 0)] + [(other, 0, story[300 + 30 * i:600 + 30 * i], 0)
                                                                 for i, other in enumerate(others)], True)[0]
        print(f"largest first-logit difference, a story read alone vs beside 7 others: "
              f"{float(np.abs(alone - together).max())}")
        engine.close()


def eight_bit_reader(folder: Path):
    """An infer request of the reader as it was before its weights were unpacked: the cached 8-bit model compiled
    with the reader's settings."""
    import openvino as ov
    from transformers import AutoModelForCausalLM

    from relay.backends.openvino.backend import _reading_properties
    from relay.backends.openvino.convert import cached_model_path, paged

    core = ov.Core()
    xml = cached_model_path(AutoModelForCausalLM.from_pretrained(folder), "int8")
    return core.compile_model(paged(core.read_model(xml)), "CPU", _reading_properties(core, "int8")) \
        .create_infer_request()


if __name__ == "__main__":
    main()
