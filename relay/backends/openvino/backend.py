"""`OpenVinoBackend`: the converted base model, and one LoRA graph that runs every adapter, each with its batcher.

The base model's graph has no LoRA operation (its speed is the app's). With adapters, one more graph of the same
base weights is converted, with a low-rank branch on every linear layer adapters train; each adapter is read into
its LoRA matrices (lora.py), bound into that graph at load time, and picked per position, so writers of every
adapter share one batcher (batcher.py) and an adapter costs its LoRA weights, not a converted model. Both graphs
are compiled for the CPU with PagedAttention. Conversion and its cache are in convert.py, the KV block pool in
pool.py, the progress shown while preparing in progress.py. `prepare_variants` converts into the cache without
compiling (`python -m relay.prepare`); `from_model` can prepare in a background thread, so the page is up while a
first start converts; turns wait until it is done.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from relay.backends.base import Backend, BackendError, GenerationRequest
from relay.backends.openvino.batcher import _Batcher
from relay.backends.openvino.convert import (PRECISION_ENV, PRECISIONS, _check_supported, cached_model_path, paged,
                                             reader_model_path)
from relay.backends.openvino.lora import AdapterSet, bind, read_adapters
from relay.backends.openvino.pool import DEFAULT_KV_MB, KV_MB_ENV
from relay.backends.openvino.progress import Preparation

log = logging.getLogger(__name__)


class OpenVinoBackend(Backend):
    """int8 (or fp32) GPT-2 on the OpenVINO CPU runtime; requests run at the same time, in one batch, each streaming."""

    name = "openvino"
    unsupported_settings = frozenset()
    concurrent = True

    def __init__(self, base=None, lora=None, adapters: AdapterSet | None = None, *, context_window: int,
                 vocab_size: int, precision: str, kv_megabytes: int | None = None, kv_blocks: int | None = None):
        """base / lora: (compiled graph, its reader or None) of the base graph and the LoRA graph (with `adapters`
        bound into it), or None to open later. kv_blocks (tests) sets each pool's size in blocks instead of kv_megabytes / $RELAY_OPENVINO_KV_MB."""
        self._budget = (kv_megabytes or int(os.environ.get(KV_MB_ENV) or DEFAULT_KV_MB)) * 1024 * 1024
        self._kv_blocks = kv_blocks
        self._batchers: dict[str | None, _Batcher] = {}  # None: the base model; each adapter's name: the LoRA graph's
        self._prepared = threading.Event()
        self._closed = False
        self.preparation: Preparation | None = None  # set by from_model: the page shows its progress
        self.context_window = context_window
        self.vocab_size = vocab_size
        self.precision = precision
        self.adapters = adapters
        if base is not None:
            self._open(base, lora, adapters)

    def _open(self, base, lora=None, adapters: AdapterSet | None = None) -> None:
        """Start the base model's batcher and, with adapters, the LoRA graph's (shared by every adapter); turns
        waiting for the model go ahead. base, lora: (the compiled graph, its reader or None)."""
        batchers: dict[str | None, _Batcher] = {None: _Batcher(base[0], self._budget, "base", self._kv_blocks,
                                                               reader=base[1])}
        if lora is not None and adapters is not None:
            shared = _Batcher(lora[0], self._budget, "adapters", self._kv_blocks, adapters, reader=lora[1])
            batchers.update({name: shared for name in adapters.names})
        self.adapters = adapters
        self._batchers = batchers
        self._prepared.set()

    def _unique_batchers(self) -> list[_Batcher]:
        return list({id(batcher): batcher for batcher in self._batchers.values()}.values())

    @classmethod
    def from_model(cls, model, *, source: str = "", adapters: dict[str, str] | None = None,
                   precision: str | None = None, cache: Path | None = None, kv_blocks: int | None = None,
                   background: bool = False, preparation: Preparation | None = None) -> "OpenVinoBackend":
        """Convert (or load from the cache) a transformers GPT-2 and, with adapters, its LoRA graph.

        `model` is the plain base model; each adapter folder is read here (before returning: a LoRA the graph
        cannot run is refused at once) and bound into the LoRA graph. With `background`, it returns at once and
        prepares in a thread: `preparation` shows how far it is, and turns wait for it.
        """
        import openvino as ov

        precision = _chosen_precision(precision)
        if hasattr(model, "peft_config"):
            raise BackendError("pass the base model without adapters; the openvino backend reads them itself")
        megabytes = _kv_megabytes()
        _check_supported(model)
        adapters = dict(adapters or {})
        adapter_set = read_adapters(model, adapters) if adapters else None
        preparation = preparation or Preparation(variant_names(adapters), precision)
        config = model.config
        backend = cls(context_window=int(config.n_positions), vocab_size=int(config.vocab_size),
                      precision=precision, kv_megabytes=megabytes, kv_blocks=kv_blocks)
        backend.preparation = preparation

        core, properties = ov.Core(), _compile_properties(precision)
        reading = _reading_properties(core, precision)  # checked before any work: a wrong setting fails at once

        def prepare() -> None:
            compiled = {}
            def load(xml: Path, name: str | None, settings: dict):
                graph = core.read_model(xml)
                if name is not None:
                    graph = bind(graph, adapter_set)
                return core.compile_model(paged(graph), "CPU", settings)

            for name, xml in prepare_variants(model, adapters, precision, cache, preparation):
                reader = reader_model_path(xml, preparation) if reading else None  # made here for an older cache
                preparation("compile")
                compiled[name] = (load(xml, name, properties), load(reader, name, reading) if reading else None)
            if adapter_set is not None:
                adapter_set.release()
            preparation.finish()
            if not backend._closed:
                backend._open(compiled[None], compiled.get(LORA), adapter_set)

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
        """True once every graph is compiled (False while a background preparation runs, or after it failed)."""
        return bool(self._batchers)

    def stats(self) -> dict:
        """Steps run and the most sequences one step carried, over both graphs (for tests and benchmarks)."""
        batchers = self._unique_batchers()
        return {"steps": sum(b.steps for b in batchers), "widest_step": max((b.widest for b in batchers), default=0)}

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
        for batcher in self._unique_batchers():
            batcher.close()


