"""Train a LoRA adapter for KoGPT-2 on Korean fiction, and report whether it models held-out text better.

V100 (16 GB), the real run on a corpus built by data/build_corpus.py (see finetune/README.md):

    python finetune/train_lora.py --model skt/kogpt2-base-v2 --data data/build/wikisource \
        --output outputs/lora-kogpt2 --epochs 3 --block-size 1024 --batch-size 4 --grad-accum 8 \
        --lr 3e-4 --lora-r 16 --lora-alpha 32 --lora-dropout 0.05 --merge

Several GPUs (DDP; the same flags, the global batch grows with the number of processes):

    torchrun --nproc_per_node 4 finetune/train_lora.py --model skt/kogpt2-base-v2 --data ... --output ...
    accelerate launch --num_processes 4 finetune/train_lora.py --model ... --data ... --output ...

CPU smoke run (a tiny random model, about a minute on 2 cores):

    python -c "from relay.tiny import build_tiny_model; build_tiny_model('outputs/tiny')"
    python finetune/train_lora.py --model outputs/tiny --data ../shared/corpus/koconovel \
        --output outputs/lora-smoke --max-steps 30 --block-size 128 --batch-size 4 --lr 2e-3

Resume after an interruption with the same command plus `--resume`. Writes into --output: the adapter
(adapter_config.json, adapter_model.safetensors), train_config.json, metrics.json, loss.png,
checkpoints/step-N/state.pt, and with --merge a full model in merged/.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("finetune.train_lora")

TARGET_MODULES = ["c_attn", "c_proj", "c_fc"]
DOC_SEPARATOR = "</s>"


class FinetuneError(Exception):
    """Training could not start or continue."""


class ConfigError(FinetuneError):
    """An argument is out of range or inconsistent with the data or model."""


@dataclass
class ModelArguments:
    """Which model to adapt and the LoRA adapter's shape."""

    model: str = field(metadata={"help": "base model: Hub id (skt/kogpt2-base-v2) or local folder"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank, >= 1 (higher = more capacity, more memory)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator; effective scale is alpha / r"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward: less memory, ~30% slower"})
    merge: bool = field(default=False, metadata={"help": "also write a merged full model to OUTPUT/merged"})

    def validate(self) -> None:
        """Raise ConfigError on out-of-range values."""
        if self.lora_r < 1 or self.lora_alpha < 1:
            raise ConfigError(f"--lora-r and --lora-alpha must be >= 1 (got {self.lora_r}, {self.lora_alpha})")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")


@dataclass
class DataArguments:
    """Where the text comes from and how it is cut into training blocks."""

    data: str = field(metadata={"help": "folder or file of .txt/.jsonl, a corpus folder with train.jsonl+valid.jsonl, or a dataset name"})
    dataset_config: str | None = field(default=None, metadata={"help": "config of a Hugging Face dataset given as --data (e.g. 20231201.ko)"})
    text_field: str = field(default="text", metadata={"help": "text column of a Hugging Face dataset"})
    block_size: int = field(default=1024, metadata={"help": "tokens per training block; clipped to the model's n_positions"})
    valid_fraction: float = field(default=0.05, metadata={"help": "share of documents held out when --data has no valid.jsonl, in (0, 1)"})
    max_eval_blocks: int = field(default=256, metadata={"help": "evaluate on at most this many validation blocks (0 = all)"})

    def validate(self) -> None:
        """Raise ConfigError on out-of-range values."""
        if self.block_size < 8:
            raise ConfigError(f"--block-size must be >= 8, got {self.block_size}")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"--valid-fraction must be in (0, 1), got {self.valid_fraction}")


