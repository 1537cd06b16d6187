"""The model's turn: KoGPT-2 (optionally with LoRA adapters) continues a story as clean, streamed Korean prose.

`Engine.from_pretrained(...)` loads a model on a backend (relay/backends/: transformers, openvino, openai);
`continue_story(...)` streams one continuation, `alternatives(...)` returns several,
`stream_alternatives(...)` streams them side by side and `branch(...)` continues from given first ids (a
writer's choice at one token of an earlier candidate). Each candidate's meta carries `tokens`: its ids, the
piece of text each added and their probabilities, recorded while it was written (docs/engine.md). The Engine
ties together the rooms next door:
relay/loading.py (model, tokenizer, adapters), relay/prompt.py (which story the model reads),
relay/decoding.py (ids to shown text, where to stop) and relay/streams.py (Continuation and its channel).
Everything importable from here before that split still is. The rules are explained in docs/engine.md.
torch and transformers are imported lazily so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from relay.backends.base import CACHE_ENV  # noqa: F401  converted models are cached here (./relay-data/cache)
from relay.decoding import (StreamDecoder, Track, display_pieces, hidden_ids, paragraph_end_ids, readable,
                             text_decoder, token_record)
from relay.loading import (ModelLoadError, load_adapters, load_message, load_model, load_tokenizer, looks_like_path,
                           model_source)
from relay.context import Assembly, Steering, assemble
from relay.encoding import Encoder
from relay.prompt import MIN_PROMPT_TOKENS, build_prompt  # noqa: F401  (build_prompt: its old home)
from relay.settings import (PRESET_LABELS, PRESETS, EngineError, SamplingSettings, SettingsError,  # noqa: F401
                            SettingSpec)
from relay.streams import (END, Alternatives, AlternativesStream, Channel, Continuation, Emitter, FifoLock,
                           ManyChannel)

_load_adapters, _load_transformers = load_adapters, load_model  # their names before relay/loading.py

__all__ = ["Engine", "SamplingSettings", "SettingSpec", "PRESETS", "PRESET_LABELS", "Continuation", "Alternatives",
           "AlternativesStream", "EngineError", "SettingsError", "ModelLoadError", "load_tokenizer", "MAX_ALTERNATIVES",
           "BACKEND_CHOICES", "BACKEND_ENV", "INFERENCE_URL_ENV", "CACHE_ENV", "ContextTooLong", "Steering"]

log = logging.getLogger(__name__)

MAX_ALTERNATIVES = 4
BACKEND_CHOICES = ("auto", "transformers", "openvino", "openai")
BACKEND_ENV = "RELAY_BACKEND"  # transformers | openvino | openai | auto
INFERENCE_URL_ENV = "RELAY_INFERENCE_URL"  # the OpenAI-compatible server for backend "openai"


def _choose_backend(backend: str, device: str, inference_url: str | None) -> str:
    """Resolve "auto": openai when a URL is given, the fast int8 CPU runtime on a CPU when it imports, else transformers."""
    if backend not in BACKEND_CHOICES:
        raise ModelLoadError(f"알 수 없는 백엔드 '{backend}' / unknown backend {backend!r}; "
                             f"choose one of {', '.join(BACKEND_CHOICES)}")
    if backend != "auto":
        return backend
    if inference_url:
        log.info("backend auto -> openai: an inference URL was given (%s)", inference_url)
        return "openai"
    if device != "cpu":
        log.info("backend auto -> transformers: device %s is not a CPU (the int8 runtime is for CPUs)", device)
        return "transformers"
    try:
        import openvino  # noqa: F401
    except ImportError:
        log.info("backend auto -> transformers: the openvino package is not installed "
                 "(pip install openvino for int8 CPU generation, several times faster)")
        return "transformers"
    log.info("backend auto -> openvino: CPU device and the openvino package imports (int8 weights, several times "
             "faster than transformers fp32)")
    return "openvino"


def _resolve_device(device: str) -> str:
    """"auto" is CUDA when torch sees a GPU, else the CPU; anything else is kept."""
    if device != "auto":
        return device
    device = "cpu"
    with contextlib.suppress(ImportError):
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _openai_runtime(name: str, source: str, adapters: dict[str, str], inference_url: str | None):
    """The remote backend; the window size comes from the local config.json."""
    from relay.backends.openai import OpenAIBackend

    if not inference_url:
        raise ModelLoadError("백엔드 openai에는 서버 주소가 필요합니다 / backend openai needs --inference-url "
                             "(or RELAY_INFERENCE_URL), e.g. http://gpu-box:8000/v1")
    try:
        return OpenAIBackend(inference_url, model=name, source=source, adapters=adapters)
    except (OSError, ValueError) as error:  # the local config.json the window size comes from
        raise ModelLoadError(load_message("모델 설정", "model config", name, error)) from error


def _openvino_runtime(name: str, source: str, adapters: dict[str, str], options: dict | None = None):
    """The int8 CPU backend: the base model converted, adapters read at runtime (`OpenVinoBackend.from_model`
    reads each through relay.loading: the same checks and ModelLoadError messages as the transformers backend).

    `options` go to `OpenVinoBackend.from_model` (cache, background: prepare while the page is up)."""
    from relay.backends.base import BackendError
    from relay.backends.openvino import OpenVinoBackend

    base = load_model(name, source, {}, "cpu")
    try:
        return OpenVinoBackend.from_model(base, source=source, adapters=adapters, **(options or {}))
    except BackendError as error:  # a model it cannot convert: say so at startup, like any load error
        raise ModelLoadError(str(error)) from error


class Engine:
    """A loaded model, its tokenizer and adapters; continues stories. Safe to share between threads.

    The token loop runs in a backend (`relay/backends/`); context, decoding, stopping and trimming happen
    here so that every backend writes the same clean text under the same rules.
    """

    def __init__(self, backend, tokenizer, *, model_id: str, adapter_names: list[str], device: str):
        """Wrap a ready backend; most callers want `Engine.from_pretrained`."""
        from relay.backends.base import Backend

        if not isinstance(backend, Backend):  # a bare transformers model, as before backends existed
            from relay.backends.transformers import TransformersBackend

            backend = TransformersBackend(backend, tokenizer, device)
        self.backend = backend
        self.tokenizer = tokenizer
        self._encoder = Encoder(tokenizer)
        self.model_id = model_id
        self.adapter_names = list(adapter_names)
        self.device = device
        self.context_window = int(backend.context_window)
        self._lock = FifoLock()
        self._cached_tokens = threading.local()  # what the last generation on this thread reused, for meta
        self._eos_id = tokenizer.eos_token_id
        bos = tokenizer.bos_token_id
        self._bos_id = bos if bos is not None else self._eos_id
        pad = tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._eos_id
        vocab_size = int(backend.vocab_size)
        self._drop_ids = hidden_ids(tokenizer, vocab_size, self._pad_id)
        self._never = sorted(self._drop_ids - {self._eos_id})
        self._paragraph_end_ids = paragraph_end_ids(tokenizer, vocab_size, self._drop_ids, self._eos_id)
        self._vocab_size = vocab_size
        # Each id's display text for the alternatives in meta["tokens"] (~0.1 s for KoGPT-2, once).
        self._display = display_pieces(tokenizer, min(vocab_size, len(tokenizer)))
        self.record_probs = True  # False: no token probabilities in meta (a speed comparison's baseline)

    def _display_pieces(self) -> list[str]:
        return self._display

    @property
    def backend_name(self) -> str:
        """Which runtime writes: "transformers", "openvino" or "openai"."""
        return self.backend.name

    @property
    def unsupported_settings(self) -> frozenset[str]:
        """SamplingSettings fields this backend cannot honour: a non-default value for one is refused with a
        SettingsError naming the backend; at its default it is not applied and meta["settings_not_applied"] says so."""
        return frozenset(self.backend.unsupported_settings)

    @property
    def paragraph_end_ids(self) -> frozenset[int]:
        """The ids that end a paragraph (every shown id holding a newline, and </s>)."""
        return frozenset(self._paragraph_end_ids)

    @property
    def max_new_tokens_limit(self) -> int:
        """The largest max_new_tokens this model's window allows (it must leave MIN_PROMPT_TOKENS of story)."""
        return self.context_window - MIN_PROMPT_TOKENS

    @property
    def model(self):
        """The transformers model (transformers backend only; other backends hold a converted copy)."""
        return getattr(self.backend, "model", None)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = "skt/kogpt2-base-v2", adapters: dict[str, str] | None = None,
                        device: str = "auto", backend: str = "auto", inference_url: str | None = None,
                        openvino_options: dict | None = None) -> "Engine":
        """Load a model (Hub id or local folder) and its LoRA adapters on a backend; ModelLoadError says what to do.

        backend: "transformers" (reference, GPU), "openvino" (int8 on CPU, converted and cached under
        $RELAY_CACHE), "openai" (a remote OpenAI-compatible server at `inference_url`), or "auto".
        openvino_options: passed to `OpenVinoBackend.from_model` (e.g. cache, background) when openvino runs.
        """
        name = str(model)
        device = _resolve_device(device)
        chosen = _choose_backend(backend, device, inference_url)
        tokenizer = load_tokenizer(name)
        source = model_source(name)
        adapters = dict(adapters or {})
        if chosen == "openai":
            runtime, device = _openai_runtime(name, source, adapters, inference_url), "remote"
        elif chosen == "openvino":
            runtime, device = _openvino_runtime(name, source, adapters, openvino_options), "cpu"
        else:
            from relay.backends.transformers import TransformersBackend

            runtime = TransformersBackend(load_model(name, source, adapters, device), tokenizer, device)
        return cls(runtime, tokenizer, model_id=name, adapter_names=list(adapters), device=device)

    def close(self) -> None:
        """Free the backend's threads and connections."""
        self.backend.close()

    # -- context

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` takes."""
        return len(self._encode(text))

    def _encode(self, text: str) -> list[int]:
        return self._encoder.one(text)

    def _encode_many(self, texts: list[str]) -> list[list[int]]:
        return self._encoder.many(texts) if texts else []

    def assemble(self, paragraphs: list[str], settings: SamplingSettings, steering: Steering | None = None) -> Assembly:
        """What the model reads next turn, block by block (relay/context.py): memory, the cards the story
        triggers, the story window, the author's note. The ids it generates from are exactly `.ids`."""
        return assemble(self._encode, paragraphs, self.context_window, settings.max_new_tokens, bos_id=self._bos_id,
                        encode_many=self._encode_many, steering=steering, lines_apart=self._encoder.lines_apart)

    def block_text(self, ids) -> str:
        """The text of some prompt ids as the model reads it (characters its vocabulary lacks show as <unk>)."""
        return readable(text_decoder(self.tokenizer)(list(ids)))

    def _prompt(self, paragraphs: list[str], settings: SamplingSettings, steering: Steering | None) -> Assembly:
        """The assembled prompt to generate from; ContextTooLong when memory and note leave the story too little
        (the writer is told which to shorten: nothing is cut silently)."""
        assembly = self.assemble(paragraphs, settings, steering)
        if assembly.problem is not None:
            raise ContextTooLong(assembly.problem)
        return assembly

    def context_text(self, paragraphs: list[str], settings: SamplingSettings, steering: Steering | None = None) -> str:
        """Exactly the text the model reads for these settings (after fitting its window);
        characters its vocabulary lacks show as <unk>."""
        ids = self.assemble(paragraphs, settings, steering).ids
        if ids == [self._bos_id] and not any(p.strip() for p in paragraphs):
            return ""
        return self.block_text(ids)

    # -- generation

    def _check(self, settings: SamplingSettings, adapter: str | None) -> None:
        if not isinstance(settings, SamplingSettings):
            raise SettingsError("settings", f"settings must be SamplingSettings, got {type(settings).__name__}")
        if adapter is not None and adapter not in self.adapter_names:
            known = ", ".join(self.adapter_names) or "없음 / none"
            raise SettingsError("adapter", f"알 수 없는 어댑터 '{adapter}' / unknown adapter {adapter!r}; "
                                           f"available: {known}")
        defaults = SamplingSettings()
        for name in sorted(self.unsupported_settings):
            if getattr(settings, name) != getattr(defaults, name):
                raise SettingsError(
                    name, f"'{self.backend_name}' 백엔드는 {name} 설정을 지원하지 않습니다 / the {self.backend_name} "
                          f"backend cannot honour {name}; leave it at its default ({getattr(defaults, name)!r}) "
                          f"or use the transformers backend.")

    def _acquire(self, channel: Channel) -> bool:
        """Wait for the model: in arrival order for a backend that runs one request at a time, at once otherwise."""
        if self.backend.concurrent:
            return not channel.cancelled()
        return self._lock.acquire(channel.events)

    def _release(self) -> None:
        if not self.backend.concurrent:
            self._lock.release()

    def _generate(self, prompt: list[int], settings: SamplingSettings, seed: int, adapter: str | None, n: int,
                  channel: Channel, on_step=None, forced: list[int] = ()) -> list[Track]:
        """Run one (batched) generation on the backend; returns the finished tracks. `forced`: the first ids of
        every candidate, taken as written (a branch's prefix); the model writes the rest."""
        from relay.backends.base import GenerationRequest

        tracks = [Track(StreamDecoder(self.tokenizer, prompt, self._drop_ids), settings, self._eos_id)
                  for _ in range(n)]
        for token in forced:
            for track in tracks:
                track.take(token)
        if forced and on_step is not None:
            on_step(tracks)
        remaining = settings.max_new_tokens - len(forced)
        if remaining <= 0 or all(track.reason is not None for track in tracks) or channel.cancelled():
            self._cached_tokens.value = 0
            return tracks
        step = []  # the probabilities of the ids on their way (on_probs comes just before on_tokens)

        def on_tokens(ids: list[int]) -> list[bool]:
            probs = step.pop() if step else None
            done = [track.take(token, probs and (probs.chosen[row], probs.top_ids[row], probs.top_p[row]))
                    for row, (track, token) in enumerate(zip(tracks, ids))]
            if on_step is not None:
                on_step(tracks)
            if channel.cancelled():
                done = [True] * len(done)
            return done

        never = list(self._never)
        if settings.stop_at == "length" and self._eos_id is not None:
            never.append(self._eos_id)  # only the length limit may stop: </s> is never written either
        if forced:  # the backend writes what is left of the turn after the prefix, reading the prefix as prompt
            settings_left = settings.replace(max_new_tokens=remaining,
                                             min_new_tokens=min(remaining, max(0, settings.min_new_tokens - len(forced))))
        request = GenerationRequest(
            prompt=prompt + list(forced), n=n, settings=settings_left if forced else settings, seed=seed,
            adapter=adapter, never_ids=never, paragraph_end_ids=list(self._paragraph_end_ids),
            holds_paragraph_end=lambda row: tracks[row].count < settings.min_new_tokens or not tracks[row].clean,
            on_tokens=on_tokens, cancelled=channel.cancelled, continuation_start=len(prompt),
            on_probs=step.append, record_probs=self.record_probs)
        self.backend.generate(request)
        self._cached_tokens.value = request.cached_tokens
        return tracks

    def _meta(self, settings: SamplingSettings, seed: int, adapter: str | None, prompt: list[int], output_tokens: int,
              seconds: float, waited: float, stopped_by: str) -> dict[str, Any]:
        return {"model": public_model_name(self.model_id), "adapter": adapter,
                "settings": settings.replace(seed=seed).to_dict(),
                "seed": seed, "prompt_tokens": len(prompt), "output_tokens": output_tokens,
                "seconds": round(seconds, 3), "wait_seconds": round(waited, 3), "stopped_by": stopped_by,
                "backend": self.backend_name, "cached_prompt_tokens": getattr(self._cached_tokens, "value", 0),
                # Settings left at their defaults that this backend cannot apply (see unsupported_settings).
                "settings_not_applied": sorted(self.unsupported_settings)}

    @staticmethod
    def _seed(settings: SamplingSettings) -> int:
        return settings.seed if settings.seed is not None else secrets.randbelow(2**31)

    def continue_story(self, paragraphs: list[str], settings: SamplingSettings, adapter: str | None = None,
                       cancel: threading.Event | None = None, steering: Steering | None = None) -> Continuation:
        """Start writing the next paragraph; returns a Continuation streaming text chunks as they are generated.

        `steering` (memory, author's note, story cards) joins the story in what the model reads; the meta then
        says which versions of them it read (meta["context"])."""
        self._check(settings, adapter)
        assembly = self._prompt(paragraphs, settings, steering)
        seed = self._seed(settings)
        channel = Channel(cancel)
        channel.context = assembly.meta() if steering is not None else None
        self._start(channel, assembly.ids, settings, seed, adapter, 1)
        return Continuation(channel)

    def stream_alternatives(self, paragraphs: list[str], settings: SamplingSettings, n: int,
                            adapter: str | None = None, cancel: threading.Event | None = None,
                            steering: Steering | None = None) -> AlternativesStream:
        """n (1..4) candidates written side by side in one batch: iterate for (index, chunk) pairs as each grows;
        `.texts` and `.meta` (as `alternatives` gives) once finished. Same seed -> same candidates as `alternatives`."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ALTERNATIVES:
            raise SettingsError("n", f"후보 수는 1~{MAX_ALTERNATIVES} 사이여야 합니다 / n must be a whole number "
                                     f"from 1 to {MAX_ALTERNATIVES}; got {n!r}")
        self._check(settings, adapter)
        if n > 1 and settings.temperature == 0:
            raise SettingsError("temperature", "온도가 0이면 후보가 모두 같습니다 / with temperature 0 every "
                                               "candidate is the same; raise the temperature to get alternatives.")
        assembly = self._prompt(paragraphs, settings, steering)
        seed = self._seed(settings)
        channel = ManyChannel(cancel)
        channel.context = assembly.meta() if steering is not None else None
        self._start(channel, assembly.ids, settings, seed, adapter, n)
        return AlternativesStream(channel)

    def alternatives(self, paragraphs: list[str], settings: SamplingSettings, n: int, adapter: str | None = None,
                     cancel: threading.Event | None = None, steering: Steering | None = None) -> Alternatives:
        """n (1..4) candidate continuations from one batched generation, with `.meta` (the usual dict plus "n")."""
        stream = self.stream_alternatives(paragraphs, settings, n, adapter=adapter, cancel=cancel, steering=steering)
        result = Alternatives(stream.texts)
        result.meta = stream.meta
        return result

    def branch(self, paragraphs: list[str], settings: SamplingSettings, prefix_ids: list[int], *,
               prefix_tokens: dict | None = None, adapter: str | None = None, cancel: threading.Event | None = None,
               steering: Steering | None = None) -> Continuation:
        """Like continue_story, but the continuation's first ids are exactly `prefix_ids` (kept, not sampled); the
        model writes the rest under `settings` (the prefix counts inside max_new_tokens). Streams from the prefix's
        text on. `prefix_tokens` (the original candidate's recorded p and top for those positions) is spliced into
        meta["tokens"]; meta["branch"] = {"at": len(prefix_ids), "id": None} (the turn API says which id was chosen).
        """
        self._check(settings, adapter)
        prefix = _checked_prefix(prefix_ids, self._vocab_size, settings)
        assembly = self._prompt(paragraphs, settings, steering)
        seed = self._seed(settings)
        channel = Channel(cancel)
        channel.context = assembly.meta() if steering is not None else None
        self._start(channel, assembly.ids, settings, seed, adapter, 1, _Prefix(prefix, prefix_tokens))
        return Continuation(channel)

    def _start(self, channel: Channel, prompt: list[int], settings: SamplingSettings, seed: int,
               adapter: str | None, n: int, prefix: _Prefix | None = None) -> None:
        worker = threading.Thread(target=self._stream_worker,
                                  args=(channel, prompt, settings, seed, adapter, n, prefix),
                                  name="relay-generate", daemon=True)
        worker.start()

    def _stream_worker(self, channel: Channel, prompt, settings, seed, adapter, n: int,
                       prefix: _Prefix | None = None) -> None:
        """Generate in a worker thread, pushing shown text to the channel; always ends the stream and the lock.

        With n == 1 the queue carries text chunks (a Continuation); otherwise (index, chunk) pairs."""
        queued = time.perf_counter()
        single = n == 1 and not isinstance(channel, ManyChannel)
        try:
            if not self._acquire(channel):
                channel.meta = self._meta(settings, seed, adapter, prompt, 0, 0.0, time.perf_counter() - queued,
                                          "cancel")
                if not single:
                    channel.meta.update(n=n, candidates=[])
                    channel.texts = []
                return
            try:
                self._write(channel, Emitter(channel, n, single), prompt, settings, seed, adapter, queued, prefix)
            finally:
                self._release()
        except BaseException as error:  # reported to the consumer, who re-raises it as EngineError
            channel.queue.put(error)
        finally:
            if getattr(channel, "context", None) is not None:
                channel.meta["context"] = channel.context  # which memory, note and card versions it read
            channel.queue.put(END)

    def _write(self, channel: Channel, emitter: Emitter, prompt, settings, seed, adapter, queued: float,
               prefix: _Prefix | None = None) -> None:
        """With the model held: generate, streaming what each candidate shows; then set the texts and meta."""
        started = time.perf_counter()

        def push(tracks):
            for index, track in enumerate(tracks):
                emitter.show(index, track.shown())

        n = len(emitter.sent)
        tracks = self._generate(prompt, settings, seed, adapter, n, channel, on_step=push,
                                forced=prefix.ids if prefix else [])
        seconds = time.perf_counter() - started
        candidates = []
        for index, track in enumerate(tracks):
            reason = track.reason or ("cancel" if channel.cancelled() else "length")
            text = emitter.finish(index, track.final(reason))
            candidate = {"text": text, "output_tokens": track.count, "stopped_by": reason}
            tokens = token_record(track, text, self._display_pieces(), prefix.tokens if prefix else None)
            if tokens is not None:
                candidate["tokens"] = tokens
            candidates.append(candidate)
        if emitter.single:
            channel.text = candidates[0]["text"]
            channel.meta = self._meta(settings, seed, adapter, prompt, tracks[0].count, seconds, started - queued,
                                      candidates[0]["stopped_by"])
            if "tokens" in candidates[0]:
                channel.meta["tokens"] = candidates[0]["tokens"]
            if prefix is not None:
                channel.meta["branch"] = {"at": len(prefix.ids), "id": None}
            return
        channel.texts = [c["text"] for c in candidates]
        channel.meta = {**self._meta(settings, seed, adapter, prompt, sum(c["output_tokens"] for c in candidates),
                                     seconds, started - queued, _batch_end_reason(candidates)),
                        "n": n, "candidates": [{k: c[k] for k in ("output_tokens", "stopped_by", "tokens") if k in c}
                                               for c in candidates]}


@dataclass(frozen=True)
class _Prefix:
    """A branch's first ids (written as they are) and their recorded tokens meta from the candidate they came from."""

    ids: list[int]
    tokens: dict | None


def _checked_prefix(prefix_ids, vocab_size: int, settings: SamplingSettings) -> list[int]:
    """The prefix as a list of ids; SettingsError unless it holds whole ids of the vocabulary, fewer than
    max_new_tokens (the model must write at least one)."""
    if not isinstance(prefix_ids, (list, tuple)) or any(isinstance(i, bool) or not isinstance(i, int)
                                                         or not 0 <= i < vocab_size for i in prefix_ids):
        raise SettingsError("prefix_ids", f"prefix_ids must be a list of token ids below {vocab_size}")
    if len(prefix_ids) >= settings.max_new_tokens:
        raise SettingsError("max_new_tokens", f"최대 길이({settings.max_new_tokens})가 앞부분({len(prefix_ids)}토큰)보다 "
                                              f"길어야 합니다 / max_new_tokens ({settings.max_new_tokens}) must exceed "
                                              f"the kept prefix ({len(prefix_ids)} tokens)")
    return list(prefix_ids)


def _batch_end_reason(candidates: list[dict[str, Any]]) -> str:
    """Why a batch ended: a cancel, else the length limit, else the slowest candidate's boundary."""
    reasons = [c["stopped_by"] for c in candidates]
    return next((r for r in ("cancel", "length") if r in reasons),
                max(candidates, key=lambda c: c["output_tokens"])["stopped_by"])


LOCAL_MODEL = "local model"  # what stories and exports say of a model loaded from a server folder


def public_model_name(model_id: str) -> str:
    """The model's name as stories and exports show it: a Hub id as it is, never a server path."""
    return LOCAL_MODEL if looks_like_path(str(model_id)) else str(model_id)


class ContextTooLong(SettingsError):
    """Memory and author's note leave the story too little of the model's window; `.problem` (relay.context.Problem)
    names the block to shorten ("memory" or "note"), or max_new_tokens can be lowered."""

    def __init__(self, problem):
        block = {"memory": "story memory", "note": "author's note"}[problem.block]
        super().__init__(problem.block, f"the {block} leaves the story {problem.left} of the {problem.need} tokens it "
                                        f"needs in the model's window; shorten the {block} or lower max_new_tokens")
        self.problem = problem
