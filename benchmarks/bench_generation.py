"""Generation speed of every backend side by side on the real KoGPT-2 architecture (random weights).

    .venv/bin/python benchmarks/bench_generation.py              # full table (~4 minutes quiet, longer busy)
    .venv/bin/python benchmarks/bench_generation.py --repeat 1 --new-tokens 16 --contexts 32   # smoke run
    .venv/bin/python benchmarks/bench_generation.py --backends transformers openvino           # skip the server

Builds GPT2LMHeadModel(GPT2Config.from_pretrained(../shared/kogpt2)) with random weights and the real
tokenizer in a temp folder and loads it through `Engine.from_pretrained` on each backend: transformers
(today's engine, the baseline), openvino (int8), and openai (a `python -m relay.serve --backend openvino`
process on this machine, to show what the HTTP hop costs). Cells are interleaved (every backend for one
cell, then the next cell), repeated, and the median reported, so a busy machine slows all backends alike.
Measured: first text and decode tokens/s at stories of about 32, 512 and 900 tokens (a fresh story each
run, so no kept cache helps); the first token when the story was read at the last turn and one short
paragraph was added; 3 alternatives; 4 writers of different stories at once (aggregate and each); plain
`model.generate` as a reference; and the machine's memory read bandwidth, which bounds decoding.
Speed does not depend on the weights, so random ones measure the real model. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))

FALLBACK_TEXT = ("비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다. 골목 끝에서 누군가 휘파람을 불었다. "
                 "바람이 차가웠다. 기차는 새벽 다섯 시에 떠난다고 했다. 우리에게 남은 시간은 많지 않았다.")


def kept_model(work: Path) -> Path:
    """KoGPT-2's shape with random weights in work/model, built the first time; conversions cached in work/cache
    (RELAY_CACHE), so a benchmark run with the same --work loads in seconds."""
    folder = work / "model"
    if not (folder / "config.json").exists():
        build_model(folder)
    os.environ["RELAY_CACHE"] = str(work / "cache")
    return folder


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
    first = first if first is not None else end
    return first - start, (tokens - 1) / max(end - first, 1e-9), tokens, stream.meta["prompt_tokens"]


def time_alternatives(engine, story, settings, n) -> tuple[float, float, float]:
    """Seconds until every candidate has its first text, then tokens/s per candidate and in all (streamed)."""
    start = time.perf_counter()
    stream = engine.stream_alternatives(story, settings, n)
    firsts: dict[int, float] = {}
    for index, _ in stream:
        firsts.setdefault(index, time.perf_counter())
    end = time.perf_counter()
    first = max(firsts.values()) if firsts else end
    per_candidate = (stream.meta["output_tokens"] / n - 1) / max(end - first, 1e-9)
    return first - start, per_candidate, per_candidate * n


def time_writers(engine, stories, settings, paragraph: str | None = None) -> tuple[float, float, float]:
    """Writers of different stories at once: tokens/s in all counting the reading; the slowest writer's decode
    tokens/s; and decode tokens/s in all, from the first writer's first token to the last writer's last.

    With `paragraph`, each story was read at its writer's last turn and gets one new paragraph now (the usual
    relay turn); without, every story is read from scratch while the others write."""
    if paragraph is not None:
        for story in stories:
            time_stream(engine, story, settings.replace(max_new_tokens=2))  # the previous turns
        stories = [story + [paragraph] for story in stories]
    results = [None] * len(stories)
    barrier = threading.Barrier(len(stories))

    def write(index):
        barrier.wait()
        start = time.perf_counter()
        first, rate, tokens, _ = time_stream(engine, stories[index], settings.replace(seed=100 + index))
        results[index] = (start + first, time.perf_counter(), rate, tokens)

    started = time.perf_counter()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stories))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.perf_counter() - started
    decoding = sum(r[3] - 1 for r in results) / (max(r[1] for r in results) - min(r[0] for r in results))
    return sum(r[3] for r in results) / total, min(r[2] for r in results), decoding


def time_next_turn(engine, story, settings, paragraph) -> float:
    """First-text seconds for a story whose earlier part was read at the previous turn, plus one short paragraph."""
    time_stream(engine, story, settings.replace(max_new_tokens=2))  # the previous turn
    return time_stream(engine, story + [paragraph], settings)[0]


def time_plain_generate(model, context: int, new_tokens: int) -> tuple[float, float]:
    """The reference: model.generate in fp32, sampling with top-k 50, no engine around it."""
    import torch

    ids = torch.randint(1000, 50000, (1, context), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    kwargs = dict(do_sample=True, top_k=50, pad_token_id=3, eos_token_id=1)
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=1, **kwargs)
        first = time.perf_counter() - start
        start = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
        total = time.perf_counter() - start
    return first, (new_tokens - 1) / (total - first)


def read_bandwidth() -> float:
    """GB/s of reading a 512 MB float32 tensor with torch's threads (decoding reads every weight per token)."""
    import torch

    data = torch.ones(128 * 1024 * 1024)
    data.sum()
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        runs.append(time.perf_counter() - start)
    return data.numel() * 4 / min(runs) / 1e9


