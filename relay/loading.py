"""Loading a model from disk or the Hub: the tokenizer, the transformers model and its LoRA adapters.

A name is a Hugging Face Hub id ("skt/kogpt2-base-v2") or a local folder; `looks_like_path` tells which.
Every failure becomes a `ModelLoadError` whose message (Korean / English) says what to do about it. The
engine and the backends (the openvino backend merges adapters itself) both load through here.
torch, transformers and peft are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from relay.settings import EngineError
from relay.tiny import KOGPT2_SPECIAL

__all__ = ["ModelLoadError", "load_tokenizer", "load_model", "load_adapters", "model_source", "load_message"]


class ModelLoadError(EngineError):
    """A model, tokenizer or adapter could not be loaded; the message says what to do."""


def looks_like_path(name: str) -> bool:
    """True when `name` is clearly meant as a folder rather than a Hub id like "owner/model"."""
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.endswith("/") or name.count("/") > 1
            or Path(name).expanduser().exists())


def model_source(name: str) -> str:
    """What to hand to `from_pretrained`: the expanded folder when `name` is one, else the Hub id as given."""
    folder = Path(name).expanduser()
    return str(folder) if folder.is_dir() else name


def _is_kogpt2(name: str) -> bool:
    """KoGPT-2 needs explicit special tokens: the skt/kogpt2 ids, or a folder whose tokenizer config lacks them."""
    if name.lower().startswith("skt/kogpt2"):
        return True
    folder = Path(name).expanduser()
    if not (folder / "tokenizer.json").is_file():
        return False
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return True
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not (config.get("bos_token") and config.get("eos_token"))


def _offline_hint() -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    return " (HF_HUB_OFFLINE is set)" if offline else ""


def load_message(what_ko: str, what_en: str, name: str, error: Exception) -> str:
    """Explain a failed load in terms of what the person can do about it."""
    if Path(name).expanduser().is_dir():
        return (f"{name} 폴더에서 {what_ko}를 읽을 수 없습니다 / The folder {name} does not hold a usable {what_en} "
                f"(a model folder needs config.json, model.safetensors or pytorch_model.bin, and tokenizer.json). "
                f"Detail: {error}")
    return (f"{name}을(를) 불러올 수 없습니다 / Could not load the {what_en} '{name}': the Hugging Face Hub is "
            f"unreachable or offline{_offline_hint()}, or the id is wrong. Download the model where the internet "
            f"works (e.g. `huggingface-cli download {name} --local-dir ./models/{name.split('/')[-1]}`) and pass "
            f"that local folder instead. Detail: {error}")


# ---------------------------------------------------------------- tokenizer and model


def load_tokenizer(model_name_or_path: str | os.PathLike):
    """The tokenizer for a model: KoGPT-2 with its explicit special tokens, anything else via AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    name = str(model_name_or_path)
    if looks_like_path(name) and not Path(name).expanduser().is_dir():
        raise ModelLoadError(
            f"모델 폴더가 없습니다: {name} / No model folder at {name}. Pass the folder that holds config.json, "
            f"the weights and tokenizer.json, or a Hugging Face Hub id such as skt/kogpt2-base-v2.")
    source = model_source(name)
    try:
        if _is_kogpt2(name):
            return PreTrainedTokenizerFast.from_pretrained(source, **KOGPT2_SPECIAL)
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise ModelLoadError(load_message("토크나이저", "tokenizer", name, error)) from error


def load_model(name: str, source: str, adapters: dict[str, str], device: str):
    """The transformers model (fp16 on a GPU, fp32 otherwise) with its PEFT adapters."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        loaded = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ModelLoadError(load_message("모델", "model", name, error)) from error
    loaded.to(device)
    loaded.eval()
    if adapters:
        loaded = load_adapters(loaded, adapters)
    return loaded


# ---------------------------------------------------------------- LoRA adapters


def load_adapters(model, adapters: dict[str, str]):
    """Wrap `model` in a PeftModel holding every named LoRA adapter; ModelLoadError names the bad one."""
    from peft import PeftModel

    for index, (name, source) in enumerate(adapters.items()):
        source = str(source)
        local = Path(source).expanduser()
        _check_adapter_folder(name, source, local)
        path = str(local) if local.is_dir() else source
        try:
            if index == 0:
                model = PeftModel.from_pretrained(model, path, adapter_name=name)
            else:
                model.load_adapter(path, adapter_name=name)
        except RuntimeError as error:  # size mismatch: trained on a model of another shape
            raise ModelLoadError(_adapter_shape_message(name, source, error)) from error
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(_adapter_load_message(name, source, local, error)) from error
    model.eval()
    return model


def _check_adapter_folder(name: str, source: str, local: Path) -> None:
    """A folder meant as an adapter must exist and hold adapter_config.json."""
    if not looks_like_path(source) or (local / "adapter_config.json").is_file():
        return
    where = "폴더가 없습니다 / no such folder" if not local.exists() else \
        "adapter_config.json이 없습니다 / it has no adapter_config.json"
    raise ModelLoadError(
        f"어댑터 '{name}'을(를) 불러올 수 없습니다: {source} {where}. Pass the folder that "
        f"`save_pretrained` wrote for a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors).")


def _adapter_shape_message(name: str, source: str, error: Exception) -> str:
    return (f"어댑터 '{name}'은(는) 이 모델과 맞지 않습니다 / Adapter '{name}' ({source}) was made for a "
            f"different base model: its weight shapes do not match this one. Load it with the base model it "
            f"was trained on (see base_model_name_or_path in its adapter_config.json), or train it again on "
            f"this model. Detail: {str(error)[:500]}")


def _adapter_load_message(name: str, source: str, local: Path, error: Exception) -> str:
    if local.is_dir():
        return (f"어댑터 '{name}'을(를) 불러올 수 없습니다 / Adapter '{name}' in {source} could not be "
                f"loaded: is it a LoRA adapter for this kind of model (GPT-2 layers c_attn, c_proj, "
                f"c_fc)? Detail: {error}")
    return load_message("어댑터", "adapter", source, error)
