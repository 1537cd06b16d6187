"""What the sampling lab measures about a column's samples: every measure defined here once, with its direction
and a short Korean/English explanation, as pure functions of the samples (no model, no UI).

A sample is what one request wrote: its final text, its tokens (the model tokenizer's ids of that final text,
so every backend is measured alike), its meta (relay/engine.py: output_tokens, seconds, stopped_by and, when
the engine recorded them, meta["tokens"]["p"], the probability of each chosen id; see docs/engine.md) and how
many characters the stop rule cut off its end (`trimmed_chars`: the unfinished last sentence that
`trim_incomplete` dropped after a length limit or a stop).

Definitions (a column's value pools its samples):
- length_tokens / length_chars: mean and spread (population standard deviation, 0 for one sample) of the
  samples' token and character counts.
- distinct_1 / distinct_2: distinct n-grams over all n-grams of the column's samples (Li et al. 2016: one
  count over the column, n-grams never cross from one sample into the next); None without any n-gram.
- repeated_ngrams: the share of the column's n-grams (n = REPEAT_N = 3 tokens) that already occurred earlier
  in the same sample; the loop a writer sees as "it keeps saying the same thing".
- logprob: mean natural log of the chosen ids' probabilities over every recorded token of the column
  (ln of the geometric mean probability; -logprob is the log perplexity of the text); None when any sample
  has no recorded probabilities.
- cut_share: characters cut by the stop rule over the characters written (kept + cut).
- tokens_per_s: mean over samples of output_tokens / seconds (generation time, not waiting).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

REPEAT_N = 3  # the n of repeated_ngrams: three tokens, a short phrase
MIN_P = 1e-10  # a recorded probability of 0 (rounded) counts as this, so a mean stays finite


@dataclass(frozen=True)
class Measure:
    """One figure of a column: its key, which way is better (+1 higher, -1 lower, 0 neither) and its words."""

    key: str
    direction: int
    label_ko: str
    label_en: str
    help_ko: str
    help_en: str
    digits: int = 2

    def label(self, lang: str) -> str:
        return self.label_ko if lang == "ko" else self.label_en

    def help(self, lang: str) -> str:
        return self.help_ko if lang == "ko" else self.help_en


MEASURES: tuple[Measure, ...] = (
    Measure("length_tokens", 0, "길이 (토큰)", "Length (tokens)",
            "표본들의 평균 토큰 수 ± 표준편차. 길다고 좋은 것은 아닙니다.",
            "Mean tokens per sample ± standard deviation. Longer is not better by itself.", 1),
    Measure("length_chars", 0, "길이 (글자)", "Length (characters)",
            "표본들의 평균 글자 수 ± 표준편차.", "Mean characters per sample ± standard deviation.", 1),
    Measure("distinct_1", +1, "어휘 다양성 (distinct-1)", "Lexical diversity (distinct-1)",
            "서로 다른 토큰 수 ÷ 전체 토큰 수. 높을수록 같은 단어를 덜 되풀이합니다.",
            "Distinct tokens ÷ all tokens. Higher repeats words less."),
    Measure("distinct_2", +1, "어휘 다양성 (distinct-2)", "Lexical diversity (distinct-2)",
            "서로 다른 두 토큰 묶음 ÷ 전체 두 토큰 묶음. 높을수록 표현이 다양합니다.",
            "Distinct token pairs ÷ all token pairs. Higher is more varied phrasing."),
    Measure("repeated_ngrams", -1, "반복 구절 비율", "Repeated phrases",
            "같은 글 안에서 앞에 이미 나온 3토큰 구절의 비율. 낮을수록 제자리를 덜 맴돕니다.",
            "Share of 3-token phrases already used earlier in the same text. Lower loops less."),
    Measure("logprob", +1, "평균 로그 확률", "Mean log-probability",
            "모델이 고른 토큰의 평균 ln(확률): 모델의 자신감. 높을수록 무난하고, 너무 높으면 뻔할 수 있습니다.",
            "Mean ln(probability) of the chosen tokens: the model's confidence. Higher is safer; very high can be bland."),
    Measure("cut_share", -1, "잘린 비율", "Cut by the stop rule",
            "길이 제한이나 중지로 끊겨 버린 마지막 문장의 글자 비율. 낮을수록 글이 스스로 끝납니다.",
            "Share of characters dropped as an unfinished last sentence. Lower means the text ends on its own."),
    Measure("tokens_per_s", +1, "속도 (토큰/초)", "Speed (tokens/s)",
            "표본마다 쓴 토큰 ÷ 생성 시간의 평균.", "Mean over samples of tokens written ÷ generation time.", 1),
)
MEASURE_BY_KEY = {m.key: m for m in MEASURES}


@dataclass(frozen=True)
class SampleFacts:
    """What the measures read of one sample."""

    text: str
    tokens: Sequence[int]
    meta: dict[str, Any]
    trimmed_chars: int = 0


def ngrams(tokens: Sequence[Any], n: int) -> list[tuple]:
    """The n-grams of one sequence, in order (none when it is shorter than n)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(sequences: Iterable[Sequence[Any]], n: int) -> float | None:
    """Distinct n-grams / all n-grams over the sequences (n-grams stay inside one sequence); None if none."""
    grams = [g for seq in sequences for g in ngrams(seq, n)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_counts(tokens: Sequence[Any], n: int = REPEAT_N) -> tuple[int, int]:
    """(n-grams that already occurred earlier in the sequence, all n-grams)."""
    seen, repeated = set(), 0
    grams = ngrams(tokens, n)
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated, len(grams)


def repeated_ngram_rate(sequences: Iterable[Sequence[Any]], n: int = REPEAT_N) -> float | None:
    """Share of the n-grams that repeat one earlier in the same sequence, pooled over the sequences."""
    repeated = total = 0
    for seq in sequences:
        r, t = repeated_counts(seq, n)
        repeated, total = repeated + r, total + t
    return repeated / total if total else None


def mean_logprob(probabilities: Iterable[Sequence[float] | None]) -> float | None:
    """Mean ln(p) over every probability of every sample; None if a sample has none recorded."""
    logs = []
    for ps in probabilities:
        if ps is None:
            return None
        logs += [math.log(max(float(p), MIN_P)) for p in ps]
    return sum(logs) / len(logs) if logs else None


def cut_share(kept_chars: Iterable[int], trimmed_chars: Iterable[int]) -> float | None:
    """Characters the stop rule cut / characters written (kept + cut); None when nothing was written."""
    kept, cut = sum(kept_chars), sum(trimmed_chars)
    return cut / (kept + cut) if kept + cut else None


def mean_and_spread(values: Sequence[float]) -> tuple[float, float] | None:
    """(mean, population standard deviation); None for no values."""
    if not values:
        return None
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def recorded_p(meta: dict[str, Any]) -> list[float] | None:
    """The chosen ids' probabilities the engine recorded in meta["tokens"] (None if it recorded none)."""
    tokens = (meta or {}).get("tokens")
    if not isinstance(tokens, dict) or not isinstance(tokens.get("p"), list):
        return None
    return tokens["p"]


def tokens_per_second(meta: dict[str, Any]) -> float | None:
    seconds, count = (meta or {}).get("seconds"), (meta or {}).get("output_tokens")
    if not seconds or count is None:
        return None
    return count / seconds


def column_measures(samples: Sequence[SampleFacts]) -> dict[str, Any]:
    """Every measure of one column: a number, a (mean, spread) pair for the lengths, or None (shown "—")."""
    tokens = [list(s.tokens) for s in samples]
    speeds = [v for v in (tokens_per_second(s.meta) for s in samples) if v is not None]
    return {
        "length_tokens": mean_and_spread([len(t) for t in tokens]),
        "length_chars": mean_and_spread([len(s.text) for s in samples]),
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "repeated_ngrams": repeated_ngram_rate(tokens),
        "logprob": mean_logprob(recorded_p(s.meta) for s in samples) if samples else None,
        "cut_share": cut_share([len(s.text) for s in samples], [s.trimmed_chars for s in samples]),
        "tokens_per_s": statistics.fmean(speeds) if speeds else None,
    }


def scalar(value) -> float | None:
    """The number a measure is compared and plotted by: the mean of a (mean, spread) pair."""
    return value[0] if isinstance(value, tuple) else value


def best_columns(columns: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """Per measure with a direction, the indexes of the best column(s) (ties all); only when at least two
    columns have a value and they differ."""
    best: dict[str, list[int]] = {}
    for measure in MEASURES:
        if not measure.direction:
            continue
        values = [(i, scalar(c.get(measure.key))) for i, c in enumerate(columns)]
        values = [(i, round(v, 9)) for i, v in values if v is not None]
        if len(values) < 2 or len({v for _, v in values}) < 2:
            continue
        top = max(v * measure.direction for _, v in values)
        best[measure.key] = [i for i, v in values if v * measure.direction == top]
    return best


def formatted(key: str, value) -> str:
    """A measure's value for people: "—" when unknown, "mean ± spread" for lengths."""
    if value is None:
        return "—"
    digits = MEASURE_BY_KEY[key].digits
    if isinstance(value, tuple):
        return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"
    return f"{value:.{digits}f}"
