"""Read documents from local .txt/.jsonl files and folders, and from Hugging Face datasets.

- A `.txt` file is one document; each non-empty line is a paragraph (KoCoNovel has one sentence
  per line). An `INDEX.tsv` beside the files (columns `file`, `title`, `author`, optionally
  `death_year`, `license`, `source_url`) names them; otherwise the file name is the title.
- A `.jsonl` file holds one document per line: an object with `text` and optionally `title`,
  `author`, `death_year`, `license`, `source_url`.
- A Hugging Face dataset (`datasets.load_dataset(name, config)`) gives one document per row,
  from its `text` and `title` columns (as in `wikimedia/wikisource`, config `20231201.ko`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from data.corpus import Document
from data.errors import SourceError

TEXT_SUFFIXES = (".txt", ".jsonl")


def _paragraphs(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def read_index(folder: Path) -> dict[str, dict]:
    """Rows of `folder/INDEX.tsv` keyed by file name, or {} when there is none."""
    index = folder / "INDEX.tsv"
    if not index.exists():
        return {}
    with open(index, encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t") if row.get("file")}


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_text_file(path: Path, meta: dict | None = None, default_license: str = "") -> Document:
    """One .txt file as one document, named by its INDEX.tsv row `meta` when given."""
    meta = meta or {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path} as UTF-8 text: {exc}") from exc
    return Document(
        title=meta.get("title") or path.stem,
        author=meta.get("author") or None,
        text=_paragraphs(text),
        death_year=_int_or_none(meta.get("death_year")),
        source_url=meta.get("source_url") or path.resolve().as_uri(),
        license=meta.get("license") or default_license,
        source="local",
    )


def read_jsonl_file(path: Path, default_license: str = "") -> list[Document]:
    """Each line of a .jsonl file as one document (`text` required)."""
    documents = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(f"{path}:{number}: expected a JSON object with a 'text' field ({exc})") from exc
            documents.append(
                Document(
                    title=row.get("title") or f"{path.stem}:{number}",
                    author=row.get("author"),
                    text=_paragraphs(text),
                    death_year=_int_or_none(row.get("death_year")),
                    source_url=row.get("source_url") or f"{path.resolve().as_uri()}#L{number}",
                    license=row.get("license") or default_license,
                    source="local",
                )
            )
    return documents


def read_local(path: str | Path, default_license: str = "") -> list[Document]:
    """Documents from a .txt/.jsonl file or a folder of them (recursively, sorted by path)."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES)
    if not files:
        raise SourceError(f"{path} holds no .txt or .jsonl files")
    documents = []
    for file in files:
        if file.suffix == ".jsonl":
            documents += read_jsonl_file(file, default_license)
        elif file.suffix == ".txt":
            meta = read_index(file.parent).get(file.name)
            documents.append(read_text_file(file, meta, default_license))
        else:
            raise SourceError(f"{file}: expected a .txt or .jsonl file")
    return [d for d in documents if d.text]


def read_hf_dataset(
    name: str,
    config: str | None = None,
    *,
    split: str = "train",
    text_field: str = "text",
    title_field: str = "title",
    data_files=None,
    license: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """Rows of a Hugging Face dataset as documents, loaded through `datasets.load_dataset`.

    `name` may also be a builder such as "json" with `data_files`, or a folder written by
    `Dataset.save_to_disk`.
    """
    import datasets

    try:
        if Path(name).is_dir() and (Path(name) / "dataset_info.json").exists():
            dataset = datasets.load_from_disk(name)
            if isinstance(dataset, datasets.DatasetDict):
                dataset = dataset[split]
        else:
            dataset = datasets.load_dataset(name, config, split=split, data_files=data_files)
    except Exception as exc:  # datasets raises many unrelated types; report them all the same way
        raise SourceError(f"cannot load dataset {name!r} (config {config!r}, split {split!r}): {exc}") from exc
    if text_field not in dataset.column_names:
        raise SourceError(f"dataset {name!r} has no column {text_field!r} (columns: {dataset.column_names})")
    documents = []
    for number, row in enumerate(dataset):
        if limit is not None and number >= limit:
            break
        text = _paragraphs(row[text_field] or "")
        if not text:
            continue
        documents.append(
            Document(
                title=str(row.get(title_field) or f"{name}:{number}"),
                author=row.get("author"),
                text=text,
                death_year=_int_or_none(row.get("death_year")),
                source_url=row.get("url") or f"hf://datasets/{name}" + (f"/{config}" if config else ""),
                license=license or f"see the dataset card of {name}",
                source="huggingface",
            )
        )
    return documents
