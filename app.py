"""Relay (릴레이 소설): people and KoGPT-2 write one Korean novel together, live in the browser.

    python app.py                      # skt/kogpt2-base-v2 from the Hub, http://127.0.0.1:7860
    python app.py --model tiny         # a tiny random model: try the interface without the Hub
    python app.py --model ./kogpt2 --adapter fiction=./outputs/lora --db ./relay.db

This file parses flags, loads the engine and the store, and serves the page. The page itself is
built by `relay.ui.build_demo(engine, store)`; importing this module loads no model and starts nothing.
On the OpenVINO backend the page comes up while the model is converted (a first start) or compiled: the
terminal shows the progress, the page says the model is being prepared, and model turns start once it is
ready. `python -m relay.prepare` converts ahead of time (a Space build, a deploy).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from relay.engine import BACKEND_CHOICES, BACKEND_ENV, INFERENCE_URL_ENV, ModelLoadError
from relay.limits import Rates, check_trusted_proxies
from relay.story_store import StoreBusy, StoryError, StoryStore, is_postgres_url
from relay.turns import turn_grace_s, turn_idle_s
from relay.ui.demo import build_demo  # noqa: F401  (the entry point tests and scripts import from here)
from relay.ui.server import serve

DEFAULT_MODEL = "skt/kogpt2-base-v2"
MODEL_HINT = ("Pass --model with a local folder that holds the model (config.json, model.safetensors, tokenizer.json), "
              "or --model tiny to try the interface with a tiny random model.")
ADAPTER_HINT = ("Pass --adapter NAME=FOLDER with the folder a PEFT LoRA training run saved (adapter_config.json + "
                "adapter_model.safetensors), made for the same base model; or leave the adapter out.")
DB_HINT = ("Pass --db (or RELAY_DB) with the path of a SQLite database file in a folder this user can write "
           "(e.g. --db ./relay-data/relay.db; a new file is created there if none exists), or the URL of a "
           "PostgreSQL database this user can reach and create tables in (postgresql://user:password@host:5432/dbname).")


class StartupError(Exception):
    """The server cannot start; the message says what is wrong and what to do (printed, exit status 2)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Relay: write a Korean novel together with KoGPT-2.")
    parser.add_argument("--model", default=env.get("RELAY_MODEL", DEFAULT_MODEL),
                        help='Hub id or local folder of the base model, or "tiny" for a tiny random model (env RELAY_MODEL)')
    parser.add_argument("--adapter", action="append", default=None, metavar="NAME=PATH",
                        help="a LoRA adapter folder or Hub id; repeatable (env RELAY_ADAPTERS: NAME=PATH,NAME=PATH)")
    parser.add_argument("--db", default=env.get("RELAY_DB"), help="SQLite database file (env RELAY_DB; default ./relay-data/relay.db)")
    parser.add_argument("--host", default=env.get("RELAY_HOST", env.get("GRADIO_SERVER_NAME", "127.0.0.1")),
                        help="address to listen on (env RELAY_HOST; 0.0.0.0 on Spaces)")
    parser.add_argument("--port", type=int, default=int(env.get("RELAY_PORT", env.get("GRADIO_SERVER_PORT", "7860"))),
                        help="port (env RELAY_PORT)")
    parser.add_argument("--backend", default=env.get(BACKEND_ENV, "auto"), choices=BACKEND_CHOICES,
                        help="transformers (reference, GPU), openvino (int8 on CPU), openai (a remote OpenAI-compatible "
                             "server), auto = openvino on a CPU when installed (env RELAY_BACKEND)")
    parser.add_argument("--inference-url", default=env.get(INFERENCE_URL_ENV),
                        help="server for --backend openai, e.g. http://gpu-box:8000/v1 (env RELAY_INFERENCE_URL)")
    parser.add_argument("--auth", action="append", default=None, metavar="USER:PASS",
                        help="require a login (Gradio's password page); repeatable (env RELAY_AUTH: USER:PASS,USER:PASS)")
    args = parser.parse_args(argv)
    pairs = args.adapter if args.adapter is not None else [p for p in env.get("RELAY_ADAPTERS", "").split(",") if p.strip()]
    adapters = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            parser.error(f"--adapter needs NAME=PATH, got {pair!r}")
        adapters[name.strip()] = path.strip()
    args.adapters = adapters
    logins = args.auth if args.auth is not None else [p for p in env.get("RELAY_AUTH", "").split(",") if p.strip()]
    auth = []
    for login in logins:
        user, sep, password = login.partition(":")
        if not sep or not user.strip() or not password:
            parser.error("--auth needs USER:PASS (a user name, a colon, a password)")
        auth.append((user.strip(), password))
    args.auth = auth or None
    return args