LORA = "adapters"  # prepare_variants' name for the LoRA graph (the progress shows it as a variant)


def variant_names(adapters: dict[str, str]) -> list[str]:
    """What is prepared, as the progress names it: "base", and "adapters" (the LoRA graph) when there are any."""
    return ["base", LORA] if adapters else ["base"]


def prepare_variants(model, adapters: dict[str, str], precision: str, cache: Path | None,
                     preparation: Preparation):
    """(name, cached .xml) for the base graph (name None) and, when there are adapters, the LoRA graph (name LORA),
    converting what the cache lacks; `preparation` is told each graph and stage. Nothing is compiled here, and
    no adapter is read: the LoRA graph is the same for every adapter (lora.py binds them in at load time)."""
    yield None, cached_model_path(model, precision, cache, preparation.next_variant())
    if adapters:
        yield LORA, cached_model_path(model, precision, cache, preparation.next_variant(), lora=True)


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


# Activations are quantized to int8 on the fly for the int8 and int4 weights' matrix products, one scale per
# this many values (the plugin's default is 32). Fewer scales, faster steps: on KoGPT-2's shape at 512 tokens,
# int8 with 256 decodes 1.18x faster with a 1.3x faster first token, int4 with 128 (its weights' group size;
# 256 is slower there) 1.13x and 1.3x; on the small trained model held-out perplexity is unchanged (2944.9
# against 2945.0) and top-1 agreement with fp32 99.13 % against 99.42 % (BENCHMARKS.md, "Dynamic quantization").
DYNAMIC_QUANTIZATION_GROUP = {"int8": "256", "int4": "128"}


def _compile_properties(precision: str) -> dict[str, str]:
    """The CPU plugin's settings: lowest latency, f32 arithmetic, int8 activations in large groups, an 8-bit
    cache whose keys are quantized position by position; with fp32, an exact cache and no int8 activations.

    f32 arithmetic on every precision: on CPUs with bf16 units (AMX, AVX512-BF16) the plugin otherwise
    computes in bf16, and its kernels for one row and for several rows round differently, so a seeded
    turn wrote other text when another writer shared the batch (tests/test_backend_openvino.py).
    """
    properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if precision == "fp32":  # exact: no bf16 arithmetic, no 8-bit KV cache, no dynamic int8 activations
        properties.update({"KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"})
    else:
        properties["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = DYNAMIC_QUANTIZATION_GROUP[precision]
        properties["KEY_CACHE_QUANT_MODE"] = KEY_CACHE_QUANT_MODE
    return properties


# The plugin's default 8-bit key cache has one scale per channel per block, so a block written in two pieces
# holds other bytes than one written at once, and a story's last, partly filled block had to be read again at
# every turn. Keys quantized per position (as values always are) let a kept block's first positions serve the
# next turn, a swipe and a retry: a next turn reads ~26 positions instead of ~44, a swipe 2 instead of ~32. On
# the small trained model the quality is the same (BENCHMARKS.md, "Keys by position"); OpenVINO GenAI's own
# tests and samples set the same (an internal property of the plugin, ov::internal::key_cache_quant_mode).
KEY_CACHE_QUANT_MODE = "BY_TOKEN"


READ_PRECISION_ENV = "RELAY_OPENVINO_READ_PRECISION"  # bf16 (the default where the CPU has it) or f32


def _reading_properties(core, precision: str) -> dict[str, str] | None:
    """The settings of a second compile of the graph that reads stories (the prompt's positions) in bf16, on CPUs
    with bf16 units and int8/int4 weights; None: the writers' graph reads them (fp32, a CPU without bf16, or
    $RELAY_OPENVINO_READ_PRECISION=f32).

    Reading is where bf16 pays (a 900-token story read 1.3x faster), and it keeps seeds: a position's keys and
    values come out the same whatever else is read in the call, and so do its first logits when the call computes
    READ_LOGITS rows of logits or more (the batcher checks this at startup). Every prompt position is read by this
    graph and every written one by the f32 graph, so the same story and seed give the same text alone and beside
    other writers (BENCHMARKS.md, "Reading in bf16"). It is compiled from the cached model's reader file, the same
    weights unpacked to 16 bits (convert.py `unpack_weights`), which the plugin turns into bf16 once instead of at
    every call (BENCHMARKS.md, "Reading with unpacked weights")."""
    choice = os.environ.get(READ_PRECISION_ENV, "bf16")
    if choice not in ("bf16", "f32"):
        raise BackendError(f"{READ_PRECISION_ENV} must be bf16 or f32; got {choice!r}")
    if precision == "fp32" or choice == "f32" or "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    return {**_compile_properties(precision), "INFERENCE_PRECISION_HINT": "bf16"}
