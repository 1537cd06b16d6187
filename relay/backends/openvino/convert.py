"""Conversion: a transformers GPT-2 becomes the OpenVINO graph the backend runs, cached on disk.

`_StepGraph` is GPT-2's forward with the KV cache as state and logits only at each sequence's last
position; its LoRA form (`lora=True`, one graph for every adapter) adds a low-rank branch to each linear layer
adapters train (`LORA_MODULES`), whose matrices lora.py binds in at load time. `convert` traces it to a stateful
OpenVINO model and `compress_weights` stores its weights as the
precision asks (`COMPRESSION`: NNCF's int8 or group-wise int4, or fp32 as traced). That model is what is cached,
under $RELAY_CACHE/openvino/<`weights_digest`: the weights, the shape, the precision with its compression
settings, CONVERTER_VERSION and which graph (base or LoRA)> (`cached_model_path`), so a changed model or
precision is converted again and an unchanged one loads in seconds; adapters are not part of any key (they are
read at load time, lora.py), so adding or retraining one converts nothing. At load time `paged`
applies OpenVINO's own paged-attention transformation, which turns the cache into a pool of blocks (pool.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path

from relay.backends.base import BackendError, cache_dir

log = logging.getLogger(__name__)

CONVERTER_VERSION = "3"  # bump when _StepGraph or compress_weights change, so cached graphs are rebuilt
PRECISION_ENV = "RELAY_OPENVINO_PRECISION"  # int8 (default) | int4 (smaller, faster, less exact) | fp32 (exact)
# How each precision stores the weights: the arguments of nncf.compress_weights (None: fp32 as traced). They are
# part of the cache key. Compared side by side in benchmarks/bench_quality.py (BENCHMARKS.md, "Weight compression"):
# int8 per output channel, asymmetric (NNCF's default; no slower than the hand-written int8 it replaced and closer
# to fp32); int4 as OpenVINO GenAI's generic default for models without a tuned recipe (asymmetric, groups of 128
# inputs sharing a scale, every block's matrix in int4), the embedding / output matrix kept int8 (NNCF's rule for
# the first and last layers).
COMPRESSION: dict[str, dict | None] = {
    "int8": {"mode": "int8_asym"},
    "int4": {"mode": "int4_asym", "group_size": 128, "ratio": 1.0, "backup_mode": "int8_asym"},
    "fp32": None,
}
PRECISIONS = tuple(COMPRESSION)


# The linear layers of each block a LoRA adapter may target (finetune/train_lora.py's c_attn, c_proj, c_fc): the
# LoRA graph gives each a low-rank branch with its own inputs lora.{block}.{module}.A / .B.
LORA_MODULES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def lora_keys(layers: int) -> list[str]:
    """"{block}.{module}" of every linear layer with a LoRA branch, in the LoRA graph's input order."""
    return [f"{index}.{module}" for index in range(layers) for module in LORA_MODULES]


