"""The fast CPU backend: the model converted once to an OpenVINO graph with int8 weights, run by the OpenVINO runtime.

Why OpenVINO and why this shape (measurements in docs/engine.md): it is a plain `pip install openvino`
wheel, its CPU plugin runs KoGPT-2 with int8 weights at ~5x transformers fp32, keeps the KV cache inside the
runtime (a stateful graph whose attention appends to the cache in place), and lets several infer requests
run at once. The graph is ours (`_StepGraph`: GPT-2's forward with the cache as explicit inputs, made
stateful), so the token loop stays in Python and picks ids with exactly the engine's rules (`TokenPicker`):
banned ids, min_new_tokens, every sampling knob and per-request seeds hold as on transformers.

LoRA adapters are merged into a copy of the base weights before conversion: one converted model per adapter.
Converted models are cached under $RELAY_CACHE/openvino/<hash of the weights and the converter>, so a changed
model or adapter is converted again and an unchanged one is loaded in seconds.

Between turns the story's KV cache is kept: each idle infer request remembers the ids it has read, and a new
request continues from the longest shared prefix, so the first token waits only for the new text.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import threading
from pathlib import Path

from relay.backends.base import Backend, BackendError, GenerationRequest, TokenPicker, cache_dir

log = logging.getLogger(__name__)

CONVERTER_VERSION = "1"  # bump when _StepGraph or _compress_int8 change, so cached graphs are rebuilt
PRECISIONS = ("int8", "fp32")
PRECISION_ENV = "RELAY_OPENVINO_PRECISION"  # int8 (default) | fp32 (exact, for comparisons)
MAX_IDLE_REQUESTS = 8  # stories whose KV cache is kept between turns, per model variant
# The prompt is read in blocks aligned to this many positions, and only whole blocks are reused from a kept cache.
# Why: the same text read in different pieces gives slightly different floats, and a seeded sample may then
# differ; aligned blocks make a prompt's numbers depend only on the prompt, so a seed gives the same text
# whether the story was read now or at the last turn, alone or beside other writers.
PREFILL_BLOCK = 64


def _step_graph_class():
    import torch

    class _StepGraph(torch.nn.Module):
        """One GPT-2 step with the KV cache as inputs and outputs; logits only for the last position.

        The cache is gathered by `beam_idx` before the new keys are appended: the OpenVINO CPU plugin fuses exactly
        this pattern (ReadValue -> Gather -> Concat -> attention) into attention with an in-place cache, and the
        gather also lets one read story fan out into n candidates (beam_idx = [0] * n)."""

        def __init__(self, model):
            super().__init__()
            self.model = model
            config = model.config
            self.heads, self.head_size = config.n_head, config.n_embd // config.n_head

        def forward(self, input_ids, beam_idx, *past):
            body = self.model.transformer
            batch, length = input_ids.shape
            past_length = past[0].shape[2]
            positions = torch.arange(length, dtype=torch.long) + past_length
            x = body.wte(input_ids) + body.wpe(positions)[None]
            allowed = torch.arange(past_length + length)[None, :] <= (torch.arange(length)[:, None] + past_length)
            mask = torch.where(allowed, 0.0, -float("inf"))  # the CPU plugin's fused attention wants a float mask
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
            return (self.model.lm_head(body.ln_f(x[:, -1])), *presents)

    return _StepGraph


def _check_supported(model) -> None:
    config = model.config
    if getattr(config, "model_type", None) != "gpt2" or getattr(config, "scale_attn_by_inverse_layer_idx", False) \
            or getattr(config, "reorder_and_upcast_attn", False) or not getattr(config, "scale_attn_weights", True):
        raise BackendError(
            f"openvino 백엔드는 GPT-2(KoGPT-2) 모델만 변환합니다 / the openvino backend converts GPT-2 models "
            f"(KoGPT-2) only; this is {getattr(config, 'model_type', '?')}. Use --backend transformers.")


def convert(model, precision: str = "int8"):
    """A stateful OpenVINO model of a (merged, plain) transformers GPT-2, int8 weights unless precision="fp32"."""
    import numpy as np
    import openvino as ov
    import torch
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    _check_supported(model)
    config = model.config
    heads, head_size, layers = config.n_head, config.n_embd // config.n_head, config.n_layer
    graph = _step_graph_class()(model.float().eval())
    example = (torch.ones(1, 3, dtype=torch.long), torch.zeros(1, dtype=torch.int32)) + tuple(
        torch.zeros(1, heads, 2, head_size) for _ in range(2 * layers))
    shapes = [(ov.PartialShape([-1, -1]), ov.Type.i64), (ov.PartialShape([-1]), ov.Type.i32)] + [
        (ov.PartialShape([-1, heads, -1, head_size]), ov.Type.f32)] * (2 * layers)
    with torch.no_grad():
        converted = ov.convert_model(graph, example_input=example, input=shapes)
    names = ["input_ids", "beam_idx"] + [f"past.{i}" for i in range(2 * layers)]
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ["logits"] + [f"present.{i}" for i in range(2 * layers)]):
        port.get_tensor().set_names({name})
    if precision == "int8":
        _compress_int8(converted)
    apply_make_stateful_transformation(converted, {f"past.{i}": f"present.{i}" for i in range(2 * layers)})
    # Each cache starts empty with the batch of input_ids (without an initializer the CPU plugin starts at batch 0).
    batch = ops.gather(ops.shape_of(converted.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    for op in converted.get_ops():
        if op.get_type_name() == "ReadValue":
            empty = [batch] + [ops.constant(np.array([heads, 0, head_size][i:i + 1], dtype=np.int64))
                               for i in range(3)]
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.concat(empty, axis=0))])
    converted.validate_nodes_and_infer_types()
    return converted


def _compress_int8(model) -> int:
    """Store every matrix multiplied by activations as int8 with one fp32 scale per output channel (symmetric).

    The CPU plugin recognises Constant(i8) -> Convert -> Multiply(scale) as compressed weights and multiplies
    straight from int8, which halves and halves again the bytes read per token (decoding is memory-bound)."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    count = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "MatMul":
            continue
        source = node.input_value(1).get_node()
        if source.get_type_name() != "Constant":
            continue
        weight = source.get_data()
        if weight.ndim != 2 or weight.dtype != np.float32 or weight.size < 4096:
            continue
        reduce_axis = 1 if node.get_attributes()["transpose_b"] else 0  # the input (summed-over) dimension
        scale = np.abs(weight).max(axis=reduce_axis, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        weights = ops.multiply(ops.convert(ops.constant(quantized), ov.Type.f32),
                               ops.constant(scale.astype(np.float32)))
        node.input(1).replace_source_output(weights.output(0))
        count += 1
    return count


def weights_digest(model, precision: str) -> str:
    """A hash of the weights (after merging an adapter), the shape and the converter: the cache key."""
    digest = hashlib.sha256(f"{CONVERTER_VERSION}:{precision}:{model.config.to_json_string()}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_model_path(model, precision: str, cache: Path | None = None) -> Path:
    """Convert `model` unless an identical conversion is cached; returns the cached .xml path."""
    import openvino as ov

    folder = (cache or cache_dir()) / "openvino" / weights_digest(model, precision)
    xml = folder / "model.xml"
    if xml.is_file() and (folder / "model.bin").is_file():
        return xml
    log.info("converting the model to OpenVINO %s (once; cached in %s)", precision, folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        ov.save_model(convert(model, precision), tmp / "model.xml", compress_to_fp16=False)
        try:
            tmp.rename(folder)
        except OSError:  # another process converted it meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return xml


class _Slot:
    """One infer request and the ids its KV cache holds."""

    def __init__(self, request):
        self.request = request
        self.ids: list[int] = []  # every id the cache holds
        self.blocks = 0  # positions read as whole aligned prompt blocks (the only ones reused)


class _Variant:
    """One compiled model (the base, or the base with one adapter merged) and its idle infer requests."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.idle: list[_Slot] = []
        self.lock = threading.Lock()

    def take(self, prompt: list[int]) -> tuple[_Slot, int]:
        """The idle request sharing the longest prefix with `prompt` (or a fresh one), and that prefix's length."""
        with self.lock:
            best, best_length = None, 0
            for slot in self.idle:
                length = _shared_prefix(slot.ids, prompt)
                if best is None or length > best_length:
                    best, best_length = slot, length
            if best is not None and best_length > 0:
                self.idle.remove(best)
                return best, best_length
            if len(self.idle) >= MAX_IDLE_REQUESTS:
                slot = self.idle.pop(0)
                return slot, 0
        return _Slot(self.compiled.create_infer_request()), 0

    def give_back(self, slot: _Slot) -> None:
        with self.lock:
            self.idle.append(slot)
            if len(self.idle) > MAX_IDLE_REQUESTS:
                self.idle.pop(0)


def _shared_prefix(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b):
        if x != y:
            break
        length += 1
    return length


class OpenVinoBackend(Backend):
    """int8 (or fp32) GPT-2 on the OpenVINO CPU runtime; requests run at the same time, each streaming."""

    name = "openvino"
    unsupported_settings = frozenset()
    concurrent = True

    def __init__(self, variants: dict[str | None, object], *, context_window: int, vocab_size: int, precision: str):
        self._variants = {name: _Variant(compiled) for name, compiled in variants.items()}
        self.context_window = context_window
        self.vocab_size = vocab_size
        self.precision = precision

    @classmethod
    def from_model(cls, model, *, source: str = "", adapters: dict[str, str] | None = None,
                   precision: str | None = None, cache: Path | None = None) -> "OpenVinoBackend":
        """Convert (or load from the cache) a transformers GPT-2 and one merged copy per LoRA adapter.

        `model` is the plain base model (adapters are merged here from their folders)."""
        import openvino as ov

        precision = precision or os.environ.get(PRECISION_ENV, "int8")
        if precision not in PRECISIONS:
            raise BackendError(f"{PRECISION_ENV} must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if hasattr(model, "peft_config"):
            raise BackendError("pass the base model without adapters; the openvino backend merges them itself")
        _check_supported(model)
        core = ov.Core()
        properties = {"PERFORMANCE_HINT": "LATENCY"}
        if precision == "fp32":  # exact: no bf16 arithmetic, no 8-bit KV cache, no dynamic int8 activations
            properties.update({"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32",
                               "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"})
        variants = {None: core.compile_model(core.read_model(cached_model_path(model, precision, cache)), "CPU",
                                             properties)}
        for name, path in (adapters or {}).items():
            from relay.engine import _load_adapters

            merged = _load_adapters(copy.deepcopy(model), {name: path}).merge_and_unload()  # checked by the engine
            variants[name] = core.compile_model(core.read_model(cached_model_path(merged, precision, cache)), "CPU",
                                                properties)
            del merged
        config = model.config
        return cls(variants, context_window=int(config.n_positions), vocab_size=int(config.vocab_size),
                   precision=precision)

    def generate(self, request: GenerationRequest) -> None:
        import numpy as np

        variant = self._variants.get(request.adapter)
        if variant is None:
            raise BackendError(f"adapter {request.adapter!r} was not converted for the openvino backend")
        prompt, n, limit = request.prompt, request.n, request.settings.max_new_tokens
        slot, shared = variant.take(prompt)
        infer = slot.request
        try:
            # Reuse whole blocks only, and read at least one id (the last one's logits start the continuation).
            reuse = min(shared, slot.blocks, len(prompt) - 1) // PREFILL_BLOCK * PREFILL_BLOCK
            _keep_prefix(infer, len(slot.ids), reuse)
            slot.ids, slot.blocks = list(prompt[:reuse]), reuse
            request.cached_tokens = reuse
            one = np.zeros(1, dtype=np.int32)
            for start in range(reuse, len(prompt), PREFILL_BLOCK):
                block = prompt[start:start + PREFILL_BLOCK]
                logits = infer.infer({"input_ids": np.array([block], dtype=np.int64), "beam_idx": one})["logits"]
                slot.ids += block
            slot.blocks = len(prompt) // PREFILL_BLOCK * PREFILL_BLOCK
            if n > 1:
                logits = np.repeat(logits, n, axis=0)
            picker = TokenPicker(request)
            beam = np.zeros(n, dtype=np.int32)  # the first step fans the one read story out into n rows
            for step in range(limit):
                ids = picker.pick(logits)
                done = request.on_tokens(ids)
                if all(done) or step == limit - 1:
                    break
                logits = infer.infer({"input_ids": np.array(ids, dtype=np.int64)[:, None], "beam_idx": beam})["logits"]
                beam = np.arange(n, dtype=np.int32)
                slot.ids.append(ids[0])
        except BaseException:
            slot.ids, slot.blocks = [], 0  # the cache may hold anything now
            infer.reset_state()
            raise
        finally:
            variant.give_back(slot)


def _keep_prefix(infer, held: int, keep: int) -> None:
    """Cut the request's KV cache (holding `held` positions) back to its first `keep` positions."""
    import numpy as np
    import openvino as ov

    if keep == 0:
        infer.reset_state()
        return
    if keep == held:
        return
    for state in infer.query_state():
        data = state.state.data
        state.state = ov.Tensor(np.ascontiguousarray(data[:, :, :keep, :]))
