"""`OpenVinoBackend`: the converted model (one copy per LoRA adapter), each run by its own batcher.

LoRA adapters are merged into a copy of the base weights before conversion: one converted model per adapter,
each compiled for the CPU with PagedAttention and served by a `_Batcher` (batcher.py). Conversion and its
cache are in convert.py, the KV block pool in pool.py.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from relay.backends.base import Backend, BackendError, GenerationRequest
from relay.backends.openvino.batcher import _Batcher
from relay.backends.openvino.convert import PRECISION_ENV, PRECISIONS, _check_supported, cached_model_path, paged
from relay.backends.openvino.pool import DEFAULT_KV_MB, KV_MB_ENV
from relay.loading import load_adapters


class OpenVinoBackend(Backend):
    """int8 (or fp32) GPT-2 on the OpenVINO CPU runtime; requests run at the same time, in one batch, each streaming."""

    name = "openvino"
    unsupported_settings = frozenset()
    concurrent = True

    def __init__(self, variants: dict[str | None, object], *, context_window: int, vocab_size: int, precision: str,
                 kv_megabytes: int | None = None, kv_blocks: int | None = None):
        """kv_blocks (tests) sets the pool's size in blocks instead of kv_megabytes / $RELAY_OPENVINO_KV_MB."""
        budget = (kv_megabytes or int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)) * 1024 * 1024
        self._batchers = {name: _Batcher(compiled, budget, name or "base", kv_blocks)
                          for name, compiled in variants.items()}
        self.context_window = context_window
        self.vocab_size = vocab_size
        self.precision = precision

    @classmethod
    def from_model(cls, model, *, source: str = "", adapters: dict[str, str] | None = None,
                   precision: str | None = None, cache: Path | None = None,
                   kv_blocks: int | None = None) -> "OpenVinoBackend":
        """Convert (or load from the cache) a transformers GPT-2 and one merged copy per LoRA adapter.

        `model` is the plain base model (adapters are merged here from their folders)."""
        import openvino as ov

        precision = _chosen_precision(precision)
        if hasattr(model, "peft_config"):
            raise BackendError("pass the base model without adapters; the openvino backend merges them itself")
        megabytes = _kv_megabytes()
        _check_supported(model)
        core = ov.Core()
        properties = _compile_properties(precision)

        def compiled(weights):
            return core.compile_model(paged(core.read_model(cached_model_path(weights, precision, cache))), "CPU",
                                      properties)

        variants = {None: compiled(model)}
        for name, path in (adapters or {}).items():
            merged = load_adapters(copy.deepcopy(model), {name: path}).merge_and_unload()  # checked by the engine
            variants[name] = compiled(merged)
            del merged
        config = model.config
        return cls(variants, context_window=int(config.n_positions), vocab_size=int(config.vocab_size),
                   precision=precision, kv_megabytes=megabytes, kv_blocks=kv_blocks)

    def stats(self) -> dict:
        """Steps run and the most sequences one step carried, over every model variant (for tests and benchmarks)."""
        return {"steps": sum(b.steps for b in self._batchers.values()),
                "widest_step": max(b.widest for b in self._batchers.values())}

    def generate(self, request: GenerationRequest) -> None:
        batcher = self._batchers.get(request.adapter)
        if batcher is None:
            raise BackendError(f"adapter {request.adapter!r} was not converted for the openvino backend")
        batcher.run(request)

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()


def _chosen_precision(precision: str | None) -> str:
    """The precision asked for, else $RELAY_OPENVINO_PRECISION, else int8; BackendError for an unknown one."""
    precision = precision or os.environ.get(PRECISION_ENV, "int8")
    if precision not in PRECISIONS:
        raise BackendError(f"{PRECISION_ENV} must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision


def _kv_megabytes() -> int:
    """$RELAY_OPENVINO_KV_MB, else the default; BackendError unless it is a whole number of megabytes >= 1."""
    try:
        megabytes = int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)
    except ValueError:
        megabytes = 0
    if megabytes < 1:
        raise BackendError(f"{KV_MB_ENV} must be a whole number of megabytes (default {DEFAULT_KV_MB}); "
                           f"got {os.environ.get(KV_MB_ENV)!r}")
    return megabytes


def _compile_properties(precision: str) -> dict[str, str]:
    """The CPU plugin's settings: lowest latency, f32 arithmetic; with fp32, an exact cache as well.

    f32 arithmetic on every precision: on CPUs with bf16 units (AMX, AVX512-BF16) the plugin otherwise
    computes in bf16, and its kernels for one row and for several rows round differently, so a seeded
    turn wrote other text when another writer shared the batch (tests/test_backend_openvino.py).
    """
    properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if precision == "fp32":  # exact: no bf16 arithmetic, no 8-bit KV cache, no dynamic int8 activations
        properties.update({"KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"})
    return properties
