"""Generation speed of the engine on the real KoGPT-2 architecture (random weights), beside plain `generate`.

    .venv/bin/python benchmarks/bench_generation.py              # full table (~3 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/bench_generation.py --repeat 1 --new-tokens 16   # smoke run

Builds GPT2LMHeadModel(GPT2Config.from_pretrained(../shared/kogpt2)) with random weights and the real
tokenizer in a temp folder, loads it through `Engine.from_pretrained`, and measures, for stories of about
32, 512 and 900 tokens: time to first text and tokens per second, streaming one continuation and
batching 3 alternatives. Speed does not depend on the weights, so random ones measure the real model.
Results are recorded in docs/engine.md.
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
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))

FALLBACK_TEXT = ("비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다. 골목 끝에서 누군가 휘파람을 불었다. "
                 "바람이 차가웠다. 기차는 새벽 다섯 시에 떠난다고 했다. 우리에게 남은 시간은 많지 않았다.")


def build_model(folder: Path) -> Path:
    """Save KoGPT-2's shape with random weights and its real tokenizer into `folder`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from relay.tiny import KOGPT2_SPECIAL

    kogpt2 = SHARED / "kogpt2"
    PreTrainedTokenizerFast(tokenizer_file=str(kogpt2 / "tokenizer.json"), **KOGPT2_SPECIAL).save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config.from_pretrained(kogpt2)).save_pretrained(folder)
    return folder


def story_lines() -> list[str]:
    corpus = SHARED / "corpus" / "koconovel"
    if corpus.is_dir():
        lines = []
        for path in sorted(corpus.glob("*.txt")):
            lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines
    return [FALLBACK_TEXT] * 400


def story_of_tokens(engine, lines: list[str], tokens: int) -> list[str]:
    """The last lines of the corpus that make a context of about `tokens` tokens (cut to fit exactly by words)."""
    story: list[str] = []
    for line in reversed(lines):
        if engine.count_tokens("\n".join([line] + story) + "\n") > tokens:
            words = line.split()
            while words and engine.count_tokens("\n".join([" ".join(words)] + story) + "\n") > tokens:
                words = words[1:]
            return ([" ".join(words)] if words else []) + story
        story.insert(0, line)
    return story


def time_stream(engine, story, settings) -> tuple[float, float, int, int]:
    """Seconds to the first text chunk, decode tokens/s after it, output tokens, prompt tokens."""
    start = time.perf_counter()
    stream = engine.continue_story(story, settings)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    tokens = stream.meta["output_tokens"]
    return first - start, (tokens - 1) / (end - first), tokens, stream.meta["prompt_tokens"]


def time_alternatives(engine, story, settings, n) -> tuple[float, float, float]:
    """Seconds until all n have their first token (a 1-token call), then tokens/s per candidate and in all."""
    first = engine.alternatives(story, settings.replace(max_new_tokens=1), n).meta["seconds"]
    meta = engine.alternatives(story, settings, n).meta
    per_candidate = (meta["output_tokens"] / n - 1) / max(meta["seconds"] - first, 1e-9)
    return first, per_candidate, per_candidate * n


def time_plain_generate(engine, context: int, new_tokens: int) -> tuple[float, float]:
    """The reference: model.generate in fp32, sampling with top-k 50, no engine around it."""
    import torch

    ids = torch.randint(1000, 50000, (1, context), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    kwargs = dict(do_sample=True, top_k=50, pad_token_id=3, eos_token_id=1)
    with torch.inference_mode():
        start = time.perf_counter()
        engine.model.generate(ids, attention_mask=mask, max_new_tokens=1, **kwargs)
        first = time.perf_counter() - start
        start = time.perf_counter()
        engine.model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
        total = time.perf_counter() - start
    return first, (new_tokens - 1) / (total - first)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[32, 512, 900])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--alternatives", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the median is reported")
    args = parser.parse_args(argv)

    import torch

    from relay.engine import PRESETS, Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    settings = PRESETS["balanced"].replace(stop_at="length", max_new_tokens=args.new_tokens, min_new_tokens=0,
                                           trim_incomplete=False, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.from_pretrained(build_model(Path(tmp)))
        lines = story_lines()
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
              f"{args.new_tokens} new tokens, balanced preset, stop_at=length; median of {args.repeat}")
        time_stream(engine, story_of_tokens(engine, lines, 32), settings.replace(max_new_tokens=4))  # warm-up
        rows = []
        for context in args.contexts:
            story = story_of_tokens(engine, lines, context)
            runs = [time_stream(engine, story, settings) for _ in range(args.repeat)]
            first, rate = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            rows.append((runs[0][3], "engine, 1 streamed", first, rate, rate))
            alts = [time_alternatives(engine, story, settings, args.alternatives) for _ in range(args.repeat)]
            rows.append((runs[0][3], f"engine, {args.alternatives} alternatives", statistics.median(a[0] for a in alts),
                         statistics.median(a[1] for a in alts), statistics.median(a[2] for a in alts)))
        plain = [time_plain_generate(engine, 512, args.new_tokens) for _ in range(args.repeat)]
        rows.append((512, "plain model.generate fp32", statistics.median(p[0] for p in plain),
                     statistics.median(p[1] for p in plain), statistics.median(p[1] for p in plain)))
    print("tokens/s count the tokens after the first one, over the time after the first one")
    print("| context tokens | run | first token (s) | tokens/s per sequence | tokens/s in all |")
    print("|---:|---|---:|---:|---:|")
    for context, run, first, rate, total in rows:
        print(f"| {context} | {run} | {first:.2f} | {rate:.1f} | {total:.1f} |")


if __name__ == "__main__":
    main()
