"""The fast CPU backend (OpenVINO, int8 weights); being split into modules, all in backend.py for now."""

from relay.backends.openvino.backend import (CONVERTER_VERSION, DEFAULT_KV_MB, KV_MB_ENV, MAX_BLOCKS,  # noqa: F401
                                             PRECISION_ENV, PRECISIONS, PREFILL_CHUNK, OpenVinoBackend, _Batcher,
                                             _check_supported, _compress_int8, _Job, _Pool, _Row, _step_graph_class,
                                             cached_model_path, convert, paged, weights_digest)
