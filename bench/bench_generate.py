"""Time generate_marketplace end to end, parquet writing included, as one JSON line.

The figure that matters is the full run into a scratch directory, because that is what a demo
or CI job waits for; the directory is thrown away so repeated runs measure the same work.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tuijian.data.generator import generate_marketplace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tuijian-bench-") as tmp:
        started = time.perf_counter()
        generate_marketplace(Path(tmp), args.items, args.users, args.seed, now=time.time())
        seconds = time.perf_counter() - started
    print(json.dumps({"bench": "generate", "items": args.items, "users": args.users,
                      "seconds": round(seconds, 3), "items_per_s": round(args.items / seconds)}))


if __name__ == "__main__":
    main()
