"""`python -m relay.prepare`: convert the model (and its LoRA graph) for the OpenVINO backend ahead of time.

The app converts on its first start (about a minute for KoGPT-2 on 2 cores, BENCHMARKS.md "First start");
run this in a Space's build, a deploy script or a container image instead, and the app finds the conversion
in the cache and starts in seconds. It reads the same settings as app.py, so both agree on the cache folder:

    python -m relay.prepare                                   # skt/kogpt2-base-v2, int8, into the default cache
    python -m relay.prepare --model ./kogpt2 --adapter noir=./outputs/lora --db /data/relay.db
    RELAY_CACHE=/srv/relay-cache python -m relay.prepare --model tiny --precision fp32

Adapters are read (and checked) but not converted: one LoRA graph of the base model serves every adapter, and
each adapter's LoRA matrices are bound into it when the app starts (relay/backends/openvino/lora.py).

Exit status: 0 the model (and the LoRA graph) is in the cache, converted now or already there ("nothing to do");
2 it cannot be prepared as asked (a model, adapter or precision that cannot be used, openvino not installed),
with one paragraph saying what to do; 1 the conversion itself failed (the message and the log say why).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("relay.prepare")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m relay.prepare",
                                     description="Convert the model for the OpenVINO backend and cache it, ahead of "
                                                 "the app's first start (exit 0 ready, 2 cannot be used, 1 failed).")
    parser.add_argument("--model", default=env.get("RELAY_MODEL", "skt/kogpt2-base-v2"),
                        help='Hub id or local folder of the base model, or "tiny" (env RELAY_MODEL)')
    parser.add_argument("--adapter", action="append", default=None, metavar="NAME=PATH",
                        help="a LoRA adapter folder; repeatable (env RELAY_ADAPTERS: NAME=PATH,NAME=PATH)")
    parser.add_argument("--precision", default=None,
                        help="int8 (default) or another precision the backend offers (env RELAY_OPENVINO_PRECISION)")
    parser.add_argument("--db", default=env.get("RELAY_DB"),
                        help="the app's database setting: on a Space the cache goes beside it (env RELAY_DB)")
    args = parser.parse_args(argv)
    pairs = args.adapter if args.adapter is not None else [p for p in env.get("RELAY_ADAPTERS", "").split(",")
                                                           if p.strip()]
    args.adapters = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            parser.error(f"--adapter needs NAME=PATH, got {pair!r}")
        args.adapters[name.strip()] = path.strip()
    return args


class CannotPrepare(Exception):
    """The model cannot be prepared as asked; the message says what to do (exit status 2)."""


def prepare(model: str, adapters: dict[str, str], precision: str | None = None, db: str | None = None,
            *, bar: bool | None = None):
    """Convert `model` (and its LoRA graph, with adapters) into the cache unless there already; returns (the
    finished `Preparation`, the cache folder). Its `converted` lists what was converted now (empty: all cached).
    Every adapter is read first, as the app reads it. CannotPrepare says why not."""
    try:
        import openvino  # noqa: F401
    except ImportError as error:
        raise CannotPrepare(f"The openvino package is not installed ({error}); pip install -r requirements.txt. "
                            "Without it the app runs on transformers and needs no preparation.") from None
    from relay.backends.base import BackendError, cache_dir
    from relay.backends.openvino.backend import _chosen_precision, prepare_variants, variant_names
    from relay.backends.openvino.convert import COMPRESSION, _check_supported, reader_model_path
    from relay.backends.openvino.lora import read_adapters
    from relay.backends.openvino.progress import Preparation
    from relay.loading import ModelLoadError, load_model, model_source

    try:
        precision = _chosen_precision(precision)
    except BackendError as error:
        raise CannotPrepare(str(error)) from None
    if model == "tiny":
        from relay.tiny import tiny_model_folder

        model = str(tiny_model_folder(Path(tempfile.gettempdir()) / "relay-tiny"))
    cache = cache_dir(db)
    log.info("loading the model %s …", model)
    try:
        base = load_model(model, model_source(model), {}, "cpu")
        _check_supported(base)
        read_adapters(base, adapters)  # every adapter checked before the long conversion starts
    except (ModelLoadError, BackendError) as error:
        raise CannotPrepare(str(error)) from None
    preparation = Preparation(variant_names(adapters), precision, bar=bar)
    for _, xml in prepare_variants(base, adapters, precision, cache, preparation):
        if COMPRESSION[precision] is not None:  # a cache converted before the reader had its unpacked weights
            reader_model_path(xml, preparation)
    preparation.finish()
    return preparation, cache


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        preparation, cache = prepare(args.model, args.adapters, args.precision, args.db)
    except CannotPrepare as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001  a failed conversion: one line, and the status says so
        print(f"error: converting the model failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    names = ", ".join(preparation.variants)
    if preparation.converted:
        print(f"prepared: converted {', '.join(preparation.converted)} to OpenVINO {preparation.precision} in "
              f"{preparation.elapsed:.1f} s, cached in {cache}")
    else:
        print(f"already prepared: {names} ({preparation.precision}) found in {cache}; nothing to do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
