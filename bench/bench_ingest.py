"""Event ingestion over HTTP: batches of 1,000 events posted to a real `tuijian serve`.

Starts the server as a subprocess on a free loopback port over a small generated marketplace,
takes real item tracking params from recommendations, and posts pre-encoded batches of click
events (each with its own event id) from one keep-alive client. Every event passes the full
path: validation, signature check, fsynced append, real-time folds. Target ≥ 20,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from tuijian.data.generator import generate_marketplace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        data = Path(tmp)
        generate_marketplace(data / "generated", 20_000, 2_000, 1, now=time.time())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "tuijian.cli", "serve", "--data", str(data), "--port",
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            wait_up(url)
            with httpx.Client(base_url=url, timeout=30.0) as client:
                # 1,000 distinct item params from 20 users' lists; every batch clicks each
                # once, so after the first batch the clicks are logged repeats (counted once)
                items = []
                for u in range(1, 21):
                    rec = client.post("/v1/recommend", json={
                        "scene": "guess_you_like", "user_id": f"u{u}", "n": 50}).json()
                    items += [(f"u{u}", i["item_id"], i["tracking"]) for i in rec["items"]]
                bodies = []
                for b in range(args.batches):
                    events = [{"event_id": f"b{b}-{j}", "type": "click",
                               "user_id": items[j % len(items)][0],
                               "item_id": items[j % len(items)][1],
                               "tracking": items[j % len(items)][2]}
                              for j in range(args.batch_size)]
                    bodies.append(orjson.dumps({"events": events}))
                client.post("/v1/events", content=bodies[0],
                            headers={"content-type": "application/json"})  # warm-up
                t0 = time.perf_counter()
                accepted = 0
                for body in bodies[1:]:
                    r = client.post("/v1/events", content=body,
                                    headers={"content-type": "application/json"})
                    accepted += sum(x["status"] == "accepted" for x in r.json()["results"])
                elapsed = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    n = (args.batches - 1) * args.batch_size
    print(json.dumps({"bench": "ingest_http", "events": n, "accepted": accepted,
                      "batch": args.batch_size, "seconds": round(elapsed, 3),
                      "events_per_s": round(n / elapsed)}))


if __name__ == "__main__":
    main()
