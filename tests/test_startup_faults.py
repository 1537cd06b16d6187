"""Every way the server can fail to start ends with exit status 2 and one message saying what to do.

Each case runs `python app.py ...` as a subprocess, as an operator would. The model cases use tiny
models made broken on purpose; the database cases use a good tiny model so only --db is wrong.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # importing torch and gradio on a busy 2-core machine


def run_app(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "app.py", *args, "--port", "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=environ)


def assert_refused(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, no traceback, one 'error:' line that mentions every needle; returns the message."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    message = next(line for line in result.stderr.splitlines() if line.startswith("error: "))
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """A good tiny model and its broken variants: an empty folder, truncated weights, no weights."""
    root = tmp_path_factory.mktemp("broken-models")
    empty = root / "empty"
    empty.mkdir()
    corrupt = root / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # an interrupted download
    no_weights = root / "no-weights"
    shutil.copytree(tiny_model_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    return {"good": tiny_model_dir, "empty": empty, "corrupt": corrupt, "no_weights": no_weights}


@pytest.fixture(scope="module")
def dead_lease_db(tmp_path_factory) -> tuple[Path, int]:
    """A database whose story's model turn is held by a process that has exited."""
    from relay.story_store import StoryStore

    db = tmp_path_factory.mktemp("dead-lease") / "relay.db"
    store = StoryStore(db)
    story = store.create_story("끊긴 이야기", "alice", turn_rule="free")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.claim_ai_turn(story.id, "alice", ttl=600, process=f"{socket.gethostname()}:{dead.stdout.strip()}")
    assert store.ai_turn_holder(story.id) == "alice"
    store.close()
    return db, story.id


@pytest.fixture(scope="module")
def runs(tmp_path_factory, broken_models, dead_lease_db) -> dict[str, subprocess.CompletedProcess]:
    """Every startup case, run as concurrent subprocesses once (each pays for importing torch and gradio)."""
    tmp = tmp_path_factory.mktemp("startup")
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    damaged = tmp / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    db = str(tmp / "r.db")
    cases = {
        "missing_model": ["--model", str(tmp / "no-such-model"), "--db", db],
        "empty_model": ["--model", str(broken_models["empty"]), "--db", db],
        "corrupt_model": ["--model", str(broken_models["corrupt"]), "--db", db],
        "no_weights": ["--model", str(broken_models["no_weights"]), "--db", db],
        "offline_hub_id": ["--model", "someone/no-such-model", "--db", db],
        "bad_adapter": ["--model", str(broken_models["good"]), "--adapter", f"fiction={tmp / 'no-such-adapter'}", "--db", db],
        "db_folder": ["--model", "tiny", "--db", str(tmp)],
        "db_unwritable": ["--model", "tiny", "--db", str(blocker / "relay.db")],
        "db_corrupt": ["--model", "tiny", "--db", str(damaged)],
        "db_postgres_down": ["--model", "tiny", "--db", f"postgresql://relay:hunter2@127.0.0.1:{port}/relay"],
        "db_other_url": ["--model", "tiny", "--db", "mysql://u@h/db"],
        # A model that fails to load: startup frees dead turns first, so the run ends (exit 2) right after.
        "dead_lease": ["--model", str(tmp / "no-model"), "--db", str(dead_lease_db[0])],
    }
    settings_cases = {  # limits are operator settings: a value that cannot be read stops the start
        "bad_limit": {"RELAY_LIMIT_PARAGRAPHS": "lots"},
        "bad_proxies": {"RELAY_TRUSTED_PROXIES": "nginx.internal"},
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_app, *args) for name, args in cases.items()}
        futures.update({name: pool.submit(run_app, "--model", "tiny", "--db", db, env=env)
                        for name, env in settings_cases.items()})
        results = {name: f.result() for name, f in futures.items()}
    results["paths"] = SimpleNamespace(tmp=tmp, blocker=blocker, damaged=damaged, port=port)
    return results