def _step_graph_class():
    import torch

    class _StepGraph(torch.nn.Module):
        """GPT-2's forward with the KV cache as inputs and outputs and explicit positions; logits only for the
        positions in `logits_indices` (each sequence's last one), so reading a story does not pay the 51,200-wide
        output layer per token.

        The cache follows the pattern OpenVINO's paged-attention transformation recognises (and that its CPU
        plugin fuses): ReadValue -> Gather(beam_idx) -> Concat -> scaled_dot_product_attention. The
        transformation replaces it with PagedAttention over a block pool and removes beam_idx and the mask.

        With `lora`, the inputs after logits_indices are lora_mask [positions, R] and, per `lora_keys`, A [in, R]
        and B [R, out] (then the cache): each LORA_MODULES layer computes y + ((x @ A) * mask) @ B, so a
        position gets the low-rank update of the rank slice its mask row keeps (lora.py). Without it the graph is
        the base model's, op for op."""

        def __init__(self, model, lora: bool = False):
            super().__init__()
            self.model = model
            self.lora = lora
            config = model.config
            self.heads, self.head_size = config.n_head, config.n_embd // config.n_head

        def forward(self, input_ids, position_ids, beam_idx, logits_indices, *rest):
            body = self.model.transformer
            batch, length = input_ids.shape
            branches, past = (rest[1:1 + 8 * len(body.h)], rest[1 + 8 * len(body.h):]) if self.lora else ((), rest)
            keep = rest[0].view(batch, length, -1) if self.lora else None  # lora_mask, per position

            def linear(index, slot, module, h):
                y = module(h)
                if not self.lora:
                    return y
                a, b = branches[2 * (4 * index + slot)], branches[2 * (4 * index + slot) + 1]
                return y + ((h @ a) * keep) @ b

            past_length = past[0].shape[2]
            x = body.wte(input_ids) + body.wpe(position_ids)
            allowed = torch.arange(past_length + length)[None, :] <= (torch.arange(length)[:, None] + past_length)
            mask = torch.where(allowed, 0.0, -float("inf"))
            presents = []
            for index, block in enumerate(body.h):
                qkv = linear(index, 0, block.attn.c_attn, block.ln_1(x))
                q, k, v = qkv.split(self.heads * self.head_size, dim=2)
                q, k, v = [t.view(batch, length, self.heads, self.head_size).transpose(1, 2) for t in (q, k, v)]
                k = torch.cat([past[2 * index].index_select(0, beam_idx), k], dim=2)
                v = torch.cat([past[2 * index + 1].index_select(0, beam_idx), v], dim=2)
                presents += [k, v]
                attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                x = x + linear(index, 1, block.attn.c_proj,
                               attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_size))
                hidden = block.mlp.act(linear(index, 2, block.mlp.c_fc, block.ln_2(x)))
                x = x + linear(index, 3, block.mlp.c_proj, hidden)
            x = x.reshape(-1, x.shape[-1]).index_select(0, logits_indices)
            return (self.model.lm_head(body.ln_f(x)), *presents)

    return _StepGraph


def _check_supported(model) -> None:
    config = model.config
    if getattr(config, "model_type", None) != "gpt2" or getattr(config, "scale_attn_by_inverse_layer_idx", False) \
            or getattr(config, "reorder_and_upcast_attn", False) or not getattr(config, "scale_attn_weights", True):
        raise BackendError(
            f"openvino 백엔드는 GPT-2(KoGPT-2) 모델만 변환합니다 / the openvino backend converts GPT-2 models "
            f"(KoGPT-2) only; this is {getattr(config, 'model_type', '?')}. Use --backend transformers.")


def convert(model, precision: str = "int8", progress=None, lora: bool = False):
    """A stateful OpenVINO model of a plain transformers GPT-2, its weights stored as `precision` asks.

    With `lora`, the LoRA graph: a low-rank branch on every LORA_MODULES layer, its matrices graph inputs
    (lora.{block}.{module}.A / .B, rank dynamic) and lora_mask; the base weights are compressed as in the base
    graph, the branch inputs stay f32. This is what is cached on disk; `paged(model)` turns it into the graph
    that runs (after lora.bind for the LoRA graph). `progress(stage)`, if given, is called with "compress"
    before the weights are compressed (the page and terminal show stages)."""
    import numpy as np
    import openvino as ov
    import torch
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    _check_supported(model)
    config = model.config
    heads, head_size, layers = config.n_head, config.n_embd // config.n_head, config.n_layer
    graph = _step_graph_class()(model.float().eval(), lora)
    example = (torch.ones(1, 3, dtype=torch.long), torch.arange(3)[None], torch.zeros(1, dtype=torch.int32),
               torch.tensor([2])) + tuple(torch.zeros(1, heads, 2, head_size) for _ in range(2 * layers))
    shapes = [(ov.PartialShape([-1, -1]), ov.Type.i64), (ov.PartialShape([-1, -1]), ov.Type.i64),
              (ov.PartialShape([-1]), ov.Type.i32), (ov.PartialShape([-1]), ov.Type.i64)] + [
        (ov.PartialShape([-1, heads, -1, head_size]), ov.Type.f32)] * (2 * layers)
    names = ["input_ids", "position_ids", "beam_idx", "logits_indices"] + [f"past.{i}" for i in range(2 * layers)]
    if lora:  # lora_mask and every branch's A, B go between logits_indices and the cache
        branch_example, branch_shapes, branch_names = _lora_inputs(model)
        example = example[:4] + branch_example + example[4:]
        shapes = shapes[:4] + branch_shapes + shapes[4:]
        names = names[:4] + branch_names + names[4:]
    with torch.no_grad():
        converted = ov.convert_model(graph, example_input=example, input=shapes)
    for port, name in zip(converted.inputs, names):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ["logits"] + [f"present.{i}" for i in range(2 * layers)]):
        port.get_tensor().set_names({name})
    if precision != "fp32" and progress:
        progress("compress")
    converted = compress_weights(converted, precision)
    apply_make_stateful_transformation(converted, {f"past.{i}": f"present.{i}" for i in range(2 * layers)})
    # Each cache starts empty with the batch of input_ids: the paged-attention transformation looks for a
    # ReadValue with an initializer, as exporters write it.
    batch = ops.gather(ops.shape_of(converted.input("input_ids"), output_type="i64"), ops.constant([0]),
                       ops.constant(0))
    for op in converted.get_ops():
        if op.get_type_name() == "ReadValue":
            empty = [batch] + [ops.constant(np.array([heads, 0, head_size][i:i + 1], dtype=np.int64))
                               for i in range(3)]
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.concat(empty, axis=0))])
    converted.validate_nodes_and_infer_types()
    return converted


