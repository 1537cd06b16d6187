"""Tiny random GPT-2 models shaped like KoGPT-2, built locally in seconds.

Used by the tests and by `python app.py --model tiny`, so the whole app can run without the
Hugging Face Hub. The text such a model writes is random; only its plumbing is real: a
Metaspace BPE tokenizer with KoGPT-2's special tokens and ids, saved and loaded through the
same `from_pretrained` path as the real model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# KoGPT-2's first special tokens, in its id order (0..6), so tiny models share its ids.
SPECIAL_TOKENS = ["<s>", "</s>", "<usr>", "<pad>", "<sys>", "<unk>", "<mask>"]
KOGPT2_SPECIAL = dict(bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")

# Written for this module (not taken from any corpus): enough Korean to train a small BPE.
SAMPLE_TEXT = """\
비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다.
골목 끝에서 누군가 휘파람을 불었다. 바람이 차가웠다.
"정말 올 거라고 생각했어요?" 그녀가 웃으며 물었다.
나는 대답 대신 주머니 속의 편지를 만지작거렸다.
기차는 새벽 다섯 시에 떠난다고 했다. 우리에게 남은 시간은 많지 않았다.
할머니는 부엌에서 된장찌개를 끓이고 계셨다. 창밖으로 눈이 내리기 시작했다.
"너는 왜 항상 늦니?" 형이 물었다. 나는 아무 말도 하지 않았다.
그날 밤 마을에는 이상한 소문이 돌았다. 산 너머 절에서 종소리가 세 번 울렸다는 것이다.
그는 낡은 가방을 들고 천천히 계단을 내려갔다. 발소리가 복도에 울렸다.
봄이 오면 강가에 진달래가 핀다. 아이들은 그 꽃을 따서 입에 넣곤 했다.
선생님은 칠판에 커다랗게 글자를 썼다. 교실은 조용해졌다.
바다는 잔잔했고, 배는 천천히 항구를 떠났다. 갈매기 몇 마리가 따라왔다.
어머니의 손은 언제나 따뜻했다. 나는 그 손을 잊을 수 없다.
시장에는 사람들이 북적였다. 생선 장수의 목소리가 유난히 컸다.
그러나 아무도 그 문을 열지 않았다. 문 뒤에서는 희미한 불빛이 새어 나왔다.
ABC 123 hello world! 오늘은 2026년 11월 25일입니다. :) ^^ ㅋㅋㅋ
"""


def train_tokenizer(text: str = SAMPLE_TEXT, vocab_size: int = 400):
    """Train a KoGPT-2-style tokenizer (NFKC, Metaspace, BPE) on `text`; returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    lines = text.splitlines(keepends=True)
    tok.train_from_iterator(lines * 3, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **KOGPT2_SPECIAL)


def build_tiny_model(
    folder: str | os.PathLike,
    *,
    tokenizer_file: str | os.PathLike | None = None,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Save a random GPT-2 with a KoGPT-2-style tokenizer into `folder`; returns the folder.

    `tokenizer_file` uses that tokenizer.json (for example the real KoGPT-2 one) instead of
    training a small one; the model's vocabulary then matches it.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_file is not None:
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), **KOGPT2_SPECIAL)
    else:
        tokenizer = train_tokenizer()
    tokenizer.save_pretrained(folder)

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.convert_tokens_to_ids("</s>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("</s>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<pad>"),
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def tiny_model_folder(cache_dir: str | os.PathLike) -> Path:
    """Build (once) and return a tiny model folder under `cache_dir`, for `--model tiny`."""
    folder = Path(cache_dir) / "tiny-kogpt2"
    if not (folder / "config.json").exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny_model(tmp)
        tmp.rename(folder)
    return folder


def build_tiny_adapter(base: str | os.PathLike, folder: str | os.PathLike, seed: int = 0) -> Path:
    """Save a PEFT LoRA adapter for the model in `base` whose weights change its text; returns the folder.

    A freshly initialized LoRA adapter is a no-op (lora_B starts at zero), so lora_B gets random values.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2LMHeadModel

    model = get_peft_model(GPT2LMHeadModel.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                                      fan_in_fan_out=True))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(folder)
    return Path(folder)
