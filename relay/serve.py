"""A small OpenAI-compatible `/v1/completions` server over Relay's own engine, so one inference box serves many apps.

    python -m relay.serve --model ./models/kogpt2 --adapter noir=./adapters/noir --port 8000
    python app.py --backend openai --inference-url http://inference-box:8000/v1

Any backend runs behind it (`--backend openvino` on a CPU box, `transformers` on a GPU). It speaks the part of
the OpenAI completions API that `relay.backends.openai` (and vLLM's clients) use: the prompt as token ids
(or text), `max_tokens`, `temperature`, `top_p`, `top_k`, `repetition_penalty`, `min_tokens`, `seed`, `n`,
`logit_bias` (-100 bans an id), `ignore_eos`, `stream`, and `logprobs` (0 to 5) with `return_tokens_as_token_ids`
(each token comes back as "token_id:<id>"). `model` picks an adapter by name; any other name is the base model.
A request stops when its client disconnects.

Log-probabilities (`logprobs: N`) come from the engine's own recording while it samples (`StepProbs`, no second
pass): each choice's `logprobs` has `tokens`, `token_logprobs` (the sampled token's), `top_logprobs` (the N
likeliest, likeliest first) and `text_offset` (where each token's text starts in the completion), in the full
response and in each stream chunk. They are log-softmax over the logits the sampler used: after `logit_bias`
bans, the n-gram ban and the repetition penalty, divided by the temperature (1 when greedy), before top-k, top-p
and typical-p (docs/engine.md). Without `logprobs` nothing is recorded.
"""


import argparse
import asyncio
import json
import os
import queue
import threading
import time
import uuid

import math

from relay.engine import BACKEND_CHOICES, BACKEND_ENV, Engine, SamplingSettings, SettingsError

MAX_LOGPROBS = 5  # the most alternatives per token, as in OpenAI's completions API