def load_engine(model: str, adapters: dict[str, str], backend: str = "auto", inference_url: str | None = None,
                db: str | None = None, background: bool = False):
    """The engine for `model` ("tiny" builds a tiny random model in a cache folder) on `backend`.

    On OpenVINO, converted models are cached in `cache_dir(db)`; `background` prepares them while the page is up."""
    from relay.backends.base import cache_dir
    from relay.engine import Engine

    tiny = model == "tiny"
    if tiny:
        from relay.tiny import tiny_model_folder

        model = str(tiny_model_folder(Path(tempfile.gettempdir()) / "relay-tiny"))
    return Engine.from_pretrained(model=model, adapters=adapters or None, backend=backend,
                                  inference_url=inference_url,
                                  openvino_options={"cache": cache_dir(db), "background": background}), tiny


def check_model_folder(model: str) -> None:
    """Refuse before loading a local model folder that is empty or holds no config.json (StartupError).

    Without this, the tokenizer loader's fallback blames a missing sentencepiece package.
    """
    folder = Path(model).expanduser()
    if model == "tiny" or not folder.is_dir():
        return
    if not any(folder.iterdir()):
        raise StartupError(f"The model folder {model} is empty. {MODEL_HINT}")
    if not (folder / "config.json").is_file():
        raise StartupError(f"The model folder {model} has no config.json, so it is not a saved model. {MODEL_HINT}")


