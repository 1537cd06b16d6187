"""Memory bandwidth, and what it allows a decoder that reads every weight once a token: the roofline issue 21 uses.

Prints the copy and read-only bandwidth of this machine (numpy over arrays far larger than the caches, both cores,
median of --repeat) and, for each converted model given (the .bin files in a RELAY_CACHE, or any file), the
tokens/s at which reading its bytes once a token would take all of that bandwidth. A decode rate is then a share
of that ceiling: e.g. `bench_peers.py`'s int8 decode at 512 against the int8 model's ceiling.

    .venv/bin/python benchmarks/bench_memory.py [--gigabytes 1] [--repeat 5] [MODEL.bin ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np


def _halves(n: int) -> list[slice]:
    """The index ranges each thread works on (numpy releases the GIL inside these loops)."""
    threads = os.cpu_count() or 1
    step = -(-n // threads)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _on_every_core(work, n: int) -> float:
    """Seconds for `work(part)` over every part of [0, n), one thread a core, all at once."""
    parts = _halves(n)
    threads = [threading.Thread(target=work, args=(part,)) for part in parts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def copy_gbps(source: np.ndarray, target: np.ndarray) -> float:
    """GB/s copied (each byte counted once; STREAM's "copy" counts it twice, read and written)."""
    seconds = _on_every_core(lambda part: np.copyto(target[part], source[part]), len(source))
    return source.nbytes / seconds / 1e9


def read_gbps(source: np.ndarray) -> float:
    """GB/s read by a sum that keeps nothing but its result."""
    seconds = _on_every_core(lambda part: np.add.reduce(source[part]), len(source))
    return source.nbytes / seconds / 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="converted model files (.bin) to give a ceiling for")
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of each array")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    n = int(args.gigabytes * 1e9) // 4
    source, target = np.ones(n, np.float32), np.ones(n, np.float32)  # both written: no page faults while timed
    copies, reads = [], []
    print(f"{os.cpu_count()} CPUs; arrays of {source.nbytes / 1e9:.1f} GB; median of {args.repeat}; "
          f"load average before: {os.getloadavg()}")
    for _ in range(args.repeat):
        copies.append(copy_gbps(source, target))
        reads.append(read_gbps(source))
    copy, read = statistics.median(copies), statistics.median(reads)
    print(f"copy: {copy:.1f} GB/s (runs {min(copies):.1f}-{max(copies):.1f}); "
          f"read-only: {read:.1f} GB/s (runs {min(reads):.1f}-{max(reads):.1f})")
    for model in args.models:
        size = model.stat().st_size
        print(f"{model}: {size / 1e6:.1f} MB a token -> ceiling {copy * 1e9 / size:.0f} tok/s at copy bandwidth, "
              f"{read * 1e9 / size:.0f} at read-only")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
