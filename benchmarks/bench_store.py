"""Story store speed: appends per second (1 writer, N processes), timeline() and version() times.

    .venv/bin/python benchmarks/bench_store.py [--appends 400] [--processes 8] [--paragraphs 2000]

Runs against a fresh database in a temp dir (the real settings: WAL, synchronous=FULL) and
prints a Markdown table. Not a test: the numbers depend on the machine and its disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.story_store import StoryStore  # noqa: E402

TEXT = "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다. " * 4


def _writer(path: str, story_id: int, name: str, count: int, start) -> None:
    store = StoryStore(path)
    start.wait()
    for i in range(count):
        store.add_paragraph(story_id, f"{TEXT}{i}", name)
    store.close()


def appends_one_writer(path: Path, count: int) -> float:
    store = StoryStore(path)
    story = store.create_story("one writer", "bench", turn_rule="free")
    t0 = time.perf_counter()
    for i in range(count):
        store.add_paragraph(story.id, f"{TEXT}{i}", "bench")
    elapsed = time.perf_counter() - t0
    store.close()
    return count / elapsed


def appends_processes(path: Path, processes: int, count: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    with StoryStore(path) as store:
        story = store.create_story("many writers", "bench", turn_rule="free")
    start = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=_writer, args=(str(path), story.id, f"w{n}", count, start)) for n in range(processes)]
    for p in procs:
        p.start()
    start.wait()  # timing starts when every writer has opened the store
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a writer process failed")
    with StoryStore(path) as store:
        assert len(store.timeline(story.id)) == processes * count
    return processes * count / elapsed


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=400, help="appends for the single writer")
    parser.add_argument("--processes", type=int, default=8, help="writer processes")
    parser.add_argument("--per-process", type=int, default=100, help="appends per writer process")
    parser.add_argument("--paragraphs", type=int, default=2000, help="paragraphs in the long story")
    parser.add_argument("--version-calls", type=int, default=20000, help="version() calls to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = appends_one_writer(tmp / "one.db", args.appends)
        many = appends_processes(tmp / "many.db", args.processes, args.per_process)

        store = StoryStore(tmp / "long.db")
        short = store.create_story("short", "bench", turn_rule="free")
        store.add_paragraph(short.id, TEXT, "bench")
        long = store.create_story("long", "bench", turn_rule="free")
        conn = store._conn()
        # Filling through add_paragraph would take a while with an fsync per commit; the
        # timeline's cost depends only on the rows, so build them in one transaction.
        with store._write():
            for i in range(args.paragraphs):
                store_row = (long.id, i + 1, "bench", ("human", "ai")[i % 2], f"{TEXT}{i}", "2026-01-01T00:00:00+00:00")
                conn.execute(
                    "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, meta)"
                    " VALUES (?, ?, ?, ?, ?, ?, '{\"model\": \"skt/kogpt2-base-v2\", \"seed\": 1}')",
                    store_row,
                )
            conn.execute("UPDATE stories SET paragraph_count = ? WHERE id = ?", (args.paragraphs, long.id))
        assert len(store.timeline(long.id)) == args.paragraphs
        timeline_ms = median_seconds(lambda: store.timeline(long.id), 30) * 1e3
        version_us = median_seconds(lambda: store.version(long.id), args.version_calls) * 1e6
        version_short_us = median_seconds(lambda: store.version(short.id), args.version_calls) * 1e6
        head_us = median_seconds(lambda: store.head(long.id), 2000) * 1e6
        store.close()

    rows = [
        ("appends/s, 1 writer", f"{one:,.0f}", f"{args.appends} appends, one commit each"),
        (f"appends/s, {args.processes} processes", f"{many:,.0f}", f"{args.processes} x {args.per_process}, all at once"),
        (f"timeline(), {args.paragraphs:,} paragraphs", f"{timeline_ms:.1f} ms", "median of 30"),
        (f"version(), {args.paragraphs:,}-paragraph story", f"{version_us:.1f} µs", f"median of {args.version_calls:,}"),
        ("version(), 1-paragraph story", f"{version_short_us:.1f} µs", f"median of {args.version_calls:,}"),
        (f"head(), {args.paragraphs:,}-paragraph story", f"{head_us:.1f} µs", "median of 2,000"),
    ]
    print(f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}, {platform.machine()}")
    print("| measure | result | how |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
