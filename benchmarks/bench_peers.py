"""Relay's engine against OpenVINO GenAI and llama.cpp, side by side in one interleaved run (issue 21's table).

An optional extra with its own venv outside the repo (benchmarks/peers-requirements.txt says how to make it):

    /work/peers-venv/bin/python benchmarks/peers_models.py /work/peers-cache      # build the models once (~3 min)
    flock /tmp/relay-bench.lock /work/peers-venv/bin/python benchmarks/bench_peers.py --cache /work/peers-cache
    ... bench_peers.py --cache /work/peers-cache --repeat 1 --contexts 32 --runtimes relay genai   # smoke run

Every runtime runs KoGPT-2's real shape with the same random weights (peers_models.py) and reads exactly the
same token ids: the ids Relay assembles from a held-out novel (../shared/corpus/koconovel/39.txt, 40.txt, which
benchmarks/bench_quality.py keeps out of training), a fresh first line each run so no cache from an earlier
run helps. Sampling everywhere: top-k 50, top-p 0.95, temperature 0.9, no repetition rules, 64 new tokens
(never stopped early), 2 threads. Cells are interleaved (every runtime for one cell, then the next cell) and
the median of --repeat runs is reported, so a busy machine slows every runtime alike.

Runtimes:
- relay: `Engine.from_pretrained(folder, backend="openvino")` as the app loads it (int8 default);
  relay-int4 too when this tree offers RELAY_OPENVINO_PRECISION=int4.
  relay-f32-read (not in the default list): int8 with RELAY_OPENVINO_READ_PRECISION=f32, stories read by the
  writers' f32 graph instead of the bf16 reader.
- genai: OpenVINO GenAI's LLMPipeline (its continuous-batching backend with prefix caching, as a server would
  run it) for one writer, ContinuousBatchingPipeline for four writers (all four requests added at once);
  genai-f32 the same with Relay's f32 inference precision (GenAI's default computes in bf16 on a bf16 CPU).
- llama-q8 / llama-q4: llama.cpp through llama-cpp-python's C API (not its Python `Llama` loop): flash attention,
  sampling in C (top-k, top-p, temperature, dist), the prompt cache kept between turns (llama-server's
  cache_prompt); four writers as llama-server's parallel slots: one context with 4 sequences, each step one batch
  holding every generating sequence's next token and then prompt tokens of the others.
- plain: transformers `generate` in fp32 (the reference row); no cache between turns, no batch.

Cells: decode tokens/s after the first token at contexts 32 / 512 / 900; seconds to the first token at 512 / 900
(cold: nothing of the story cached); the next turn (the story was read at the last turn with 2 tokens, then one
~40-token paragraph is added: seconds to the first token); four writers of different 512-token stories at once,
64 tokens each, reading included: tokens/s in all, and the slowest writer's decode tokens/s.
Results: BENCHMARKS.md ("Against OpenVINO GenAI and llama.cpp").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from peers_models import DEFAULT_CACHE, SHARED, genai_folder, gguf_files, hf_folder, relay_int4_available  # noqa: E402

HELD_OUT = ("39.txt", "40.txt")  # the novels bench_quality.py holds out of training
PARAGRAPH = ("그녀는 아무 대답도 하지 않고 창밖을 바라보았다. 비가 다시 내리기 시작했다. "
             "나는 우산을 접고 그 옆에 앉았다.")  # the next turn's new paragraph, ~26 tokens
TOP_K, TOP_P, TEMPERATURE = 50, 0.95, 0.9


class Timer:
    """Timestamps of the tokens of one stream: first-token seconds and decode tokens/s after the first."""

    def __init__(self):
        self.start = time.perf_counter()
        self.stamps: list[float] = []

    def token(self, count: int = 1) -> None:
        self.stamps += [time.perf_counter()] * count

    @property
    def first(self) -> float:
        return self.stamps[0] - self.start

    @property
    def rate(self) -> float:
        return (len(self.stamps) - 1) / max(self.stamps[-1] - self.stamps[0], 1e-9)


def writers_result(timers: list[Timer], started: float) -> tuple[float, float]:
    """Tokens/s in all (reading included) and the slowest writer's decode tokens/s."""
    total = sum(len(t.stamps) for t in timers) / (max(t.stamps[-1] for t in timers) - started)
    return total, min(t.rate for t in timers)


