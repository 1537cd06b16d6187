"""The remote backend: streams token ids from an OpenAI-compatible `/v1/completions` server.

Works with `python -m relay.serve` (this project's server, any backend behind it) and vLLM; see
docs/engine.md. What it sends and why:

- the prompt as token ids, so KoGPT-2's tokenizer stays exact (tokenized here, never by the server);
- `logit_bias` of -100 for every banned id (markup, specials, and paragraph ends while they are held back);
- `seed` per candidate; `top_k` and `repetition_penalty` (vLLM's and relay.serve's extensions);
- `logprobs` with `return_tokens_as_token_ids=true`, so each streamed token arrives as its id, with its
  log-probability and the 5 likeliest ids (handed to the engine as `StepProbs`; relay.serve computes them as
  the local backends do; vLLM by its own `--logprobs-mode`, see docs/engine.md).

A paragraph may not end before `min_new_tokens` or before it has visible text; a server cannot know the
second, so a turn is written in two requests: first with paragraph ends banned until the rule is met, then
the rest (continuing from the ids written so far). Candidates (`n`) are separate streams with seeds
seed, seed+1, ...; a cancel closes the stream (the server stops at the disconnect). Connection failures
are retried with backoff before the first token; a server that stays down gives a BackendError with the
URL and what to start.
"""

from __future__ import annotations

import json
import math
import threading
import time

from relay.backends.base import TOP_PROBS, Backend, BackendError, GenerationRequest, StepProbs

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 120.0  # seconds without a byte (a GPU server under load may queue a request a while)
RETRIES = 3  # attempts before a request counts as failed (only before any token arrived)
BANNED = -100.0  # OpenAI's strongest logit bias: the id is never sampled
SECOND_PHASE_SEED = 1_000_003  # the rest of a turn after the held-back phase draws from seed + this


RELAY_EXTENSIONS = ("typical_p", "no_repeat_ngram_size")  # sampling knobs only relay.serve understands


