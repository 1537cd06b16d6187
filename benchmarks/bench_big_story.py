"""Big stories stay cheap (issue 20): a story near the paragraph cap, 200 open tabs and 20 writers.

    .venv/bin/python benchmarks/bench_big_story.py                 # old and new, ~60 s of load each (~8 minutes)
    .venv/bin/python benchmarks/bench_big_story.py --quick         # smoke run: 40 tabs, 5 writers, 15 s
    .venv/bin/python benchmarks/bench_big_story.py --skip-old --tabs 200 --writers 20 --duration 60

Both apps run in the same run, each as its own `app.py --model tiny` process on its own temp SQLite
database, on loopback only:

- old: commit 1e117c9 (read from git with `git archive` into a temp folder; nothing in .git changes),
  where every tab's first message carries the whole timeline and every change re-renders every card;
- new: this checkout (a window of the newest 200 cards, older ones on demand, cards rendered once).

Each database is seeded before its app starts (by that app's own code: one JSON import) with a
story of `--paragraphs` paragraphs (default: the cap, 5,000, minus room for the writers' adds) and a
small story. Then: RSS with no tab; `--tabs` Server-Sent Events clients open the big story at once
(time to the first message, its size); `--writers` writers add paragraphs to it through the Gradio
queue (`/add_paragraph`, one every 10.5-13 s each, under the per-key rate limit) and 2 more to the
small story, for `--duration` seconds, while a reader opens a fresh page (`/` then the story's first
live message) every 2 s; then every tab closes and RSS is read again after 5 and 20 s; last, `/timeline`
of the big story is called 5 times (each a new API session, as separate clients would be). Clients are spread over loopback addresses (127.0.1.x for tabs,
127.0.2.x for writers) so per-address limits see many people, as in a classroom of separate machines.
The run stops by itself (`--deadline`, default 30 minutes); not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_live import (  # noqa: E402
    MARKER,
    Target,
    api_args,
    api_info,
    app_server,
    f_ms,
    f_s,
    gradio_call,
    load_avg,
    machine,
    pct,
)

from relay.store.validation import MAX_PARAGRAPHS_PER_STORY  # noqa: E402

BASELINE_COMMIT = "1e117c9"  # before issue 20: whole timelines on the live stream
TEXT = "바람이 멎자 골목은 조용해졌다. 그녀는 편지를 접어 주머니에 넣고 오래된 우체국 쪽으로 걸었다."
TABS_PER_ADDRESS = 20
WRITER_GAP_S = (10.5, 13.0)  # one add per writer every this many seconds: under 6 a minute per key

# Run inside each app's own folder, so each database is written by that app's code.
SEED = r"""
import json, sys
sys.path.insert(0, ".")
from relay.story_store import StoryStore
db, n, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
when = "2026-12-01T00:00:00.000000+00:00"
def export(title, n):
    paragraphs = [{"seq": i, "author": "민지" if i % 2 else "준호", "kind": "human", "text": f"{i}. {text}",
                   "created_at": when} for i in range(1, n + 1)]
    return {"format": "relay-story", "version": 2, "paragraphs": paragraphs,
            "story": {"title": title, "created_by": "민지", "created_at": when, "turn_rule": "free"}}
with StoryStore(db) as s:
    print(json.dumps([s.import_json(export("큰 이야기", n)).id, s.import_json(export("작은 이야기", 3)).id]))
