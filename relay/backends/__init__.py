"""Runtimes that run the engine's token loop: one module each, the shared request and rules in `base`.

- `transformers`: transformers `generate` (the reference; GPU or CPU).
- `openvino`: KoGPT-2 converted to OpenVINO with int8 weights, for CPUs (the default there when installed).
- `openai`: a remote OpenAI-compatible completions server (`python -m relay.serve`, vLLM).

`relay.engine.Engine.from_pretrained(..., backend=...)` picks one; see docs/engine.md.
"""
