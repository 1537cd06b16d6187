"""What recording token probabilities costs: decode tokens/s with and without, in the same run, on the OpenVINO
backend with KoGPT-2's real shape (random weights) and tokenizer.

    flock /tmp/relay-bench.lock .venv/bin/python benchmarks/bench_token_probs.py            # ~3 minutes quiet
    .venv/bin/python benchmarks/bench_token_probs.py --repeat 2 --new-tokens 16 --contexts 32   # smoke run

Runs alternate (recording on, off, on, off...) so a busy machine slows both alike; the median of each is
reported with their ratio. Measured: one writer's decode tokens/s after the first text (story of about 32 and
512 tokens), 3 alternatives in one batch (tokens/s per candidate), the sampler's own time per step
(`TokenPicker.pick` on one row of 51,200 logits, balanced preset), the end-of-turn work (pieces of text per id),
and the one-time build of the id -> display text table. "Off" is `Engine.record_probs = False`
(GenerationRequest.record_probs), what relay.serve does when a client asks for no logprobs. Results:
BENCHMARKS.md ("Token probabilities").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generation import SHARED, build_model, story_lines, story_of_tokens, time_stream  # noqa: E402


def time_alternatives(engine, story, settings, n: int) -> float:
    """Decode tokens/s per candidate of n alternatives in one batch, after every candidate has its first text."""
    stream = engine.stream_alternatives(story, settings, n)
    firsts: dict[int, float] = {}
    for index, _ in stream:
        firsts.setdefault(index, time.perf_counter())
    end = time.perf_counter()
    first = max(firsts.values()) if firsts else end
    return (stream.meta["output_tokens"] / n - 1) / max(end - first, 1e-9)


def time_picker(engine, settings, records: bool, steps: int = 200) -> float:
    """Milliseconds per TokenPicker.pick on one row of KoGPT-2-wide logits under the engine's rules."""
    import numpy as np

    from relay.backends.base import GenerationRequest
    from relay.backends.picker import TokenPicker

    rng = np.random.default_rng(0)
    request = GenerationRequest(
        prompt=list(range(100, 400)), n=1, settings=settings, seed=1, adapter=None, never_ids=sorted(engine._never),
        paragraph_end_ids=list(engine._paragraph_end_ids), holds_paragraph_end=lambda row: False,
        on_tokens=lambda ids: [False], cancelled=lambda: False, on_probs=(lambda probs: None) if records else None)
    picker = TokenPicker(request)
    rows = [rng.standard_normal((1, engine.backend.vocab_size), dtype=np.float32) * 3 for _ in range(16)]
    start = time.perf_counter()
    for step in range(steps):
        picker.pick(rows[step % len(rows)].copy())
    return (time.perf_counter() - start) / steps * 1000


def time_record(engine, story, settings) -> float:
    """Milliseconds of the end-of-turn work for one candidate: its pieces of text and rounded entries."""
    from relay.decoding import StreamDecoder, Track, token_record

    result = engine.continue_story(story, settings)
    tokens = result.meta["tokens"]
    track = Track(StreamDecoder(engine.tokenizer, engine.assemble(story, settings).ids, engine._drop_ids), settings,
                  engine.tokenizer.eos_token_id)
    for token, p, top in zip(tokens["ids"], tokens["p"], tokens["top"]):
        track.take(token, (p, [i for i, _, _ in top], [q for _, _, q in top]))
    display = engine._display_pieces()
    start = time.perf_counter()
    for _ in range(20):
        token_record(track, result.text, display)
    return (time.perf_counter() - start) / 20 * 1000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[32, 512])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=6, help="runs of each (on, off) per cell; medians reported")
    args = parser.parse_args(argv)

    from relay.engine import PRESETS, Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    settings = PRESETS["balanced"].replace(stop_at="length", max_new_tokens=args.new_tokens, min_new_tokens=0,
                                           trim_incomplete=False, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model")
        os.environ["RELAY_CACHE"] = str(Path(tmp) / "cache")
        engine = Engine.from_pretrained(folder, backend="openvino")
        lines = story_lines()
        from relay.decoding import display_pieces

        started = time.perf_counter()
        display_pieces(engine.tokenizer, engine.backend.vocab_size)  # what the engine builds once when it loads
        table_ms = (time.perf_counter() - started) * 1000
        print(f"openvino {getattr(engine.backend, 'precision', '?')}, {os.cpu_count()} CPUs; {args.new_tokens} new "
              f"tokens, balanced preset ({settings.top_k=}, {settings.top_p=}), stop_at=length; median of "
              f"{args.repeat}, on/off alternating")
        print(f"load average before: {os.getloadavg()}")
        time_stream(engine, story_of_tokens(engine, lines, 32), settings.replace(max_new_tokens=4))  # warm-up
        rows = []
        cells = [(f"1 writer, story ~{c} tokens: decode tokens/s", "stream", c) for c in args.contexts]
        cells.append(("3 alternatives, story ~32 tokens: tokens/s per candidate", "alternatives", 32))
        for label, kind, context in cells:
            story = story_of_tokens(engine, lines, context)
            runs = {True: [], False: []}
            for run in range(args.repeat):
                for records in (True, False) if run % 2 == 0 else (False, True):
                    engine.record_probs = records
                    fresh = story[:-1] + [story[-1] + f" {run}"]  # no kept cache helps either side
                    value = (time_stream(engine, fresh, settings)[1] if kind == "stream"
                             else time_alternatives(engine, fresh, settings.replace(seed=run + 1), 3))
                    runs[records].append(value)
            engine.record_probs = True
            on, off = statistics.median(runs[True]), statistics.median(runs[False])
            rows.append((label, off, on, on / off))
        picks = {records: statistics.median(time_picker(engine, settings, records) for _ in range(3))
                 for records in (True, False)}
        record_ms = time_record(engine, story_of_tokens(engine, lines, 32), settings)
        print(f"load average after: {os.getloadavg()}")
        print()
        print("| measure | recording off | recording on | on / off |")
        print("|---|---|---|---|")
        for label, off, on, ratio in rows:
            print(f"| {label} | {off:.1f} | {on:.1f} | {ratio:.3f} |")
        print(f"| sampler per step (TokenPicker.pick, 1 row): ms | {picks[False]:.3f} | {picks[True]:.3f} | "
              f"{picks[True] / picks[False]:.3f} |")
        print(f"| end of turn, one {args.new_tokens}-token candidate (pieces, entries): ms | – | {record_ms:.2f} | – |")
        print(f"| id -> display text table, built once when the engine loads: ms | – | {table_ms:.0f} | – |")
        engine.close()


if __name__ == "__main__":
    main()