"""


class Clients:
    """One httpx client per loopback source address (each a different person to the app's per-address limits)."""

    def __init__(self):
        self._by_address: dict[str, httpx.AsyncClient] = {}

    def at(self, address: str) -> "Clients.One":
        if address not in self._by_address:
            transport = httpx.AsyncHTTPTransport(local_address=address, retries=0)
            self._by_address[address] = httpx.AsyncClient(
                transport=transport, timeout=httpx.Timeout(120.0, connect=30.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))
        return Clients.One(self._by_address[address])

    @dataclass
    class One:
        client: httpx.AsyncClient  # what bench_live.gradio_call expects of its first argument

    async def close(self) -> None:
        for c in self._by_address.values():
            await c.aclose()


@dataclass
class Load:
    seen: dict = field(default_factory=dict)  # (tab, marker) -> when the tab had it
    adds: list = field(default_factory=list)  # (marker, returned)
    add_lat: list = field(default_factory=list)
    other_add_lat: list = field(default_factory=list)
    open_lat: list = field(default_factory=list)  # a tab's open -> its first message (the 200 at once)
    page_lat: list = field(default_factory=list)  # a fresh page: GET / and the story's first live message
    first_size: int = 0
    errors: Counter = field(default_factory=Counter)
    ready: int = 0
    stop: bool = False


async def tab(c: Clients.One, target: Target, run: Load, i: int, story: int) -> None:
    """One open tab: its live stream, read until the run stops; the first message's size and delay."""
    t0 = time.monotonic()
    try:
        async with c.client.stream("GET", f"{target.url}relay/live", params={"story": story, "lang": "ko"},
                                   timeout=httpx.Timeout(None, connect=60.0)) as s:
            if s.status_code != 200:
                run.errors[f"tab HTTP {s.status_code}"] += 1
                return
            first = True
            async for line in s.aiter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.monotonic()
                if first:
                    first = False
                    run.ready += 1
                    run.open_lat.append(now - t0)
                    run.first_size = max(run.first_size, len(line.encode("utf-8")))
                for m in MARKER.findall(line):
                    run.seen.setdefault((i, m), now)
    except (httpx.HTTPError, asyncio.CancelledError) as e:
        if not run.stop and not isinstance(e, asyncio.CancelledError):
            run.errors[f"tab {type(e).__name__}"] += 1


async def new_key(c: Clients.One, target: Target, info: dict) -> str:
    ok, out, err = await gradio_call(c, target, target.fn("writer_key"), [], secrets.token_hex(6), {})
    if not ok:
        raise RuntimeError(f"{target.label}: /writer_key failed: {err}")
    return out[0]


async def writer(c: Clients.One, target: Target, info: dict, run: Load, w: int, story: int, key: str,
                 other: bool) -> None:
    session, fn, n = secrets.token_hex(6), target.fn("add_paragraph"), 0
    await asyncio.sleep(w * WRITER_GAP_S[0] / 20)  # spread the writers' first adds
    while not run.stop:
        marker = f"bm{w}x{n}z"
        n += 1
        data = api_args(target, "add_paragraph", info, story_id=story, text=f"{marker} {TEXT}", author=f"작가{w}",
                        expected_head=None, writer_key=key)
        t0 = time.monotonic()
        ok, _, err = await gradio_call(c, target, fn, data, session, {})
        t1 = time.monotonic()
        if ok:
            (run.other_add_lat if other else run.add_lat).append(t1 - t0)
            if not other:
                run.adds.append((marker, t1))
        else:
            run.errors[f"add: {err}"] += 1
        await asyncio.sleep(WRITER_GAP_S[0] + (WRITER_GAP_S[1] - WRITER_GAP_S[0]) * (n % 5) / 4)


async def reader(c: Clients.One, target: Target, run: Load, story: int) -> None:
    """A fresh page every 2 s: the page's HTML, then the story's first live message."""
    while not run.stop:
        t0 = time.monotonic()
        try:
            r = await c.client.get(f"{target.url}?story={story}")
            r.raise_for_status()
            async with c.client.stream("GET", f"{target.url}relay/live", params={"story": story, "lang": "ko"}) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data:"):
                        run.page_lat.append(time.monotonic() - t0)
                        break
        except httpx.HTTPError as e:
            run.errors[f"page load {type(e).__name__}"] += 1
        await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))


async def timeline_calls(c: Clients.One, target: Target, info: dict, story: int, n: int = 5) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        ok, _, err = await gradio_call(c, target, target.fn("timeline"),
                                       api_args(target, "timeline", info, story_id=story), secrets.token_hex(6), {})
        if ok:
            out.append(time.monotonic() - t0)
    return out


async def warm_up(c: Clients.One, target: Target, info: dict, story: int, key: str) -> None:
    """One of each request the load makes (a tab, a page, an add, /timeline), so "RSS with no tab" is
    the warm server's, not the memory a server takes on its first request of each kind."""
    run = Load()
    opened = asyncio.create_task(tab(c, target, run, 0, story))
    while not run.ready and not opened.done():
        await asyncio.sleep(0.1)
    opened.cancel()
    await asyncio.gather(opened, return_exceptions=True)
    await (await c.client.get(f"{target.url}?story={story}")).aread()
    data = api_args(target, "add_paragraph", info, story_id=story, text=f"준비 {TEXT}", author="준비",
                    expected_head=None, writer_key=key)
    await gradio_call(c, target, target.fn("add_paragraph"), data, secrets.token_hex(6), {})
    await timeline_calls(c, target, info, story, 1)


