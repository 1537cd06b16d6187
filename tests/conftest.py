"""Shared fixtures: every test gets its own database; tiny models are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RELAY_SHARED", REPO.parent / "shared"))
KOGPT2_DIR = SHARED / "kogpt2"
CORPUS_DIR = SHARED / "corpus" / "koconovel"

# Tests never reach the Hugging Face Hub, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(autouse=True)
def relay_db(tmp_path, monkeypatch):
    """Point the story store at a database in this test's temp dir."""
    path = tmp_path / "relay-test.db"
    monkeypatch.setenv("RELAY_DB", str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random GPT-2 with a small Korean BPE tokenizer, saved like a Hub model."""
    from relay.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def kogpt2_dir() -> Path:
    """The real KoGPT-2 tokenizer.json and config.json from ../shared (skips when absent)."""
    if not (KOGPT2_DIR / "tokenizer.json").exists():
        pytest.skip(f"needs the real KoGPT-2 tokenizer at {KOGPT2_DIR} (../shared is not beside the repo)")
    return KOGPT2_DIR


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The 40 public-domain KoCoNovel texts from ../shared (skips when absent)."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"needs the KoCoNovel corpus at {CORPUS_DIR} (../shared is not beside the repo)")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def kogpt2_tiny_model_dir(tmp_path_factory, kogpt2_dir) -> Path:
    """A tiny random GPT-2 with the real KoGPT-2 tokenizer and vocabulary (51,200 ids)."""
    from relay.tiny import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("kogpt2-tiny"),
        tokenizer_file=kogpt2_dir / "tokenizer.json",
        n_embd=32,
        n_head=2,
        n_positions=1024,
    )
