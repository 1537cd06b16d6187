"""The models bench_peers.py runs, built once into a cache folder outside git: KoGPT-2's shape with random weights
as a transformers folder, the same weights as an OpenVINO GenAI folder (int8) and as llama.cpp GGUF files
(Q8_0, Q4_0). Needs the peers venv (benchmarks/peers-requirements.txt), not the app's.

- `hf_folder`: GPT2LMHeadModel(GPT2Config from ../shared/kogpt2), seed 0, and the real tokenizer.
- `genai_folder`: what `optimum-cli export openvino --weight-format int8` writes, made by hand because
  optimum-intel does not install beside transformers 5.24 / torch 2.13 (it pins transformers < 5.6 and pulls a
  CUDA torch): a stateful GPT-2 graph with the exporters' inputs (input_ids, attention_mask, position_ids,
  beam_idx) and the KV cache as ReadValue -> Gather(beam_idx) -> Concat -> SDPA, so GenAI's own paged-attention
  transformation takes it; weights int8 through `nncf.compress_weights` (INT8_ASYM, per channel: optimum's int8);
  tokenizer and detokenizer IRs from `openvino_tokenizers.convert_tokenizer`; config.json, generation_config.json.
- `gguf_files`: llama.cpp's own convert_hf_to_gguf.py (GPT-2 architecture) to an f32 GGUF, then
  `llama_cpp.llama_model_quantize` to Q8_0 and Q4_0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "relay-peers"


def hf_folder(cache: Path) -> Path:
    """The transformers folder (random weights, seed 0, the real tokenizer); built once."""
    folder = cache / "hf"
    if (folder / "model.safetensors").is_file():
        return folder
    sys.path.insert(0, str(REPO / "benchmarks"))
    sys.path.insert(0, str(REPO))
    from bench_generation import build_model

    tmp = _fresh(cache / "hf.tmp")
    build_model(tmp)
    tmp.rename(folder)
    return folder


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _exporter_graph(model):
    """GPT-2's forward as optimum exports it for OpenVINO: full logits, the cache as inputs and outputs."""
    import torch

    class ExporterGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.heads, self.head_size = model.config.n_head, model.config.n_embd // model.config.n_head

        def forward(self, input_ids, attention_mask, position_ids, beam_idx, *past):
            body = self.model.transformer
            batch, length = input_ids.shape
            past_length = past[0].shape[2]
            x = body.wte(input_ids) + body.wpe(position_ids)
            causal = torch.arange(past_length + length)[None, :] <= (torch.arange(length)[:, None] + past_length)
            allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
            mask = torch.where(allowed, 0.0, -float("inf"))
            presents = []
            for index, block in enumerate(body.h):
                q, k, v = block.attn.c_attn(block.ln_1(x)).split(self.heads * self.head_size, dim=2)
                q, k, v = [t.view(batch, length, self.heads, self.head_size).transpose(1, 2) for t in (q, k, v)]
                k = torch.cat([past[2 * index].index_select(0, beam_idx), k], dim=2)
                v = torch.cat([past[2 * index + 1].index_select(0, beam_idx), v], dim=2)
                presents += [k, v]
                attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                x = x + block.attn.c_proj(attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_size))
                x = x + block.mlp.c_proj(block.mlp.act(block.mlp.c_fc(block.ln_2(x))))
            return (self.model.lm_head(body.ln_f(x)), *presents)

    return ExporterGraph()


def _stateful_int8(model):
    """The exporter graph traced, int8-compressed by NNCF and made stateful (caches start empty per batch)."""
    import nncf
    import numpy as np
    import openvino as ov
    import torch
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    config = model.config
    heads, head_size, layers = config.n_head, config.n_embd // config.n_head, config.n_layer
    graph = _exporter_graph(model.float().eval())
    cache = tuple(torch.zeros(1, heads, 2, head_size) for _ in range(2 * layers))
    example = (torch.ones(1, 3, dtype=torch.long), torch.ones(1, 5, dtype=torch.long), torch.arange(2, 5)[None],
               torch.zeros(1, dtype=torch.int32)) + cache
    shapes = [(ov.PartialShape([-1, -1]), ov.Type.i64)] * 3 + [(ov.PartialShape([-1]), ov.Type.i32)] + [
        (ov.PartialShape([-1, heads, -1, head_size]), ov.Type.f32)] * (2 * layers)
    with torch.no_grad():
        converted = ov.convert_model(graph, example_input=example, input=shapes)
    names = ["input_ids", "attention_mask", "position_ids", "beam_idx"] + [f"past_key_values.{i // 2}."
                                                                          f"{'key' if i % 2 == 0 else 'value'}"
                                                                          for i in range(2 * layers)]
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    outputs = ["logits"] + [f"present.{i // 2}.{'key' if i % 2 == 0 else 'value'}" for i in range(2 * layers)]
    for port, name in zip(converted.outputs, outputs):
        port.get_tensor().set_names({name})
    converted = nncf.compress_weights(converted, mode=nncf.CompressWeightsMode.INT8_ASYM)
    apply_make_stateful_transformation(converted, dict(zip(names[4:], outputs[1:])))
    batch = ops.gather(ops.shape_of(converted.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    for op in converted.get_ops():
        if op.get_type_name() == "ReadValue":
            empty = [batch] + [ops.constant(np.array([value], dtype=np.int64)) for value in (heads, 0, head_size)]
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.concat(empty, axis=0))])
    converted.validate_nodes_and_infer_types()
    return converted


