"""Adapters at runtime: PEFT LoRA adapters read into low-rank matrices, bound into the one LoRA graph, chosen per token.

The LoRA graph (convert.py, `lora=True`) is the base model's graph with a low-rank branch on every linear layer an
adapter may train (LORA_MODULES of each block): y + ((x @ A) * lora_mask) @ B. The matrices of every adapter sit side
by side along the rank axis (`AdapterSet`): A [in, R] and B [R, out] over all adapters, each adapter owning one slice
of R (the same slice in every layer; zeros where it has no LoRA layer or a smaller rank). `bind` makes them constants
of the graph before it is compiled, so the CPU plugin runs them as ordinary f32 matmuls; each step's lora_mask
[positions, R] (`AdapterSet.mask`) keeps, for each position, only its writer's slice. So one compiled model serves
every adapter, writers of different adapters share a step, and an adapter costs its A and B (KoGPT-2 at rank 16:
~9 MB) instead of a whole converted model and its own cache pool.

The update is PEFT's own, unmerged: lora_B(lora_A(x)) * scaling, with the scaling (lora_alpha / r, or its rsLoRA
and per-layer forms, as PEFT computed it) folded into B. GPT-2's Conv1D stores weights [in, out] (fan_in_fan_out),
which changes how PEFT merges, not the branch: A = lora_A.weight.T, B = lora_B.weight.T * scaling either way.
"""

from __future__ import annotations

import copy
import re

import numpy as np

from relay.backends.base import BackendError
from relay.backends.openvino.convert import LORA_MODULES

_LAYER = re.compile(r"(?:^|\.)h\.(\d+)\.(" + "|".join(re.escape(m) for m in LORA_MODULES) + r")$")


