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


def step_probs(scores, temperature: float, chosen, top=None) -> StepProbs:
    """StepProbs from one step's processed scores [n, vocab] (before the temperature), the picked ids [n] and,
    when the sampler already has them, its top-k (values, ids) sorted likeliest first (k >= TOP_PROBS); numpy
    arrays or torch tensors.

    Cheap: one logsumexp per row over the vocabulary, in numpy on the CPU (torch spreads a 51,200-wide row over
    its thread pool, whose wake-ups cost more than the sum on a busy machine); the top ids come from the
    sampler's own top-k."""
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
    else:
        ids = np.argpartition(-x, TOP_PROBS - 1, axis=-1)[:, :TOP_PROBS]
        values = np.take_along_axis(x, ids, axis=-1)
        order = np.argsort(-values, axis=-1, kind="stable")
        ids, values = np.take_along_axis(ids, order, axis=-1), np.take_along_axis(values, order, axis=-1)
    peak = x.max(axis=-1, keepdims=True)
    log_total = peak * scale + np.log(np.exp((x - peak) * scale).sum(axis=-1, keepdims=True))
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
                      paragraph_end_ids, *, with_never: bool = True) -> list:
    """The engine's own rules as transformers LogitsProcessors: tokens that are never prose (unless `with_never`
    is False: the caller bans them itself); no early or empty paragraph end; no n-gram repeats in the new text.
    `never_ids`/`paragraph_end_ids` are torch tensors."""
    from transformers import LogitsProcessor

    class _Never(LogitsProcessor):
        """Markup and special tokens are never written. (The stock suppress_tokens runs torch.isin over the
        whole vocabulary every step: ~18 ms with KoGPT-2's 51,200 ids, a third of a token's time on CPU.)"""

        def __call__(self, input_ids, scores):
            return scores.index_fill_(1, never_ids.to(scores.device), -float("inf"))

    processors = [_Never()] if with_never else []
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
                if not self.seen:
                    self.seen = [dict() for _ in range(rows)]
                new = input_ids[:, prompt_len:].tolist()
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


def top_ids(scores: "np.ndarray", k: int) -> "np.ndarray":
    """The k highest-scoring ids of each row [n, vocab], highest first (among equal scores, the lower id first):
    torch.topk's order, in numpy. A bar from every 16th score keeps ~2k candidates for the exact selection, so a
    51,200-wide row is compared once instead of partitioned (~0.05 ms instead of ~0.3); the whole row is
    partitioned only when fewer than k pass the bar."""
    rows, width = scores.shape
    picked = np.empty((rows, k), dtype=np.int64)
    for row in range(rows):
        values = scores[row]
        candidates = None
        if width >= 64 * k:
            sample = values[::16]
            rank = len(sample) - -(-2 * k // 16)  # the ~2k/16-th highest of the sample: ~2k ids pass it
            candidates = np.flatnonzero(values >= np.partition(sample, rank)[rank])
        if candidates is None or len(candidates) < k:
            candidates = np.arange(width)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(values[candidates], len(candidates) - k)[-k:]]
        picked[row] = candidates[np.lexsort((candidates, -values[candidates]))]
    return picked


NUCLEUS_TRIES = (64, 256)  # top-p is looked for among this many likeliest ids before the whole row is sorted


def nucleus(scaled: "np.ndarray", top_p: float) -> "np.ndarray":
    """The ids top-p keeps in one row of temperature-scaled scores, likeliest first: those transformers'
    TopPLogitsWarper keeps over the whole row (from the least likely up, ids are dropped while the probability
    summed so far stays <= 1 - top_p), found among the row's 64 or 256 likeliest ids instead of sorting
    all 51,200 (NUCLEUS_TRIES; past them the whole row is sorted at once): the search stops once those hold top_p of
    the probability, so the ids below them are all dropped.
    Sums in float64 (transformers' float32 running sum over 51,200 ids drifts by up to ~1e-3)."""
    width = scaled.shape[-1]
    weights = np.exp(scaled - scaled.max())
    total = weights.sum(dtype=np.float64)
    for k in NUCLEUS_TRIES:
        if k >= width:
            break
        ids = top_ids(scaled[None], k)[0]
        mass = weights[ids].sum(dtype=np.float64) / total
        if mass >= top_p:
            break
    else:
        k = width
    if k >= width:  # a flat row (a random model's): one vectorised sort of it all
        ids, mass = np.argsort(-scaled), 1.0
    rising = (1.0 - mass) + np.cumsum(weights[ids[::-1]], dtype=np.float64) / total  # least likely first
    dropped = rising <= 1.0 - top_p
    dropped[-1] = False  # the likeliest id always stays
    return ids[:len(ids) - int(dropped.sum())]


