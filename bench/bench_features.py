"""Feature-center batch read: 150 random items' ranking features at 1M items, on the embedded
store and on Redis (`tuijian bench features [--backend redis://…]`; targets: embedded p99 ≤
0.2 ms, Redis p99 ≤ 2 ms)."""

from __future__ import annotations

import argparse
import json

from tuijian.data.feature_bench import run_features_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    print(json.dumps(run_features_bench(args.backend, args.items, args.batch, args.rounds)))


if __name__ == "__main__":
    main()
