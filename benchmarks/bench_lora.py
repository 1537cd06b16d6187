"""Adapters at runtime (issue 21 item 6) on the real KoGPT-2 shape: speed, memory and conversion per adapter.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_lora.py            # ~6 minutes busy
    .venv/bin/python benchmarks/bench_lora.py --work /tmp/relay-lora --repeat 1      # keep model and adapters

Builds KoGPT-2's shape with random weights and the real tokenizer (bench_generation.build_model) and random
LoRA adapters like finetune/train_lora.py's (r=16, alpha=32 on c_attn, c_proj, c_fc; lora_B random, so the
adapter changes the model), and compares, in one run, int8:

- conversion per adapter: the old way (merge into a copy, convert, compress, save, compile a whole model) against
  the new one (read the adapter's LoRA matrices; the LoRA graph is converted once, whatever the adapters);
- decode tokens/s of one writer continuing a story of about 512 tokens by 64 tokens (stop_at=length), and of four
  writers at once: the base graph, the LoRA graph with an adapter active, and the merged model (the old way),
  interleaved round by round so a busy machine slows all alike (median of --repeat rounds);
- memory per adapter: the LoRA matrices it holds against the merged model's .bin, and the process's resident
  memory (VmRSS) after a turn on each graph, measured in fresh processes: base only; base and 1 or 3 adapters at
  runtime; base and 1 merged model (what each adapter cost before).
Results: BENCHMARKS.md ("Adapters at runtime").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

RANK, ALPHA = 16, 32  # finetune/train_lora.py's defaults


def build_adapter(model_folder: Path, folder: Path, seed: int) -> Path:
    """A random LoRA adapter like train_lora.py's, whose lora_B is not zero (a trained adapter's is not)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    model = get_peft_model(GPT2LMHeadModel.from_pretrained(model_folder),
                           LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["c_attn", "c_proj", "c_fc"],
                                      fan_in_fan_out=True, bias="none"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape) * 0.02)
    model.save_pretrained(folder)
    return folder


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def engine_of(model, folder: Path, adapters: dict[str, str], cache: Path):
    from relay.backends.openvino import OpenVinoBackend
    from relay.engine import Engine, load_tokenizer

    backend = OpenVinoBackend.from_model(model, adapters=adapters, precision="int8", cache=cache)
    return Engine(backend, load_tokenizer(folder), model_id=str(folder), adapter_names=list(adapters), device="cpu")


def decode_rate(engine, story, settings, adapter=None) -> float:
    """Decode tokens/s of one turn, from its first text chunk to its end."""
    stream = engine.continue_story(story, settings, adapter=adapter)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return (stream.meta["output_tokens"] - 1) / max(end - (first or end), 1e-9)


def together_rate(engine, stories, settings, adapter=None) -> float:
    """Decode tokens/s in all of four writers at once (tokens after each one's first, over the slowest's span)."""
    spans: list[tuple[float, float, int]] = [None] * len(stories)  # type: ignore[list-item]
    barrier = threading.Barrier(len(stories))

    def run(index):
        barrier.wait()
        stream = engine.continue_story(stories[index], settings.replace(seed=100 + index), adapter=adapter)
        first = None
        for _ in stream:
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        spans[index] = (first or end, end, stream.meta["output_tokens"] - 1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stories))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(t for *_, t in spans) / max(max(e for _, e, _ in spans) - min(f for f, _, _ in spans), 1e-9)


def fresh(story: list[str], tag: str) -> list[str]:
    """The same story with another first line, so no kept cache helps."""
    return [f"{tag}번째 이야기는 이렇게 시작되었다."] + story[1:]


def child(args) -> None:
    """--child MODE: load from the cache, run one turn per graph, print VmRSS (MB) as JSON."""
    from transformers import AutoModelForCausalLM

    from relay.engine import SamplingSettings

    folder, cache = Path(args.folder), Path(args.cache)
    adapters = json.loads(args.adapters)
    settings = SamplingSettings(max_new_tokens=16, min_new_tokens=0, stop_at="length", seed=1)
    story = ["비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다."] * 20
    engines = []
    if args.child == "runtime":
        engine = engine_of(AutoModelForCausalLM.from_pretrained(folder), folder, adapters, cache)
        engines.append(engine)
        for name in [None, *adapters]:
            engine.continue_story(story, settings, adapter=name).text
    else:  # "merged": the base engine and one merged model, as the old way served one adapter
        from peft import PeftModel

        engines.append(engine_of(AutoModelForCausalLM.from_pretrained(folder), folder, {}, cache))
        merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), adapters["a1"])
        engines.append(engine_of(merged.merge_and_unload(), folder, {}, cache))
        del merged
        for engine in engines:
            engine.continue_story(story, settings).text
    import gc

    gc.collect()
    print(json.dumps({"rss_mb": rss_mb()}))
    for engine in engines:
        engine.close()