def explain_load_failure(error: BaseException, model: str, adapters: dict[str, str]) -> str:
    """One paragraph for a failed model or adapter load: what failed and what to do.

    The engine's ModelLoadError already explains itself; anything else is classified conservatively
    by its type and message, with a generic summary as the fallback.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    about_adapter = adapters and any(word in text for word in ("어댑터", "adapter", "Adapter", "PEFT", "peft"))
    hint = ADAPTER_HINT if about_adapter else MODEL_HINT
    if isinstance(error, ModelLoadError):  # the engine's message already says what to do
        return text if about_adapter else f"{text} Or run --model tiny to try the interface with a tiny random model."
    lowered = text.lower()
    damaged = ("safetensor" in type(error).__module__.lower() or type(error).__name__ in ("SafetensorError", "UnpicklingError")
               or any(w in lowered for w in ("deserializ", "invalid header", "invalid load key", "unexpected eof",
                                             "size mismatch", "error(s) in loading state_dict", "incomplete metadata")))
    where = "an adapter" if about_adapter else f"the model {model}"
    if damaged:
        return (f"The weights of {where} are damaged or incomplete (an interrupted download or copy?): {text[:300]}. "
                f"Download or copy the files again. {hint}")
    return f"Could not load {where}: {type(error).__name__}: {text[:300]}. {hint}"


# Processes started together on a new database (deploy/run-local.sh, several systemd units) wait this long for
# the one that creates its tables, beyond SQLite's own wait for a lock (which a slow first start can outlast).
STARTUP_BUSY_WAIT_S = 120


def open_store(db: str | None) -> StoryStore:
    """Open the story database at `db`; StartupError with what to do when it cannot be used."""
    if db and "://" in db and not is_postgres_url(db):
        raise StartupError(f"--db {db.split('://')[0]}://… is not a database Relay can use: pass a SQLite file path "
                           f"or a postgresql://user:password@host/dbname URL. {DB_HINT}")
    path = None if not db else db if is_postgres_url(db) else Path(db).expanduser()
    if isinstance(path, Path) and path.is_dir():
        raise StartupError(f"--db {db} is a folder, not a database file. {DB_HINT}")
    try:
        store = _store_once_free(path, db)
    except StoryError as e:
        advice = ("Check that the PostgreSQL server runs and that the URL's user, password, host, port and database "
                  "name are right." if isinstance(path, str) else
                  "If the file is damaged, restore it from a backup or move it away to start empty.")
        raise StartupError(f"Cannot use the story database {_shown(db)}: {_one_line(e, db)}. {advice} {DB_HINT}") from None
    except Exception as e:  # sqlite3.Error, OSError (a parent that is a file, a read-only disk) ...
        raise StartupError(f"Cannot open the story database {_shown(db)}: "
                           f"{type(e).__name__}: {_one_line(e, db)}. {DB_HINT}") from None
    return store


def _store_once_free(path, db: str | None) -> StoryStore:
    """The store at `path`, opened and read once (a damaged file or an unreadable schema fails here, not on the
    first visitor); while another process holds the database's write lock (e.g. creating its tables), it waits up
    to STARTUP_BUSY_WAIT_S, saying so once."""
    deadline, said = time.monotonic() + STARTUP_BUSY_WAIT_S, False
    while True:
        try:
            store = StoryStore(path)
            store.list_stories()
            return store
        except StoreBusy:
            if time.monotonic() > deadline:
                raise
            if not said:
                print(f"The story database {_shown(db)} is busy (another Relay process is setting it up?); "
                      f"waiting for it …", file=sys.stderr, flush=True)
                said = True
            time.sleep(1.0)


def _shown(db: str | None) -> str:
    """The database as it may be printed: a URL without its password."""
    if not db:
        return "relay-data/relay.db"
    scheme, sep, rest = db.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"
    return db


def _one_line(error: BaseException, db: str | None = None) -> str:
    """The error's message (and, for the operator, its detail) on one line, without the database password."""
    detail = getattr(error, "detail", "")
    text = " ".join(f"{error} {f'({detail})' if detail else ''}".split())[:400].rstrip(".") or type(error).__name__
    if db and "://" in db and "@" in db:
        password = db.partition("://")[2].rpartition("@")[0].partition(":")[2]
        if password:
            text = text.replace(password, "***")
    return text


def release_dead_turns(store: StoryStore) -> int:
    """Free model turns held by processes of this machine that died (a crash mid-generation)."""
    try:
        return store.release_dead_turns(socket.gethostname())
    except StoryError as e:
        raise StartupError(f"Cannot free the model turns left by a stopped server: {_one_line(e)}. {DB_HINT}") from None


def check_limit_settings() -> None:
    """StartupError naming a RELAY_LIMIT_* or RELAY_TRUSTED_PROXIES value that cannot be read."""
    try:
        Rates.from_env()
        check_trusted_proxies()
        turn_idle_s(), turn_grace_s()  # RELAY_TURN_IDLE_S, RELAY_TURN_GRACE_S
    except ValueError as e:
        raise StartupError(f"{e} (README \"Limits\")") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # e.g. which backend "auto" chose, and why
    try:
        check_limit_settings()
        store = open_store(args.db)  # first: a bad --db fails in a second, not after loading the model
        freed = release_dead_turns(store)
        if freed:
            print(f"Freed {freed} model turn(s) left by a server process that stopped.", file=sys.stderr)
        check_model_folder(args.model)
        try:
            print(f"Loading the model {args.model} …", file=sys.stderr)
            engine, tiny = load_engine(args.model, args.adapters, args.backend, args.inference_url, args.db,
                                       background=True)
        except Exception as e:  # noqa: BLE001  every load failure ends in a message, never a traceback
            raise StartupError(explain_load_failure(e, args.model, args.adapters)) from None
    except StartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    demo = build_demo(engine, store, tiny=tiny)
    serve(demo, store, host=args.host, port=args.port, auth=args.auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
