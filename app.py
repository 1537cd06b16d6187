"""Relay (릴레이 소설): people and KoGPT-2 write one Korean novel together, live in the browser.

    python app.py                      # skt/kogpt2-base-v2 from the Hub, http://127.0.0.1:7860
    python app.py --model tiny         # a tiny random model: try the interface without the Hub
    python app.py --model ./kogpt2 --adapter fiction=./outputs/lora --db ./relay.db

This file parses flags, loads the engine and the store, and serves the page. The page itself is
built by `relay.ui.build_demo(engine, store)`; importing this module loads no model and starts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from relay.engine import ModelLoadError
from relay.story_store import StoryError, StoryStore
from relay.ui.demo import build_demo  # noqa: F401  (the entry point tests and scripts import from here)
from relay.ui.server import serve

DEFAULT_MODEL = "skt/kogpt2-base-v2"


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
    args = parser.parse_args(argv)
    pairs = args.adapter if args.adapter is not None else [p for p in env.get("RELAY_ADAPTERS", "").split(",") if p.strip()]
    adapters = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            parser.error(f"--adapter needs NAME=PATH, got {pair!r}")
        adapters[name.strip()] = path.strip()
    args.adapters = adapters
    return args


def load_engine(model: str, adapters: dict[str, str]):
    """The engine for `model` ("tiny" builds a tiny random model in a cache folder)."""
    from relay.engine import Engine

    tiny = model == "tiny"
    if tiny:
        from relay.tiny import tiny_model_folder

        model = str(tiny_model_folder(Path(tempfile.gettempdir()) / "relay-tiny"))
    return Engine.from_pretrained(model=model, adapters=adapters or None), tiny


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        engine, tiny = load_engine(args.model, args.adapters)
    except ModelLoadError as e:
        print(f"error: {e}", file=sys.stderr)
        print("hint: pass --model with a local folder that holds the model (config.json, weights, tokenizer), "
              "or --model tiny to try the interface with a tiny random model.", file=sys.stderr)
        return 2
    try:
        store = StoryStore(args.db)
    except StoryError as e:
        print(f"error: cannot open the story database: {e}", file=sys.stderr)
        return 2
    demo = build_demo(engine, store, tiny=tiny)
    serve(demo, store, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