def build_app(engine: Engine):
    """The FastAPI app serving `engine` (loads nothing itself)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    from relay.backends.base import GenerationRequest

    app = FastAPI(title="Relay inference server")
    one_at_a_time = threading.Lock()  # for backends that do not run requests at the same time

    @app.get("/health")
    def health():
        return {"status": "ok", "backend": engine.backend_name, "model": engine.model_id}

    @app.get("/v1/relay")
    def relay():
        """Tells relay.backends.openai that every sampling setting (typical_p, no_repeat_ngram_size too) is honoured."""
        return {"server": "relay.serve", "backend": engine.backend_name}

    @app.get("/v1/models")
    def models():
        names = [engine.model_id] + engine.adapter_names
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "relay",
                                            "max_model_len": engine.context_window} for name in names]}

    def error(status: int, message: str):
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)

    @app.post("/v1/completions")
    async def completions(http: Request):
        try:
            body = await http.json()
        except ValueError:
            return error(400, "the body must be JSON")
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompt = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"] or [engine._bos_id]
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list):
            prompt = prompt[0]
        if not isinstance(prompt, list) or not prompt or not all(isinstance(i, int) for i in prompt):
            return error(400, "prompt must be a string or a non-empty list of token ids (one prompt per request)")
        if any(not 0 <= i < engine.backend.vocab_size for i in prompt):
            return error(400, "prompt holds a token id outside the vocabulary")
        max_tokens = int(body.get("max_tokens") or 16)
        if len(prompt) + max_tokens > engine.context_window:
            return error(400, f"prompt ({len(prompt)}) + max_tokens ({max_tokens}) exceeds the model's "
                              f"{engine.context_window}-token window")
        model = body.get("model")
        adapter = model if model in engine.adapter_names else None
        n = int(body.get("n") or 1)
        temperature = float(body.get("temperature", 1.0))
        top_k = int(body.get("top_k") if body.get("top_k") is not None else -1)
        min_tokens = int(body.get("min_tokens") or 0)
        try:
            settings = SamplingSettings(
                temperature=temperature, top_p=float(body.get("top_p", 1.0)), top_k=max(top_k, 0),
                typical_p=float(body.get("typical_p", 1.0)),
                repetition_penalty=float(body.get("repetition_penalty", 1.0)),
                no_repeat_ngram_size=int(body.get("no_repeat_ngram_size") or 0), max_new_tokens=max_tokens, min_new_tokens=min(min_tokens, max_tokens),
                seed=None, stop_at="paragraph" if min_tokens else "length", trim_incomplete=False)
        except SettingsError as problem:
            return error(400, f"{problem.field}: {problem}")
        if not 1 <= n <= 4:
            return error(400, "n must be 1 to 4")
        seed = body.get("seed")
        seed = int(seed) % 2**31 if seed is not None else int.from_bytes(os.urandom(4), "little") % 2**31
        bias = body.get("logit_bias") or {}
        banned = sorted(int(i) for i, value in bias.items() if float(value) <= -100)
        eos = engine.tokenizer.eos_token_id
        ignore_eos = bool(body.get("ignore_eos")) or eos is None or eos in banned
        stream = bool(body.get("stream"))
        want_ids = bool(body.get("return_tokens_as_token_ids"))
        want_logprobs = body.get("logprobs") is not None
        top_n = body.get("logprobs")
        if want_logprobs and (isinstance(top_n, bool) or not isinstance(top_n, int)
                              or not 0 <= top_n <= MAX_LOGPROBS):
            return error(400, f"logprobs must be a whole number from 0 to {MAX_LOGPROBS}")

        out: queue.SimpleQueue = queue.SimpleQueue()
        gone = threading.Event()
        counts = [0] * n
        ended = [False] * n

        recorded = []  # this step's StepProbs (on_probs comes just before on_tokens)

        def on_tokens(ids: list[int]) -> list[bool]:
            step = []
            probs = recorded.pop() if recorded else None
            for row, token in enumerate(ids):
                if ended[row]:
                    continue
                counts[row] += 1
                step.append((row, token, _row_logprobs(probs, row, top_n) if probs is not None else None))
                if not ignore_eos and token == eos:
                    ended[row] = True
            out.put(("tokens", step))
            return [True] * n if gone.is_set() else list(ended)

        request = GenerationRequest(
            prompt=prompt, n=n, settings=settings, seed=seed, adapter=adapter, never_ids=banned,
            paragraph_end_ids=[eos] if min_tokens and eos is not None else [],
            holds_paragraph_end=lambda row: counts[row] < min_tokens, on_tokens=on_tokens, cancelled=gone.is_set,
            continuation_start=min(int(body.get("continuation_start") or len(prompt)), len(prompt)),
            on_probs=recorded.append, record_probs=want_logprobs)

        def run():
            try:
                if engine.backend.concurrent:
                    engine.backend.generate(request)
                else:
                    with one_at_a_time:
                        engine.backend.generate(request)
            except BaseException as problem:  # sent to the client as an error event
                out.put(("error", str(problem)))
            finally:
                out.put(("end", None))

        threading.Thread(target=run, name="relay-serve", daemon=True).start()
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        decode = engine.tokenizer.backend_tokenizer.decode

        offsets = [0] * n  # where the next token's text starts in each row's completion (text_offset)

        def token_name(token: int) -> str:
            return f"token_id:{token}" if want_ids else decode([token], skip_special_tokens=False)

        def choice(row: int, items: list[tuple], finish):
            tokens = [token for token, _ in items]
            item = {"index": row, "text": decode(tokens, skip_special_tokens=False), "finish_reason": finish}
            if want_logprobs:
                starts = []
                for token in tokens:
                    starts.append(offsets[row])
                    offsets[row] += len(decode([token], skip_special_tokens=False))
                item["logprobs"] = {
                    "tokens": [token_name(t) for t in tokens],
                    "token_logprobs": [lp[0] if lp else None for _, lp in items],
                    "top_logprobs": [{token_name(i): v for i, v in lp[1]} if lp else None for _, lp in items],
                    "text_offset": starts}
            return item

        def finish_reason(row: int) -> str:
            return "stop" if ended[row] else "length"

        if stream:
            async def events():
                held = None  # an error or end found while gathering tokens: handled next round, in order
                try:
                    while True:
                        if held is not None:
                            (kind, value), held = held, None
                        else:
                            kind, value = await asyncio.get_running_loop().run_in_executor(None, out.get)
                        if await http.is_disconnected():
                            gone.set()
                            return
                        if kind == "error":
                            yield f"data: {json.dumps({'error': {'message': value}})}\n\n"
                            return
                        if kind == "end":
                            final = [choice(row, [], finish_reason(row)) for row in range(n)]
                            yield f"data: {json.dumps({'id': ident, 'object': 'text_completion', 'created': created, 'model': model, 'choices': final})}\n\n"
                            yield "data: [DONE]\n\n"
                            return
                        step = list(value)
                        while kind == "tokens":  # send every step that is already waiting in one event
                            try:
                                kind, value = out.get_nowait()
                            except queue.Empty:
                                break
                            if kind == "tokens":
                                step += value
                            else:
                                held = (kind, value)
                        by_row: dict[int, list[tuple]] = {}
                        for row, token, logprobs in step:
                            by_row.setdefault(row, []).append((token, logprobs))
                        choices = [choice(row, tokens, None) for row, tokens in sorted(by_row.items())]
                        if choices:
                            yield f"data: {json.dumps({'id': ident, 'object': 'text_completion', 'created': created, 'model': model, 'choices': choices}, ensure_ascii=False)}\n\n"
                finally:
                    gone.set()  # the client left (or the stream ended): stop generating

            return StreamingResponse(events(), media_type="text/event-stream")

        tokens: list[list[tuple]] = [[] for _ in range(n)]
        while True:
            kind, value = await asyncio.get_running_loop().run_in_executor(None, out.get)
            if kind == "error":
                return error(500, value)
            if kind == "end":
                break
            for row, token, logprobs in value:
                tokens[row].append((token, logprobs))
        return {"id": ident, "object": "text_completion", "created": created, "model": model,
                "choices": [choice(row, tokens[row], finish_reason(row)) for row in range(n)],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": sum(map(len, tokens)),
                          "total_tokens": len(prompt) + sum(map(len, tokens))}}

    return app


def _row_logprobs(probs, row: int, top_n: int) -> tuple[float, list[tuple[int, float]]]:
    """(the sampled token's log-probability, the top_n likeliest (id, log-probability)) of one row's step."""
    return _log(probs.chosen[row]), [(i, _log(p)) for i, p in list(zip(probs.top_ids[row], probs.top_p[row]))[:top_n]]


def _log(p: float) -> float:
    """log p, with a floor instead of -inf (not valid JSON) for an id with no chance."""
    return math.log(p) if p > 0 else -9999.0


def parse_args(argv=None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Relay's OpenAI-compatible completions server.")
    parser.add_argument("--model", default=env.get("RELAY_MODEL", "skt/kogpt2-base-v2"),
                        help='Hub id or local folder, or "tiny" for a tiny random model (env RELAY_MODEL)')
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                        help="a LoRA adapter served under the model name NAME; repeatable")
    parser.add_argument("--backend", default=env.get(BACKEND_ENV, "auto"), choices=[c for c in BACKEND_CHOICES
                                                                                     if c != "openai"],
                        help=f"runtime behind the server (env {BACKEND_ENV})")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for other machines)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    adapters = {}
    for pair in args.adapter:
        name, sep, path = pair.partition("=")
        if not sep:
            parser.error(f"--adapter needs NAME=PATH, got {pair!r}")
        adapters[name.strip()] = path.strip()
    args.adapters = adapters
    return args


def main(argv=None) -> int:
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO)
    args = parse_args(argv)
    model = args.model
    if model == "tiny":
        import tempfile
        from pathlib import Path

        from relay.tiny import tiny_model_folder

        model = str(tiny_model_folder(Path(tempfile.gettempdir()) / "relay-tiny"))
    engine = Engine.from_pretrained(model, adapters=args.adapters or None, backend=args.backend)
    print(f"serving {engine.model_id} on the {engine.backend_name} backend at http://{args.host}:{args.port}/v1",
          flush=True)
    uvicorn.run(build_app(engine), host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
