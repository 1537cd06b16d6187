"""What steering costs: assembling what the model reads (memory, story cards, the author's note) beside the plain
story window, and the first token of the next turn with memory and cards on and off.

    .venv/bin/python benchmarks/bench_context.py                         # both parts (~2-3 minutes quiet)
    .venv/bin/python benchmarks/bench_context.py --runs 50 --turns 1     # smoke run

1. Assembly: `Engine.assemble` on a 2,000-paragraph story (KoCoNovel lines) with 200 story cards (2 keys each,
   a few of them in the latest paragraphs), a 300-character memory and a note 3 paragraphs from the end, against
   the same call without steering (the plain window of relay/prompt.py); p50 and p95 of --runs calls each,
   interleaved, with the real KoGPT-2 tokenizer. The issue's target: under 10 ms.
2. Assembling a next turn: a ~512-token story assembled once (the previous turn), then with a new paragraph (a
   different one each run, so nothing remembered serves it), its lines' remembered ids put together (the engine's
   way for KoGPT-2, relay/encoding.py `lines_tokenize_apart`) against its window tokenized whole (the way before,
   and any tokenizer's whose tokens run across line breaks); p50 and p95 of --runs each, interleaved.
3. First token of the next turn: a story of about 512 tokens is read once (the previous turn), a paragraph is
   added, and the time to the first text of the next turn is measured, with memory and cards on and off, on the
   same engine: openvino int8 on the real KoGPT-2 architecture with random weights (config and tokenizer from
   ../shared/kogpt2, as benchmarks/bench_generation.py builds it). `cached_prompt_tokens` shows how much of the
   prompt the kept cache spared: the memory and cards come first, so the prefix cache still hits.
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
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_generation import SHARED, build_model, fresh, story_lines, story_of_tokens  # noqa: E402

NAMES = ["민지", "준호", "하린", "서연", "도윤", "지우", "수아", "예준", "시우", "하은"]
MEMORY = ("배경은 1970년대 부산의 바닷가 마을. 민지는 열일곱 살, 우체국 집 딸로 편지를 대신 읽어 주는 일을 한다. "
          "준호는 민지의 소꿉친구로 고깃배를 탄다. 마을에는 밤마다 등대 불빛이 꺼진다는 소문이 돈다. "
          "이야기는 민지의 눈으로, 짧고 담담한 문장으로 쓴다. 계절은 늦가을이고, 바람이 차갑다. "
          "하린은 서울에서 내려온 교사이고, 서연은 등대지기의 딸이다.")
NOTE = "긴장감 있게, 짧은 문장으로. 등대 이야기를 잊지 말 것."
PARAGRAPH = "민지는 아무 대답도 하지 않고 창밖을 바라보았다. 비가 다시 내리기 시작했다."


def steering(cards: int, memory: bool = True):
    """Memory, a note 3 paragraphs from the end and `cards` cards: 10 of them keyed by names in the story."""
    from relay.context import Card, Steering

    deck = []
    for i in range(cards):
        name = NAMES[i] if i < len(NAMES) else f"인물{i}"
        deck.append(Card(id=i + 1, name=name, keys=(name, f"{name}이"), priority=i % 100, version=1,
                         text=f"{name}에 대한 설정: 바닷가 마을 사람으로, {i}번째 등장인물이다. 말수가 적고 눈치가 빠르다."))
    if not memory:
        return Steering(cards=tuple(deck))
    return Steering(memory=MEMORY, memory_version=1, note=NOTE, note_version=1, cards=tuple(deck))


def timed(fn) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of one call: on a busy machine the CPU time still says what it costs."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_assembly(engine, lines: list[str], runs: int) -> None:
    from relay.settings import PRESETS

    settings = PRESETS["balanced"]
    story = [lines[i % len(lines)] for i in range(2000)]
    story[-2] = "그날 밤 민지는 준호에게 편지를 건넸다. " + story[-2]  # two cards' keys, with particles
    steered = steering(200)
    result = engine.assemble(story, settings, steered)
    plain = engine.assemble(story, settings)
    print(f"story: {len(story)} paragraphs, {sum(len(p) for p in story):,} characters; 200 cards; "
          f"with steering: {len(result.ids)} prompt tokens ({[b.kind for b in result.blocks]}), "
          f"cards in: {[b.trigger.card.name for b in result.blocks if b.kind == 'card']}; plain: {len(plain.ids)}")
    steered_ms, plain_ms = [], []
    for _ in range(runs):  # interleaved, so a busy moment slows both alike
        steered_ms.append(timed(lambda: engine.assemble(story, settings, steered)))
        plain_ms.append(timed(lambda: engine.assemble(story, settings)))
    print("| assembly | p50 (ms) | p95 (ms) | CPU p50 (ms) | CPU p95 (ms) |")
    print("|---|---:|---:|---:|---:|")
    for label, values in (("plain story window (no steering)", plain_ms), ("memory + 200 cards + note", steered_ms)):
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        print(f"| {label} | {percentile(wall, 0.5):.2f} | {percentile(wall, 0.95):.2f} | {percentile(cpu, 0.5):.2f} | "
              f"{percentile(cpu, 0.95):.2f} |")


def bench_next_assembly(engine, lines: list[str], runs: int) -> None:
    from relay.context import assemble
    from relay.settings import PRESETS

    settings = PRESETS["balanced"]
    base = story_of_tokens(engine, lines, 512)
    encoder = engine._encoder

    def assembly(paragraphs, steered, apart):
        return assemble(encoder.one, paragraphs, engine.context_window, settings.max_new_tokens,
                        bos_id=engine._bos_id, encode_many=encoder.many, steering=steered, lines_apart=apart)

    print(f"tokenizer's lines tokenize apart: {encoder.lines_apart}; story of "
          f"{len(assembly(base, None, False).ids)} tokens, next turn +1 paragraph")
    times: dict[tuple, list] = {}
    for run in range(runs):  # interleaved; each variant its own story, so each sees only its previous turn
        for steered_label, steered in (("plain", None), ("memory + 200 cards + note", steering(200))):
            for apart in (True, False):
                story = fresh(base, 10 * run + 2 * apart + (steered is not None))
                assembly(story, steered, apart)  # the previous turn
                added = story + [f"{PARAGRAPH} ({run}번째 밤이었다.)"]
                times.setdefault((steered_label, apart), []).append(
                    timed(lambda: assembly(added, steered, apart)))
                if run == 0:
                    assert assembly(added, steered, True).ids == assembly(added, steered, False).ids
    print("| next turn's assembly | window | p50 (ms) | p95 (ms) | CPU p50 (ms) |")
    print("|---|---|---:|---:|---:|")
    for (steered_label, apart), values in times.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        how = "lines' ids put together (now)" if apart else "tokenized whole (before)"
        print(f"| {steered_label} | {how} | {percentile(wall, 0.5):.2f} | {percentile(wall, 0.95):.2f} | "
              f"{percentile(cpu, 0.5):.2f} |")


def first_text(engine, story, settings, steered) -> tuple[float, dict]:
    start = time.perf_counter()
    stream = engine.continue_story(story, settings, steering=steered)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, stream.meta


def bench_next_turn(engine, lines: list[str], turns: int) -> None:
    from relay.settings import PRESETS

    settings = PRESETS["balanced"].replace(stop_at="length", max_new_tokens=16, min_new_tokens=0, seed=1,
                                           trim_incomplete=False)
    base = story_of_tokens(engine, lines, 512)
    base[-3] = "준호는 민지에게 등대 이야기를 꺼냈다. " + base[-3]  # two cards come in
    first_text(engine, fresh(base, 99_999), settings, None)  # warm-up: the runtime's first request costs more
    rows: dict[str, list[tuple]] = {"off": [], "on": []}
    for run in range(turns):
        for label, steered in (("off", None), ("on", steering(200))):
            story = fresh(base, 100 * run + (1 if label == "on" else 2))
            cold, meta_cold = first_text(engine, story, settings, steered)  # the previous turn reads it all
            warm, meta = first_text(engine, story + [PARAGRAPH], settings, steered)
            rows[label].append((cold, warm, meta["prompt_tokens"], meta["cached_prompt_tokens"],
                                meta_cold["prompt_tokens"]))
    print("| memory + cards | prompt tokens | first text, story read cold (s) | first text, next turn (+1 paragraph) (s) "
          "| prompt tokens read from the kept cache |")
    print("|---|---:|---:|---:|---:|")
    for label, values in rows.items():
        cold = statistics.median(v[0] for v in values)
        warm = statistics.median(v[1] for v in values)
        prompt = values[-1][2]
        cached = values[-1][3]
        print(f"| {label} | {prompt} | {cold:.3f} | {warm:.3f} | {cached} of {prompt} ({prompt - cached} read) |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="assembly calls per variant")
    parser.add_argument("--turns", type=int, default=5, help="next-turn measurements per variant (median; 0: skip)")
    parser.add_argument("--backend", default="openvino")
    args = parser.parse_args(argv)

    from relay.engine import Engine

    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "model")
        os.environ["RELAY_CACHE"] = str(Path(tmp) / "cache")
        started = time.perf_counter()
        engine = Engine.from_pretrained(folder, backend=args.backend)
        print(f"{args.backend}: loaded in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs; "
              f"load average before: {tuple(round(x, 2) for x in os.getloadavg())}")
        lines = story_lines()
        bench_assembly(engine, lines, args.runs)
        bench_next_assembly(engine, lines, args.runs)
        if args.turns:
            bench_next_turn(engine, lines, args.turns)
        print(f"load average after: {tuple(round(x, 2) for x in os.getloadavg())}")
        engine.close()


if __name__ == "__main__":
    main()