def test_a_limit_setting_that_cannot_be_read_exits_2_and_names_the_variable(runs):
    assert_refused(runs["bad_limit"], "RELAY_LIMIT_PARAGRAPHS", "6/30")
    assert_refused(runs["bad_proxies"], "RELAY_TRUSTED_PROXIES", "127.0.0.1")


def test_a_missing_model_folder_exits_2_and_names_the_folder(runs):
    assert_refused(runs["missing_model"], str(runs["paths"].tmp / "no-such-model"), "--model tiny")


def test_an_empty_model_folder_exits_2_and_says_it_is_empty_not_that_sentencepiece_is_missing(runs):
    message = assert_refused(runs["empty_model"], "is empty", "--model")
    assert "sentencepiece" not in message


def test_damaged_weights_exit_2_and_say_to_download_again(runs):
    assert_refused(runs["corrupt_model"], "damaged or incomplete", "again")


def test_a_model_folder_without_weights_exits_2(runs):
    assert_refused(runs["no_weights"], "model.safetensors")


def test_a_hub_id_while_offline_exits_2_and_says_to_download_it_elsewhere(runs):
    assert_refused(runs["offline_hub_id"], "someone/no-such-model", "offline", "local folder")


def test_a_bad_adapter_path_exits_2_and_names_the_adapter(runs):
    message = assert_refused(runs["bad_adapter"], "fiction", str(runs["paths"].tmp / "no-such-adapter"))
    assert "--model tiny" not in message  # the model is fine: the advice is about the adapter


def test_a_folder_given_as_the_database_exits_2(runs):
    assert_refused(runs["db_folder"], "is a folder", "--db")


def test_an_unwritable_database_path_exits_2(runs):
    assert_refused(runs["db_unwritable"], str(runs["paths"].blocker), "writ")


def test_a_corrupt_database_file_exits_2_and_says_to_restore_or_move_it(runs):
    assert_refused(runs["db_corrupt"], str(runs["paths"].damaged), "backup")


def test_an_unreachable_postgresql_url_exits_2_without_printing_its_password(runs):
    message = assert_refused(runs["db_postgres_down"], "PostgreSQL", f"127.0.0.1:{runs['paths'].port}")
    assert "hunter2" not in message


def test_a_database_url_of_another_kind_exits_2(runs):
    assert_refused(runs["db_other_url"], "mysql", "postgresql://")


def test_a_model_turn_left_by_a_killed_server_is_freed_at_startup(runs, dead_lease_db):
    from relay.story_store import StoryStore

    db, story_id = dead_lease_db
    assert runs["dead_lease"].returncode == 2
    assert "Freed 1 model turn" in runs["dead_lease"].stderr
    assert StoryStore(db).ai_turn_holder(story_id) is None


@pytest.fixture
def locked_new_database(tmp_path, monkeypatch):
    """A new database whose write lock another process holds (as while it creates the tables), and a short SQLite
    wait for locks; `release(after_s)` lets go of the lock later."""
    import sqlite3
    import threading

    import relay.store.schema as schema

    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "relay.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("BEGIN IMMEDIATE")
    timers = []

    def release(after_s: float) -> None:
        timers.append(threading.Timer(after_s, lambda: holder.execute("COMMIT")))
        timers[-1].start()

    yield path, release
    for timer in timers:
        timer.join()
    holder.close()


def test_processes_started_together_on_a_new_database_wait_for_the_one_creating_it(locked_new_database, capsys):
    import app

    path, release = locked_new_database
    release(after_s=1.5)  # longer than SQLite's own wait for the lock
    store = app.open_store(str(path))
    assert store.list_stories() == []
    assert "busy" in capsys.readouterr().err  # it said once why it waited


def test_a_database_busy_for_longer_than_the_startup_wait_is_refused_with_the_reason(locked_new_database,
                                                                                   monkeypatch):
    import app

    path, release = locked_new_database
    monkeypatch.setattr(app, "STARTUP_BUSY_WAIT_S", 0.5)
    release(after_s=3.0)
    with pytest.raises(app.StartupError, match="busy with other writers"):
        app.open_store(str(path))
