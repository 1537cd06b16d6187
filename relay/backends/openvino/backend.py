"""`OpenVinoBackend`: the converted model (one copy per LoRA adapter), each run by its own batcher.

LoRA adapters are merged into a copy of the base weights before conversion: one converted model per adapter,
each compiled for the CPU with PagedAttention and served by a `_Batcher` (batcher.py). Conversion and its
cache are in convert.py, the KV block pool in pool.py, the progress shown while preparing in progress.py.
`prepare_variants` converts into the cache without compiling (`python -m relay.prepare`); `from_model` can
prepare in a background thread, so the page is up while a first start converts; turns wait until it is done.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from pathlib import Path

from relay.backends.base import Backend, BackendError, GenerationRequest
from relay.backends.openvino.batcher import _Batcher
from relay.backends.openvino.convert import PRECISION_ENV, PRECISIONS, _check_supported, cached_model_path, paged
from relay.backends.openvino.pool import DEFAULT_KV_MB, KV_MB_ENV
from relay.backends.openvino.progress import Preparation
from relay.loading import load_adapters

log = logging.getLogger(__name__)


class OpenVinoBackend(Backend):
    """int8 (or fp32) GPT-2 on the OpenVINO CPU runtime; requests run at the same time, in one batch, each streaming."""

    name = "openvino"
    unsupported_settings = frozenset()
    concurrent = True

    def __init__(self, variants: dict[str | None, object], *, context_window: int, vocab_size: int, precision: str,
                 kv_megabytes: int | None = None, kv_blocks: int | None = None):
        """kv_blocks (tests) sets the pool's size in blocks instead of kv_megabytes / $RELAY_OPENVINO_KV_MB."""
        self._budget = (kv_megabytes or int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)) * 1024 * 1024
        self._kv_blocks = kv_blocks
        self._batchers: dict[str | None, _Batcher] = {}
        self._prepared = threading.Event()
        self._closed = False
        self.preparation: Preparation | None = None  # set by from_model: the page shows its progress
        self.context_window = context_window
        self.vocab_size = vocab_size
        self.precision = precision
        if variants:
            self._open(variants)

    def _open(self, variants: dict[str | None, object]) -> None:
        """Start one batcher per compiled variant; turns waiting for the model go ahead."""
        self._batchers = {name: _Batcher(compiled, self._budget, name or "base", self._kv_blocks)
                          for name, compiled in variants.items()}
        self._prepared.set()

    @classmethod
    def from_model(cls, model, *, source: str = "", adapters: dict[str, str] | None = None,
                   precision: str | None = None, cache: Path | None = None, kv_blocks: int | None = None,
                   background: bool = False, preparation: Preparation | None = None) -> "OpenVinoBackend":
        """Convert (or load from the cache) a transformers GPT-2 and one merged copy per LoRA adapter.

        `model` is the plain base model (adapters are merged here from their folders). With `background`,
        it returns at once and prepares in a thread: `preparation` shows how far it is, and turns wait for it.
        """
        import openvino as ov

        precision = _chosen_precision(precision)
        if hasattr(model, "peft_config"):
            raise BackendError("pass the base model without adapters; the openvino backend merges them itself")
        megabytes = _kv_megabytes()
        _check_supported(model)
        adapters = dict(adapters or {})
        preparation = preparation or Preparation(["base", *adapters], precision)
        config = model.config
        backend = cls({}, context_window=int(config.n_positions), vocab_size=int(config.vocab_size),
                      precision=precision, kv_megabytes=megabytes, kv_blocks=kv_blocks)
        backend.preparation = preparation

        def prepare() -> None:
            core, properties = ov.Core(), _compile_properties(precision)
            variants = {}
            for name, xml in prepare_variants(model, adapters, precision, cache, preparation):
                preparation("compile")
                variants[name] = core.compile_model(paged(core.read_model(xml)), "CPU", properties)
            preparation.finish()
            if not backend._closed:
                backend._open(variants)

        if not background:
            prepare()
            return backend

        def prepare_or_fail() -> None:
            try:
                prepare()
            except Exception as error:  # noqa: BLE001  the page and every waiting turn say what went wrong
                message = f"preparing the model failed: {type(error).__name__}: {error}"
                log.error("%s", message)
                preparation.fail(message)
                backend._prepared.set()

        threading.Thread(target=prepare_or_fail, name="relay-openvino-prepare", daemon=True).start()
        return backend

    @property
    def ready(self) -> bool:
        """True once every variant is compiled (False while a background preparation runs, or after it failed)."""
        return bool(self._batchers)

    def stats(self) -> dict:
        """Steps run and the most sequences one step carried, over every model variant (for tests and benchmarks)."""
        return {"steps": sum(b.steps for b in self._batchers.values()),
                "widest_step": max((b.widest for b in self._batchers.values()), default=0)}

    def generate(self, request: GenerationRequest) -> None:
        while not self._prepared.wait(0.25):  # a first start still converting: the turn starts when it is done
            if request.cancelled():
                return
        if self.preparation is not None and self.preparation.error:
            raise BackendError(self.preparation.error)
        batcher = self._batchers.get(request.adapter)
        if batcher is None:
            raise BackendError(f"adapter {request.adapter!r} was not converted for the openvino backend")
        batcher.run(request)

    def close(self) -> None:
        self._closed = True
        for batcher in self._batchers.values():
            batcher.close()


def prepare_variants(model, adapters: dict[str, str], precision: str, cache: Path | None,
                     preparation: Preparation):
    """(name, cached .xml) for the base model (name None) and each adapter merged into a copy of it, converting
    what the cache lacks; `preparation` is told each variant and stage. Nothing is compiled here."""
    yield None, cached_model_path(model, precision, cache, preparation.next_variant())
    for name, path in adapters.items():
        merged = load_adapters(copy.deepcopy(model), {name: path}).merge_and_unload()  # checked by the engine
        yield name, cached_model_path(merged, precision, cache, preparation.next_variant())
        del merged


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
