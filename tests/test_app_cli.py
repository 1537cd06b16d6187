"""Launching the app from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import app

REPO = Path(__file__).resolve().parent.parent


def test_a_model_that_cannot_be_loaded_exits_with_a_clear_message_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "app.py", "--model", "/nonexistent", "--port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "/nonexistent" in result.stderr
    assert "--model tiny" in result.stderr  # the hint tells the person what to try


def test_adapters_come_from_repeated_flags_or_the_environment(monkeypatch):
    args = app.parse_args(["--adapter", "fiction=/a", "--adapter", "poem=/b", "--db", "x.db"])
    assert args.adapters == {"fiction": "/a", "poem": "/b"} and args.db == "x.db"
    monkeypatch.setenv("RELAY_ADAPTERS", "one=/x,two=/y")
    monkeypatch.setenv("RELAY_PORT", "9001")
    args = app.parse_args([])
    assert args.adapters == {"one": "/x", "two": "/y"} and args.port == 9001
    assert args.model == app.DEFAULT_MODEL and args.host == "127.0.0.1"


def test_a_malformed_adapter_flag_is_rejected(capsys):
    try:
        app.parse_args(["--adapter", "no-equals-sign"])
    except SystemExit as e:
        assert e.code != 0
    assert "NAME=PATH" in capsys.readouterr().err


def test_importing_the_app_loads_no_model_and_starts_nothing():
    code = (
        "import sys, app; "
        "assert 'torch' not in sys.modules or not any(m.startswith('transformers.models.gpt2') for m in sys.modules); "
        "import threading; assert threading.active_count() == 1, threading.enumerate()"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_user_text_is_rendered_as_inert_text():
    from types import SimpleNamespace

    from relay.ui.render import render_timeline, render_turn

    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script> **굵게**'
    para = SimpleNamespace(id=1, seq=1, author="<b>악당</b>", kind="human", text=evil, created_at="2026-11-25T03:00:00+00:00",
                           edited=False, meta={})
    writing = SimpleNamespace(status="writing", holder="<b>악당</b>", draft=evil, candidates=[])
    pending = SimpleNamespace(status="pending", holder="<b>악당</b>", draft="", candidates=[para], turn_id="t1")
    for out in (render_timeline([para], "ko"), render_turn(writing, "ko"), render_turn(pending, "en")):
        assert "<img" not in out and "<script" not in out and "<b>악당" not in out
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
