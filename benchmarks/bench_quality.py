"""Weight compression: what int8 and int4 cost in quality, and what they buy in speed.

    nice .venv/bin/python benchmarks/bench_quality.py --train-only     # build the small model once (a few minutes)
    nice .venv/bin/python benchmarks/bench_quality.py                  # quality table, then speed table

Random weights cannot show quality, so the first part trains (once, cached in benchmarks/.cache/, gitignored)
a small GPT-2 shaped like KoGPT-2 (its real tokenizer and 51,200-id vocabulary, 4 layers 256 wide) for
`--steps` batches on the KoCoNovel corpus in ../shared, holding out the last two novels. Each precision is then
converted through the app's own path (`cached_model_path`: the graph the backend caches, compressed by
`compress_weights`) and compiled with the backend's properties; on the held-out novels it reports perplexity,
top-1 next-token agreement with fp32 and the mean KL divergence from fp32, position by position.
Extra rows compare the old hand-written int8 (`_compress_int8`) and other int8 / int4 settings, and compute
the app's weights as its bf16 reader reads stories (READING) and through the paged graph with its 8-bit KV cache,
keys quantized per channel of a block or per position, and the reader with its weights unpacked (PAGED).

The second part measures decode tokens/s at a story of ~512 tokens on the real KoGPT-2 shape with random
weights (speed does not depend on the weights), one engine per precision, cells interleaved, median of
`--repeat`; it takes /tmp/relay-bench.lock itself around the timed part only. Results: BENCHMARKS.md
("Weight compression: int8 / int4 quality and speed").
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))
CACHE = REPO / "benchmarks" / ".cache"
HELD_OUT = ("39.txt", "40.txt")
SMALL = dict(n_layer=4, n_embd=256, n_head=4, n_positions=256)  # KoGPT-2: 12 layers, 768 wide, 12 heads, 1024
BLOCK = 64  # training and evaluation sequence length
BATCH = 8
LR = 2e-3  # peak; 20 warm-up steps, then a cosine down to a tenth
STEPS = 200  # a few minutes on 2 quiet cores (~20 here: the machine was shared by ~7 builds and test runs)


# --- the small trained model -----------------------------------------------------------------------

def corpus_ids(tokenizer, held_out: bool) -> list[int]:
    """Token ids of the training novels (or the held-out ones), one novel after another, paragraphs by newlines."""
    ids: list[int] = []
    for path in sorted((SHARED / "corpus" / "koconovel").glob("*.txt")):
        if (path.name in HELD_OUT) == held_out:
            ids += tokenizer("\n".join(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                                       if line.strip()) + "\n")["input_ids"]
    return ids


def tokenizer():
    from transformers import PreTrainedTokenizerFast

    from relay.tiny import KOGPT2_SPECIAL

    return PreTrainedTokenizerFast(tokenizer_file=str(SHARED / "kogpt2" / "tokenizer.json"), **KOGPT2_SPECIAL)


def small_model_dir(steps: int) -> Path:
    key = hashlib.sha256(json.dumps([SMALL, BLOCK, BATCH, LR, HELD_OUT, steps], sort_keys=True).encode())
    return CACHE / f"quality-model-{key.hexdigest()[:10]}"


def train_small_model(steps: int) -> Path:
    """The small KoGPT-2-shaped model trained for `steps` batches on the corpus (cached: built once).

    The softmax during training runs over the ids the training novels use (~a quarter of the 51,200; a full-width
    softmax per token would cost 3x the time); the other rows of the (tied)
    embedding matrix are zero, so the saved model is the full KoGPT-2 vocabulary and every precision sees the
    same full-width output layer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = small_model_dir(steps)
    if (folder / "config.json").is_file():
        return folder
    torch.set_num_threads(2)
    torch.manual_seed(0)
    tok = tokenizer()
    ids = torch.tensor(corpus_ids(tok, held_out=False))
    used = torch.unique(ids)
    local = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long)
    local[used] = torch.arange(len(used))
    targets_all = local[ids]
    config = GPT2Config.from_pretrained(SHARED / "kogpt2")
    for name, value in SMALL.items():
        setattr(config, name, value)
    model = GPT2LMHeadModel(config).train()
    with torch.no_grad():
        keep = torch.zeros(config.vocab_size, dtype=torch.bool)
        keep[used] = True
        model.transformer.wte.weight[~keep] = 0.0
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    start = time.monotonic()
    print(f"training {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters on {len(ids):,} tokens "
          f"({len(used):,} distinct ids) for {steps} steps of {BATCH} x {BLOCK} tokens", flush=True)
    for step in range(steps):
        starts = torch.randint(0, len(ids) - BLOCK - 1, (BATCH,))
        x = torch.stack([ids[s:s + BLOCK] for s in starts])
        y = torch.stack([targets_all[s + 1:s + BLOCK + 1] for s in starts])
        for group in optimizer.param_groups:
            group["lr"] = LR * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * (1 + math.cos(math.pi * step / steps)) / 2)
        hidden = model.transformer(input_ids=x).last_hidden_state
        logits = hidden @ model.transformer.wte.weight[used].T
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(used)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 10 == 0:
            print(f"  step {step + 1}  loss {loss.item():.3f}  {time.monotonic() - start:.0f} s", flush=True)
    tmp = folder.with_name(folder.name + ".tmp")
    model.eval().save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps({"steps": steps, "batch": BATCH, "block": BLOCK,
                                                   "seconds": round(time.monotonic() - start),
                                                   "last_loss": loss.item(),
                                                   "distinct_ids": len(used)}))
    tmp.rename(folder)
    return folder


