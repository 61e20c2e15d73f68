"""`tuijian eval rank`: every model kind on (a) simulated marketplace logs, beside the oracle
AUC of the simulator's true click probabilities, and (b) public CTR datasets.

The simulated marketplace is generated, simulated through the real pipeline (rule ranker),
joined and cleaned exactly as `tuijian train` does; the last `test_fraction` of time is held
out, and every model is trained on what precedes it (with its own validation tail for early
stopping). The oracle is scored on the same held-out rows.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq

from tuijian.config import Settings
from tuijian.data.generator import generate_marketplace
from tuijian.jobs.engine import DuckDBEngine
from tuijian.jobs.join import join
from tuijian.jobs.simulate import simulate
from tuijian.rank.datasets import CTR_DATASETS
from tuijian.rank.evaluate import binary_metrics
from tuijian.rank.formula import compile_formula
from tuijian.rank.models.base import Progress
from tuijian.rank.training import (
    TrainOptions,
    fit_model,
    load_rows,
    time_split,
    train,
)

# Rank ids fusing several models, scored like a model (the formula is what a strategy file's
# rank id would carry).
FUSED: dict[str, str] = {"gbdt+ftrl": "(gbdt + ftrl) / 2"}
CLICK_KINDS: tuple[str, ...] = ("lr", "ftrl", "gbdt", "fm", "gbdt_lr", "gbdt_fm", "fnn",
                                "wide_deep", "deepfm")
Log = Callable[[str], None]


@dataclass(slots=True)
class SyntheticSpec:
    """A marketplace small enough that users and items collect real histories: the oracle
    gap measures what the features and models miss, not how little traffic there was."""

    items: int = 4_000
    users: int = 800
    requests: int = 40_000
    days: float = 8.0
    test_fraction: float = 0.2
    seed: int = 7


def synthetic_data(root: Path, spec: SyntheticSpec, log: Log | None = None) -> Path:
    """Generate, simulate and join into `root`; returns the data dir (reused if joined)."""
    from tuijian.serving.service import Service  # the service imports the whole stack

    samples = root / "samples" / "samples.parquet"
    if samples.exists():
        return root
    now = time.time() - spec.days * 86400
    generate_marketplace(root / "generated", spec.items, spec.users, seed=spec.seed,
                         now=now - 86400)
    service = Service(Settings(data_dir=root), now=now)
    try:
        t0 = time.perf_counter()
        s = simulate(service, root / "generated", now, spec.days,
                     int(spec.requests / spec.days), seed=spec.seed)
        if log:
            log(f"simulated {s.requests} requests, {s.exposures} exposures, CTR {s.ctr:.3f} "
                f"in {time.perf_counter() - t0:.0f} s")
        with closing(DuckDBEngine.over_log(service.log.root)) as engine:
            join(engine, root / "samples")
    finally:
        service.close()
    return root


def eval_synthetic(kinds: Sequence[str], spec: SyntheticSpec, workdir: Path | None = None,
                   log: Log | None = None, progress: Progress | None = None
                   ) -> dict[str, Any]:
    from tuijian.serving.service import Service

    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic_data(workdir or Path(tmp), spec, log)
        service = Service(Settings(data_dir=root))
        try:
            samples = pq.read_table(root / "samples" / "samples.parquet")
            rows = load_rows(samples, service.store, service.profiles.table)
        finally:
            service.close()
        truth = _truth(root, samples.column("exposure_id").to_pylist(),
                       samples.column("item_id").to_numpy())
    fit_idx, test_idx = time_split(rows.ts, spec.test_fraction)
    fit, test = rows.take(fit_idx), rows.take(test_idx)
    oracle = binary_metrics(test.click, truth[test.sample_rows], test.user)
    out: dict[str, Any] = {
        "oracle_auc": oracle["auc"], "oracle_gauc": oracle["gauc"],
        "rows": {"train": len(fit), "test": len(test)}, "test_ctr": float(test.click.mean()),
        "cleaning": rows.report, "models": {}}
    preds = {}
    for kind in kinds:
        model, metrics = train(fit, TrainOptions(model=kind, valid_fraction=0.1), None,
                               progress)
        preds[kind] = model.predict(test.raw)
        m = binary_metrics(test.click, preds[kind], test.user)
        out["models"][kind] = {**m, "train_s": metrics["train_s"]}
        if log:
            log(f"synthetic {kind}: auc {m['auc']:.4f} (oracle {oracle['auc']:.4f})")
    out["models"].update(_fused(preds, test.click, test.user, out["models"]))
    return out


def eval_dataset(name: str, kinds: Sequence[str], data_dir: Path, log: Log | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    ds = CTR_DATASETS[name](data_dir)
    fit_idx, valid_idx = time_split(ds.train_ts, 0.1)
    out: dict[str, Any] = {"rows": {"train": len(ds.train_y), "test": len(ds.test_y)},
                           "models": {}}

    def part(idx: Any) -> dict[str, Any]:
        return {k: v[idx] for k, v in ds.train_raw.items()}

    preds = {}
    for kind in kinds:
        features, model, seconds = fit_model(
            ds.config, kind, "binary", part(fit_idx), ds.train_y[fit_idx], None,
            (part(valid_idx), ds.train_y[valid_idx], None), {}, progress)
        p = preds[kind] = model.predict(features.transform(ds.test_raw))
        m = binary_metrics(ds.test_y, p, ds.test_groups)
        out["models"][kind] = {**m, "train_s": seconds}
        if log:
            log(f"{name} {kind}: auc {m['auc']:.4f} gauc {m['gauc']:.4f}")
    out["models"].update(_fused(preds, ds.test_y, ds.test_groups, out["models"]))
    return out


def _fused(preds: dict[str, Any], y: Any, groups: Any,
           models: dict[str, Any]) -> dict[str, Any]:
    """The FUSED rank ids whose models were all evaluated; train time is their sum."""
    out = {}
    for name, formula in FUSED.items():
        parts = name.split("+")
        if all(p in preds for p in parts):
            p = compile_formula(formula, set(parts))({k: preds[k] for k in parts})
            out[name] = {**binary_metrics(y, p, groups), "formula": formula,
                         "train_s": sum(models[k]["train_s"] for k in parts)}
    return out


def run(kinds: Sequence[str], datasets: Sequence[str], data_dir: Path, spec: SyntheticSpec,
        workdir: Path | None = None, log: Log | None = None,
        progress: Progress | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in datasets:
        if name == "synthetic":
            out[name] = eval_synthetic(kinds, spec, workdir, log, progress)
        else:
            out[name] = eval_dataset(name, kinds, data_dir / name, log, progress)
    return {"datasets": out}


def _truth(root: Path, exposure_ids: list[str], item_ids: Any) -> Any:
    """The simulator's true P(click) of every sample row, aligned with the samples table."""
    con = duckdb.connect()
    truth = con.sql(f"SELECT exposure_id, item_id, p_click FROM "
                    f"read_parquet('{root}/sim/truth-*.parquet')").fetchnumpy()
    key = {(e, int(i)): float(p) for e, i, p in
           zip(truth["exposure_id"].tolist(), truth["item_id"].tolist(),
               truth["p_click"].tolist(), strict=True)}
    return np.array([key.get((e, int(i)), np.nan) for e, i in
                     zip(exposure_ids, item_ids.tolist(), strict=True)])
