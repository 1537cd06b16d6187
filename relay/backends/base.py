"""What every backend shares: the request the engine hands over, and the logits rules of the engine.

A backend runs only the token loop. The engine builds the prompt, decodes, decides where a candidate
stops (`_Track`) and trims; the backend reads the prompt, picks ids under the request's rules and hands
each step's ids to `request.on_tokens`, which says which rows are finished (all of them on a cancel). Before
that, when the request records probabilities, it hands the step's `StepProbs` to `request.on_probs`: the
probability of each picked id and the likeliest ids, from the logits the sampler used (docs/engine.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from relay.settings import EngineError, SamplingSettings

CACHE_ENV = "RELAY_CACHE"  # where converted models are kept
DEFAULT_CACHE = Path("relay-data") / "cache"
SPACE_DATA = Path("/data")  # a Hugging Face Space's persistent storage, when it is enabled


class BackendError(EngineError):
    """A backend could not be set up or could not generate; the message names the backend and what to do."""


def cache_dir(db: str | None = None) -> Path:
    """The folder for converted models: $RELAY_CACHE if set; on a Hugging Face Space ($SPACE_ID), relay-cache/
    beside the SQLite database (`db`, else $RELAY_DB), else /data/relay-cache when persistent storage is
    mounted (a PostgreSQL URL or no database setting); elsewhere ./relay-data/cache.

    A Space loses everything outside persistent storage at each rebuild, so the cache goes where the stories go."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SPACE_ID"):
        database = _sqlite_file(db if db is not None else os.environ.get("RELAY_DB"))
        if database is not None:
            return database.parent / "relay-cache"
        if SPACE_DATA.is_dir() and os.access(SPACE_DATA, os.W_OK):
            return SPACE_DATA / "relay-cache"
    return DEFAULT_CACHE


def _sqlite_file(db: str | None) -> Path | None:
    """The SQLite file a database setting names (a path or a sqlite:/// URL); None for a server URL or none."""
    if not db:
        return None
    scheme, sep, rest = db.partition("://")
    if sep:
        if scheme not in ("sqlite", "sqlite+pysqlite") or rest in ("", "/", "/:memory:"):
            return None
        db = rest[1:]  # sqlite:////data/relay.db -> /data/relay.db, sqlite:///relay.db -> relay.db
    return Path(db).expanduser()


@dataclass
class GenerationRequest:
    """One generation: `n` rows continuing the same prompt under the same settings and seed."""

    prompt: list[int]
    n: int
    settings: SamplingSettings
    seed: int
    adapter: str | None
    never_ids: list[int]  # never generated: markup, specials (and </s> when only the length may stop)
    paragraph_end_ids: list[int]  # newline tokens and </s>: held back while `holds_paragraph_end(row)`
    holds_paragraph_end: Callable[[int], bool]  # before min_new_tokens, or while the row has no visible text
    on_tokens: Callable[[list[int]], list[bool]]  # one id per row -> rows finished (all True once cancelled)
    cancelled: Callable[[], bool]
    cached_tokens: int = 0  # set by the backend: prompt ids it did not have to read again (kept KV cache)
    continuation_start: int | None = None  # where the new text starts in `prompt` (default: its end), for n-grams
    on_probs: Callable[["StepProbs"], None] | None = None  # each step's probabilities, before on_tokens
    record_probs: bool = True  # False: record nothing (on_probs is never called); for speed comparisons

    @property
    def records(self) -> bool:
        """Whether the backend should record each step's probabilities and hand them to `on_probs`."""
        return self.record_probs and self.on_probs is not None


TOP_PROBS = 5  # the likeliest ids recorded at each position


@dataclass
class StepProbs:
    """One step's recorded probabilities, one entry per row: softmax over the logits the sampler used (after the
    engine's rules, the repetition penalty and the temperature; T=1 when greedy), before top-k/top-p/typical cut."""

    chosen: list[float]  # the probability of the id each row got
    top_ids: list[list[int]]  # the TOP_PROBS likeliest ids, likeliest first
    top_p: list[list[float]]  # their probabilities