if __name__ == "__main__" and "--train-only" in sys.argv:
    print(train_small_model(int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else STEPS))
    sys.exit(0)


# --- the same conversion path the app uses, for each precision and the comparison variants -----------

# Rows besides the app's precisions: other NNCF int4 settings and the old hand-written int8, each with its own
# cache key. name -> (precision whose compile properties it uses, COMPRESSION settings or "handwritten").
VARIANTS = {
    "int8 hand-written (before)": ("int8", "handwritten"),
    "int8 sym": ("int8", {"mode": "int8_sym"}),
    "int4 sym g128": ("int4", {"mode": "int4_sym", "group_size": 128, "ratio": 1.0, "backup_mode": "int8_asym"}),
    "int4 asym g64": ("int4", {"mode": "int4_asym", "group_size": 64, "ratio": 1.0, "backup_mode": "int8_asym"}),
    "int4 asym g128 r0.8": ("int4", {"mode": "int4_asym", "group_size": 128, "ratio": 0.8,
                                     "backup_mode": "int8_asym"}),
}


# Rows of the app's own weights computed as the backend's bf16 reader reads stories (CPUs with bf16 units):
# every position's logits as the first token's are computed. name -> precision.
READING = {"int8, read in bf16": "int8", "int4, read in bf16": "int4"}

# Rows through the paged graph the backend runs (relay/backends/openvino/convert.py `paged`), its 8-bit KV cache
# included: each window read in one call, the keys quantized per channel of a block (the plugin's default, before)
# or per position (KEY_CACHE_QUANT_MODE); the reader with its 8-bit weights decompressed at each call, or with them
# unpacked to 16 bits (reader.xml, now). name -> (precision, bf16 reader / "unpacked" / the f32 graph, key mode).
PAGED = {
    "int8, paged, bf16 reader, keys by channel (before)": ("int8", True, "BY_CHANNEL"),
    "int8, paged, bf16 reader, keys by position": ("int8", True, "BY_TOKEN"),
    "int8, paged, f32, keys by channel (before)": ("int8", False, "BY_CHANNEL"),
    "int8, paged, f32, keys by position": ("int8", False, "BY_TOKEN"),
    "int4, paged, bf16 reader, keys by channel (before)": ("int4", True, "BY_CHANNEL"),
    "int4, paged, bf16 reader, keys by position": ("int4", True, "BY_TOKEN"),
    "int8, paged, bf16 reader, unpacked weights (now)": ("int8", "unpacked", "BY_TOKEN"),
    "int4, paged, bf16 reader, unpacked weights (now)": ("int4", "unpacked", "BY_TOKEN"),
}


@contextmanager
def variant(name: str):
    """While open, `name` is a precision the converter knows (an app precision, or one of VARIANTS)."""
    convert = importlib.import_module("relay.backends.openvino.convert")  # the module (the package exports a function)
    if name in convert.COMPRESSION:
        yield name
        return
    _, settings = VARIANTS[name]
    original = convert.compress_weights

    def handwritten(model, precision):
        if precision == name:
            convert._compress_int8(model)
            return model
        return original(model, precision)

    backend = importlib.import_module("relay.backends.openvino.backend")
    precisions = backend.PRECISIONS
    convert.COMPRESSION[name] = {"mode": "handwritten int8 per channel, symmetric"} if settings == "handwritten" \
        else settings
    backend.PRECISIONS = (*precisions, name)
    if settings == "handwritten":
        convert.compress_weights = handwritten
    try:
        yield name
    finally:
        convert.compress_weights = original
        backend.PRECISIONS = precisions
        del convert.COMPRESSION[name]


