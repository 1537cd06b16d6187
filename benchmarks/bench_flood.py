"""A model flood from ten addresses: how soon another writer's turn starts, and how fast adds stay.

One app server (in this process, loopback only) with RELAY_TRUSTED_PROXIES=127.0.0.1, so each
flooding client can stand for its own address through X-Forwarded-For, as clients behind a proxy
do. Three phases in one run, on one model:

  1. no flood: a victim writer asks for 40-token turns and another writer adds paragraphs;
  2. flood, fair gate (today's defaults: 8 model jobs run at once, let in by address);
  3. flood, no gate (RELAY_LIMIT_MODEL_JOBS=1000: every job runs at once, as before the gate).

The flood: 10 addresses x 2 writer keys x 2 jobs (each key's and address's model slots full),
each job a 120-token turn, resubmitted as soon as it ends, for the whole phase. Printed per phase:
the victim's turn start (request to first text) and turn time p50/p95, adds p50/p95, refusals.
Targets (issue 20): turn start p95 < 3 s and add p95 < 300 ms under the flood.

    .venv/bin/python benchmarks/bench_flood.py [--seconds 40] [--layers 6]

The model is KoGPT-2's layer width (768) with `--layers` layers and a small vocabulary, random
weights (speed, not quality), built once under relay-data/bench-cache/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FLOOD_ADDRESSES = 10
KEYS_PER_ADDRESS = 2
JOBS_PER_KEY = 2
FLOOD_TOKENS = 120
VICTIM_TOKENS = 40


def model_folder(layers: int) -> Path:
    from relay.tiny import build_tiny_model

    folder = REPO / "relay-data" / "bench-cache" / f"flood-{layers}x768"
    if not (folder / "config.json").exists():
        build_tiny_model(folder, n_layer=layers, n_embd=768, n_head=12, n_positions=1024)
    return folder


def start_server(folder: Path, tmp: Path, model_jobs: int | None):
    import app
    from relay.engine import Engine
    from relay.story_store import StoryStore
    from relay.ui.server import free_port, serve

    os.environ["RELAY_TRUSTED_PROXIES"] = "127.0.0.1"
    os.environ["RELAY_LIMIT_MODEL_REQUESTS"] = "1000/1000"  # the flood is about model time, not request rates
    os.environ["RELAY_LIMIT_CANDIDATES"] = "1000/1000"
    os.environ["RELAY_LIMIT_PARAGRAPHS"] = "1000/1000"
    if model_jobs is None:
        os.environ.pop("RELAY_LIMIT_MODEL_JOBS", None)
    else:
        os.environ["RELAY_LIMIT_MODEL_JOBS"] = str(model_jobs)
    engine = Engine.from_pretrained(model=str(folder))
    store = StoryStore(tmp / f"flood-{model_jobs}.db")
    server = serve(app.build_demo(engine, store), store, port=free_port(), block=False)
    return server, store, engine


def client(url: str, address: str):
    from gradio_client import Client

    return Client(url, verbose=False, headers={"X-Forwarded-For": address})


def flood(url: str, stop: threading.Event, refused: list) -> list[threading.Thread]:
    """10 addresses x 2 keys x 2 endless 120-token turns, each in its own story."""
    settings = {"max_new_tokens": FLOOD_TOKENS, "min_new_tokens": FLOOD_TOKENS, "stop_at": "length", "seed": 1}
    threads = []
    for a in range(FLOOD_ADDRESSES):
        c = client(url, f"10.66.0.{a + 1}")
        for k in range(KEYS_PER_ADDRESS):
            key = c.predict(api_name="/writer_key")
            for j in range(JOBS_PER_KEY):
                story = c.predict(f"홍수 {a}-{k}-{j}", f"f{a}{k}{j}", "free", key, api_name="/create_story")
                c.predict(story["id"], "시작.", f"f{a}{k}{j}", None, key, api_name="/add_paragraph")

                def loop(c=c, key=key, sid=story["id"], name=f"f{a}{k}{j}"):
                    while not stop.is_set():
                        try:
                            c.submit(sid, name, settings, None, key, api_name="/continue_story").result()
                            c.predict(sid, name, key, api_name="/discard")
                        except Exception:  # noqa: BLE001  a refusal: count it, try again shortly
                            if not stop.is_set():
                                refused.append(1)
                            time.sleep(0.2)

                threads.append(threading.Thread(target=loop, daemon=True))
    for t in threads:
        t.start()
    return threads


def victim(url: str, seconds: float) -> dict:
    """A writer from another address: a 40-token turn every 2 s, and another writer's add every 0.5 s."""
    me = client(url, "10.99.0.1")
    key = me.predict(api_name="/writer_key")
    story = me.predict("피해자", "v", "free", key, api_name="/create_story")
    me.predict(story["id"], "시작.", "v", None, key, api_name="/add_paragraph")
    settings = {"max_new_tokens": VICTIM_TOKENS, "min_new_tokens": VICTIM_TOKENS, "stop_at": "length", "seed": 2}
    starts, turns, adds, failures = [], [], [], []
    stop = threading.Event()

    def adder():
        other = client(url, "10.99.0.2")
        okey = other.predict(api_name="/writer_key")
        ostory = other.predict("다른 이야기", "o", "free", okey, api_name="/create_story")
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                other.predict(ostory["id"], f"문단 {i}.", "o", None, okey, api_name="/add_paragraph")
                adds.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001
                failures.append("add")
            i += 1
            time.sleep(0.5)

    add_thread = threading.Thread(target=adder, daemon=True)
    add_thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        first = None
        try:
            job = me.submit(story["id"], "v", settings, None, key, api_name="/continue_story")
            for _ in job:
                if first is None:
                    first = time.perf_counter() - t0
            job.result()
            turns.append(time.perf_counter() - t0)
            starts.append(first if first is not None else turns[-1])
            me.predict(story["id"], "v", key, api_name="/discard")
        except Exception:  # noqa: BLE001
            failures.append("turn")
        time.sleep(2.0)
    stop.set()
    add_thread.join(5)
    return {"starts": starts, "turns": turns, "adds": adds, "failures": failures}


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def phase(name: str, folder: Path, tmp: Path, seconds: float, *, flooded: bool, model_jobs: int | None) -> None:
    server, _store, engine = start_server(folder, tmp, model_jobs)
    stop, refused = threading.Event(), []
    try:
        if flooded:
            flood(server.url, stop, refused)
            time.sleep(3)  # the flood fills the model before the victim arrives
        result = victim(server.url, seconds)
    finally:
        stop.set()
        time.sleep(1)
        server.close()
        engine.close()
    s, t, a = result["starts"], result["turns"], result["adds"]
    print(f"{name:<26} turn start p50/p95 {p(s, 50):6.2f} / {p(s, 95):6.2f} s   turn p50/p95 {p(t, 50):6.2f} / "
          f"{p(t, 95):6.2f} s   add p50/p95 {p(a, 50) * 1000:6.0f} / {p(a, 95) * 1000:6.0f} ms   "
          f"turns {len(t)}, adds {len(a)}, victim failures {len(result['failures'])}, flood refusals {len(refused)}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=40, help="how long the victim writes in each phase")
    parser.add_argument("--layers", type=int, default=6, help="layers of the 768-wide benchmark model")
    args = parser.parse_args()
    import tempfile

    folder = model_folder(args.layers)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        phase("no flood", folder, tmp, args.seconds, flooded=False, model_jobs=None)
        phase("flood, fair gate (8 jobs)", folder, tmp, args.seconds, flooded=True, model_jobs=None)
        phase("flood, no gate", folder, tmp, args.seconds, flooded=True, model_jobs=1000)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