def step_probs(scores, temperature: float, chosen, top=None, work=None) -> StepProbs:
    """StepProbs from one step's processed scores [n, vocab] (before the temperature), the picked ids [n] and,
    when the sampler already has them, its top-k (values, ids) sorted likeliest first (k >= TOP_PROBS); numpy
    arrays or torch tensors.

    Cheap: one logsumexp per row over the vocabulary, in numpy on the CPU (torch spreads a 51,200-wide row over
    its thread pool, whose wake-ups cost more than the sum on a busy machine); the top ids come from the
    sampler's own top-k. `work`, a float32 array of the scores' shape, spares the sum its temporaries."""
    import numpy as np

    scale = 1.0 / temperature if temperature > 0 else 1.0
    if getattr(getattr(scores, "device", None), "type", "cpu") != "cpu":  # a GPU: stay there (numpy's is "cpu")
        import torch

        log_total = torch.logsumexp(scores * scale, dim=-1, keepdim=True)
        values, ids = top if top is not None and top[0].shape[-1] >= TOP_PROBS else torch.topk(scores, TOP_PROBS)
        picked = scores.gather(1, torch.as_tensor(chosen, device=scores.device).view(-1, 1))[:, 0]
        return StepProbs(torch.exp(picked * scale - log_total[:, 0]).tolist(), ids[:, :TOP_PROBS].tolist(),
                         torch.exp(values[:, :TOP_PROBS] * scale - log_total).tolist())
    x = np.asarray(scores, dtype=np.float32)
    if top is not None and top[0].shape[-1] >= TOP_PROBS:
        values, ids = np.asarray(top[0])[:, :TOP_PROBS], np.asarray(top[1])[:, :TOP_PROBS]
        peak = values[:, :1]  # the likeliest's score is the row's highest
    else:
        ids = np.argpartition(-x, TOP_PROBS - 1, axis=-1)[:, :TOP_PROBS]
        values = np.take_along_axis(x, ids, axis=-1)
        order = np.argsort(-values, axis=-1, kind="stable")
        ids, values = np.take_along_axis(ids, order, axis=-1), np.take_along_axis(values, order, axis=-1)
        peak = x.max(axis=-1, keepdims=True)
    if work is None or work.shape != x.shape:
        work = np.empty_like(x)
    np.subtract(x, peak, out=work)
    if scale != 1.0:
        np.multiply(work, np.float32(scale), out=work)
    np.exp(work, out=work)
    log_total = peak * scale + np.log(work.sum(axis=-1, keepdims=True))
    picked = x[np.arange(x.shape[0]), np.asarray(chosen).reshape(-1)]
    return StepProbs(np.exp(picked * scale - log_total[:, 0]).tolist(), ids.tolist(),
                     np.exp(values * scale - log_total).tolist())


class Backend:
    """A runtime that turns a GenerationRequest into token ids. Subclasses set the class attributes."""

    name: str = "base"
    # SamplingSettings fields this backend cannot honour (the engine refuses non-default values).
    unsupported_settings: frozenset[str] = frozenset()
    # True when requests may run at the same time (the runtime batches or runs sequences in parallel);
    # False makes the engine serve them one at a time, in arrival order.
    concurrent: bool = False
    context_window: int
    vocab_size: int

    def generate(self, request: GenerationRequest) -> None:
        """Run the token loop until every row is finished, max_new_tokens is reached or the request is cancelled."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the backend holds (threads, connections)."""


def logits_processors(settings: SamplingSettings, prompt_len: int, request: GenerationRequest, never_ids,
                      paragraph_end_ids) -> list:
    """The engine's own rules as transformers LogitsProcessors (the transformers backend's; the openvino batcher's
    picker has them in numpy, relay/backends/picker.py): tokens that are never prose; no early or empty paragraph
    end; no n-gram repeats in the new text. `never_ids`/`paragraph_end_ids` are torch tensors."""
    from transformers import LogitsProcessor

    class _Never(LogitsProcessor):
        """Markup and special tokens are never written. (The stock suppress_tokens runs torch.isin over the
        whole vocabulary every step: ~18 ms with KoGPT-2's 51,200 ids, a third of a token's time on CPU.)"""

        def __call__(self, input_ids, scores):
            return scores.index_fill_(1, never_ids.to(scores.device), -float("inf"))

    processors = [_Never()]
    if settings.stop_at != "length" and len(paragraph_end_ids):
        class _NoEmptyOrShortParagraph(LogitsProcessor):
            """No newline or </s> before min_new_tokens, nor before the continuation has any visible text
            (the stock min_new_tokens processor only covers </s>, and a leading newline would end the turn empty)."""

            def __call__(self, input_ids, scores):
                for row in range(scores.shape[0]):
                    if request.holds_paragraph_end(row):
                        scores[row, paragraph_end_ids.to(scores.device)] = -float("inf")
                return scores

        processors.append(_NoEmptyOrShortParagraph())
    if settings.no_repeat_ngram_size > 0:
        size = settings.no_repeat_ngram_size

        class _NoRepeatInContinuation(LogitsProcessor):
            """Like NoRepeatNGram, but over the continuation only, so names and phrases of the story stay usable.
            Incremental: one dict update per row per step instead of a rescan of the whole sequence."""

            def __init__(self):
                self.seen: list[dict[tuple, set]] = []

            def __call__(self, input_ids, scores):
                rows = input_ids.shape[0]
                new = input_ids[:, prompt_len:].tolist()
                if not self.seen:  # the new text's n-grams so far (a branch's kept ids), but the last: added below
                    self.seen = [dict() for _ in range(rows)]
                    for row, tokens in enumerate(new):
                        for end in range(size, len(tokens)):
                            self.seen[row].setdefault(tuple(tokens[end - size:end - 1]), set()).add(tokens[end - 1])
                for row, tokens in enumerate(new):
                    if len(tokens) >= size:
                        self.seen[row].setdefault(tuple(tokens[-size:-1]), set()).add(tokens[-1])
                    if size == 1:
                        banned = self.seen[row].get((), ())
                    else:
                        banned = self.seen[row].get(tuple(tokens[-(size - 1):]), ()) if len(tokens) >= size - 1 \
                            else ()
                    if banned:
                        scores[row, list(banned)] = -float("inf")
                return scores

        processors.append(_NoRepeatInContinuation())
    return processors