def _lora_inputs(model, rank: int = 2):
    """The LoRA graph's extra inputs: example tensors (rank `rank`), shapes (rank dynamic) and names."""
    import openvino as ov
    import torch

    example, shapes, names = [torch.ones(3, rank)], [(ov.PartialShape([-1, -1]), ov.Type.f32)], ["lora_mask"]
    blocks = model.transformer.h
    for key in lora_keys(len(blocks)):
        index, module = key.split(".", 1)
        width_in, width_out = blocks[int(index)].get_submodule(module).weight.shape  # Conv1D: [in, out]
        example += [torch.zeros(width_in, rank), torch.zeros(rank, width_out)]
        shapes += [(ov.PartialShape([width_in, -1]), ov.Type.f32), (ov.PartialShape([-1, width_out]), ov.Type.f32)]
        names += [f"lora.{key}.A", f"lora.{key}.B"]
    return tuple(example), shapes, names


def paged(model):
    """The converted model with PagedAttention over a block pool (OpenVINO's own transformation, in place).

    Its inputs: input_ids and position_ids of every new position of every sequence, one after another;
    logits_indices (where each sequence's last new position is); past_lens, subsequence_begins,
    block_indices, block_indices_begins, max_context_len (which sequence holds which cache blocks); and
    key_cache.i / value_cache.i, the pool, whose layout and precision the CPU plugin chooses at compile time."""
    from openvino._offline_transformations import paged_attention_transformation

    paged_attention_transformation(model)
    names = {port.get_any_name() for port in model.inputs}
    if "key_cache.0" not in names or "beam_idx" in names:
        raise BackendError("OpenVINO's paged-attention transformation did not recognise the converted graph; "
                           "this openvino version is not supported (see requirements.txt), or use --backend "
                           "transformers")
    return model


def compress_weights(model, precision: str):
    """`model` (a converted OpenVINO model) with its weights stored as `precision` asks (`COMPRESSION`), by NNCF.

    NNCF writes each compressed weight as Constant(u8/u4) -> Convert -> Subtract(zero point) -> Multiply(scale),
    which the CPU plugin multiplies from directly (decoding is memory-bound, so fewer bytes a token is faster).
    A weight whose input width is not a multiple of the group size (tiny test models) gets the largest power of
    two that divides it (at least 32), else int8."""
    settings = COMPRESSION[precision]
    if settings is None:
        return model
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode
    except ImportError as error:
        raise BackendError(f"{precision} weights need NNCF: pip install -r requirements.txt ({error}); or "
                           f"{PRECISION_ENV}=fp32") from error

    arguments = {"mode": nncf.CompressWeightsMode(settings["mode"])}
    if "group_size" in settings:
        arguments.update(group_size=settings["group_size"], ratio=settings["ratio"],
                         backup_mode=nncf.BackupMode(settings["backup_mode"]),
                         advanced_parameters=AdvancedCompressionParameters(
                             group_size_fallback_mode=GroupSizeFallbackMode.ADJUST))
    return nncf.compress_weights(model, **arguments)


def compression_key(precision: str) -> str:
    """The precision, its compression settings and NNCF's version, as they enter the cache key."""
    settings = COMPRESSION[precision]
    if settings is None:
        return precision
    from importlib.metadata import version

    return f"{precision}:{json.dumps(settings, sort_keys=True)}:nncf-{version('nncf')}"


