"""Documents, de-duplication, the by-work train/validation split, and the files a corpus is written to.

Output format (read by finetune/train_lora.py): `train.jsonl` and `valid.jsonl`, one JSON object
per document (work) and line: {"title", "author", "text"}, with paragraphs in `text` separated
by "\n". `manifest.json` / `manifest.tsv` list every document with its split and provenance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_FIELDS = ["title", "author", "death_year", "source_url", "license", "characters", "split", "source"]
_NON_WORD = re.compile(r"[\W_]+")


@dataclass
class Document:
    """One work: its text (paragraphs separated by newlines) and where it came from."""

    title: str
    author: str | None
    text: str
    death_year: int | None = None
    source_url: str = ""
    license: str = ""
    source: str = ""

    @property
    def paragraphs(self) -> list[str]:
        """Non-empty paragraphs (lines) of the text."""
        return [p for p in self.text.split("\n") if p.strip()]


def normalize(text: str) -> str:
    """Text reduced for duplicate detection: NFKC, lower case, punctuation and spaces removed."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).lower())


def text_hash(text: str) -> str:
    """Hash of the normalized text, equal for copies that differ only in spacing or punctuation."""
    return hashlib.sha1(normalize(text).encode("utf-8")).hexdigest()


@dataclass
class DedupeReport:
    """What de-duplication removed."""

    duplicate_works: list[str] = field(default_factory=list)  # titles dropped as copies of earlier works
    duplicate_paragraphs: int = 0  # repeated long paragraphs removed from kept works


def dedupe(
    documents: list[Document], *, min_paragraph_chars: int = 30, work_overlap: float = 0.8
) -> tuple[list[Document], DedupeReport]:
    """Drop repeated works and repeated long paragraphs, keeping the first occurrence.

    A work is a duplicate when its normalized text equals an earlier one, or when at least
    `work_overlap` of its long paragraphs appeared earlier (another edition of the same text).
    Only paragraphs of at least `min_paragraph_chars` normalized characters are de-duplicated:
    short lines such as "네." repeat legitimately in fiction.
    """
    report = DedupeReport()
    seen_works: set[str] = set()
    seen_paragraphs: set[str] = set()
    kept = []
    for doc in documents:
        work_key = text_hash(doc.text)
        if work_key in seen_works:
            report.duplicate_works.append(doc.title)
            continue
        paragraphs, repeated, long_count, new_keys = [], 0, 0, []
        for paragraph in doc.paragraphs:
            norm = normalize(paragraph)
            if len(norm) >= min_paragraph_chars:
                long_count += 1
                key = hashlib.sha1(norm.encode("utf-8")).hexdigest()
                if key in seen_paragraphs or key in new_keys:
                    repeated += 1
                    continue
                new_keys.append(key)
            paragraphs.append(paragraph)
        if long_count and repeated / long_count >= work_overlap:
            report.duplicate_works.append(doc.title)
            continue
        seen_works.add(work_key)
        seen_paragraphs.update(new_keys)
        report.duplicate_paragraphs += repeated
        kept.append(Document(**{**asdict(doc), "text": "\n".join(paragraphs)}))
    return kept, report


def _split_score(doc: Document, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}\x00{doc.author or ''}\x00{doc.title}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_work(documents: list[Document], valid_fraction: float = 0.05, seed: int = 0):
    """Split whole works into (train, valid), deterministically from `seed`, title and author.

    Each work's side depends only on its own hash, so adding works never moves others. With two
    or more works, validation gets at least one and training keeps at least one.
    """
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    scored = sorted(((_split_score(d, seed), i) for i, d in enumerate(documents)))
    valid_ids = {i for score, i in scored if score < valid_fraction}
    if len(documents) >= 2 and valid_fraction > 0:
        if not valid_ids:
            valid_ids = {scored[0][1]}
        if len(valid_ids) == len(documents):
            valid_ids.discard(scored[-1][1])
    train = [d for i, d in enumerate(documents) if i not in valid_ids]
    valid = [d for i, d in enumerate(documents) if i in valid_ids]
    return train, valid


def write_corpus(out_dir: str | Path, train: list[Document], valid: list[Document]) -> dict:
    """Write train.jsonl, valid.jsonl, manifest.json and manifest.tsv into `out_dir`; returns a summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, docs in (("train", train), ("valid", valid)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for doc in docs:
                f.write(json.dumps({"title": doc.title, "author": doc.author, "text": doc.text}, ensure_ascii=False) + "\n")
                rows.append({**{k: getattr(doc, k) for k in MANIFEST_FIELDS if hasattr(doc, k)},
                             "characters": len(doc.text), "split": name})
    summary = {
        "documents": {"train": len(train), "valid": len(valid)},
        "characters": {"train": sum(len(d.text) for d in train), "valid": sum(len(d.text) for d in valid)},
    }
    (out / "manifest.json").write_text(
        json.dumps({"summary": summary, "documents": rows}, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    with open(out / "manifest.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in MANIFEST_FIELDS})
    return summary