# -- runtimes: each writes `new` tokens after `ids` and reports a Timer ----------------------------------------


class RelayRuntime:
    """Relay's engine on the openvino backend, driven through its public API with story paragraphs."""

    def __init__(self, folder: Path, cache: Path, precision: str, new: int):
        from relay.engine import PRESETS, Engine

        os.environ["RELAY_CACHE"] = str(cache / "relay-cache")
        os.environ["RELAY_OPENVINO_PRECISION"] = precision
        self.engine = Engine.from_pretrained(folder, backend="openvino")
        self.settings = PRESETS["balanced"].replace(
            temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P, typical_p=1.0, repetition_penalty=1.0,
            no_repeat_ngram_size=0, stop_at="length", max_new_tokens=new, min_new_tokens=0, trim_incomplete=False,
            seed=1)

    def ids(self, story: list[str]) -> list[int]:
        """The ids Relay reads for this story: every runtime gets exactly these."""
        return list(self.engine.assemble(story, self.settings).ids)

    def write(self, story: list[str], seed: int, new: int | None = None) -> Timer:
        timer = Timer()
        settings = self.settings.replace(seed=seed, **({"max_new_tokens": new} if new else {}))
        stream = self.engine.continue_story(story, settings)
        for _ in stream:  # text chunks; a chunk may hold more than one token (a Korean syllable's bytes)
            if not timer.stamps:
                timer.token()
        timer.stamps += [time.perf_counter()] * (stream.meta["output_tokens"] - 1)  # the last stamp: the end
        return timer

    def writers(self, stories: list[list[str]], seeds: list[int]) -> tuple[float, float]:
        timers: list[Timer | None] = [None] * len(stories)
        barrier = threading.Barrier(len(stories) + 1)

        def one(index):
            barrier.wait()
            timers[index] = self.write(stories[index], seeds[index])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(stories))]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        return writers_result(timers, started)

    def close(self) -> None:
        self.engine.close()


class GenAIRuntime:
    """OpenVINO GenAI: LLMPipeline for one writer, ContinuousBatchingPipeline for several; prefix caching on."""

    def __init__(self, folder: Path, threads: int, new: int, exact: bool = False):
        import openvino_genai as genai

        self.genai = genai
        self.new = new
        properties = {"INFERENCE_NUM_THREADS": threads}
        if exact:  # Relay's setting; GenAI's default on a bf16 CPU (AMX, AVX512_BF16) computes in bf16
            properties["INFERENCE_PRECISION_HINT"] = "f32"
        self.pipe = genai.LLMPipeline(folder, "CPU", scheduler_config=self._scheduler(), **properties)
        self.batch = genai.ContinuousBatchingPipeline(folder, self._scheduler(), "CPU", properties)
        self.request_id = 0

    def _scheduler(self):
        config = self.genai.SchedulerConfig()
        config.enable_prefix_caching = True
        config.cache_size = 1  # GB of KV blocks: ~20 stories of 900 tokens
        return config

    def _config(self, seed: int, new: int | None):
        config = self.genai.GenerationConfig()
        config.do_sample, config.top_k, config.top_p, config.temperature = True, TOP_K, TOP_P, TEMPERATURE
        config.max_new_tokens, config.ignore_eos, config.rng_seed = new or self.new, True, seed
        return config

    @staticmethod
    def _tensor(ids: list[int]):
        import numpy as np
        import openvino as ov

        return ov.Tensor(np.array([ids], dtype=np.int64))

    def write(self, ids: list[int], seed: int, new: int | None = None) -> Timer:
        import numpy as np
        import openvino as ov

        genai, timer = self.genai, Timer()

        class Stamps(genai.StreamerBase):
            def write(self, token):
                timer.token(len(token) if isinstance(token, list) else 1)
                return genai.StreamingStatus.RUNNING

            def end(self):
                pass

        inputs = genai.TokenizedInputs(self._tensor(ids), ov.Tensor(np.ones((1, len(ids)), dtype=np.int64)))
        self.pipe.generate(inputs, self._config(seed, new), Stamps())
        return timer

    def writers(self, prompts: list[list[int]], seeds: list[int]) -> tuple[float, float]:
        started = time.perf_counter()
        timers = [Timer() for _ in prompts]
        handles = []
        for ids, seed in zip(prompts, seeds):
            self.request_id += 1
            handles.append(self.batch.add_request(self.request_id, self._tensor(ids), self._config(seed, None)))
        while self.batch.has_non_finished_requests():
            self.batch.step()
            for timer, handle in zip(timers, handles):
                if handle.can_read():
                    timer.token(sum(len(output.generated_ids) for output in handle.read().values()))
        return writers_result(timers, started)

    def close(self) -> None:
        del self.pipe, self.batch


