"""Build a Korean fiction corpus: collect, clean, de-duplicate, split by work, write JSONL + manifest.

Examples (from the repository root):

    # Public-domain authors from Korean Wikisource (network):
    python -m data.build_corpus --wikisource-author 현진건 --wikisource-author 김동인 \
        --wikisource-category "분류:한국의 소설가" --out data/build/wikisource

    # The local KoCoNovel texts (one sentence per line, INDEX.tsv for titles):
    python -m data.build_corpus --local ../shared/corpus/koconovel --out data/build/koconovel

    # A Hugging Face dataset (network or HF cache):
    python -m data.build_corpus --hf-dataset wikimedia/wikisource --hf-config 20231201.ko --out data/build/hf

Writes `train.jsonl`, `valid.jsonl`, `manifest.json`, `manifest.tsv` (see data/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from data.corpus import Document, dedupe, split_by_work, write_corpus
from data.errors import CorpusError
from data.local import read_hf_dataset, read_local
from data.wikisource import KO_WIKISOURCE_API, WIKIDATA_API, MediaWikiClient, collect_wikisource

log = logging.getLogger("data.build_corpus")


@dataclass
class CorpusOptions:
    """Where to collect from and how to filter, de-duplicate and split."""

    out: str = field(default="data/build/corpus", metadata={"help": "output folder for train/valid JSONL and manifest"})
    wikisource_author: list[str] = field(default_factory=list, metadata={"help": "Wikisource author page, e.g. 현진건 or 저자:현진건 (repeatable)"})
    wikisource_category: list[str] = field(default_factory=list, metadata={"help": "Wikisource category of author or work pages (repeatable)"})
    local: list[str] = field(default_factory=list, metadata={"help": "local .txt/.jsonl file or folder (repeatable)"})
    hf_dataset: str | None = field(default=None, metadata={"help": "Hugging Face dataset name, e.g. wikimedia/wikisource"})
    hf_config: str | None = field(default=None, metadata={"help": "dataset config, e.g. 20231201.ko"})
    hf_split: str = field(default="train", metadata={"help": "dataset split to read"})
    hf_limit: int | None = field(default=None, metadata={"help": "read at most this many dataset rows"})
    max_death_year: int = field(default=1962, metadata={"help": "keep authors who died in or before this year (Korean public domain: 1962)"})
    valid_fraction: float = field(default=0.05, metadata={"help": "share of works held out for validation, in [0, 1)"})
    seed: int = field(default=0, metadata={"help": "seed of the by-work split"})
    min_paragraph_chars: int = field(default=30, metadata={"help": "only paragraphs this long are de-duplicated"})
    min_work_chars: int = field(default=200, metadata={"help": "skip Wikisource works shorter than this after cleaning"})
    max_works: int | None = field(default=None, metadata={"help": "fetch at most this many Wikisource works"})
    api_url: str = field(default=KO_WIKISOURCE_API, metadata={"help": "MediaWiki API endpoint"})
    wikidata: bool = field(default=True, metadata={"help": "ask Wikidata for death years missing from author pages"})

    def validate(self) -> None:
        """Raise CorpusError when options are out of range or no source is given."""
        if not (self.wikisource_author or self.wikisource_category or self.local or self.hf_dataset):
            raise CorpusError("no source given: use --wikisource-author/--wikisource-category, --local or --hf-dataset")
        if not 0 <= self.valid_fraction < 1:
            raise CorpusError(f"--valid-fraction must be in [0, 1), got {self.valid_fraction}")


def build_corpus(options: CorpusOptions, *, client: MediaWikiClient | None = None,
                 wikidata_client: MediaWikiClient | None = None) -> dict:
    """Collect documents from every source in `options`, clean, de-duplicate, split and write them.

    `client`/`wikidata_client` replace the network clients (tests pass ones with fake sessions).
    Returns the summary also stored in manifest.json, plus what was skipped and removed.
    """
    options.validate()
    documents: list[Document] = []
    skipped = []
    if options.wikisource_author or options.wikisource_category:
        client = client or MediaWikiClient(api_url=options.api_url)
        if options.wikidata and wikidata_client is None:
            wikidata_client = MediaWikiClient(api_url=WIKIDATA_API, session=client.session, sleep=client.sleep)
        result = collect_wikisource(
            client,
            authors=options.wikisource_author,
            categories=options.wikisource_category,
            max_death_year=options.max_death_year,
            wikidata=wikidata_client if options.wikidata else None,
            max_works=options.max_works,
            min_chars=options.min_work_chars,
        )
        documents += result.documents
        skipped += [dataclasses.asdict(s) for s in result.skipped]
    for path in options.local:
        documents += read_local(path)
    if options.hf_dataset:
        documents += read_hf_dataset(options.hf_dataset, options.hf_config, split=options.hf_split, limit=options.hf_limit)

    # Local files and datasets rarely carry death years: the filter applies where one is known.
    kept = []
    for doc in documents:
        if doc.death_year is not None and doc.death_year > options.max_death_year:
            skipped.append({"title": doc.title, "reason": f"author died in {doc.death_year}, after {options.max_death_year}"})
        else:
            kept.append(doc)
    unique, report = dedupe(kept, min_paragraph_chars=options.min_paragraph_chars)
    if not unique:
        raise CorpusError("no documents left after filtering and de-duplication; see the skipped list above")
    train, valid = split_by_work(unique, options.valid_fraction, options.seed)
    summary = write_corpus(options.out, train, valid)
    return {
        **summary,
        "duplicate_works": report.duplicate_works,
        "duplicate_paragraphs": report.duplicate_paragraphs,
        "skipped": skipped,
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line, generated from CorpusOptions' fields and their help."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for f in dataclasses.fields(CorpusOptions):
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata["help"]
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        elif f.type == "list[str]":
            parser.add_argument(flag, action="append", default=[], help=help_)
        else:
            kind = {"int": int, "float": float, "int | None": int}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=f.default, help=f"{help_} (default: {f.default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    options = CorpusOptions(**vars(args))
    try:
        result = build_corpus(options)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for item in result["skipped"]:
        log.info("skipped %s: %s", item["title"], item["reason"])
    print(json.dumps({k: v for k, v in result.items() if k != "skipped"}, ensure_ascii=False, indent=1))
    print(f"wrote {Path(options.out) / 'train.jsonl'} and valid.jsonl, manifest.json, manifest.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
