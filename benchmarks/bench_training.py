"""Training speed and peak memory of LoRA on the real KoGPT-2 architecture (random weights), on this machine.

    .venv/bin/python benchmarks/bench_training.py                      # block sizes 256 and 1024
    .venv/bin/python benchmarks/bench_training.py --blocks 1024 --steps 5

Each block size runs in its own process so its peak RSS is its own. A step is 1024 tokens
(batch = 1024 // block) through the same LoRA setup as finetune/train_lora.py (r=16 on c_attn,
c_proj, c_fc; SDPA attention; AdamW), fp32 on CPU. Beside the measurement it prints a V100
estimate from FLOPs: about 0.54 GFLOP per training token for LoRA (forward 2N plus the backward
pass through activations only, N = 125M, plus attention), on 125 TFLOP/s fp16 tensor-core peak,
at an assumed model FLOP utilisation (MFU) of 30% (range 20-40%) for a 125M model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared")) / "kogpt2"
FLOP_PER_TOKEN = 0.54e9
V100_PEAK = 125e12
MFU = (0.2, 0.3, 0.4)
TOKENS_PER_STEP = 1024


def run_one(block: int, steps: int, warmup: int, lora_r: int) -> dict:
    """Train `warmup + steps` LoRA steps at `block` tokens per sequence; returns speed and peak RSS."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GPT2Config

    sys.path.insert(0, str(REPO))
    from finetune.train_lora import TARGET_MODULES

    torch.manual_seed(0)
    config = GPT2Config.from_pretrained(CONFIG)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05,
                                             target_modules=TARGET_MODULES, fan_in_fan_out=True))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    batch = max(1, TOKENS_PER_STEP // block)
    ids = torch.randint(0, config.vocab_size, (batch, block))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.train()
    times = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - started)
    seconds = sum(times)
    return {
        "block": block,
        "batch": batch,
        "steps": steps,
        "tokens_per_second": batch * block * steps / seconds,
        "seconds_per_step": seconds / steps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_model_mib": rss_before,
        "trainable_parameters": sum(p.numel() for p in trainable),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    """Run each block size in a fresh process and print a table with the V100 estimate."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[256, 1024], help="block sizes to measure")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per block size")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one block size, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.warmup, args.lora_r)))
        return
    if not (CONFIG / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config.json at {CONFIG}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"model: GPT-2 from {CONFIG / 'config.json'} (random weights), LoRA r={args.lora_r} on c_attn/c_proj/c_fc, fp32, SDPA")
    results = []
    for block in args.blocks:
        command = [sys.executable, __file__, "--one", str(block), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--lora-r", str(args.lora_r)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import torch

    print(f"torch {torch.__version__}, {results[0]['threads']} threads; trainable parameters {results[0]['trainable_parameters']:,}")
    print(f"{'block':>6} {'batch':>6} {'s/step':>8} {'tokens/s':>9} {'CPU GFLOP/s':>12} {'RSS model MiB':>14} {'peak RSS MiB':>13}")
    for r in results:
        print(f"{r['block']:>6} {r['batch']:>6} {r['seconds_per_step']:>8.2f} {r['tokens_per_second']:>9.0f} "
              f"{r['tokens_per_second'] * FLOP_PER_TOKEN / 1e9:>12.1f} {r['rss_after_model_mib']:>14.0f} {r['peak_rss_mib']:>13.0f}")
    print(f"V100 estimate: {FLOP_PER_TOKEN / 1e9:.2f} GFLOP/token at {V100_PEAK / 1e12:.0f} TFLOP/s fp16 peak:")
    for mfu in MFU:
        rate = V100_PEAK * mfu / FLOP_PER_TOKEN
        print(f"  MFU {mfu:.0%}: {rate:,.0f} tokens/s = {rate * 3600 / 1e6:,.0f}M tokens/hour"
              + ("   <- assumed" if mfu == 0.3 else ""))


if __name__ == "__main__":
    main()