_SILENT_LOG = []  # the ctypes callback must outlive every call into llama.cpp


def quiet_llama_cpp() -> None:
    """Keep llama.cpp's load log off the terminal (it also splits Korean bytes mid-character)."""
    import llama_cpp as ll

    if not _SILENT_LOG:
        _SILENT_LOG.append(ll.llama_log_callback(lambda level, text, data: None))
        ll.llama_log_set(_SILENT_LOG[0], None)


def llama_extra_buffers() -> bool:
    """Whether llama.cpp may put weights in its "extra buffer types" (repacked Q4_0 rows, AMX tiles), as llama-cli
    does by default. Not with a build that has AMX kernels: on an AMX Xeon they crash in llama_decode of any prompt
    batch (a segfault in ggml-cpu/amx, llama.cpp of llama-cpp-python 0.3.36), so such a build runs without them
    (llama-cli's --no-repack); peers-requirements.txt builds llama.cpp without AMX, which keeps the repacking."""
    import llama_cpp as ll

    setting = os.environ.get("RELAY_PEERS_LLAMA_EXTRA_BUFTS")  # 1 / 0 overrides the guess
    if setting is not None:
        return setting == "1"
    return "AMX_INT8 = 1" not in ll.llama_print_system_info().decode()


class LlamaCppRuntime:
    """llama.cpp through its C API: one context, up to `slots` sequences, flash attention, sampling in C."""

    def __init__(self, path: Path, threads: int, new: int, slots: int = 4, n_ctx: int = 4096, n_batch: int = 512):
        import llama_cpp as ll

        self.ll, self.new, self.n_batch = ll, new, n_batch
        quiet_llama_cpp()
        ll.llama_backend_init()
        model_params = ll.llama_model_default_params()
        model_params.use_extra_bufts = llama_extra_buffers()
        self.model = ll.llama_model_load_from_file(str(path).encode(), model_params)
        params = ll.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch, params.n_seq_max = n_ctx, n_batch, n_batch, slots
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.kv_unified = True  # llama-server's default for parallel slots: one KV buffer all sequences share
        params.no_perf = True
        self.ctx = ll.llama_init_from_model(self.model, params)
        self.memory = ll.llama_get_memory(self.ctx)
        self.batch = ll.llama_batch_init(n_batch, 0, slots)
        self.cached: dict[int, list[int]] = {}  # what each sequence's KV cache holds

    def _sampler(self, seed: int):
        ll = self.ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        for sampler in (ll.llama_sampler_init_top_k(TOP_K), ll.llama_sampler_init_top_p(TOP_P, 1),
                        ll.llama_sampler_init_temp(TEMPERATURE), ll.llama_sampler_init_dist(seed)):
            ll.llama_sampler_chain_add(chain, sampler)
        return chain

    def _keep_prefix(self, seq: int, ids: list[int]) -> int:
        """Drop what sequence `seq` holds past its common prefix with `ids` (llama-server's cache_prompt)."""
        held = self.cached.get(seq, [])
        common = 0
        while common < min(len(held), len(ids) - 1) and held[common] == ids[common]:
            common += 1
        self.ll.llama_memory_seq_rm(self.memory, seq, common, -1)
        self.cached[seq] = list(ids[:common])
        return common

    def _run(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        batch = self.batch
        for index, (token, position, seq, logits) in enumerate(entries):
            batch.token[index], batch.pos[index], batch.n_seq_id[index] = token, position, 1
            batch.seq_id[index][0], batch.logits[index] = seq, logits
        batch.n_tokens = len(entries)
        if self.ll.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed (KV cache full?)")
        for token, _, seq, _ in entries:
            self.cached[seq].append(token)

    def write(self, ids: list[int], seed: int, new: int | None = None) -> Timer:
        return self._generate([ids], [seed], new or self.new)[0]

    def writers(self, prompts: list[list[int]], seeds: list[int]) -> tuple[float, float]:
        started = time.perf_counter()
        return writers_result(self._generate(prompts, seeds, self.new), started)

    def _generate(self, prompts: list[list[int]], seeds: list[int], new: int) -> list[Timer]:
        """Sequences 0..n-1 write `new` tokens each; every step one batch: the next token of each generating
        sequence, then prompt tokens of those still reading, up to n_batch (llama-server's slot loop)."""
        ll = self.ll
        timers = [Timer() for _ in prompts]
        samplers = [self._sampler(seed) for seed in seeds]
        pending = [ids[self._keep_prefix(seq, ids):] for seq, ids in enumerate(prompts)]
        next_token: dict[int, int] = {}  # sequences generating: their last sampled token, not yet decoded
        try:
            while next_token or any(pending):
                entries = [(token, len(self.cached[seq]), seq, True) for seq, token in next_token.items()]
                for seq, rest in enumerate(pending):
                    take = rest[: self.n_batch - len(entries)]
                    start = len(self.cached[seq])
                    entries += [(token, start + i, seq, i == len(rest) - 1) for i, token in enumerate(take)]
                    pending[seq] = rest[len(take):]
                self._run(entries)
                next_token = {}
                for index, (_, _, seq, logits) in enumerate(entries):
                    if not logits:
                        continue
                    token = ll.llama_sampler_sample(samplers[seq], self.ctx, index)
                    timers[seq].token()
                    if len(timers[seq].stamps) < new:
                        next_token[seq] = token
        finally:
            for sampler in samplers:
                ll.llama_sampler_free(sampler)
        return timers

    def close(self) -> None:
        ll = self.ll
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)