@dataclass
class TrainArguments:
    """How long and how fast to train, and where results go."""

    output: str = field(metadata={"help": "output folder: adapter, train_config.json, metrics.json, loss.png, checkpoints"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps to train (0 = as many as --epochs take)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training blocks when --max-steps is 0"})
    batch_size: int = field(default=8, metadata={"help": "blocks per micro-batch per process"})
    grad_accum: int = field(default=4, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate (AdamW; linear warmup, cosine decay)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps spent warming up, in [0, 1)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on LoRA weights"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip gradients to this norm (0 = no clipping)"})
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, data order, dropout and the validation split"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output"})
    save_every: int = field(default=0, metadata={"help": "checkpoint every N steps (0 = only at the end)"})
    eval_every: int = field(default=0, metadata={"help": "validation loss every N steps (0 = about ten times per run)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "how many recent checkpoints to keep, >= 1"})
    precision: str = field(default="auto", metadata={"help": "auto (fp16 on CUDA, fp32 on CPU), fp16 or fp32", "choices": ["auto", "fp16", "fp32"]})

    def validate(self) -> None:
        """Raise ConfigError on out-of-range values."""
        if self.max_steps < 0 or self.epochs <= 0:
            raise ConfigError("--max-steps must be >= 0 and --epochs > 0")
        if self.batch_size < 1 or self.grad_accum < 1 or self.keep_checkpoints < 1:
            raise ConfigError("--batch-size, --grad-accum and --keep-checkpoints must be >= 1")
        if self.lr <= 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"--lr must be > 0 and --warmup-ratio in [0, 1) (got {self.lr}, {self.warmup_ratio})")


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainArguments]:
    """Parse the command line (both --max-steps and --max_steps spellings) and validate ranges."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainArguments), description=__doc__.split("\n")[0])
    args = parser.parse_args_into_dataclasses(argv)
    for group in args:
        group.validate()
    return args


# --------------------------------------------------------------------------- data


def load_documents(args: DataArguments, seed: int) -> tuple[list[str], list[str]]:
    """Training and validation documents (texts), split by document, never by line."""
    from data.corpus import split_by_work
    from data.errors import SourceError
    from data.local import read_hf_dataset, read_jsonl_file, read_local

    path = Path(args.data)
    if path.is_dir() and (path / "train.jsonl").exists() and (path / "valid.jsonl").exists():
        train = read_jsonl_file(path / "train.jsonl")
        valid = read_jsonl_file(path / "valid.jsonl")
    else:
        if path.exists():
            docs = read_local(path)
        else:
            try:
                docs = read_hf_dataset(args.data, args.dataset_config, text_field=args.text_field)
            except SourceError as exc:
                raise ConfigError(f"--data {args.data}: no such file or folder, and not a loadable dataset ({exc})") from exc
        if len(docs) < 2:
            raise ConfigError(f"{args.data} holds {len(docs)} document(s); need at least 2 to hold one out for validation")
        train, valid = split_by_work(docs, args.valid_fraction, seed)
    if not train or not valid:
        raise ConfigError(f"{args.data}: need training and validation documents (got {len(train)} and {len(valid)})")
    return [d.text for d in train], [d.text for d in valid]


def pack_documents(texts: list[str], tokenizer, block_size: int):
    """Tokenize documents, join them with </s>, and cut the stream into [n_blocks, block_size] ids.

    The tail shorter than a block is dropped, unless it is all there is (then one short block).
    """
    import torch

    separator = tokenizer.convert_tokens_to_ids(DOC_SEPARATOR)
    ids: list[int] = []
    for start in range(0, len(texts), 64):
        for doc_ids in tokenizer(texts[start : start + 64], add_special_tokens=False)["input_ids"]:
            ids.extend(doc_ids)
            ids.append(separator)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        return torch.tensor([ids], dtype=torch.long)
    return torch.tensor(ids[: n_blocks * block_size], dtype=torch.long).view(n_blocks, block_size)


# --------------------------------------------------------------------------- runtime


@dataclass
class Runtime:
    """Process layout and numeric precision of this run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    fp16: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def setup_runtime(precision: str) -> Runtime:
    """Join the process group when started by torchrun/accelerate (WORLD_SIZE > 1) and pick the device."""
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if world_size > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if world_size > 1 else 0
    if precision == "fp16" and not cuda:
        raise ConfigError("--precision fp16 needs a CUDA GPU; use fp32 (or auto) on CPU")
    # fp16 autocast with fp32 master weights: the V100 has no bf16.
    fp16 = cuda and precision in ("auto", "fp16")
    return Runtime(rank, world_size, local_rank, f"cuda:{local_rank}" if cuda else "cpu", fp16)