def genai_folder(cache: Path) -> Path:
    """An OpenVINO GenAI model folder (int8 weights, tokenizer IRs); built once."""
    folder = cache / "genai-int8"
    if (folder / "openvino_model.xml").is_file():
        return folder
    import openvino as ov
    import openvino_tokenizers
    from transformers import AutoTokenizer, GPT2LMHeadModel

    source = hf_folder(cache)
    tmp = _fresh(cache / "genai-int8.tmp")
    ov.save_model(_stateful_int8(GPT2LMHeadModel.from_pretrained(source)), tmp / "openvino_model.xml",
                  compress_to_fp16=False)
    tokenizer, detokenizer = openvino_tokenizers.convert_tokenizer(AutoTokenizer.from_pretrained(source),
                                                                   with_detokenizer=True)
    ov.save_model(tokenizer, tmp / "openvino_tokenizer.xml")
    ov.save_model(detokenizer, tmp / "openvino_detokenizer.xml")
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, tmp / name)
    tmp.rename(folder)
    return folder


def _llama_cpp_source(cache: Path) -> Path:
    """llama.cpp's tree as llama-cpp-python's sdist ships it (vendor/llama.cpp), unpacked once from pip's download."""
    root = cache / "llama-cpp-src"
    script = next(root.glob("*/vendor/llama.cpp/convert_hf_to_gguf.py"), None) if root.is_dir() else None
    if script is None:
        from importlib.metadata import version

        _fresh(root)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(root),
                        f"llama-cpp-python=={version('llama-cpp-python')}"], check=True)
        archive = next(root.glob("llama_cpp_python-*.tar.gz"))
        shutil.unpack_archive(archive, root)
        script = next(root.glob("*/vendor/llama.cpp/convert_hf_to_gguf.py"))
    return script.parent


# llama.cpp's converter, told KoGPT-2's pre-tokenizer: it knows tokenizers by a hash of their output and stops at
# an unknown one. KoGPT-2 splits words by Metaspace, which llama.cpp's BPE vocabularies do not model, so its own
# tokenizer would cut Korean differently; the benchmark hands it token ids, never text, so speed is unaffected.
_CONVERT_GGUF = """
import sys
source = sys.argv.pop(1)
sys.path.insert(0, source)
sys.argv[0] = source + "/convert_hf_to_gguf.py"
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""


def gguf_files(cache: Path) -> dict[str, Path]:
    """{"Q8_0": path, "Q4_0": path}: the same weights for llama.cpp; built once."""
    import llama_cpp

    files = {kind: cache / f"kogpt2-{kind}.gguf" for kind in ("Q8_0", "Q4_0")}
    if all(path.is_file() for path in files.values()):
        return files
    full = cache / "kogpt2-f32.gguf"
    if not full.is_file():
        source = _llama_cpp_source(cache)
        subprocess.run([sys.executable, "-c", _CONVERT_GGUF, str(source), str(hf_folder(cache)), "--outtype", "f32",
                        "--outfile", str(full)], check=True)
    kinds = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}
    for kind, path in files.items():
        if path.is_file():
            continue
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = kinds[kind]
        params.nthread = 2
        if llama_cpp.llama_model_quantize(str(full).encode(), str(path).encode(), params) != 0:
            raise RuntimeError(f"llama.cpp could not quantize {full} to {kind}")
    return files


def relay_int4_available() -> bool:
    """Whether this Relay tree offers int4 (RELAY_OPENVINO_PRECISION=int4; another helper's work)."""
    sys.path.insert(0, str(REPO))
    from relay.backends.openvino import PRECISIONS

    return "int4" in PRECISIONS


if __name__ == "__main__":
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE
    print(json.dumps({"hf": str(hf_folder(where)), "genai": str(genai_folder(where)),
                      **{k: str(v) for k, v in gguf_files(where).items()}}, indent=1))
