"""Story store speed on SQLite and PostgreSQL: appends/s (1 writer, N processes), timeline(), version(), change_token().

    .venv/bin/python benchmarks/bench_store.py [--pg-url postgresql://...] [--appends 400] [--processes 8]

SQLite runs on a fresh database in a temp dir (WAL, synchronous=FULL). PostgreSQL runs on
--pg-url / $RELAY_BENCH_PG_URL (a server where the user may CREATE DATABASE), else on a
throwaway cluster started like the tests' (tests/conftest.py) but with fsync on. The baseline,
measured in the same run, is the plain-sqlite3 store of commit 9966435 (before SQLAlchemy), read
from git; each row prints the ratio to it. Not a test: the numbers depend on the machine, its
disk and its load (printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEXT = "비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다. " * 4
BASELINE_COMMIT = "9966435"


def _store_class(kind: str):
    if kind == "baseline":
        return _baseline_module().StoryStore
    from relay.story_store import StoryStore

    return StoryStore


_BASELINE = None


def _baseline_module():
    """relay/story_store.py as it was at BASELINE_COMMIT, loaded from git into a temp file."""
    global _BASELINE
    if _BASELINE is None:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{BASELINE_COMMIT}:relay/story_store.py"],
            capture_output=True, text=True, check=True,
        ).stdout
        path = Path(tempfile.mkdtemp()) / "baseline_story_store.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("baseline_story_store", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        _BASELINE = module
    return _BASELINE


def _writer(kind: str, target: str, story_id: int, name: str, count: int, start) -> None:
    store = _store_class(kind)(target)
    start.wait()
    for i in range(count):
        store.add_paragraph(story_id, f"{TEXT}{i}", name)
    store.close()


def appends_one_writer(kind: str, target, count: int) -> float:
    store = _store_class(kind)(target)
    story = store.create_story("one writer", "bench", turn_rule="free")
    t0 = time.perf_counter()
    for i in range(count):
        store.add_paragraph(story.id, f"{TEXT}{i}", "bench")
    elapsed = time.perf_counter() - t0
    store.close()
    return count / elapsed


def appends_processes(kind: str, target, processes: int, count: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    store = _store_class(kind)(target)
    story = store.create_story("many writers", "bench", turn_rule="free")
    start = ctx.Barrier(processes + 1)
    procs = [
        ctx.Process(target=_writer, args=(kind, str(target), story.id, f"w{n}", count, start))
        for n in range(processes)
    ]
    for p in procs:
        p.start()
    start.wait()  # timing starts when every writer has opened the store
    t0 = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a writer process failed")
    assert len(store.timeline(story.id)) == processes * count
    store.close()
    return processes * count / elapsed


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fill(kind: str, store, story_id: int, n: int) -> None:
    """n paragraphs in one transaction (through add_paragraph, each would pay a commit)."""
    rows = [
        {"story_id": story_id, "seq": i + 1, "author": "bench", "kind": ("human", "ai")[i % 2], "text": f"{TEXT}{i}",
         "created_at": "2026-01-01T00:00:00+00:00", "edited": 0, "deleted": 0,
         "meta": '{"model": "skt/kogpt2-base-v2", "seed": 1}'}
        for i in range(n)
    ]
    if kind == "baseline":
        conn = store._conn()
        with store._write():
            conn.executemany(
                "INSERT INTO paragraphs (story_id, seq, author, kind, text, created_at, edited, deleted, meta)"
                " VALUES (:story_id, :seq, :author, :kind, :text, :created_at, :edited, :deleted, :meta)", rows,
            )
            conn.execute("UPDATE stories SET paragraph_count = ? WHERE id = ?", (n, story_id))
        return
    from relay.store.schema import paragraphs, stories

    with store._write() as conn:
        conn.execute(paragraphs.insert(), rows)
        conn.execute(stories.update().where(stories.c.id == story_id).values(paragraph_count=n))


def measure(kind: str, targets, args) -> dict[str, float]:
    """targets: a function giving a fresh empty database (path or URL) each call."""
    out = {
        "appends/s, 1 writer": appends_one_writer(kind, targets(), args.appends),
        f"appends/s, {args.processes} processes": appends_processes(kind, targets(), args.processes, args.per_process),
    }
    store = _store_class(kind)(targets())
    long = store.create_story("long", "bench", turn_rule="free")
    _fill(kind, store, long.id, args.paragraphs)
    assert len(store.timeline(long.id)) == args.paragraphs
    out[f"timeline(), {args.paragraphs:,} paragraphs (ms)"] = median_seconds(lambda: store.timeline(long.id), 30) * 1e3
    out["version() (µs)"] = median_seconds(lambda: store.version(long.id), args.calls) * 1e6
    if hasattr(store, "change_token"):
        out["change_token() (µs)"] = median_seconds(store.change_token, args.calls) * 1e6
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("RELAY_BENCH_PG_URL", ""), help="PostgreSQL admin URL")
    parser.add_argument("--appends", type=int, default=400, help="appends for the single writer")
    parser.add_argument("--processes", type=int, default=8, help="writer processes")
    parser.add_argument("--per-process", type=int, default=100, help="appends per writer process")
    parser.add_argument("--paragraphs", type=int, default=2000, help="paragraphs in the long story")
    parser.add_argument("--calls", type=int, default=5000, help="version()/change_token() calls to time")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))
        sqlite_db = lambda: Path(tmp) / f"db{next(counter)}.db"  # noqa: E731
        try:
            results["sqlite3 baseline (9966435)"] = measure("baseline", sqlite_db, args)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            print(f"(no baseline: {exc})")
        results["SQLite"] = measure("store", sqlite_db, args)
        if not args.no_postgres:
            server = None
            if args.pg_url:
                sys.path.insert(0, str(REPO / "tests"))
                from conftest import PostgresServer

                server = PostgresServer(args.pg_url, None)
            else:
                sys.path.insert(0, str(REPO / "tests"))
                from conftest import _start_throwaway_cluster

                server = _start_throwaway_cluster(durable=True)
            try:
                results["PostgreSQL"] = measure("store", server.new_database, args)
            finally:
                server.close()

    print(f"load average after: {os.getloadavg()}")
    import psycopg
    import sqlalchemy

    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__},"
          f" psycopg {psycopg.__version__}, {platform.machine()}, {os.cpu_count()} cores")
    names = list(results)
    base = results.get(names[0]) if len(names) > 1 else None
    print("| measure | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for measure_name in results["SQLite"]:
        cells = []
        for name in names:
            value = results[name].get(measure_name)
            if value is None:
                cells.append("–")
                continue
            text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
            if base is not None and name != names[0] and base.get(measure_name):
                text += f" ({value / base[measure_name]:.2f}×)"
            cells.append(text)
        print(f"| {measure_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