def properties_for(name: str) -> dict[str, str] | None:
    """The compile properties of a row; None for a reading row on a CPU without bf16 units (no reader there)."""
    import openvino as ov

    from relay.backends.openvino.backend import _compile_properties, _reading_properties

    if name in READING:
        return _reading_properties(ov.Core(), READING[name])
    if name in PAGED:
        precision, reader, keys = PAGED[name]
        properties = _reading_properties(ov.Core(), precision) if reader else _compile_properties(precision)
        return None if properties is None else {**properties, "KEY_CACHE_QUANT_MODE": keys}
    return _compile_properties(VARIANTS[name][0] if name in VARIANTS else name)


def converted_xml(model, name: str, cache: Path) -> Path:
    from relay.backends.openvino import cached_model_path

    from relay.backends.openvino.convert import reader_model_path

    unpacked = PAGED.get(name, (None, None))[1] == "unpacked"
    name = READING.get(name) or PAGED.get(name, (name,))[0]  # reading and paged rows: the precision's own
    with variant(name):
        xml = cached_model_path(model, name, cache)
    return reader_model_path(xml) if unpacked else xml


# --- quality: held-out perplexity and agreement with fp32 -------------------------------------------

def all_logits(xml: Path, properties: dict, windows) -> list:
    """Logits at every position of every window, from the cached (stateful, unpaged) model the app converts."""
    import numpy as np
    import openvino as ov

    request = ov.Core().compile_model(xml, "CPU", properties).create_infer_request()
    out = []
    for window in windows:
        request.reset_state()
        length = len(window)
        result = request.infer({"input_ids": np.array([window], dtype=np.int64),
                                "position_ids": np.arange(length, dtype=np.int64)[None],
                                "beam_idx": np.zeros(1, dtype=np.int32),
                                "logits_indices": np.arange(length, dtype=np.int64)})
        out.append(np.array(result["logits"], dtype=np.float32))
    return out


