"""LoRA fine-tuning: a tiny model trained for a few dozen CPU steps on a slice of the shared KoCoNovel corpus.

What a user relies on: held-out loss goes down, the base model is untouched, the adapter is what the app
loads and it changes what the app writes, an interrupted run resumes where it stopped, and --merge gives a
model `from_pretrained` loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.train_lora import ConfigError, load_documents, main, pack_documents, parse_args

REPO = Path(__file__).resolve().parent.parent
STEPS = 40


@pytest.fixture(scope="session")
def corpus_slice(tmp_path_factory, corpus_dir) -> Path:
    """The first 120 lines of eight KoCoNovel texts, with their INDEX.tsv rows (a file = a document)."""
    folder = tmp_path_factory.mktemp("koconovel-slice")
    files = sorted(corpus_dir.glob("*.txt"))[:8]
    for file in files:
        lines = file.read_text(encoding="utf-8").splitlines()[:120]
        (folder / file.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = (corpus_dir / "INDEX.tsv").read_text(encoding="utf-8").splitlines()
    names = {f.name for f in files}
    (folder / "INDEX.tsv").write_text("\n".join([index[0]] + [r for r in index[1:] if r.split("\t")[0] in names]) + "\n", encoding="utf-8")
    return folder


def train_argv(model: Path, data: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--data", str(data), "--output", str(output),
        "--block-size", "64", "--batch-size", "8", "--grad-accum", "1", "--lr", "1e-2",
        "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0.1", "--seed", "7",
        "--max-eval-blocks", "16", "--eval-every", "20", *extra,
    ]


def folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_model_dir, corpus_slice):
    """One training run: 40 steps, a checkpoint every 10, merged model written."""
    output = tmp_path_factory.mktemp("lora")
    base_hash = folder_hash(tiny_model_dir)
    metrics = main(train_argv(tiny_model_dir, corpus_slice, output, "--max-steps", str(STEPS),
                              "--save-every", "10", "--keep-checkpoints", "5", "--merge"))
    return {"output": output, "metrics": metrics, "base_hash": base_hash}


def test_training_lowers_validation_loss_and_reports_it(trained):
    metrics = trained["metrics"]
    assert metrics["val_loss_after"] < metrics["val_loss_before"] - 0.1
    assert metrics["val_ppl_after"] == pytest.approx(math.exp(metrics["val_loss_after"]))
    assert metrics["val_ppl_before"] == pytest.approx(math.exp(metrics["val_loss_before"]))
    assert metrics["steps"] == STEPS and metrics["train_tokens"] == STEPS * 8 * 64
    assert metrics["tokens_per_second"] > 0
    output = trained["output"]
    saved = json.loads((output / "metrics.json").read_text())
    assert saved["val_loss_after"] == metrics["val_loss_after"] and len(saved["loss_history"]) == STEPS
    config = json.loads((output / "train_config.json").read_text())
    assert config["model"]["lora_r"] == 8 and config["resolved"]["block_size"] == 64
    assert config["resolved"]["valid_documents"] >= 1 and config["resolved"]["train_documents"] >= 1
    assert (output / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_base_weights_stay_unchanged_and_lora_weights_change(trained, tiny_model_dir):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    assert folder_hash(tiny_model_dir) == trained["base_hash"]  # the base model on disk is untouched
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained["output"])
    config = json.loads((trained["output"] / "adapter_config.json").read_text())
    assert set(config["target_modules"]) == {"c_attn", "c_proj", "c_fc"} and config["fan_in_fan_out"] is True

    for name, value in adapted.state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        assert torch.equal(value, base_state[key]), f"base weight {key} changed"

    torch.manual_seed(7)  # the training run's seed: the adapter as it was initialised
    initial = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True),
    ).state_dict()
    trained_lora = {k: v for k, v in adapted.state_dict().items() if "lora_" in k}
    assert len(trained_lora) == 2 * 4 * 2  # A and B for 4 modules in each of 2 layers
    for name, value in trained_lora.items():
        assert not torch.allclose(value, initial[name]), f"{name} did not train"


def test_adapter_loads_in_the_engine_and_changes_generation(trained, tiny_model_dir):
    from relay.engine import Engine, SamplingSettings

    engine = Engine.from_pretrained(model=str(tiny_model_dir), adapters={"novel": str(trained["output"])})
    settings = SamplingSettings(temperature=0.0, max_new_tokens=20, stop_at="length", seed=1, trim_incomplete=False)
    story = ["비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다."]
    base = engine.continue_story(story, settings, adapter=None)
    base_text = "".join(base)
    adapted = engine.continue_story(story, settings, adapter="novel")
    adapted_text = "".join(adapted)
    assert base_text == base.text and adapted_text == adapted.text
    assert adapted_text and adapted_text != base_text


def test_merged_model_loads_and_writes_like_the_adapter(trained, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = trained["output"] / "merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer("비가 그친 저녁, 나는 오래된 우체국 앞에서", return_tensors="pt")["input_ids"]
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), trained["output"]).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        merged_logits = merged(ids).logits
        assert torch.allclose(merged_logits, adapted(ids).logits, atol=1e-4)
        assert not torch.allclose(merged_logits, base(ids).logits, atol=1e-3)


def test_resume_continues_from_the_saved_step_with_the_same_result(trained, tiny_model_dir, corpus_slice, tmp_path):
    import torch
    from safetensors.torch import load_file

    first = trained["output"]
    checkpoints = sorted(p.name for p in (first / "checkpoints").iterdir())
    assert checkpoints == ["step-0000010", "step-0000020", "step-0000030", "step-0000040"]
    # An interrupted run: only the step-20 checkpoint exists when it is started again with --resume.
    (tmp_path / "checkpoints").mkdir()
    shutil.copytree(first / "checkpoints" / "step-0000020", tmp_path / "checkpoints" / "step-0000020")
    metrics = main(train_argv(tiny_model_dir, corpus_slice, tmp_path, "--max-steps", str(STEPS), "--resume"))
    assert metrics["resumed_from_step"] == 20 and metrics["steps"] == STEPS
    assert [h["step"] for h in metrics["loss_history"]] == list(range(1, STEPS + 1))
    straight_history = trained["metrics"]["loss_history"]
    assert [h["loss"] for h in metrics["loss_history"]] == pytest.approx([h["loss"] for h in straight_history], abs=1e-5)
    assert [h["lr"] for h in metrics["loss_history"]] == pytest.approx([h["lr"] for h in straight_history])
    assert metrics["val_loss_before"] == trained["metrics"]["val_loss_before"]  # measured before step 1, not re-measured
    resumed = load_file(tmp_path / "adapter_model.safetensors")
    straight = load_file(first / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert torch.allclose(resumed[name], straight[name], atol=1e-6), name


def test_block_size_is_clipped_to_the_model_window(tiny_model_dir, corpus_slice, tmp_path):
    main(train_argv(tiny_model_dir, corpus_slice, tmp_path, "--max-steps", "1", "--block-size", "4096", "--batch-size", "1"))
    config = json.loads((tmp_path / "train_config.json").read_text())
    assert config["data"]["block_size"] == 4096 and config["resolved"]["block_size"] == 256  # tiny model: n_positions 256


def test_validation_documents_are_whole_files_never_seen_in_training(corpus_slice):
    model, data, train = parse_args(["--model", "m", "--data", str(corpus_slice), "--output", "o", "--valid-fraction", "0.25"])
    train_texts, valid_texts = load_documents(data, train.seed)
    files = {f.read_text(encoding="utf-8").strip() for f in corpus_slice.glob("*.txt")}
    assert len(train_texts) + len(valid_texts) == len(files) and len(valid_texts) >= 1
    assert set(train_texts) | set(valid_texts) == files  # every document whole, none cut up
    assert not set(train_texts) & set(valid_texts)
    assert load_documents(data, train.seed) == (train_texts, valid_texts)


def test_a_built_corpus_folder_keeps_its_own_split(corpus_slice, tmp_path):
    from data.build_corpus import main as build_corpus

    assert build_corpus(["--local", str(corpus_slice), "--out", str(tmp_path), "--valid-fraction", "0.3"]) == 0
    _, data, train = parse_args(["--model", "m", "--data", str(tmp_path), "--output", "o"])
    train_texts, valid_texts = load_documents(data, train.seed)
    written = [json.loads(line)["text"] for line in (tmp_path / "valid.jsonl").read_text(encoding="utf-8").splitlines()]
    assert valid_texts == written and len(train_texts) + len(valid_texts) == 8


def test_documents_are_separated_by_eos_and_packed_into_blocks(tiny_model_dir):
    from relay.engine import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    texts = ["비가 그친 저녁이었다.", "바다는 잔잔했다.", "기차는 새벽에 떠난다."]
    blocks = pack_documents(texts, tokenizer, block_size=8)
    eos = tokenizer.convert_tokens_to_ids("</s>")
    stream = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    flat = [i for ids in stream for i in ids]
    assert blocks.shape == (len(flat) // 8, 8)
    assert blocks.flatten().tolist() == flat[: blocks.numel()]
    assert pack_documents(texts[:1], tokenizer, block_size=1024).shape == (1, len(stream[0]))


@pytest.mark.parametrize("flag, value", [("--lora-r", "0"), ("--lora-dropout", "1.5"), ("--block-size", "2"), ("--lr", "0")])
def test_out_of_range_arguments_are_refused(flag, value):
    with pytest.raises(ConfigError):
        parse_args(["--model", "m", "--data", "d", "--output", "o", flag, value])


def test_two_cpu_processes_train_together_with_gloo(tiny_model_dir, corpus_slice, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "finetune" / "train_lora.py"),
               *train_argv(tiny_model_dir, corpus_slice, tmp_path, "--max-steps", "6", "--eval-every", "3")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    config = json.loads((tmp_path / "train_config.json").read_text())
    assert config["resolved"]["world_size"] == 2
    assert metrics["steps"] == 6 and metrics["train_tokens"] == 6 * 2 * 8 * 64  # both processes' batches count
    assert (tmp_path / "adapter_model.safetensors").exists()
    assert metrics["val_loss_after"] < metrics["val_loss_before"]