class PlainRuntime:
    """transformers `generate` in fp32, the reference: reads the whole story every turn, one writer at a time."""

    def __init__(self, folder: Path, threads: int, new: int):
        import torch
        from transformers import GPT2LMHeadModel

        torch.set_num_threads(threads)
        self.torch, self.new = torch, new
        self.model = GPT2LMHeadModel.from_pretrained(folder).eval()

    def write(self, ids: list[int], seed: int, new: int | None = None) -> Timer:
        from transformers.generation.streamers import BaseStreamer

        torch, timer = self.torch, Timer()

        class Stamps(BaseStreamer):
            prompt_seen = False

            def put(self, value):
                if not self.prompt_seen:  # generate() hands the prompt to the streamer first
                    self.prompt_seen = True
                    return
                timer.token(value.numel())

            def end(self):
                pass

        torch.manual_seed(seed)
        with torch.inference_mode():
            tensor = torch.tensor([ids])
            self.model.generate(tensor, attention_mask=torch.ones_like(tensor), do_sample=True, top_k=TOP_K,
                                top_p=TOP_P, temperature=TEMPERATURE, max_new_tokens=new or self.new,
                                min_new_tokens=new or self.new, pad_token_id=3, streamer=Stamps())
        return timer

    def close(self) -> None:
        pass


# -- the stories ---------------------------------------------------------------------------------------------


def novel_lines(names) -> list[str]:
    lines = []
    for name in names:
        text = (SHARED / "corpus" / "koconovel" / name).read_text(encoding="utf-8")
        lines += [line.strip() for line in text.splitlines() if line.strip()]
    return lines


def story_of_tokens(count_tokens, lines: list[str], tokens: int) -> list[str]:
    """The last lines of `lines` that make about `tokens` tokens (the first one cut by words to fit)."""
    story: list[str] = []
    for line in reversed(lines):
        if count_tokens("\n".join([line] + story) + "\n") > tokens:
            words = line.split()
            while words and count_tokens("\n".join([" ".join(words)] + story) + "\n") > tokens:
                words = words[1:]
            return ([" ".join(words)] if words else []) + story
        story.insert(0, line)
    return story


def fresh(story: list[str], run: int) -> list[str]:
    """The same story with a different first line, so no runtime can reuse a cache from an earlier run."""
    return [f"({run}번째 이야기)"] + story[1:]


