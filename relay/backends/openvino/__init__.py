"""The fast CPU backend: the model converted once to an OpenVINO graph with int8 weights, run by the OpenVINO runtime.

Why OpenVINO and why this shape (measurements in docs/engine.md): it is a plain `pip install openvino`
wheel, its CPU plugin runs KoGPT-2 with int8 weights at ~5x transformers fp32, and its PagedAttention
operation reads the KV cache of many sequences of different lengths in one call. The graph is ours
(`_StepGraph`: GPT-2's forward), turned into a paged-attention graph by OpenVINO's own transformation
(the one OpenVINO GenAI and vLLM's OpenVINO backend use), so the token loop stays in Python and picks ids
with exactly the engine's rules (`TokenPicker`): banned ids, held paragraph ends, every sampling knob and
per-request seeds hold as on transformers.

Where things happen:

- `convert.py`: the graph (and its LoRA form), int8 compression, the paged-attention transformation, the on-disk cache.
- `lora.py`: adapters at runtime: each PEFT adapter read into its LoRA matrices, bound into the one LoRA graph.
- `pool.py`: the KV cache blocks of one compiled model, and the kept blocks of stories already read.
- `batcher.py`: one thread per compiled graph; who runs in the next step, picking ids, calling the engine back.
- `backend.py`: `OpenVinoBackend`, which converts the base model and, with adapters, its LoRA graph.
"""

# The names relay.backends.openvino had as one module, private ones included (benchmarks use _Row).
from relay.backends.openvino.backend import OpenVinoBackend
from relay.backends.openvino.batcher import STEP_TOKENS, _Batcher, _Job, _Row  # noqa: F401
from relay.backends.openvino.convert import (CONVERTER_VERSION, LORA_MODULES, PRECISION_ENV, PRECISIONS,  # noqa: F401
                                             _check_supported, _compress_int8, _step_graph_class, cached_model_path,
                                             convert, paged, weights_digest)
from relay.backends.openvino.pool import DEFAULT_KV_MB, KV_MB_ENV, MAX_BLOCKS, _Pool  # noqa: F401

__all__ = ["OpenVinoBackend", "convert", "paged", "cached_model_path", "weights_digest", "CONVERTER_VERSION",
           "PRECISIONS", "PRECISION_ENV", "KV_MB_ENV", "DEFAULT_KV_MB", "MAX_BLOCKS", "STEP_TOKENS"]
