"""The embedding models (PyTorch): FM, FNN, Wide & Deep, DeepFM and ESMM.

All read one id-embedding table (every field's ids share the global id space) and train in one
loop: Adam over shuffled minibatches from a seeded generator, early stopping on the validation
loss. A regression target is standardized for training, so dwell times in seconds need no
other learning rate than click labels. Weights are saved as a safetensors state dict, with the
feature layout beside them, and never as a pickled module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tuijian.domain import FloatArray, IntArray
from tuijian.rank.features.featureset import FeatureLayout, FeatureMatrix
from tuijian.rank.models.base import (
    ModelFileError,
    Progress,
    Task,
    TrainSet,
    check_task,
    load_arrays,
    require,
    save_arrays,
    sigmoid,
)

WEIGHTS = "weights.safetensors"
LAYOUT = "_layout"  # n_dense then every field's size: a file built for another layout is refused

DEFAULTS: dict[str, Any] = {
    "epochs": 10, "batch_size": 512, "lr": 2e-3, "embed_dim": 8, "hidden": (64, 32),
    "weight_decay": 1e-2, "patience": 2, "seed": 0,
}


class Embeddings(nn.Module):
    """One k-vector per id (a single table: every field's ids share the global id space), and
    for the FM views one per dense feature, scaled by its value so that a dense feature takes
    part in the pairwise interactions as a field of its own. A net gathers the id vectors
    once per batch (`ids(cat)`) and builds its views from them."""

    def __init__(self, layout: FeatureLayout, k: int, dense_fields: bool) -> None:
        super().__init__()
        self.ids = nn.Embedding(layout.n_ids, k)
        nn.init.normal_(self.ids.weight, std=0.01)
        self.dense: nn.Parameter | None = (
            nn.Parameter(torch.randn(layout.n_dense, k) * 0.01) if dense_fields else None)

    def fields(self, v: Tensor, dense: Tensor) -> Tensor:
        """[n, fields + dense, k]: the vectors FM pairs."""
        if self.dense is None:
            return v
        return torch.cat([v, dense.unsqueeze(-1) * self.dense], dim=1)


def deep_input(v: Tensor, dense: Tensor) -> Tensor:
    """[n, fields·k + dense]: the id vectors side by side, then the raw dense values."""
    return torch.cat([v.flatten(1), dense], dim=1)


class FirstOrder(nn.Module):
    """The linear terms field by field: w[id] for each categorical field, w_j·x_j for each
    dense value. FM sums them; FNN feeds them to its MLP beside the vectors."""

    def __init__(self, layout: FeatureLayout) -> None:
        super().__init__()
        self.ids = nn.Embedding(layout.n_ids, 1)
        nn.init.zeros_(self.ids.weight)
        self.dense = nn.Parameter(torch.zeros(layout.n_dense))

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        return torch.cat([self.ids(cat).squeeze(-1), dense * self.dense], dim=1)


def fm_pairs(v: Tensor) -> Tensor:
    """Σ_{i<j} <v_i, v_j> in O(fields·k): ½ Σ_k ((Σ_i v_ik)² − Σ_i v_ik²) (Rendle, 2010)."""
    s = v.sum(dim=1)
    return 0.5 * (s * s - (v * v).sum(dim=1)).sum(dim=1)


def mlp(n_in: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, 1))


class Net(nn.Module):
    """A network kind: built from the layout and the params, maps (dense, cat) to logits."""

    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__()


class FMNet(Net):
    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__(layout, p)
        self.bias = nn.Parameter(torch.zeros(1))
        self.linear = FirstOrder(layout)
        self.embed = Embeddings(layout, int(p["embed_dim"]), dense_fields=True)

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        v = self.embed.fields(self.embed.ids(cat), dense)
        return self.bias + self.linear(dense, cat).sum(dim=1) + fm_pairs(v)


class FNNNet(Net):
    """Zhang et al. (2016): each field as (w_i, v_i), as an FM learnt them, into an MLP."""

    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__(layout, p)
        k, n = int(p["embed_dim"]), layout.n_fields + layout.n_dense
        self.linear = FirstOrder(layout)
        self.embed = Embeddings(layout, k, dense_fields=True)
        self.mlp = mlp(n * (k + 1), p["hidden"])

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        v = self.embed.fields(self.embed.ids(cat), dense)
        z = torch.cat([self.linear(dense, cat), v.flatten(1)], dim=1)
        return self.mlp(z).squeeze(-1)


def deep_width(layout: FeatureLayout, p: dict[str, Any]) -> int:
    return layout.n_fields * int(p["embed_dim"]) + layout.n_dense


class WideDeepNet(Net):
    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__(layout, p)
        self.linear = FirstOrder(layout)
        self.embed = Embeddings(layout, int(p["embed_dim"]), dense_fields=False)
        self.mlp = mlp(deep_width(layout, p), p["hidden"])

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        deep = self.mlp(deep_input(self.embed.ids(cat), dense)).squeeze(-1)
        return self.linear(dense, cat).sum(dim=1) + deep


class DeepFMNet(Net):
    """Guo et al. (2017): an FM and an MLP over the same vectors, logits summed."""

    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__(layout, p)
        self.linear = FirstOrder(layout)
        self.embed = Embeddings(layout, int(p["embed_dim"]), dense_fields=True)
        self.mlp = mlp(deep_width(layout, p), p["hidden"])

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        v = self.embed.ids(cat)
        deep = self.mlp(deep_input(v, dense)).squeeze(-1)
        return (self.linear(dense, cat).sum(dim=1) + fm_pairs(self.embed.fields(v, dense))
                + deep)


class ESMMNet(Net):
    """Ma et al. (2018): a CTR and a CVR tower over shared vectors; [n, 2] logits."""

    def __init__(self, layout: FeatureLayout, p: dict[str, Any]) -> None:
        super().__init__(layout, p)
        self.embed = Embeddings(layout, int(p["embed_dim"]), dense_fields=False)
        self.ctr = mlp(deep_width(layout, p), p["hidden"])
        self.cvr = mlp(deep_width(layout, p), p["hidden"])

    def forward(self, dense: Tensor, cat: Tensor) -> Tensor:
        z = deep_input(self.embed.ids(cat), dense)
        return torch.cat([self.ctr(z), self.cvr(z)], dim=1)


@dataclass(slots=True)
class Batch:
    dense: Tensor
    cat: Tensor
    y: Tensor
    click: Tensor | None
    weight: Tensor | None

    @staticmethod
    def of(t: TrainSet, target: tuple[float, float]) -> Batch:
        mean, std = target
        return Batch(torch.from_numpy(np.ascontiguousarray(t.x.dense, np.float32)),
                     torch.from_numpy(np.ascontiguousarray(t.x.cat, np.int64)),
                     torch.from_numpy(((np.asarray(t.y) - mean) / std).astype(np.float32)),
                     _tensor(t.click), _tensor(t.weight))

    def take(self, rows: Tensor) -> Batch:
        return Batch(self.dense[rows], self.cat[rows], self.y[rows],
                     None if self.click is None else self.click[rows],
                     None if self.weight is None else self.weight[rows])


def _tensor(a: FloatArray | None) -> Tensor | None:
    return None if a is None else torch.from_numpy(np.asarray(a, np.float32))


Loss = Callable[[Tensor, Batch], Tensor]  # (net output, batch) → per-row loss


def train_net(net: nn.Module, loss: Loss, train: Batch, valid: Batch | None,
              p: dict[str, Any], progress: Progress | None, what: str) -> None:
    """The one training loop. Weight decay (L2 in Adam's gradient) on the id tables only: one
    row per rare id is where these models overfit, not the few dense MLP weights. Measured on
    the synthetic CTR problem of the tests, Adam's coupled L2 beat decoupled decay (AdamW),
    which shrinks a row by only lr·decay per step and barely regularized at all."""
    tables = {id(q) for m in net.modules() if isinstance(m, nn.Embedding) for q in m.parameters()}
    opt = torch.optim.Adam(
        [{"params": [q for q in net.parameters() if id(q) in tables],
          "weight_decay": float(p["weight_decay"])},
         {"params": [q for q in net.parameters() if id(q) not in tables], "weight_decay": 0.0}],
        lr=float(p["lr"]))
    gen = torch.Generator().manual_seed(int(p["seed"]))
    n, size, epochs = len(train.y), int(p["batch_size"]), int(p["epochs"])
    best, best_state, stale = math.inf, None, 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, size):
            b = train.take(order[start:start + size])
            opt.zero_grad(set_to_none=True)
            _mean(loss(net(b.dense, b.cat), b), b.weight).backward()
            opt.step()
        note = f"{what}: epoch {epoch + 1}/{epochs}"
        if valid is not None:
            score = _valid_loss(net, loss, valid)
            note += f", valid loss {score:.4f}"
            if score < best - 1e-5:
                best, stale = score, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
        if progress:
            progress(note, (epoch + 1) / epochs)
        if stale >= int(p["patience"]):
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    if progress:
        progress(f"{what}: done", 1.0)


def _valid_loss(net: nn.Module, loss: Loss, valid: Batch, chunk: int = 65536) -> float:
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(valid.y), chunk):
            b = valid.take(torch.arange(start, min(start + chunk, len(valid.y))))
            w = torch.ones_like(b.y) if b.weight is None else b.weight
            total += float((loss(net(b.dense, b.cat), b) * w).sum())
            weight += float(w.sum())
    return total / weight


def _mean(per_row: Tensor, weight: Tensor | None) -> Tensor:
    return per_row.mean() if weight is None else (per_row * weight).sum() / weight.sum()


def progress_phase(progress: Progress | None, lo: float, hi: float,
                   prefix: str = "") -> Progress | None:
    """Report one stage of a longer fit as the part [lo, hi] of its progress."""
    if progress is None:
        return None
    return lambda note, done: progress(prefix + note, lo + (hi - lo) * done)


class DeepModel:
    """What every network kind shares: params, the training loop, predict, save and load."""

    kind: ClassVar[str]
    net_class: ClassVar[type[Net]]
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "regression")

    def __init__(self, layout: FeatureLayout, task: Task, params: dict[str, Any]) -> None:
        check_task(self.kind, task, self.tasks)
        unknown = sorted(set(params) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"model {self.kind!r}: unknown params {unknown} "
                             f"(known: {', '.join(DEFAULTS)})")
        self.layout, self.task = layout, task
        self.params = {**DEFAULTS, **params}
        self.params["hidden"] = tuple(int(h) for h in self.params["hidden"])
        # a seeded init that leaves the process-wide generator alone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.params["seed"]))
            self.net = self.net_class(layout, self.params)
        # (mean, std) of a regression target; predictions are mapped back through it
        self.net.register_buffer("target", torch.tensor([0.0, 1.0]))

    def loss(self, out: Tensor, b: Batch) -> Tensor:
        if self.task == "binary":
            return F.binary_cross_entropy_with_logits(out, b.y, reduction="none")
        return (out - b.y) ** 2

    def output(self, out: Tensor) -> Tensor:
        """The net's output → the predicted logit (or standardized value)."""
        return out

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        target = (0.0, 1.0)
        if self.task == "regression":
            y = np.asarray(train.y, np.float64)
            target = (float(y.mean()), float(y.std()) or 1.0)
        self.net.get_buffer("target").copy_(torch.tensor(target))
        train_net(self.net, self.loss, Batch.of(train, target),
                  None if valid is None else Batch.of(valid, target),
                  self.params, progress, self.kind)

    def predict(self, x: FeatureMatrix) -> FloatArray:
        with torch.inference_mode():
            out = self.output(self.net(torch.from_numpy(np.ascontiguousarray(x.dense, np.float32)),
                                       torch.from_numpy(np.ascontiguousarray(x.cat, np.int64))))
        z = out.numpy().astype(np.float64)
        if self.task == "binary":
            return sigmoid(z)
        mean, std = self.net.get_buffer("target").tolist()
        return z * std + mean

    def save(self, path: Path) -> None:
        arrays = {k: v.detach().numpy() for k, v in self.net.state_dict().items()}
        arrays[LAYOUT] = _layout_array(self.layout)
        save_arrays(path / WEIGHTS, arrays)

    @classmethod
    def load(cls, path: Path, layout: FeatureLayout, task: Task,
             params: dict[str, Any]) -> Self:
        try:
            model = cls(layout, task, params)
        except ValueError as exc:
            raise ModelFileError(str(exc)) from None
        state = model.net.state_dict()
        expect = {k: tuple(v.shape) for k, v in state.items()}
        expect[LAYOUT] = (layout.n_fields + 1,)
        arrays = load_arrays(require(path / WEIGHTS), expect)
        extra = sorted(set(arrays) - set(expect))
        if extra:
            raise ModelFileError(f"{WEIGHTS}: tensors {extra[:3]} are not a {cls.kind} model's")
        if not np.array_equal(arrays.pop(LAYOUT), _layout_array(layout)):
            raise ModelFileError(f"{WEIGHTS}: built for another feature layout")
        model.net.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        return model


def _layout_array(layout: FeatureLayout) -> IntArray:
    return np.array([layout.n_dense, *layout.field_sizes], np.int64)


class FMModel(DeepModel):
    kind: ClassVar[str] = "fm"
    net_class = FMNet


class FNNModel(DeepModel):
    """An FM trains first; its vectors and linear weights become the FNN's inputs' starting
    point, then the whole network trains end to end. Without the FM start it is a plain MLP."""

    kind: ClassVar[str] = "fnn"
    net_class = FNNNet

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        fm = FMModel(self.layout, self.task, self.params)
        fm.fit(train, valid, progress_phase(progress, 0.0, 0.5, "fnn: "))
        net, fm_net = cast(FNNNet, self.net), cast(FMNet, fm.net)
        net.embed.load_state_dict(fm_net.embed.state_dict())
        net.linear.load_state_dict(fm_net.linear.state_dict())
        super().fit(train, valid, progress_phase(progress, 0.5, 1.0))


class WideDeepModel(DeepModel):
    kind: ClassVar[str] = "wide_deep"
    net_class = WideDeepNet


class DeepFMModel(DeepModel):
    kind: ClassVar[str] = "deepfm"
    net_class = DeepFMNet


NEEDS_CLICK = "esmm: needs the click label (TrainSet.click) beside the conversions"


class ESMMModel(DeepModel):
    """Conversion trained over all exposures: `y` is the conversion, `click` the click. The
    CVR tower is never fit on clicks alone (the sample selection bias ESMM removes); it learns
    through pCTCVR = pCTR·pCVR. Predicts pCVR, the conversion probability given a click."""

    kind: ClassVar[str] = "esmm"
    net_class = ESMMNet
    tasks: ClassVar[tuple[Task, ...]] = ("binary",)

    def loss(self, out: Tensor, b: Batch) -> Tensor:
        if b.click is None:
            raise ValueError(NEEDS_CLICK)
        a, c = out[:, 0], out[:, 1]
        ctcvr = b.y * b.click
        # log(1 − σ(a)σ(c)) = log(e^-a + e^-c + e^-(a+c)) − softplus(-a) − softplus(-c),
        # finite where 1 − σ(a)σ(c) underflows
        log_not = (torch.logsumexp(torch.stack([-a, -c, -a - c]), dim=0)
                   - F.softplus(-a) - F.softplus(-c))
        log_yes = F.logsigmoid(a) + F.logsigmoid(c)
        ctr_loss = F.binary_cross_entropy_with_logits(a, b.click, reduction="none")
        return ctr_loss - ctcvr * log_yes - (1.0 - ctcvr) * log_not

    def output(self, out: Tensor) -> Tensor:
        return out[:, 1]

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        if train.click is None or (valid is not None and valid.click is None):
            raise ValueError(NEEDS_CLICK)
        super().fit(train, valid, progress)