async def rss_after(target: Target, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return target.rss_mib()


async def measure(target: Target, stories: tuple[int, int], args, clients: Clients) -> dict:
    big, small = stories
    setup = clients.at("127.0.0.1")
    info = await api_info(setup, target)
    keys = [await new_key(clients.at(f"127.0.2.{w + 1}"), target, info) for w in range(args.writers + 2)]
    await warm_up(setup, target, info, big, keys[0])
    await asyncio.sleep(3)
    rss_start = target.rss_mib()

    run = Load()
    t_open = time.monotonic()
    tabs = [asyncio.create_task(tab(clients.at(f"127.0.1.{i // TABS_PER_ADDRESS + 1}"), target, run, i, big))
            for i in range(args.tabs)]
    deadline = time.monotonic() + args.open_timeout
    while run.ready < args.tabs and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    open_s = time.monotonic() - t_open
    ready = run.ready
    print(f"  [{target.label}] {ready}/{args.tabs} tabs had their first message after {open_s:.1f} s "
          f"(first message {run.first_size / 1e3:,.0f} kB)", flush=True)

    rss = [target.rss_mib()]
    c0, t0 = target.cpu_s(), time.monotonic()
    workers = [asyncio.create_task(writer(clients.at(f"127.0.2.{w + 1}"), target, info, run, w, big, keys[w], False))
               for w in range(args.writers)]
    workers += [asyncio.create_task(writer(clients.at(f"127.0.2.{w + 1}"), target, info, run, w, small, keys[w], True))
                for w in range(args.writers, args.writers + 2)]
    workers.append(asyncio.create_task(reader(clients.at("127.0.3.1"), target, run, big)))
    while time.monotonic() - t0 < args.duration:
        await asyncio.sleep(1)
        rss.append(target.rss_mib())
    cpu = 100 * (target.cpu_s() - c0) / (time.monotonic() - t0)
    run.stop = True
    await asyncio.gather(*workers, return_exceptions=True)
    await asyncio.sleep(5)  # the last adds reach the tabs
    rss.append(target.rss_mib())
    for t in tabs:
        t.cancel()
    await asyncio.gather(*tabs, return_exceptions=True)
    rss_5 = await rss_after(target, 5)
    rss_20 = await rss_after(target, 15)
    # Last, apart from the live stream's memory: Gradio keeps each API session's last output, so every
    # new session's /timeline of a big story stays in memory until the session is evicted.
    timeline_lat = await timeline_calls(setup, target, info, big)
    rss_timeline = target.rss_mib()

    lags, missed = [], 0
    for marker, returned in run.adds:
        for i in range(args.tabs):
            got = run.seen.get((i, marker))
            if got is None:
                missed += 1
            else:
                lags.append(max(0.0, got - returned))
    if missed:
        run.errors["missed updates"] += missed
    return {
        "first": run.first_size, "ready": f"{ready}/{args.tabs} in {open_s:.1f} s",
        "open_p95": pct(run.open_lat, 0.95), "page_p50": pct(run.page_lat, 0.5), "page_p95": pct(run.page_lat, 0.95),
        "adds": len(run.add_lat), "add_p50": pct(run.add_lat, 0.5), "add_p95": pct(run.add_lat, 0.95),
        "other_p95": pct(run.other_add_lat, 0.95), "lag_p50": pct(lags, 0.5), "lag_p95": pct(lags, 0.95),
        "timeline_p50": pct(timeline_lat, 0.5), "cpu": cpu, "rss_start": rss_start, "rss_peak": max(rss),
        "rss_5": rss_5, "rss_20": rss_20, "rss_timeline": rss_timeline, "errors": run.errors,
    }


def seed(folder: Path, db: Path, paragraphs: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", SEED, str(db), str(paragraphs), TEXT], cwd=folder, check=True,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(folder)})
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def baseline_folder(workdir: Path) -> Path:
    out = workdir / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_COMMIT], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


ROWS = [
    ("first", "first live message of the big story", lambda r: f"{r['first'] / 1e3:,.0f} kB"),
    ("ready", "tabs with their first message", lambda r: r["ready"]),
    ("open_p95", "all tabs opening at once: first message p95", lambda r: f_s(r["open_p95"])),
    ("page", "page load (HTML + first live message) p50 / p95", lambda r: f"{f_ms(r['page_p50'])} / {f_ms(r['page_p95'])}"),
    ("adds", "paragraphs added to the big story", lambda r: str(r["adds"])),
    ("add", "add_paragraph p50 / p95 (big story)", lambda r: f"{f_ms(r['add_p50'])} / {f_ms(r['add_p95'])}"),
    ("other", "add_paragraph p95, another story", lambda r: f_ms(r["other_p95"])),
    ("lag", "add returned → every tab has it, p50 / p95", lambda r: f"{f_s(r['lag_p50'])} / {f_s(r['lag_p95'])}"),
    ("timeline", "/timeline of the big story (API, after the load), p50; RSS after 5 calls",
     lambda r: f"{f_ms(r['timeline_p50'])}; {r['rss_timeline'] - r['rss_20']:+.0f} MiB"),
    ("cpu", "server CPU during the load (% of a core)", lambda r: f"{r['cpu']:.0f} %"),
    ("rss", "RSS: no tab → peak with tabs → 5 s / 20 s after they close",
     lambda r: f"{r['rss_start']:.0f} → {r['rss_peak']:.0f} → {r['rss_5']:.0f} / {r['rss_20']:.0f} MiB "
               f"({100 * (r['rss_20'] - r['rss_start']) / r['rss_start']:+.1f} %)"),
    ("errors", "errors", lambda r: (f"{sum(r['errors'].values())} ("
                                    + "; ".join(f"{k} ×{v}" for k, v in r["errors"].most_common(3)) + ")")
     if r["errors"] else "0"),
]


def table(results: dict) -> str:
    labels = list(results)
    lines = ["| measure | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for _, name, cell in ROWS:
        lines.append(f"| {name} | " + " | ".join(cell(results[label]) for label in labels) + " |")
    return "\n".join(lines)


async def main_async(args) -> None:
    print(f"machine: {machine()}", flush=True)
    print(f"load average at start (1/5/15 min): {load_avg()}", flush=True)
    results: dict = {}
    clients = Clients()
    with tempfile.TemporaryDirectory(prefix="relay-bench-big-") as tmp:
        workdir = Path(tmp)
        apps = [] if args.skip_old else [("old (1e117c9)", baseline_folder(workdir))]
        apps.append(("new", REPO))
        try:
            for label, folder in apps:
                name = label.split()[0]
                print(f"{label}: load average {load_avg()}", flush=True)
                stories = seed(folder, workdir / f"{name}.db", args.paragraphs)
                print(f"{label}: seeded story {stories[0]} with {args.paragraphs:,} paragraphs", flush=True)
                with app_server(name, folder, workdir) as target:
                    target.label = label
                    results[label] = await measure(target, stories, args, clients)
                print(f"  [{label}] load average {load_avg()}; " + json.dumps({k: v for k, v in results[label].items() if k != "errors"},
                                                    default=str), flush=True)
        finally:
            await clients.close()
    print()
    print(f"load average at end (1/5/15 min): {load_avg()}")
    print(f"{args.tabs} tabs on a story of {args.paragraphs:,} paragraphs, {args.writers} writers on it and 2 on "
          f"another story, {args.duration:g} s")
    print()
    print(table(results))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 40 tabs, 5 writers, 15 s")
    p.add_argument("--tabs", type=int, default=200)
    p.add_argument("--writers", type=int, default=20)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--paragraphs", type=int, default=MAX_PARAGRAPHS_PER_STORY - 250,
                   help="the big story's length (default: the cap minus room for the writers' adds)")
    p.add_argument("--open-timeout", type=float, default=180, help="longest wait for every tab's first message")
    p.add_argument("--skip-old", action="store_true")
    p.add_argument("--deadline", type=float, default=1800, help="the whole run stops after this many seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.tabs, args.writers, args.duration = min(args.tabs, 40), min(args.writers, 5), 15
    return args


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers this script started
    arguments = parse_args()
    try:
        asyncio.run(asyncio.wait_for(main_async(arguments), arguments.deadline))
    except asyncio.TimeoutError:
        print(f"stopped after the {arguments.deadline:g} s deadline", flush=True)
        sys.exit(1)