def top_p_count(scaled: "np.ndarray", top_p: float) -> int:
    """How many of a row's scaled scores, sorted likeliest first (e.g. its top-k), top-p keeps: transformers'
    TopPLogitsWarper's rule (from the least likely up, ids are dropped while the probability summed so far stays
    <= 1 - top_p; the likeliest always stays), summed in float64."""
    weights = np.exp(scaled.astype(np.float64) - float(scaled[0]))
    rising = np.cumsum(weights[::-1]) / weights.sum()
    dropped = int((rising[:-1] <= 1.0 - top_p).sum())
    return len(scaled) - dropped


def typical(logits: "np.ndarray", mass: float) -> "np.ndarray":
    """Which of a nucleus's scaled scores (float64, all finite) typical-p keeps, as transformers'
    TypicalLogitsWarper does: the ids whose surprise is closest to the entropy, up to `mass` of the probability
    (at least one). Sums in float64."""
    normalized = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
    p = np.exp(normalized)
    entropy = -(normalized * p).sum()
    shifted = np.abs(-normalized - entropy)
    order = np.argsort(shifted, kind="stable")
    last = min(int((np.cumsum(p[order]) < mass).sum()), len(logits) - 1)
    keep = shifted <= shifted[order[last]]
    keep[order[0]] = True
    return keep


class _SeenIds:
    """The repetition penalty in numpy (transformers' RepetitionPenaltyLogitsProcessor: the score of every id
    already written, positive divided by the penalty, negative multiplied), on each row's distinct ids, kept as
    they grow: no torch dispatch, gather and scatter over the whole prompt at every step."""

    def __init__(self, penalty: float, prompt: list[int], rows: int):
        self.penalty = penalty
        distinct = np.unique(np.asarray(prompt, dtype=np.int64))
        self.ids = [distinct] * rows
        self.sets = [set(distinct.tolist()) for _ in range(rows)]

    def add(self, chosen) -> None:
        for row, token in enumerate(chosen):
            if token not in self.sets[row]:
                self.sets[row].add(token)
                self.ids[row] = np.append(self.ids[row], token)

    def apply(self, scores: "np.ndarray") -> None:
        """Penalise, in place, each row's ids written so far in `scores` [rows, vocab] (float32)."""
        for row, ids in enumerate(self.ids):
            if len(ids):
                seen = scores[row, ids]
                scores[row, ids] = np.where(seen < 0, seen * self.penalty, seen / self.penalty)


