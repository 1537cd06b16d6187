"""Choosing each step's ids from a step's logits in numpy, under the engine's rules, with each request's own
random generator (the OpenVINO batcher's sampler; the transformers backend samples with generate).

Everything here runs between two runtime calls, on the thread that makes them: after a step the runtime has
streamed 100+ MB of weights through the caches, so each numpy call starts cold and costs several times what it
costs in a loop (about 0.9 ms a pick in a run against 0.3 ms warm, before this module was trimmed). Hence few
calls per step, work on the top-k scores rather than the vocabulary where the result is the same, no torch
(a 51,200-wide torch op also wakes its thread pool), and buffers kept from step to step.
"""

from __future__ import annotations

import numpy as np

from relay.backends.base import TOP_PROBS, GenerationRequest, StepProbs, step_probs


def top_k(scores: "np.ndarray", k: int) -> tuple["np.ndarray", "np.ndarray"]:
    """The k highest scores of each row [n, vocab] and their ids, highest first (among equal scores, the lower id
    first: torch.topk's order), in numpy. A bar from every 16th score keeps ~2k candidates for the exact
    selection, so a 51,200-wide row is compared once instead of partitioned (~0.05 ms instead of ~0.3); the whole
    row is partitioned only when fewer than k pass the bar."""
    rows, width = scores.shape
    ids, values = np.empty((rows, k), dtype=np.int64), np.empty((rows, k), dtype=scores.dtype)
    for row in range(rows):
        row_scores = scores[row]
        candidates = None
        if width >= 64 * k:
            sample = row_scores[::16]
            rank = len(sample) - -(-2 * k // 16)  # the ~2k/16-th highest of the sample: ~2k ids pass it
            candidates = np.flatnonzero(row_scores >= np.partition(sample, rank)[rank])
        if candidates is None or len(candidates) < k:
            candidates = np.arange(width)
        kept = row_scores[candidates]
        if len(candidates) > k:
            best = np.argpartition(kept, len(candidates) - k)[-k:]
            candidates, kept = candidates[best], kept[best]
        order = np.lexsort((candidates, -kept))
        ids[row], values[row] = candidates[order], kept[order]
    return values, ids


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
        ids = top_k(scaled[None], k)[1][0]
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


class _Rules:
    """The engine's rules (relay/backends/base.py `logits_processors` for transformers) on numpy scores: no
    paragraph end while a row holds it (before min_new_tokens, or before any visible text), and no n-gram of the
    new text repeated. Each row's new ids and n-grams are kept as they grow, not rescanned every step."""

    def __init__(self, request: GenerationRequest, start: int):
        settings = request.settings
        self.request = request
        self.ends = (np.asarray(request.paragraph_end_ids, dtype=np.int64)
                     if settings.stop_at != "length" and len(request.paragraph_end_ids) else None)
        self.size = settings.no_repeat_ngram_size
        written = list(request.prompt[start:])  # a branch's kept ids count as new text
        self.written = [list(written) for _ in range(request.n)]
        self.seen: list[dict[tuple, set]] = [{} for _ in range(request.n)]
        if self.size > 0:
            for row in range(request.n):
                for end in range(self.size, len(written) + 1):
                    self._see(row, written[end - self.size:end])

    def _see(self, row: int, gram: list[int]) -> None:
        self.seen[row].setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def apply(self, scores: "np.ndarray") -> None:
        """Ban, in place, what each row may not write next."""
        for row in range(len(scores)):
            if self.ends is not None and self.request.holds_paragraph_end(row):
                scores[row, self.ends] = -np.inf
            if self.size > 0:
                tail = self.written[row][len(self.written[row]) - self.size + 1:] if self.size > 1 else []
                if len(tail) == self.size - 1:
                    banned = self.seen[row].get(tuple(tail))
                    if banned:
                        scores[row, list(banned)] = -np.inf

    def add(self, chosen: list[int]) -> None:
        for row, token in enumerate(chosen):
            written = self.written[row]
            written.append(token)
            if 0 < self.size <= len(written):
                self._see(row, written[-self.size:])


def _cut_and_draw(scaled: "np.ndarray", top_p: float, typical_p: float, uniform: float) -> int:
    """Index of the id drawn from one row's temperature-scaled scores sorted likeliest first (float32, finite
    first score): top-p's cut (transformers' TopPLogitsWarper: from the least likely up, ids are dropped while
    the probability summed so far stays <= 1 - top_p; the likeliest always stays), then typical-p's, then an
    inverse-CDF draw with `uniform` in [0, 1). Sums in float64."""
    logits = scaled.astype(np.float64)
    cumulative = np.cumsum(np.exp(logits - logits[0]))
    count = len(logits)
    if top_p < 1.0:  # dropped from position j on once the ids before j hold top_p of the whole
        count = int(np.searchsorted(cumulative[:-1], top_p * cumulative[-1])) + 1
    if typical_p < 1.0:
        keep = np.flatnonzero(typical(logits[:count], typical_p))
        cumulative = np.cumsum(np.exp(logits[keep] - logits[0]))
        drawn = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
        return int(keep[min(drawn, len(keep) - 1)])
    drawn = int(np.searchsorted(cumulative[:count], uniform * cumulative[count - 1], side="right"))
    return min(drawn, count - 1)


class TokenPicker:
    """Chooses each step's ids from logits exactly as the engine's rules say, with its own random generator
    (numpy's PCG64, seeded with the request's seed), so a seeded request gives the same text whatever else runs
    at the same time.

    With top-k set, sampling runs on the k likeliest ids only (temperature, top-p, typical-p and the draw): the
    same ids kept as masking the other 51,195 and running transformers' warpers, without sorting and drawing from
    the whole vocabulary each step. transformers' top-k also keeps ids tied with the k-th; here exactly k are
    kept. Without top-k (top_k=0, the adventurous preset), top-p's nucleus is found among the likeliest ids
    (`nucleus`), then cut and drawn the same way. Only with neither top-k nor top-p is the whole row drawn from.
    """

    def __init__(self, request: GenerationRequest):
        self.request = request
        self.settings = settings = request.settings
        self.never = np.asarray(request.never_ids, dtype=np.int64)
        start = request.continuation_start if request.continuation_start is not None else len(request.prompt)
        self.rules = _Rules(request, start)
        self.penalty = (_SeenIds(settings.repetition_penalty, request.prompt, request.n)
                        if settings.repetition_penalty != 1.0 else None)  # after the rules, as in generate
        self.top_k = settings.top_k if settings.temperature > 0 else 0
        self.random = np.random.default_rng(request.seed)
        self.records = request.records
        self.probs: StepProbs | None = None  # the last step's, when the request records them
        self._work = None  # step_probs' buffer, kept from step to step

    def pick(self, logits) -> list[int]:
        """Next id per row from float32 logits [n, vocab] (numpy), which it may change in place; this step's
        probabilities are left in `probs` when the request records them."""
        settings = self.settings
        full = np.asarray(logits, dtype=np.float32)
        if len(self.never):
            full[:, self.never] = -np.inf
        self.rules.apply(full)
        if self.penalty is not None:
            self.penalty.apply(full)
        top = None
        if settings.temperature <= 0:
            chosen = full.argmax(axis=-1)
        elif 0 < self.top_k < full.shape[-1]:
            top = values, candidates = top_k(full, self.top_k)
            scaled = values / np.float32(settings.temperature) if settings.temperature != 1.0 else values
            index = [_cut_and_draw(scaled[row], settings.top_p, settings.typical_p, self.random.random())
                     for row in range(len(full))]
            chosen = candidates[np.arange(len(full)), index]
        elif settings.top_p < 1.0:
            chosen, top = self._draw_from_nucleus(full)
        else:
            chosen = self._draw_from_row(full)
        if self.records:
            if self._work is None or self._work.shape != full.shape:
                self._work = np.empty_like(full)
            self.probs = step_probs(full, settings.temperature, chosen, top, self._work)
        picked = chosen.tolist()
        self.rules.add(picked)
        if self.penalty is not None:
            self.penalty.add(picked)
        return picked

    def _draw_from_nucleus(self, full: "np.ndarray") -> tuple["np.ndarray", tuple | None]:
        """Each row's id drawn from its top-p nucleus (then typical-p, when set); and the rows' 5 likeliest
        (values, ids) for the probabilities when every nucleus has 5."""
        settings = self.settings
        scaled = full / np.float32(settings.temperature) if settings.temperature != 1.0 else full
        chosen, heads = np.empty(len(full), np.int64), []
        for row in range(len(full)):
            kept = nucleus(scaled[row], settings.top_p)
            heads.append(kept[:TOP_PROBS])
            chosen[row] = kept[_cut_and_draw(scaled[row, kept], 1.0, settings.typical_p, self.random.random())]
        if min(len(head) for head in heads) < TOP_PROBS:
            return chosen, None
        likeliest = np.stack(heads)
        return chosen, (np.take_along_axis(full, likeliest, axis=-1), likeliest)

    def _draw_from_row(self, full: "np.ndarray") -> "np.ndarray":
        """Each row's id drawn from the whole row (neither top-k nor top-p: rare, and a sort of the vocabulary)."""
        settings = self.settings
        scaled = full / np.float32(settings.temperature) if settings.temperature != 1.0 else full
        chosen = np.empty(len(full), np.int64)
        for row in range(len(full)):
            order = np.argsort(-scaled[row], kind="stable")
            order = order[:int(np.isfinite(scaled[row]).sum())]  # banned ids (-inf) sort last: left out
            chosen[row] = order[_cut_and_draw(scaled[row, order], 1.0, settings.typical_p, self.random.random())]
        return chosen