def _autocast(runtime: Runtime):
    import torch

    if runtime.fp16:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _all_reduce_sum(runtime: Runtime, values: list[float]) -> list[float]:
    import torch
    import torch.distributed as dist

    if runtime.world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def evaluate(model, blocks, runtime: Runtime, batch_size: int) -> float:
    """Mean next-token loss over `blocks` (this process's share), averaged over all processes."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    mine = blocks[runtime.rank :: runtime.world_size]
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size].to(runtime.device)
            with _autocast(runtime):
                loss = model(input_ids=batch, labels=batch).loss
            tokens = batch.numel() - batch.shape[0]  # one prediction fewer than tokens per block
            total += loss.float().item() * tokens
            count += tokens
    model.train(was_training)
    total, count = _all_reduce_sum(runtime, [total, count])
    return total / max(count, 1)


def _perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 50 else float("inf")


# --------------------------------------------------------------------------- checkpoints


def latest_checkpoint(output: Path) -> Path | None:
    """The newest checkpoints/step-N folder with a complete state.pt, or None."""
    folders = [p for p in (output / "checkpoints").glob("step-*") if (p / "state.pt").exists()]
    return max(folders, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(output: Path, step: int, state: dict, keep: int) -> Path:
    """Write state.pt atomically into checkpoints/step-N and prune all but the `keep` newest."""
    import torch

    folder = output / "checkpoints" / f"step-{step:07d}"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / "state.pt")
    folders = sorted((output / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in folders[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _rng_state() -> dict:
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# --------------------------------------------------------------------------- outputs


def plot_losses(history: list[dict], evals: list[dict], path: Path) -> None:
    """Save training and validation loss against optimizer step as a PNG (no display needed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    if history:
        ax.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", linewidth=1)
    if evals:
        ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _load_tokenizer(model: str):
    from relay.engine import load_tokenizer

    return load_tokenizer(model)


# --------------------------------------------------------------------------- training


def train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict:
    """Train the adapter, write everything into --output, and return the metrics."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    runtime = setup_runtime(train_args.precision)
    output = Path(train_args.output)
    if runtime.is_main:
        output.mkdir(parents=True, exist_ok=True)

    train_texts, valid_texts = load_documents(data_args, train_args.seed)  # before the model: fail fast
    tokenizer = _load_tokenizer(model_args.model)
    # fp32 weights: autocast computes in fp16 while the optimizer updates fp32 master copies.
    model = AutoModelForCausalLM.from_pretrained(model_args.model, attn_implementation="sdpa", dtype=torch.float32)
    n_positions = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    block_size = data_args.block_size
    if block_size > n_positions:
        log.warning("--block-size %d exceeds the model's n_positions %d; using %d", block_size, n_positions, n_positions)
        block_size = n_positions

    train_blocks = pack_documents(train_texts, tokenizer, block_size)
    valid_blocks = pack_documents(valid_texts, tokenizer, block_size)
    if data_args.max_eval_blocks:
        valid_blocks = valid_blocks[: data_args.max_eval_blocks]
    per_rank = len(train_blocks) // runtime.world_size
    if per_rank == 0:
        raise ConfigError(f"only {len(train_blocks)} training block(s) of {block_size} tokens for {runtime.world_size} processes")
    micro_per_epoch = math.ceil(per_rank / train_args.batch_size)
    total_steps = train_args.max_steps or max(1, math.ceil(train_args.epochs * micro_per_epoch / train_args.grad_accum))
    warmup = int(train_args.warmup_ratio * total_steps)
    eval_every = train_args.eval_every or max(1, total_steps // 10)

    if model_args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    torch.manual_seed(train_args.seed)  # same LoRA initialisation on every process
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=TARGET_MODULES,
        fan_in_fan_out=True,  # GPT-2's Conv1D stores weights as (in, out)
        bias="none",
    )
    model = get_peft_model(model, lora).to(runtime.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_args.lr, weight_decay=train_args.weight_decay)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.fp16)

    step, train_tokens, history, evals, val_before = 0, 0, [], [], None
    checkpoint = latest_checkpoint(output) if train_args.resume else None
    if train_args.resume and checkpoint is None:
        log.warning("--resume: no checkpoint in %s; starting from step 0", output / "checkpoints")
    if checkpoint is not None:
        # On the CPU first: the RNG state must stay a CPU tensor; load_state_dict moves the rest.
        state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=True)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] and runtime.fp16:  # empty when saved by a CPU (fp32) run
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        step, train_tokens = state["step"], state["train_tokens"]
        history, evals, val_before = state["history"], state["evals"], state["val_loss_before"]
        log.info("resumed from %s at step %d", checkpoint, step)

    if val_before is None:
        val_before = evaluate(model, valid_blocks, runtime, train_args.batch_size)
        evals.append({"step": 0, "val_loss": val_before})

    train_model = model
    if runtime.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [runtime.local_rank] if runtime.device.startswith("cuda") else None
        train_model = DistributedDataParallel(model, device_ids=device_ids)

    def micro_batch(index: int):
        # Micro-batch `index` of an endless, seeded stream: resuming at step s recomputes the same order.
        epoch, position = divmod(index, micro_per_epoch)
        generator = torch.Generator().manual_seed(train_args.seed * 100_003 + epoch)
        order = torch.randperm(len(train_blocks), generator=generator)[: per_rank * runtime.world_size]
        mine = order[runtime.rank :: runtime.world_size]
        return train_blocks[mine[position * train_args.batch_size : (position + 1) * train_args.batch_size]]

    def checkpoint_state() -> dict:
        return {
            "adapter": get_peft_model_state_dict(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": _rng_state(),
            "step": step,
            "train_tokens": train_tokens,
            "history": history,
            "evals": evals,
            "val_loss_before": val_before,
        }

    model.train()
    run_tokens, run_seconds = 0, 0.0
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not runtime.is_main)
    while step < total_steps:
        started = time.perf_counter()
        step_loss, step_tokens = 0.0, 0
        for micro in range(train_args.grad_accum):
            batch = micro_batch(step * train_args.grad_accum + micro).to(runtime.device)
            last = micro == train_args.grad_accum - 1
            sync = contextlib.nullcontext() if last or runtime.world_size == 1 else train_model.no_sync()
            with sync:
                with _autocast(runtime):
                    loss = train_model(input_ids=batch, labels=batch).loss
                scaler.scale(loss / train_args.grad_accum).backward()
            step_loss += loss.detach().float().item() / train_args.grad_accum
            step_tokens += batch.numel()
        if train_args.max_grad_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, train_args.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        step_loss, step_tokens = _all_reduce_sum(runtime, [step_loss / runtime.world_size, float(step_tokens)])
        train_tokens += int(step_tokens)
        run_tokens += int(step_tokens)
        run_seconds += time.perf_counter() - started
        history.append({"step": step, "loss": step_loss, "lr": scheduler.get_last_lr()[0]})
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{run_tokens / max(run_seconds, 1e-9):.0f}")
        if step % eval_every == 0 and step < total_steps:
            evals.append({"step": step, "val_loss": evaluate(model, valid_blocks, runtime, train_args.batch_size)})
        if train_args.save_every and step % train_args.save_every == 0 and step < total_steps and runtime.is_main:
            save_checkpoint(output, step, checkpoint_state(), train_args.keep_checkpoints)
    bar.close()

    val_after = evaluate(model, valid_blocks, runtime, train_args.batch_size)
    if not evals or evals[-1]["step"] != step:
        evals.append({"step": step, "val_loss": val_after})
    metrics = {
        "val_loss_before": val_before,
        "val_loss_after": val_after,
        "val_ppl_before": _perplexity(val_before),
        "val_ppl_after": _perplexity(val_after),
        "train_tokens": train_tokens,
        "tokens_per_second": run_tokens / run_seconds if run_seconds else 0.0,
        "steps": step,
        "resumed_from_step": int(checkpoint.name.split("-")[1]) if checkpoint else None,
        "loss_history": history,
        "val_history": evals,
    }
    if runtime.is_main:
        save_checkpoint(output, step, checkpoint_state(), train_args.keep_checkpoints)
        model.save_pretrained(output)
        config = {
            "model": asdict(model_args),
            "data": asdict(data_args),
            "train": asdict(train_args),
            "resolved": {
                "block_size": block_size,
                "total_steps": total_steps,
                "warmup_steps": warmup,
                "eval_every": eval_every,
                "train_documents": len(train_texts),
                "valid_documents": len(valid_texts),
                "train_blocks": len(train_blocks),
                "valid_blocks": len(valid_blocks),
                "tokens_per_step": train_args.batch_size * train_args.grad_accum * block_size * runtime.world_size,
                "world_size": runtime.world_size,
                "device": runtime.device,
                "precision": "fp16 autocast, fp32 master weights" if runtime.fp16 else "fp32",
                "attn_implementation": "sdpa",
                "target_modules": TARGET_MODULES,
                "trainable_parameters": sum(p.numel() for p in trainable),
            },
        }
        (output / "train_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
        (output / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
        plot_losses(history, evals, output / "loss.png")
        if model_args.merge:
            merged = model.merge_and_unload()
            merged.config.use_cache = True
            merged.save_pretrained(output / "merged")
            tokenizer.save_pretrained(output / "merged")
        log.info("val loss %.4f -> %.4f (ppl %.1f -> %.1f); wrote %s",
                 val_before, val_after, metrics["val_ppl_before"], metrics["val_ppl_after"], output)
    if runtime.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """Parse `argv` (default: sys.argv), train, and return the metrics written to metrics.json."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return train(*parse_args(argv))


if __name__ == "__main__":
    # `python finetune/train_lora.py` puts finetune/ first on sys.path; the repo root holds relay/ and data/.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from data.errors import CorpusError
    from relay.engine import EngineError

    try:
        main()
    except (FinetuneError, CorpusError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