def read_adapter(model, name: str, path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One PEFT LoRA adapter as {"{block}.{module}": (A [in, r], B [r, out] with its scaling)}, f32.

    Loaded by PEFT (relay.loading's checks and messages) onto a copy of `model` that shares its weights, so ranks,
    alphas, rsLoRA and per-layer patterns are read as PEFT reads them and reading costs the adapter's size, not
    the model's. BackendError for what the LoRA graph cannot run: DoRA, trained biases or whole modules, or layers
    other than LORA_MODULES."""
    from peft.tuners.lora import LoraLayer

    from relay.loading import load_adapters

    peft_model = load_adapters(_sharing_copy(model), {name: path})
    config = peft_model.peft_config[name]
    unsupported = [what for what, used in (("DoRA (use_dora)", getattr(config, "use_dora", False)),
                                           ("modules_to_save", getattr(config, "modules_to_save", None)),
                                           (f"bias={getattr(config, 'bias', 'none')!r}",
                                            getattr(config, "bias", "none") != "none"))
                   if used]
    weights = {}
    for module_name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        if name in getattr(module, "lora_embedding_A", {}):
            unsupported.append(f"an embedding ({module_name})")
            continue
        if name not in module.lora_A:
            continue
        layer = _LAYER.search(module_name)
        if layer is None:
            unsupported.append(f"the layer {module_name}")
            continue
        a = module.lora_A[name].weight.detach().float()  # [r, in]
        b = module.lora_B[name].weight.detach().float() * module.scaling[name]  # [out, r]
        weights[f"{layer.group(1)}.{layer.group(2)}"] = (np.ascontiguousarray(a.T.numpy()),
                                                         np.ascontiguousarray(b.T.numpy()))
    del peft_model
    if unsupported:
        raise BackendError(
            f"어댑터 '{name}'은(는) openvino 백엔드에서 쓸 수 없습니다 / the openvino backend runs plain LoRA on "
            f"{', '.join(LORA_MODULES)} only; adapter '{name}' ({path}) uses {', '.join(unsupported)}. Train it with "
            f"finetune/train_lora.py's settings, or use --backend transformers.")
    if not weights:
        raise BackendError(f"adapter '{name}' ({path}) has no LoRA layer on {', '.join(LORA_MODULES)}")
    return weights


def _sharing_copy(model):
    """A copy of `model`'s modules whose parameters and buffers are `model`'s own tensors (PEFT wraps the copy's
    layers and leaves the base weights as they are; a deep copy of KoGPT-2 would allocate ~0.5 GB a read)."""
    shared = {id(tensor): tensor for tensor in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo=shared)


class AdapterSet:
    """Every adapter's LoRA matrices side by side along the rank axis, and the per-position mask that picks one.

    `names[i]` owns rank columns `slices[name]`; `mask` gives each position of a step its adapter's columns (a
    position of the base model, or the batcher's padding row, none)."""

    def __init__(self, adapters: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]):
        self.weights = adapters  # until `bind` has made them constants of the graphs (`release`)
        self.names = list(adapters)
        self.sizes = {name: sum(a.nbytes + b.nbytes for a, b in layers.values()) for name, layers in adapters.items()}
        self.index = {name: i for i, name in enumerate(self.names)}
        self.slices: dict[str, slice] = {}
        start = 0
        for name, layers in adapters.items():
            rank = max(a.shape[1] for a, _ in layers.values())
            self.slices[name] = slice(start, start + rank)
            start += rank
        self.rank = start
        self.table = np.zeros((len(self.names) + 1, self.rank), np.float32)  # the last row: no adapter
        for i, name in enumerate(self.names):
            self.table[i, self.slices[name]] = 1.0

    def release(self) -> None:
        """Let go of the matrices once every graph that runs them has them bound (the compiled models hold them)."""
        self.weights = {}

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes of LoRA matrices each adapter holds (what an adapter costs in memory, once bound)."""
        return dict(self.sizes)

    def stacked(self, key: str, part: str, width: int) -> np.ndarray:
        """One layer's A [width (in), R] (part "A") or B [R, width (out)] (part "B") over every adapter, zeros
        where an adapter has no LoRA on that layer or a smaller rank there."""
        stacked = np.zeros((width, self.rank) if part == "A" else (self.rank, width), np.float32)
        for name, layers in self.weights.items():
            if key not in layers:
                continue
            matrix = layers[key][0] if part == "A" else layers[key][1].T  # both [width, r]
            if matrix.shape[0] != width:
                raise BackendError(f"adapter '{name}' does not fit the model at {key}: {part} {matrix.shape}")
            columns = slice(self.slices[name].start, self.slices[name].start + matrix.shape[1])
            if part == "A":
                stacked[:, columns] = matrix
            else:
                stacked[columns, :] = matrix.T
        return stacked

    def mask(self, adapters: list[str | None], lengths: np.ndarray) -> np.ndarray:
        """lora_mask [positions, R] of a step whose sequences (`adapters` each, None: none) have `lengths` positions."""
        rows = np.fromiter((self.index.get(name, len(self.names)) for name in adapters), np.int64, len(adapters))
        return np.repeat(self.table[rows], lengths, axis=0)


def read_adapters(model, adapters: dict[str, str]) -> AdapterSet:
    """Every adapter folder in `adapters` (name -> path) read into one AdapterSet."""
    return AdapterSet({name: read_adapter(model, name, path) for name, path in adapters.items()})


def bind(model, adapters: AdapterSet):
    """The converted LoRA graph (`model`, an ov.Model; the writers' or the reader's) with every adapter's matrices
    as constants, in place; `adapters.release()` once every graph is bound."""
    from openvino import opset13 as ops

    for parameter in list(model.get_parameters()):
        name = parameter.get_output_tensor(0).get_any_name()
        if not name.startswith("lora."):
            continue
        key, part = name[len("lora."):].rsplit(".", 1)
        width = parameter.get_partial_shape()[0 if part == "A" else 1].get_length()
        parameter.output(0).replace(ops.constant(adapters.stacked(key, part, width)).output(0))
        model.remove_parameter(parameter)
    model.validate_nodes_and_infer_types()
    return model