# -- the run -------------------------------------------------------------------------------------------------


def load_runtimes(names: list[str], cache: Path, threads: int, new: int) -> dict:
    runtimes = {}
    for name in names:
        started = time.perf_counter()
        if name == "relay":
            runtimes["relay int8"] = RelayRuntime(hf_folder(cache), cache, "int8", new)
        elif name == "relay-f32-read":  # stories read by the writers' f32 graph instead of the bf16 reader
            os.environ["RELAY_OPENVINO_READ_PRECISION"] = "f32"
            runtimes["relay int8, f32 reading"] = RelayRuntime(hf_folder(cache), cache, "int8", new)
            del os.environ["RELAY_OPENVINO_READ_PRECISION"]
        elif name == "relay-int4":
            if not relay_int4_available():
                print("relay-int4: this Relay tree has no int4 precision yet; skipped")
                continue
            runtimes["relay int4"] = RelayRuntime(hf_folder(cache), cache, "int4", new)
            os.environ["RELAY_OPENVINO_PRECISION"] = "int8"
        elif name == "genai":
            runtimes["OpenVINO GenAI int8"] = GenAIRuntime(genai_folder(cache), threads, new)
        elif name == "genai-f32":
            runtimes["OpenVINO GenAI int8, f32 math"] = GenAIRuntime(genai_folder(cache), threads, new, exact=True)
        elif name in ("llama-q8", "llama-q4"):
            kind = "Q8_0" if name == "llama-q8" else "Q4_0"
            runtimes[f"llama.cpp {kind}"] = LlamaCppRuntime(gguf_files(cache)[kind], threads, new)
        elif name == "plain":
            runtimes["transformers generate fp32"] = PlainRuntime(hf_folder(cache), threads, new)
        else:
            sys.exit(f"unknown runtime {name}")
        print(f"{name}: loaded in {time.perf_counter() - started:.1f} s"
              + (f" (llama.cpp extra buffer types {'on' if llama_extra_buffers() else 'off'})"
                 if name.startswith("llama") else ""))
    return runtimes


def measure(runtimes: dict, relay: RelayRuntime, args) -> dict:
    """cells[(runtime, cell)] = [value per run]; interleaved: every runtime for a cell, then the next cell."""
    lines = novel_lines(HELD_OUT)
    count = relay.engine.count_tokens
    stories = {c: story_of_tokens(count, lines, c) for c in sorted(set(args.contexts) | {512, 900})}
    writer_stories = [story_of_tokens(count, lines[: len(lines) - 100 * i], 512) for i in range(args.writers)]
    cells: dict[tuple[str, str], list[float]] = {}

    def add(name, cell, value):
        cells.setdefault((name, cell), []).append(value)

    def write(name, runtime, story, seed, new=None):
        source = story if isinstance(runtime, RelayRuntime) else relay.ids(story)
        return runtime.write(source, seed, new)

    for name, runtime in runtimes.items():  # warm-up: compile, allocate, first-call costs
        write(name, runtime, fresh(stories[min(stories)], 999), 1, 4)
    for run in range(args.repeat):
        print(f"run {run + 1}/{args.repeat} (load average {os.getloadavg()[0]:.2f})", flush=True)
        for context in args.contexts:
            for name, runtime in runtimes.items():
                timer = write(name, runtime, fresh(stories[context], run * 10 + 1), 100 + run)
                add(name, f"decode @{context}", timer.rate)
                add(name, f"first token @{context}", timer.first)
        for name, runtime in runtimes.items():
            story = fresh(stories[512], run * 10 + 2)
            write(name, runtime, story, 7, 2)  # the previous turn read the story
            add(name, "next turn", write(name, runtime, story + [PARAGRAPH], 8).first)
        for name, runtime in runtimes.items():
            if isinstance(runtime, PlainRuntime):
                continue
            stories_now = [fresh(s, run * 10 + 3) for s in writer_stories]
            seeds = [200 + i for i in range(args.writers)]
            prompts = stories_now if isinstance(runtime, RelayRuntime) else [relay.ids(s) for s in stories_now]
            total, slowest = runtime.writers(prompts, seeds)
            add(name, f"{args.writers} writers: in all", total)
            add(name, f"{args.writers} writers: slowest", slowest)
    prompt_tokens = {c: len(relay.ids(fresh(s, 1))) for c, s in stories.items()}
    print(f"prompt tokens: {prompt_tokens}; next turn adds {relay.engine.count_tokens(PARAGRAPH)} tokens; "
          f"writers' stories: {[len(relay.ids(s)) for s in writer_stories]} tokens")
    return cells