class OpenAIBackend(Backend):
    """A remote OpenAI-compatible completions server (relay.serve, vLLM)."""

    name = "openai"
    concurrent = True  # the server batches; the engine sends requests at once

    def __init__(self, url: str, *, model: str, source: str, adapters: dict[str, str] | None = None,
                 context_window: int | None = None, vocab_size: int | None = None):
        import httpx

        self.url = url.rstrip("/")
        if not self.url.endswith("/v1"):
            self.url += "/v1"
        self.served_model = model
        self.adapters = dict(adapters or {})
        if context_window is None or vocab_size is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(source)
            context_window = int(getattr(config, "n_positions", None) or config.max_position_embeddings)
            vocab_size = int(config.vocab_size)
        self.context_window = context_window
        self.vocab_size = vocab_size
        self._client = httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT))
        # relay.serve honours every setting; another server (vLLM) has no typical-p and no n-gram ban, so
        # non-default values of those are refused rather than silently ignored.
        self.relay_server = self._is_relay_server()
        self.unsupported_settings = frozenset() if self.relay_server else frozenset(RELAY_EXTENSIONS)

    def _is_relay_server(self) -> bool:
        """True when the server says it is relay.serve (GET /v1/relay); False for others or when it is down now."""
        try:
            response = self._client.get(f"{self.url}/relay", timeout=CONNECT_TIMEOUT)
            return response.status_code == 200 and response.json().get("server") == "relay.serve"
        except Exception:  # down or not ours: the generic OpenAI subset is what we may rely on
            return False

    def close(self) -> None:
        self._client.close()

    def _down(self, error: Exception) -> BackendError:
        return BackendError(
            f"추론 서버에 연결할 수 없습니다 / cannot reach the inference server at {self.url} ({error}). "
            f"Start it (e.g. `python -m relay.serve --model MODEL --port 8000`, or vLLM: see docs/engine.md) "
            f"or fix --inference-url / RELAY_INFERENCE_URL.")

    def _stream(self, body: dict, cancelled):
        """Yield (token id, (p, top ids, top p) or None) of one streamed completion; retries connection failures
        before the first token."""
        import httpx

        delay = 0.5
        for attempt in range(RETRIES):
            received = False
            try:
                with self._client.stream("POST", f"{self.url}/completions", json=body) as response:
                    if response.status_code >= 400:
                        detail = response.read().decode("utf-8", "replace")[:500]
                        if response.status_code >= 500 and attempt < RETRIES - 1:
                            raise httpx.TransportError(f"HTTP {response.status_code}: {detail}")
                        raise BackendError(f"the inference server at {self.url} refused the request "
                                           f"(HTTP {response.status_code}): {detail}")
                    for line in response.iter_lines():
                        if cancelled():
                            return  # leaving the block closes the connection; the server stops writing
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        chunk = json.loads(data)
                        if "error" in chunk:
                            raise BackendError(f"the inference server failed: {chunk['error']}")
                        for choice in chunk.get("choices", []):
                            logprobs = choice.get("logprobs") or {}
                            for index, token in enumerate(logprobs.get("tokens") or []):
                                if not str(token).startswith("token_id:"):
                                    raise BackendError(
                                        f"the server at {self.url} does not return token ids "
                                        f"(return_tokens_as_token_ids); use relay.serve or vLLM")
                                received = True
                                yield int(str(token)[9:]), _token_probs(logprobs, index)
                    return
            except (httpx.TransportError, httpx.TimeoutException) as error:
                if received or attempt == RETRIES - 1:
                    raise self._down(error) from error
                time.sleep(delay)
                delay *= 2

    def _body(self, request: GenerationRequest, prompt: list[int], seed: int, max_tokens: int,
              banned: list[int]) -> dict:
        settings = request.settings
        body = {
            "model": request.adapter or self.served_model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p if settings.temperature > 0 else 1.0,
            "top_k": settings.top_k if settings.temperature > 0 and settings.top_k else -1,
            "repetition_penalty": settings.repetition_penalty,
            "seed": seed,
            "n": 1,
            "stream": True,
            "logprobs": TOP_PROBS if request.records else 0,
            "return_tokens_as_token_ids": True,
            "logit_bias": {str(i): BANNED for i in banned},
            "ignore_eos": True,  # the engine decides where a turn ends; </s> is banned when it may not
        }
        if self.relay_server:
            body.update(typical_p=settings.typical_p, no_repeat_ngram_size=settings.no_repeat_ngram_size,
                        continuation_start=request.continuation_start if request.continuation_start is not None
                        else len(request.prompt))
        return body

    def generate(self, request: GenerationRequest) -> None:
        rows = request.n
        lock = threading.Lock()
        latest: list[int | None] = [None] * rows
        recorded: list[tuple | None] = [None] * rows  # the latest id's (p, top ids, top p), as the server sent it
        finished = [False] * rows
        errors: list[BaseException] = []
        arrived = threading.Condition(lock)
        pending = [0] * rows  # ids a row produced that the engine has not seen yet

        # The engine takes one id per row per step: rows arrive independently, so the slowest row sets the pace
        # and a finished row repeats a harmless id (its track ignores everything after its end).
        def row_worker(row: int) -> None:
            try:
                def settled() -> None:  # wait until the engine has read every id this row produced
                    with arrived:
                        while pending[row] and not finished[row] and not request.cancelled():
                            arrived.wait(0.05)

                for token, probs in self._row_tokens(request, row, lambda: finished[row] or request.cancelled(),
                                                     settled):
                    with arrived:
                        while pending[row] and not finished[row] and not request.cancelled():
                            arrived.wait(0.05)
                        if finished[row] or request.cancelled():
                            return
                        latest[row], recorded[row], pending[row] = token, probs, 1
                        arrived.notify_all()
            except BaseException as error:  # re-raised in the engine's thread
                with arrived:
                    errors.append(error)
                    arrived.notify_all()
            finally:
                with arrived:
                    finished[row] = True
                    arrived.notify_all()

        workers = [threading.Thread(target=row_worker, args=(row,), daemon=True) for row in range(rows)]
        for worker in workers:
            worker.start()
        filler = [request.never_ids[0] if request.never_ids else 0] * rows
        steps = 0
        try:
            while steps < request.settings.max_new_tokens:
                with arrived:
                    while not errors and any(not pending[r] and not finished[r] for r in range(rows)) \
                            and not request.cancelled():
                        arrived.wait(0.05)
                    if errors:
                        raise errors[0]
                    if not any(pending):
                        break  # every stream ended (length, cancel or the server stopped)
                    ids = [latest[r] if pending[r] else filler[r] for r in range(rows)]
                    step = [recorded[r] if pending[r] else None for r in range(rows)]
                    pending[:] = [0] * rows
                    arrived.notify_all()
                steps += 1
                if request.records:
                    empty = (None, [], [])
                    request.on_probs(StepProbs([(s or empty)[0] for s in step], [(s or empty)[1] for s in step],
                                               [(s or empty)[2] for s in step]))
                done = request.on_tokens(ids)
                with arrived:
                    for row, row_done in enumerate(done):
                        if row_done:
                            finished[row] = True
                    arrived.notify_all()
                if all(done):
                    break
        finally:
            with arrived:
                finished[:] = [True] * rows
                arrived.notify_all()
            for worker in workers:
                worker.join(timeout=5)

    def _row_tokens(self, request: GenerationRequest, row: int, stop, settled):
        """One candidate's (id, probabilities): the held-back phase (paragraph ends banned), then the rest of the turn."""
        settings = request.settings
        seed = (request.seed + row) % 2**31
        limit = settings.max_new_tokens
        written: list[int] = []
        held = settings.stop_at != "length" and request.paragraph_end_ids
        while held and len(written) < limit and request.holds_paragraph_end(row) and not stop():
            # Until the engine stops holding (min_new_tokens reached and some visible text), ban paragraph ends.
            need = max(1, settings.min_new_tokens - len(written))
            body = self._body(request, request.prompt + written, (seed + len(written)) % 2**31,
                              min(need, limit - len(written)), request.never_ids + request.paragraph_end_ids)
            before = len(written)
            for token, probs in self._stream(body, stop):
                written.append(token)
                yield token, probs
            if len(written) == before:
                return  # the server wrote nothing: do not ask again forever
            settled()  # the engine's track has seen these ids before we ask whether it still holds
        if len(written) < limit and not stop():
            body = self._body(request, request.prompt + written, (seed + SECOND_PHASE_SEED + len(written)) % 2**31,
                              limit - len(written), request.never_ids)
            yield from self._stream(body, stop)


def _token_probs(logprobs: dict, index: int) -> tuple | None:
    """(p, top ids, top p) of the index-th token of an OpenAI `logprobs` block, or None when the server sent none.

    Top entries whose key is not "token_id:<id>" are skipped."""
    values = logprobs.get("token_logprobs") or []
    value = values[index] if index < len(values) else None
    if value is None:
        return None
    tops = logprobs.get("top_logprobs") or []
    top = tops[index] if index < len(tops) and isinstance(tops[index], dict) else {}
    ranked = sorted(((float(v), int(k[9:])) for k, v in top.items() if str(k).startswith("token_id:")), reverse=True)
    return math.exp(value), [i for _, i in ranked[:TOP_PROBS]], [math.exp(v) for v, _ in ranked[:TOP_PROBS]]