def start_server(folder: Path, cache: Path) -> tuple[subprocess.Popen, str]:
    """A relay.serve process (openvino int8) on a free port; returns it and its URL once it answers."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RELAY_CACHE": str(cache)}
    process = subprocess.Popen([sys.executable, "-m", "relay.serve", "--model", str(folder), "--backend", "openvino",
                                "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/relay", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.terminate()
    sys.exit("relay.serve did not start")


def fresh(story: list[str], run: int) -> list[str]:
    """The same story with a different first line, so no backend can reuse a cache from an earlier run."""
    return [f"({run}번째 이야기)"] + story[1:]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[32, 512, 900])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--alternatives", type=int, default=3)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the median is reported")
    parser.add_argument("--backends", nargs="+", default=["transformers", "openvino", "openai"])
    args = parser.parse_args(argv)

    import torch

    from relay.engine import PRESETS, Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    settings = PRESETS["balanced"].replace(stop_at="length", max_new_tokens=args.new_tokens, min_new_tokens=0,
                                           trim_incomplete=False, seed=1)
    paragraph = "그녀는 아무 대답도 하지 않고 창밖을 바라보았다. 비가 다시 내리기 시작했다."
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model")
        os.environ["RELAY_CACHE"] = str(Path(tmp) / "cache")
        engines = {}
        for name in args.backends:
            started = time.perf_counter()
            if name == "openai":
                server, url = start_server(folder, Path(tmp) / "cache")
                engines[name] = Engine.from_pretrained(folder, backend="openai", inference_url=url)
            else:
                engines[name] = Engine.from_pretrained(folder, backend=name)
            print(f"{name}: loaded in {time.perf_counter() - started:.1f} s (conversion included the first time)")
        lines = story_lines()
        any_engine = next(iter(engines.values()))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
              f"{args.new_tokens} new tokens, balanced preset, stop_at=length; median of {args.repeat}, interleaved")
        print(f"load average before: {os.getloadavg()}")
        bandwidth = read_bandwidth()
        for engine in engines.values():  # warm-up
            time_stream(engine, story_of_tokens(any_engine, lines, 32), settings.replace(max_new_tokens=4))
        cells: dict[tuple, list] = {}

        def add(key, value):
            cells.setdefault(key, []).append(value)

        stories = {c: story_of_tokens(any_engine, lines, c) for c in set(args.contexts) | {512}}
        writer_stories = [story_of_tokens(any_engine, lines[: -200 * (i + 1)], 512) for i in range(args.writers)]
        for run in range(args.repeat):
            for context in args.contexts:
                for name, engine in engines.items():
                    first, rate, _, prompt = time_stream(engine, fresh(stories[context], run * 10 + 1), settings)
                    add((name, "1 streamed", context), (first, rate, rate, prompt))
                for name, engine in engines.items():
                    first, rate, total = time_alternatives(engine, fresh(stories[context], run * 10 + 2), settings,
                                                           args.alternatives)
                    add((name, f"{args.alternatives} alternatives", context), (first, rate, total, None))
            for name, engine in engines.items():
                first = time_next_turn(engine, fresh(stories[512], run * 10 + 3), settings, paragraph)
                add((name, "next turn: +1 short paragraph", 512), (first, None, None, None))
            for name, engine in engines.items():
                aggregate, slowest, decoding = time_writers(engine, [fresh(s, run * 10 + 4) for s in writer_stories],
                                                            settings)
                add((name, f"{args.writers} writers at once (slowest writer / decoding in all)", 512),
                    (None, slowest, decoding, None))
                add((name, f"{args.writers} writers at once, reading included (in all)", 512),
                    (None, None, aggregate, None))
            for name, engine in engines.items():
                aggregate, slowest, decoding = time_writers(engine, [fresh(s, run * 10 + 5) for s in writer_stories],
                                                            settings, paragraph)
                add((name, f"{args.writers} writers at once, next turns: +1 paragraph (slowest / decoding in all)",
                     512), (None, slowest, decoding, None))
            if "transformers" in engines:
                first, rate = time_plain_generate(engines["transformers"].model, 512, args.new_tokens)
                add(("plain generate fp32", "1 (reference)", 512), (first, rate, rate, None))
        load_after = os.getloadavg()
    if server is not None:
        server.terminate()

    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def fmt(value, digits):
        return "" if value is None else f"{value:.{digits}f}"

    baseline = {}
    for (name, run, context), values in cells.items():
        if name == "transformers":
            baseline[(run, context)] = median(v[2] for v in values)
    print(f"memory read bandwidth: {bandwidth:.1f} GB/s (torch sum over 512 MB); load average after: {load_after}")
    print("tokens/s count the tokens after the first one, over the time after the first one; "
          "x = tokens/s in all against transformers in the same cell")
    print("| backend | run | context tokens | first token (s) | tokens/s per sequence | tokens/s in all | x |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, run, context), values in cells.items():
        first, rate, total = (median(v[i] for v in values) for i in range(3))
        base = baseline.get((run, context))
        ratio = f"{total / base:.1f}" if total and base else ""
        print(f"| {name} | {run} | {context} | {fmt(first, 2)} | {fmt(rate, 1)} | {fmt(total, 1)} | {ratio} |")
    for name in args.backends:  # the target: writers at once >= 2.5x one stream on the same backend
        one = cells.get((name, "1 streamed", 512))
        for label, run in (("stories read now", f"{args.writers} writers at once (slowest writer / decoding in all)"),
                           ("next turns", f"{args.writers} writers at once, next turns: +1 paragraph "
                                          "(slowest / decoding in all)")):
            many = cells.get((name, run, 512))
            if one and many:
                ratio = median(v[2] for v in many) / median(v[2] for v in one)
                print(f"{name}: {args.writers} writers at once ({label}) decode {ratio:.2f}x one stream's "
                      f"tokens/s (context 512)")


if __name__ == "__main__":
    main()
