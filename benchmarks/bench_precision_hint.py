"""What exact arithmetic costs: int8 decode with the CPU plugin computing in f32 (Relay's setting) vs bf16.

On CPUs with bf16 units (AMX, AVX512-BF16) OpenVINO's CPU plugin computes in bf16 unless told otherwise,
and its kernels for one row and for several rows round differently: a seeded turn then writes other
text when another writer shares the batch (tests/test_backend_openvino.py). Relay asks for f32
(relay/backends/openvino/backend.py `_compile_properties`); this prints what that costs, on the real
KoGPT-2 shape with random weights, int8 weights either way, cells interleaved and the median of
`--repeat` runs:

    .venv/bin/python benchmarks/bench_precision_hint.py [--repeat 3] [--new-tokens 64]

It prints the plugin's default hint first: on a CPU without bf16 units both rows compute in f32.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_generation import build_model, story_lines, story_of_tokens, time_stream, time_writers  # noqa: E402


def engine_with_hint(folder: Path, hint: str):
    """The openvino engine compiled with INFERENCE_PRECISION_HINT=`hint` (int8 weights, same cache)."""
    import relay.backends.openvino.backend as backend
    from relay.engine import Engine

    chosen = backend._compile_properties

    def with_hint(precision: str) -> dict[str, str]:
        return {**chosen(precision), "INFERENCE_PRECISION_HINT": hint}

    backend._compile_properties = with_hint
    try:
        return Engine.from_pretrained(str(folder), backend="openvino")
    finally:
        backend._compile_properties = chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    import openvino as ov

    from relay.settings import SamplingSettings

    print(f"CPU plugin's default inference precision here: {ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT')}")
    print(f"load average before: {os.getloadavg()}", flush=True)
    settings = SamplingSettings(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, stop_at="length",
                                top_k=50, top_p=0.95, temperature=0.9, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "kogpt2-random")
        engines = {"f32 (Relay)": engine_with_hint(folder, "f32"), "bf16 (plugin default)": engine_with_hint(folder, "bf16")}
        lines = story_lines()
        any_engine = next(iter(engines.values()))
        cells = {name: {"decode@512": [], "4 writers in all": []} for name in engines}
        for run in range(args.repeat):
            story = story_of_tokens(any_engine, lines[: len(lines) - 50 * run], 512)
            stories = [story_of_tokens(any_engine, lines[: len(lines) - 200 * (i + 1) - 50 * run], 512) for i in range(4)]
            for name, engine in engines.items():
                cells[name]["decode@512"].append(time_stream(engine, story, settings)[1])
                cells[name]["4 writers in all"].append(time_writers(engine, stories, settings)[2])
        base = {cell: statistics.median(values) for cell, values in cells["f32 (Relay)"].items()}
        for name, measured in cells.items():
            row = "   ".join(f"{cell} {statistics.median(v):6.1f} tok/s ({statistics.median(v) / base[cell]:.2f}x)"
                           for cell, v in measured.items())
            print(f"{name:<22} {row}", flush=True)
        for engine in engines.values():
            engine.close()
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