def paged_logits(xml: Path, properties: dict, windows) -> list:
    """Logits at every position of every window, from the paged graph the backend compiles from the cached model,
    each window read in one call into the blocks of an 8-bit (or, for fp32, exact) KV cache."""
    import numpy as np
    import openvino as ov

    from relay.backends.openvino.convert import paged

    core = ov.Core()
    compiled = core.compile_model(paged(core.read_model(xml)), "CPU", properties)
    request = compiled.create_infer_request()
    size = compiled.input("value_cache.0").get_partial_shape()[2].get_length()
    blocks = -(-max(len(window) for window in windows) // size)
    for port in compiled.inputs:
        if port.get_any_name().startswith(("key_cache.", "value_cache.")):
            shape = port.get_partial_shape()
            request.set_tensor(port.get_any_name(), ov.Tensor(port.get_element_type(),
                                                              [blocks] + [shape[i].get_length() for i in (1, 2, 3)]))
    out = []
    for window in windows:
        length, held = len(window), -(-len(window) // size)
        result = request.infer({"input_ids": np.array(window, dtype=np.int64),
                                "position_ids": np.arange(length, dtype=np.int64),
                                "logits_indices": np.arange(length, dtype=np.int64),
                                "past_lens": np.zeros(1, dtype=np.int32),
                                "subsequence_begins": np.array([0, length], dtype=np.int32),
                                "block_indices": np.arange(held, dtype=np.int32),
                                "block_indices_begins": np.array([0, held], dtype=np.int32),
                                "max_context_len": np.array(length, dtype=np.int32)})
        out.append(np.array(result["logits"], dtype=np.float32))
    return out


def quality(reference: list, logits: list, windows, trained) -> dict:
    """Perplexity of the next token, top-1 agreement with the reference and mean KL(reference || this), over the
    ids the model was trained on (`trained`; the other rows of its output matrix are zero and unscored), at every
    position whose next token is one of them."""
    import torch

    nll = agree = kl = count = 0.0
    local = torch.full((max(trained) + 1 if trained else 1,), -1, dtype=torch.long)
    local[torch.tensor(trained)] = torch.arange(len(trained))
    columns = torch.tensor(trained)
    for ref, mine, window in zip(reference, logits, windows):
        targets = torch.tensor([local[i].item() if i < len(local) else -1 for i in window[1:]])
        scored = targets >= 0
        log_p = torch.log_softmax(torch.from_numpy(mine[:-1])[:, columns], dim=1)[scored]
        log_q = torch.log_softmax(torch.from_numpy(ref[:-1])[:, columns], dim=1)[scored]
        targets = targets[scored]
        nll -= log_p[torch.arange(len(targets)), targets].sum().item()
        agree += (log_p.argmax(dim=1) == log_q.argmax(dim=1)).sum().item()
        kl += (log_q.exp() * (log_q - log_p)).sum().item()
        count += len(targets)
    return {"ppl": math.exp(nll / count), "top1": agree / count, "kl": kl / count, "scored": int(count)}


def quality_table(folder: Path, cache: Path, names: list[str], max_windows: int) -> list[tuple]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = corpus_ids(tokenizer(), held_out=True)
    windows = [ids[i:i + BLOCK] for i in range(0, len(ids) - BLOCK, BLOCK)][:max_windows]
    print(f"held-out: {HELD_OUT}, {len(windows)} windows of {BLOCK} tokens ({len(windows) * (BLOCK - 1):,} "
          f"predictions)", flush=True)
    trained = sorted(set(corpus_ids(tokenizer(), held_out=False)))
    reference = all_logits(converted_xml(model, "fp32", cache), properties_for("fp32"), windows)
    rows = []
    for name in names:
        xml, properties = converted_xml(model, name, cache), properties_for(name)
        if properties is None:
            print(f"  {name}: this CPU has no bf16 units, so the backend has no reader; skipped", flush=True)
            continue
        scores = quality(reference, (paged_logits if name in PAGED else all_logits)(xml, properties, windows),
                         windows, trained)
        rows.append((name, xml.with_suffix(".bin").stat().st_size / 1e6, scores))
        print(f"  {name:28s} {rows[-1][1]:7.1f} MB  ppl {scores['ppl']:8.2f}  top-1 {scores['top1']:.4f}  "
              f"KL {scores['kl']:.5f}  ({scores['scored']:,} predictions scored)", flush=True)
    return rows


# --- speed: decode tokens/s at ~512 tokens on the real KoGPT-2 shape -----------------------------------

@contextmanager
def bench_lock(path: str = "/tmp/relay-bench.lock"):
    """Timed runs never overlap with other helpers' (the same lock `flock /tmp/relay-bench.lock` takes)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def speed_table(names: list[str], repeat: int, new_tokens: int, context: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from benchmarks.bench_generation import build_model, story_lines, story_of_tokens, time_stream
    from relay.backends.openvino import OpenVinoBackend
    from relay.engine import Engine, load_tokenizer
    from relay.settings import SamplingSettings

    torch.set_num_threads(2)
    settings = SamplingSettings(max_new_tokens=new_tokens, min_new_tokens=new_tokens, stop_at="length",
                                top_k=50, top_p=0.95, temperature=0.9, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_model(Path(tmp) / "kogpt2-random")
        model = AutoModelForCausalLM.from_pretrained(folder)
        engines = {}
        for name in names:
            start = time.monotonic()
            with variant(name):
                backend = OpenVinoBackend.from_model(model, precision=name, cache=Path(tmp) / "cache")
            engines[name] = Engine(backend, load_tokenizer(folder), model_id=str(folder), adapter_names=[],
                                   device="cpu")
            print(f"  {name}: converted and compiled in {time.monotonic() - start:.0f} s", flush=True)
        story = story_of_tokens(next(iter(engines.values())), story_lines(), context)
        rates: dict[str, list[float]] = {name: [] for name in names}
        with bench_lock():
            print(f"load average at the start of the timed part: {os.getloadavg()}", flush=True)
            for run in range(repeat + 1):  # run 0 warms every engine up
                for name, engine in engines.items():
                    rate = time_stream(engine, [f"({run})"] + story, settings)[1]
                    if run:
                        rates[name].append(rate)
            print(f"load average at the end of the timed part: {os.getloadavg()}", flush=True)
        for engine in engines.values():
            engine.close()
    return {name: statistics.median(values) for name, values in rates.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps of the small model (cached)")
    parser.add_argument("--windows", type=int, default=100, help="held-out windows of BLOCK tokens at most")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)
    import platform

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average {os.getloadavg()}", flush=True)
    names = ["int8", "int4", *VARIANTS]
    if not args.skip_quality:
        folder = train_small_model(args.steps)
        print(f"small model: {folder.name} {json.loads((folder / 'training.json').read_text())}", flush=True)
        rows = quality_table(folder, CACHE / "converted", ["fp32", *names, *READING, *PAGED], args.windows)
        print("\n| weights | size MB | held-out perplexity | top-1 agreement with fp32 | KL from fp32 |")
        print("|---|---|---|---|---|")
        for name, size, s in rows:
            print(f"| {name} | {size:.1f} | {s['ppl']:.2f} | {s['top1'] * 100:.2f} % | {s['kl']:.4f} |")
    if not args.skip_speed:
        speed_names = ["fp32", "int8", "int8 sym", "int8 hand-written (before)", "int4", "int4 sym g128"]
        rates = speed_table(speed_names, args.repeat, args.new_tokens, args.context)
        print(f"\n| weights (KoGPT-2 shape, random) | decode tok/s @{args.context} (median of {args.repeat}) "
              f"| vs int8 |")
        print("|---|---|---|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:.1f} | {rate / rates['int8']:.2f}x |")


if __name__ == "__main__":
    main()
