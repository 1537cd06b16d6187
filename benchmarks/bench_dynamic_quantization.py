"""The CPU plugin's dynamic quantization group (DYNAMIC_QUANTIZATION_GROUP_SIZE): speed and quality per size.

On int8 and int4 weights the plugin quantizes each matrix product's activations to int8 on the fly, one scale per
group of this many values (its default is 32; Relay sets relay/backends/openvino/backend.py's
DYNAMIC_QUANTIZATION_GROUP). For each precision and group size this prints:

- speed: one writer's decode tokens/s, the runtime's time per step and the first token, on KoGPT-2's real shape
  (random weights, the real tokenizer, a ~512-token story from the shared corpus, balanced preset, 64 tokens),
  every size's engine loaded side by side and the runs interleaved, median of --repeat;
- quality: held-out perplexity, top-1 agreement with fp32 and KL from fp32 on the small KoGPT-2-shaped model
  bench_quality.py trains and caches (--steps), the same windows as bench_quality.py.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_dynamic_quantization.py --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GROUPS = ["32", "64", "128", "256"]


def properties(precision: str, group: str) -> dict[str, str]:
    from relay.backends.openvino.backend import _compile_properties

    return {**_compile_properties(precision), "DYNAMIC_QUANTIZATION_GROUP_SIZE": group}


def speed(precision: str, groups: list[str], repeat: int, work: Path) -> dict[str, dict[str, float]]:
    """Per group size: decode tok/s, infer ms per step, first token ms (one writer, interleaved)."""
    import relay.backends.openvino.backend as backend
    from bench_generation import build_model, story_lines, story_of_tokens
    from bench_writers import TimedRequest, fresh, write
    from relay.engine import PRESETS, Engine

    folder = work / "model"
    if not (folder / "config.json").exists():
        build_model(folder)
    os.environ["RELAY_CACHE"] = str(work / "cache")
    os.environ["RELAY_OPENVINO_PRECISION"] = precision
    real = backend._compile_properties
    engines = {}
    try:
        for group in groups:
            backend._compile_properties = lambda p, group=group: {**real(p), "DYNAMIC_QUANTIZATION_GROUP_SIZE": group}
            engine = engines[group] = Engine.from_pretrained(folder, backend="openvino")
            batcher = engine.backend._batchers[None]
            batcher.request = TimedRequest(batcher.request)
    finally:
        backend._compile_properties = real
    settings = PRESETS["balanced"].replace(stop_at="length", max_new_tokens=64, min_new_tokens=0,
                                           trim_incomplete=False, seed=1)
    story = story_of_tokens(next(iter(engines.values())), story_lines(), 512)
    for engine in engines.values():
        write(engine, fresh(story, "warm"), settings.replace(max_new_tokens=4))
    cells = {group: {"decode": [], "infer": [], "first": []} for group in groups}
    for run in range(repeat):
        for group, engine in engines.items():
            timed = engine.backend._batchers[None].request
            timed.calls.clear()
            writer = write(engine, fresh(story, f"{run}-{group}"), settings)
            steps = [end - start for start, end in timed.calls if start >= writer.first]
            cells[group]["decode"].append(writer.rate)
            cells[group]["infer"].append(statistics.mean(steps) * 1000)
            cells[group]["first"].append(writer.first_token * 1000)
    for engine in engines.values():
        engine.close()
    return {group: {key: statistics.median(values) for key, values in cell.items()} for group, cell in cells.items()}


def quality(precision: str, groups: list[str], steps: int, windows: int) -> dict[str, dict]:
    import bench_quality as bq
    from transformers import AutoModelForCausalLM

    folder = bq.train_small_model(steps)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = bq.corpus_ids(bq.tokenizer(), held_out=True)
    cut = [ids[i:i + bq.BLOCK] for i in range(0, len(ids) - bq.BLOCK, bq.BLOCK)][:windows]
    trained = sorted(set(bq.corpus_ids(bq.tokenizer(), held_out=False)))
    cache = bq.CACHE / "converted"
    reference = bq.all_logits(bq.converted_xml(model, "fp32", cache), bq.properties_for("fp32"), cut)
    xml = bq.converted_xml(model, precision, cache)
    return {group: bq.quality(reference, bq.all_logits(xml, properties(precision, group), cut), cut, trained)
            for group in groups}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["int8", "int4"])
    parser.add_argument("--groups", nargs="+", default=GROUPS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="training steps of bench_quality's small model")
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--work", type=Path, help="keep the real-shape model and its conversion here")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    from relay.backends.openvino.backend import DYNAMIC_QUANTIZATION_GROUP

    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for precision in args.precisions:
            rates = speed(precision, args.groups, args.repeat, work)
            scores = {} if args.skip_quality else quality(precision, args.groups, args.steps, args.windows)
            chosen = DYNAMIC_QUANTIZATION_GROUP.get(precision)
            print(f"\n{precision} (Relay's setting: {chosen}); speed median of {args.repeat}, load average "
                  f"{os.getloadavg()}")
            print("| group | decode tok/s @512 | vs 32 | runtime ms/step | first token ms | vs 32 "
                  "| held-out perplexity | top-1 agreement with fp32 | KL from fp32 |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            base = rates[args.groups[0]]
            for group in args.groups:
                r, s = rates[group], scores.get(group)
                quality_cells = (f"{s['ppl']:.2f} | {s['top1'] * 100:.2f} % | {s['kl']:.5f}" if s else "– | – | –")
                print(f"| {group}{' (Relay)' if group == chosen else ''} | {r['decode']:.1f} | "
                      f"{r['decode'] / base['decode']:.2f}x | {r['infer']:.2f} | {r['first']:.0f} | "
                      f"{base['first'] / r['first']:.2f}x | {quality_cells} |", flush=True)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
