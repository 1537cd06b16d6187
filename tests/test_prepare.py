"""A first start that shows its work: `python -m relay.prepare` converts ahead of time, the app then finds the
conversion in the cache, the cache follows a Space's persistent storage, and the page says the model is being
prepared while it converts in the background.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")

from relay.backends.base import cache_dir  # noqa: E402
from relay.engine import Engine, SamplingSettings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHORT = SamplingSettings(max_new_tokens=8, min_new_tokens=0, stop_at="length", seed=3)


def run_prepare(*args: str, cache: Path) -> subprocess.CompletedProcess:
    """`python -m relay.prepare ARGS` as an operator runs it (stderr is not a terminal: log lines, no bar)."""
    env = {**os.environ, "RELAY_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "relay.prepare", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_prepare_converts_once_shows_progress_and_the_app_then_starts_without_converting(tiny_model_dir, tmp_path,
                                                                                        monkeypatch, capsys, caplog):
    from relay.prepare import main

    cache = tmp_path / "cache"
    first = run_prepare("--model", str(tiny_model_dir), cache=cache)
    assert first.returncode == 0, first.stderr
    assert "prepared: converted base" in first.stdout
    for stage in ("checking the cache", "converting to OpenVINO", "saving to the cache"):
        assert f"preparing the model (base, int8): {stage}" in first.stderr  # one line per stage, with its %
    assert list((cache / "openvino").glob("*/model.xml"))

    monkeypatch.setenv("RELAY_CACHE", str(cache))
    with caplog.at_level("INFO"):
        assert main(["--model", str(tiny_model_dir)]) == 0  # the second run, in this process
    said = capsys.readouterr().out
    assert "already prepared" in said and "nothing to do" in said
    assert "found in the cache" in caplog.text and "converting to OpenVINO" not in caplog.text

    engine = Engine.from_pretrained(tiny_model_dir, backend="openvino", openvino_options={"cache": cache})
    try:
        assert engine.backend.preparation.converted == []  # the app's start found the conversion
        assert engine.continue_story(["밤이 깊었다."], SHORT).text
    finally:
        engine.close()


def test_prepare_refuses_what_it_cannot_use_with_status_2(tmp_path, monkeypatch, capsys):
    from relay.prepare import main

    monkeypatch.setenv("RELAY_CACHE", str(tmp_path / "cache"))
    assert main(["--model", str(tmp_path / "no-such-model")]) == 2
    assert capsys.readouterr().err.startswith("error: ")  # one paragraph, no traceback
    assert main(["--model", "tiny", "--precision", "int3"]) == 2
    assert "RELAY_OPENVINO_PRECISION must be one of" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("space, db, relay_cache, expected", [
    (None, "/data/relay.db", None, "relay-data/cache"),  # not a Space: the working folder, as before
    ("me/relay", "/data/relay.db", None, "/data/relay-cache"),  # a Space: beside the stories
    ("me/relay", "sqlite:////persist/x/relay.db", None, "/persist/x/relay-cache"),
    ("me/relay", "/data/relay.db", "/srv/cache", "/srv/cache"),  # RELAY_CACHE wins
    ("me/relay", "postgresql://u:p@db/relay", None, "{space_data}/relay-cache"),  # stories elsewhere: /data
    ("me/relay", None, None, "{space_data}/relay-cache"),
])
def test_cache_follows_a_spaces_persistent_database_folder(monkeypatch, tmp_path, space, db, relay_cache, expected):
    import relay.backends.base as base

    monkeypatch.setattr(base, "SPACE_DATA", tmp_path)  # stands in for a Space's mounted /data
    for name, value in (("SPACE_ID", space), ("RELAY_DB", db), ("RELAY_CACHE", relay_cache)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert cache_dir() == Path(expected.format(space_data=tmp_path))


def test_a_space_without_persistent_storage_keeps_the_cache_in_the_working_folder(monkeypatch, tmp_path):
    import relay.backends.base as base

    monkeypatch.setattr(base, "SPACE_DATA", tmp_path / "not-mounted")
    monkeypatch.setenv("SPACE_ID", "me/relay")
    monkeypatch.delenv("RELAY_CACHE", raising=False)
    assert cache_dir("postgresql://u:p@db/relay") == Path("relay-data/cache")
    assert cache_dir("./stories/relay.db") == Path("stories/relay-cache")  # --db given on the command line


def test_turns_asked_while_the_model_is_prepared_wait_and_the_page_says_so(tiny_model_dir, tmp_path):
    from relay.ui.preparing import preparation_of, preparing_text

    engine = Engine.from_pretrained(tiny_model_dir, backend="openvino",
                                    openvino_options={"cache": tmp_path / "cache", "background": True})
    try:
        preparation = engine.backend.preparation
        assert not engine.backend.ready  # the page can come up now; the conversion runs in a thread
        korean, english = preparing_text(preparation, "ko"), preparing_text(preparation, "en")
        assert "모델을 준비하고 있습니다 (" in korean and "%, " in korean
        assert "The model is being prepared (" in english
        assert engine.continue_story(["밤이 깊었다."], SHORT).text  # waited for the conversion, then wrote
        assert engine.backend.ready and preparation.converted == ["base"] and preparation.percent == 100
        assert preparation_of(engine) is None and preparing_text(preparation_of(engine), "ko") == ""
    finally:
        engine.close()


def test_a_terminal_gets_a_bar_that_ends_at_100_percent():
    import io

    from relay.backends.openvino.progress import Preparation

    terminal = io.StringIO()
    preparation = Preparation(["base", "noir"], "int8", stream=terminal, bar=True)
    for stage in ("check", "convert", "compress", "save", "compile"):
        preparation.next_variant() if stage == "check" else None
        preparation(stage)
    assert 0 < preparation.percent < 50  # the first of two variants is compiling
    preparation.next_variant()("check")
    preparation("cached")
    preparation.finish()
    shown = terminal.getvalue()
    assert "preparing the model (base 1/2, int8): converting to OpenVINO" in shown
    assert "(noir 2/2, int8): found in the cache" in shown and "100%|" in shown


def test_a_preparation_that_fails_says_so_on_the_page_and_to_every_waiting_turn(tiny_model_dir, tmp_path,
                                                                                 monkeypatch):
    import relay.backends.openvino.backend as openvino_backend
    from relay.backends.base import BackendError
    from relay.ui.preparing import preparation_of, preparing_text

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(openvino_backend, "cached_model_path", disk_full)
    engine = Engine.from_pretrained(tiny_model_dir, backend="openvino",
                                    openvino_options={"cache": tmp_path / "cache", "background": True})
    try:
        with pytest.raises(BackendError, match="No space left on device"):
            engine.continue_story(["밤이 깊었다."], SHORT).text
        assert "모델을 준비하지 못했습니다" in preparing_text(preparation_of(engine), "ko")
        assert "could not be prepared" in preparing_text(preparation_of(engine), "en")
    finally:
        engine.close()