def child_rss(mode: str, folder: Path, cache: Path, adapters: dict[str, str]) -> float:
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--folder", str(folder), "--cache", str(cache),
                           "--adapters", json.dumps(adapters)], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default=None, help="keep the model, adapters and cache here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--adapters", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from bench_generation import build_model, story_lines, story_of_tokens
    from relay.backends.openvino import cached_model_path
    from relay.backends.openvino.lora import read_adapter
    from relay.engine import SamplingSettings

    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="relay-lora-"))
    folder = work / "kogpt2-random"
    if not (folder / "config.json").exists():
        build_model(folder)
    adapters = {}
    for index in (1, 2, 3):
        path = work / f"adapter-{index}"
        if not (path / "adapter_config.json").exists():
            build_adapter(folder, path, seed=index)
        adapters[f"a{index}"] = str(path)
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # empty: every conversion below is timed
    base = AutoModelForCausalLM.from_pretrained(folder)

    # Conversion: the LoRA graph once, then per adapter the old way against the new one.
    started = time.perf_counter()
    cached_model_path(base, "int8", cache)
    base_seconds = time.perf_counter() - started
    started = time.perf_counter()
    cached_model_path(base, "int8", cache, lora=True)
    lora_graph_seconds = time.perf_counter() - started
    started = time.perf_counter()
    weights = read_adapter(base, "a1", adapters["a1"])
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), adapters["a1"]).merge_and_unload()
    merged_xml = cached_model_path(merged, "int8", cache)
    merge_seconds = time.perf_counter() - started
    lora_bytes = sum(a.nbytes + b.nbytes for a, b in weights.values())
    merged_bin = (merged_xml.parent / "model.bin").stat().st_size
    print(f"conversion (cache empty): base graph {base_seconds:.1f} s; LoRA graph (once, any adapters) "
          f"{lora_graph_seconds:.1f} s; per adapter: old (merge + convert + compress + save) {merge_seconds:.1f} s, "
          f"new (read its LoRA matrices) {read_seconds:.2f} s")
    print(f"per adapter on disk / in memory: LoRA matrices {lora_bytes / 1e6:.1f} MB (f32, r={RANK}) against the "
          f"merged int8 model's .bin {merged_bin / 1e6:.1f} MB ({merged_bin / lora_bytes:.0f}x)")

    # Speed: base graph, LoRA graph with an adapter, the merged model; interleaved rounds.
    runtime = engine_of(base, folder, {"a1": adapters["a1"]}, cache)
    old = engine_of(merged, folder, {}, cache)
    story = story_of_tokens(runtime, story_lines(), 512)
    settings = SamplingSettings(max_new_tokens=64, min_new_tokens=0, stop_at="length", seed=1)
    cells = {name: {"one": [], "four": []} for name in ("base graph", "LoRA graph, adapter a1", "merged a1 (old)")}
    runs = {"base graph": (runtime, None), "LoRA graph, adapter a1": (runtime, "a1"), "merged a1 (old)": (old, None)}
    for name, (engine, adapter) in runs.items():  # warm-up: first compile-time allocations, page-ins
        decode_rate(engine, fresh(story, "w"), settings.replace(max_new_tokens=8), adapter)
    for round_ in range(args.repeat):
        for name, (engine, adapter) in runs.items():
            cells[name]["one"].append(decode_rate(engine, fresh(story, f"{round_}{name}"), settings, adapter))
            stories = [fresh(story, f"{round_}{name}{i}") for i in range(4)]
            cells[name]["four"].append(together_rate(engine, stories, settings, adapter))
    print(f"\ndecode tokens/s at ~512 tokens of context, int8, median of {args.repeat} interleaved rounds:")
    reference = {kind: statistics.median(cells["base graph"][kind]) for kind in ("one", "four")}
    for name, kinds in cells.items():
        one, four = statistics.median(kinds["one"]), statistics.median(kinds["four"])
        print(f"  {name:24s} one writer {one:6.1f} ({one / reference['one']:.2f}x base)   "
              f"four writers {four:6.1f} in all ({four / reference['four']:.2f}x base)")
    runtime.close()
    old.close()

    # Memory: fresh processes, after a turn on each graph.
    print("\nresident memory (VmRSS) after a turn on each graph, fresh processes:")
    only_base = child_rss("runtime", folder, cache, {})
    one = child_rss("runtime", folder, cache, {"a1": adapters["a1"]})
    three = child_rss("runtime", folder, cache, adapters)
    merged_one = child_rss("merged", folder, cache, {"a1": adapters["a1"]})
    print(f"  base only {only_base:.0f} MB; at runtime: base + 1 adapter {one:.0f} MB, + 3 adapters {three:.0f} MB "
          f"-> {(three - one) / 2:.0f} MB per adapter added, {one - only_base - (three - one) / 2:.0f} MB for the "
          f"LoRA graph once")
    print(f"  old way: base + 1 merged model {merged_one:.0f} MB -> {merged_one - only_base:.0f} MB per adapter")
    print(f"load average at end {os.getloadavg()}")
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