def report(cells: dict, runtimes: dict, args) -> None:
    """The issue's table (medians) and Relay's speed against each peer per cell (>1: Relay is faster)."""
    def median(name, cell):
        values = cells.get((name, cell))
        return statistics.median(values) if values else None

    def fmt(value, digits=0):
        return "–" if value is None else f"{value:.{digits}f}"

    decode = [f"decode @{c}" for c in args.contexts]
    first = [f"first token @{c}" for c in args.contexts if c >= 512]
    writers = [f"{args.writers} writers: in all", f"{args.writers} writers: slowest"]
    columns = decode + first + ["next turn"] + writers
    seconds = set(first) | {"next turn"}
    print(f"\nmedian of {args.repeat}; tokens/s except the seconds of first token and next turn")
    print("| runtime | decode tok/s " + " / ".join(f"@{c}" for c in args.contexts)
          + " | first token " + " / ".join(c.split()[-1] for c in first) + " s | next turn s"
          + f" | {args.writers} writers × {args.new_tokens} @512: tok/s in all / slowest writer |")
    print("|---|---|---|---|---|")
    for name in runtimes:
        print(f"| {name} | " + " / ".join(fmt(median(name, c), 1) for c in decode) + " | "
              + " / ".join(fmt(median(name, c), 2) for c in first) + f" | {fmt(median(name, 'next turn'), 3)} | "
              + " / ".join(fmt(median(name, c)) for c in writers) + " |")
    relays = [name for name in runtimes if name.startswith("relay")]
    peers = [name for name in runtimes if not name.startswith("relay")]
    print("\nRelay against each peer, per cell: x > 1 means Relay is faster "
          "(tokens/s: Relay / peer; seconds: peer / Relay)")
    print("| Relay | peer | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for relay in relays:
        for peer in peers:
            ratios = []
            for cell in columns:
                mine, theirs = median(relay, cell), median(peer, cell)
                if mine is None or theirs is None or not mine or not theirs:
                    ratios.append("–")
                else:
                    ratios.append(f"{(theirs / mine if cell in seconds else mine / theirs):.2f}")
            print(f"| {relay} | {peer} | " + " | ".join(ratios) + " |")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("openvino", "openvino-genai", "nncf", "llama-cpp-python", "torch", "transformers"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the models are built (not git)")
    parser.add_argument("--runtimes", nargs="+",
                        default=["plain", "relay", "relay-int4", "genai", "genai-f32", "llama-q8", "llama-q4"])
    parser.add_argument("--contexts", type=int, nargs="+", default=[32, 512, 900])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    parser.add_argument("--relay-tree", type=Path, default=REPO,
                        help="the Relay source to measure, e.g. `git archive HEAD | tar -x -C /tmp/relay-head` "
                             "while others edit this working tree")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.relay_tree.resolve()))
    if not (SHARED / "kogpt2" / "config.json").exists():
        sys.exit(f"needs the KoGPT-2 config and tokenizer at {SHARED / 'kogpt2'}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; load average before loading: {os.getloadavg()}")
    print(versions() + f"; Relay from {args.relay_tree}")
    runtimes = load_runtimes(args.runtimes, args.cache, args.threads, args.new_tokens)
    relay = next((r for r in runtimes.values() if isinstance(r, RelayRuntime)), None) \
        or RelayRuntime(hf_folder(args.cache), args.cache, "int8", args.new_tokens)
    print(f"{args.new_tokens} new tokens, top-k {TOP_K} / top-p {TOP_P} / T {TEMPERATURE}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs; median of {args.repeat}, interleaved; load average {os.getloadavg()}")
    cells = measure(runtimes, relay, args)
    print(f"load average after: {os.getloadavg()}")
    report(cells, runtimes, args)
    for runtime in runtimes.values():
        runtime.close()


if __name__ == "__main__":
    main()