def _compress_int8(model) -> int:
    """The hand-written int8 Relay used before NNCF, kept for benchmarks/bench_quality.py to compare against.

    Every matrix multiplied by activations as int8 with one fp32 scale per output channel (symmetric); matrices
    under 4,096 values and the embedding lookup stay fp32. The CPU plugin recognises Constant(i8) -> Convert ->
    Multiply(scale) as compressed weights and multiplies straight from int8."""
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


READER = "reader.xml"  # beside a compressed model.xml: the same graph with its weights unpacked for the bf16 reader


def unpack_weights(model) -> None:
    """`model` (a converted model with compressed weights) in place, each compressed weight folded into the values
    its decompression computes, not 8 or 4 bits with scales (OpenVINO's constant folding: u8 or u4, zero points,
    scales, int4's groups). Those values are exact f16 numbers, and `reader_model_path` stores them as f16.

    The bf16 reader reads with these (backend.py): the CPU plugin turns 16-bit weights into bf16 once, at
    compile time, where it decompresses 8-bit ones at every call, ~20 ms a call on KoGPT-2's shape however short
    (a next turn reads ~26 positions). The values are the compressed weights' own, so the reader computes with
    the writers' weights, rounded to bf16 as before (BENCHMARKS.md, "Reading with unpacked weights")."""
    from openvino._pyopenvino.passes import ConstantFolding, Manager

    manager = Manager()
    manager.register_pass(ConstantFolding())
    manager.run_passes(model)


def reader_model_path(xml: Path, progress=None) -> Path:
    """The reader's model beside a compressed cached `xml` (`READER`), unpacked from it (`unpack_weights`) unless
    there already (a cache converted before the reader had its own file); `progress("unpack")` is called when it
    is made. Where it cannot be written (a read-only or full disk), `xml` itself, with a warning: the reader then
    decompresses the 8-bit weights at every call, as it did before."""
    import openvino as ov

    reader = xml.with_name(READER)
    if reader.is_file() and reader.with_suffix(".bin").is_file():
        return reader
    (progress or (lambda stage: None))("unpack")
    model = ov.Core().read_model(xml)
    unpack_weights(model)
    tmp = xml.with_name(f"reader.tmp{os.getpid()}-{threading.get_ident()}.xml")
    try:
        ov.save_model(model, tmp, compress_to_fp16=True)  # the weights as f16 (and the few f32 values, norms)
        tmp.with_suffix(".bin").replace(reader.with_suffix(".bin"))
        tmp.replace(reader)  # the .xml last: a reader.xml is always complete
    except (OSError, RuntimeError) as error:  # openvino reports a failed write as RuntimeError
        log.warning("could not write the reader's unpacked weights beside %s (%s); stories are read with the "
                    "8-bit weights, decompressed at every call", xml, error)
        return xml
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return reader


def weights_digest(model, precision: str, lora: bool = False) -> str:
    """A hash of the weights, the shape, the precision, the converter and the graph (base or LoRA): the cache key."""
    graph = "lora:" if lora else ""  # the base graph's key is the one it had before the LoRA graph existed
    digest = hashlib.sha256(f"{graph}{CONVERTER_VERSION}:{compression_key(precision)}:"
                            f"{model.config.to_json_string()}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:24]


def cached_model_path(model, precision: str, cache: Path | None = None, progress=None, lora: bool = False) -> Path:
    """Convert `model` (its LoRA graph with `lora`) unless an identical conversion is cached; the cached .xml path.

    With compressed weights (int8, int4) a conversion also writes the reader's model (`reader_model_path`).
    `progress(stage)`, if given, is called as each stage starts: "check" (hashing the weights), then
    "cached" (found: nothing to do) or "convert", "compress" (by `convert`), "save" and "unpack"."""
    import openvino as ov

    progress = progress or (lambda stage: None)
    progress("check")
    folder = (cache or cache_dir()) / "openvino" / weights_digest(model, precision, lora)
    xml = folder / "model.xml"
    if xml.is_file() and (folder / "model.bin").is_file():
        progress("cached")
        return xml
    progress("convert")
    log.info("converting the model%s to OpenVINO %s (once; cached in %s)", " (LoRA graph)" if lora else "",
             precision, folder)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        converted = convert(model, precision, progress, lora)
        progress("save")
        ov.save_model(converted, tmp / "model.xml", compress_to_fp16=False)
        if COMPRESSION[precision] is not None:
            reader_model_path(tmp / "model.xml", progress)
        try:
            tmp.rename(folder)
        except OSError:  # another process converted it meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return xml
