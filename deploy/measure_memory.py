"""Memory of N app processes on one machine: what each costs alone and what they share.

    .venv/bin/python deploy/measure_memory.py --model tiny --processes 2
    .venv/bin/python deploy/measure_memory.py --model /path/to/kogpt2 --processes 2

Starts N `python app.py --model M` processes (tests/servers.py), makes each write one model turn
(so the weights have been read and the generation buffers exist), then prints each process's
memory from /proc/PID/smaps_rollup: Rss (what `top` shows), Pss (its fair share of pages it
shares), Shared (pages shared with other processes: the weights, which safetensors maps from the
page cache, and the libraries) and Private (its own heap: Python, torch, Gradio; and pages of files
only it maps, such as the OpenVINO reader's weights file, read once at compile time: "clean", the
kernel drops them under memory pressure). N processes cost about Shared + N x Private. Linux only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from servers import app_processes, port_of  # noqa: E402


def listener_pid(port: int) -> int:
    """The pid listening on 127.0.0.1:port (ss from iproute2)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


def memory_mb(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) // 1024
    shared = fields["Shared_Clean"] + fields["Shared_Dirty"]
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    return {"rss": fields["Rss"], "pss": fields["Pss"], "shared": shared, "private": private,
            "clean": fields["Private_Clean"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help='as app.py --model (default "tiny")')
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    args = parser.parse_args()
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp, \
            app_processes(args.processes, ["--model", args.model, "--db", f"{tmp}/relay.db"], timeout=900) as urls:
        for url in urls:
            client = Client(url, verbose=False)
            key = client.predict(api_name="/writer_key")
            story = client.predict("측정", "측정", "free", key, api_name="/create_story")
            client.predict(story["id"], "밤이 깊었다.", "측정", 0, key, api_name="/add_paragraph")
            client.submit(story["id"], "측정", {"max_new_tokens": args.max_new_tokens, "seed": 7}, None, key,
                          api_name="/continue_story").result(timeout=900)
        rows = [memory_mb(listener_pid(port_of(url))) for url in urls]
    for i, row in enumerate(rows, 1):
        print(f"process {i}: rss {row['rss']} MB, pss {row['pss']} MB, shared {row['shared']} MB, "
              f"private {row['private']} MB (of which {row['clean']} MB clean pages of files, which the kernel "
              f"drops under memory pressure)")
    shared = max(r["shared"] for r in rows)
    private = sum(r["private"] for r in rows) / len(rows)
    print(f"model={args.model} processes={args.processes}: about {shared} MB shared + {private:.0f} MB per process; "
          f"cores={os.cpu_count()} loadavg={tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
