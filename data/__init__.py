"""Corpus building: Korean Wikisource, local folders and Hugging Face datasets into train/valid JSONL.

Run `python -m data.build_corpus --help` from the repository root; see data/README.md.
"""