class TokenPicker:
    """Chooses each step's ids from logits exactly as the engine's rules say, with its own random generator,
    so a seeded request gives the same text whatever else runs at the same time.

    With top-k set, sampling runs on the k likeliest ids only (temperature, top-p, typical-p and the draw, in
    numpy: `_draw_from_top_k`): the same ids kept as masking the other 51,195 and running transformers' warpers,
    without sorting and drawing from the whole vocabulary each step. transformers' top-k also keeps ids tied with
    the k-th; here exactly k are kept.
    Without top-k (top_k=0, the adventurous preset), top-p's nucleus is found among the likeliest ids (`nucleus`),
    typical-p cuts it (`typical`) and the id is drawn by inverse CDF with one uniform number from the same
    generator, all in numpy: the same ids kept as transformers' warpers, without torch sorting 51,200 scores.
    Work over the whole vocabulary (top-k, the probabilities) is done in numpy: torch would split a 51,200-wide
    row over its thread pool, whose wake-ups cost more than the work (tens of ms each on a busy machine) and whose
    spinning threads then slow the runtime's next step. The ids written so far live in one preallocated tensor."""

    def __init__(self, request: GenerationRequest):
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper, TypicalLogitsWarper

        self.request = request
        self.settings = settings = request.settings
        self.never = np.asarray(request.never_ids, dtype=np.int64)  # banned here, in numpy
        ends = torch.tensor(request.paragraph_end_ids, dtype=torch.long)
        start = request.continuation_start if request.continuation_start is not None else len(request.prompt)
        self.rules = logits_processors(settings, start, request, None, ends, with_never=False)
        self.penalty = (_SeenIds(settings.repetition_penalty, request.prompt, request.n)
                        if settings.repetition_penalty != 1.0 else None)  # after the rules, as in generate
        self.top_k = settings.top_k if settings.temperature > 0 else 0
        self.warpers = []  # on the top-k (or whole) scores, in generate's order
        self.typical = TypicalLogitsWarper(settings.typical_p) if settings.typical_p < 1.0 else None
        if settings.temperature > 0:
            if settings.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(settings.temperature))
            if settings.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(settings.top_p))
            if self.typical is not None:
                self.warpers.append(self.typical)
        self.generator = torch.Generator().manual_seed(request.seed)
        self.written = torch.empty((request.n, len(request.prompt) + settings.max_new_tokens), dtype=torch.long)
        self.written[:, :len(request.prompt)] = torch.tensor(request.prompt, dtype=torch.long)
        self.length = len(request.prompt)  # ids in `written`: the prompt, then one per step
        self.records = request.records
        self.probs: StepProbs | None = None  # the last step's, when the request records them

    def _draw_from_nucleus(self, full: "np.ndarray") -> tuple["np.ndarray", tuple | None]:
        """Each row's id drawn from its top-p nucleus (then typical-p, when set), in numpy: what the temperature,
        top-p and typical warpers leave of the whole row, drawn by inverse CDF with the request's own generator
        (one uniform number a row); and the rows' 5 likeliest (values, ids) for the probabilities when every
        nucleus has 5."""
        import torch

        settings = self.settings
        scaled = full / settings.temperature if settings.temperature != 1.0 else full  # as TemperatureLogitsWarper
        chosen, heads = np.empty(len(full), np.int64), []
        for row in range(len(full)):
            kept = nucleus(scaled[row], settings.top_p)
            heads.append(kept[:TOP_PROBS])
            logits = scaled[row, kept].astype(np.float64)
            if settings.typical_p < 1.0:
                keep = typical(logits, settings.typical_p)
                kept, logits = kept[keep], logits[keep]
            cumulative = np.cumsum(np.exp(logits - logits.max()))
            drawn = torch.rand((), dtype=torch.float64, generator=self.generator).item() * cumulative[-1]
            chosen[row] = kept[min(int(np.searchsorted(cumulative, drawn, side="right")), len(kept) - 1)]
        if min(len(head) for head in heads) < TOP_PROBS:
            return chosen, None
        likeliest = np.stack(heads)
        return chosen, (np.take_along_axis(full, likeliest, axis=-1), likeliest)

    def _draw_from_top_k(self, values: "np.ndarray") -> "np.ndarray":
        """Each row's index into its top-k `values` [n, k] (sorted likeliest first): the temperature, top-p and
        typical-p warpers on those k scores, in numpy, and an inverse-CDF draw with the request's own generator
        (one uniform number a row). On 50 scores, torch's warpers and multinomial cost more in dispatch than
        in work."""
        import torch

        settings = self.settings
        scaled = values / np.float32(settings.temperature) if settings.temperature != 1.0 else values
        chosen = np.empty(len(values), np.int64)
        for row in range(len(values)):
            logits = scaled[row].astype(np.float64)
            if settings.top_p < 1.0:
                logits = logits[:top_p_count(scaled[row], settings.top_p)]
            order = np.arange(len(logits))
            if settings.typical_p < 1.0:
                keep = typical(logits, settings.typical_p)
                order, logits = order[keep], logits[keep]
            cumulative = np.cumsum(np.exp(logits - logits.max()))
            drawn = torch.rand((), dtype=torch.float64, generator=self.generator).item() * cumulative[-1]
            chosen[row] = order[min(int(np.searchsorted(cumulative, drawn, side="right")), len(order) - 1)]
        return chosen

    @property
    def ids(self):
        """The ids so far [n, length]: the prompt and every id picked (a view; the rules read it)."""
        return self.written[:, :self.length]

    def pick(self, logits) -> list[int]:
        """Next id per row from float32 logits [n, vocab] (numpy or torch), which it may change in place;
        remembers the ids for the rules, and this step's probabilities in `probs` when the request records them."""
        import torch

        full = np.asarray(logits, dtype=np.float32)
        if len(self.never):
            full[:, self.never] = -np.inf
        scores = torch.from_numpy(full)  # the same memory: numpy and torch rules both change it in place
        ids = self.ids
        for processor in self.rules:  # each changes a few ids' scores, in place
            scores = processor(ids, scores)
        full, top = scores.numpy(), None
        if self.penalty is not None:
            self.penalty.apply(full)
        if self.settings.temperature > 0:
            candidates, warpers, chosen = None, self.warpers, None
            if 0 < self.top_k < full.shape[-1]:
                candidates = top_ids(full, self.top_k)
                top = (np.take_along_axis(full, candidates, axis=-1), candidates)
                chosen = self._draw_from_top_k(top[0])
            elif self.settings.top_p < 1.0:  # no top-k: the nucleus, without sorting the whole vocabulary
                chosen, top = self._draw_from_nucleus(full)
            if chosen is None:
                for warper in warpers:
                    scores = warper(ids, scores)
                chosen = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=self.generator)[:, 0].numpy()
            if candidates is not None:
                chosen = candidates[np.arange(len(chosen)), chosen]
        else:
            chosen = full.argmax(axis=-1)
        if self.records:
            self.probs = step_probs(full, self.settings.temperature, chosen, top)
        if self.length == self.written.shape[1]:  # past max_new_tokens (only a caller other than a backend)
            self.written = torch.cat([self.written, torch.empty_like(self.written)], dim=1)
        self.written[:, self.length] = torch.from_numpy(chosen)
        self.length += 1
        picked = chosen.tolist()
        if self.penalty is not None:
            self.penalty.add(picked)
        return picked
