"""Two-tower retrieval (Covington et al. 2016; Yi et al. 2019): item vectors in an ANN index,
user vectors computed at request time from the user's history.

The user tower reads only the history row (a weighted mean of its items' input embeddings, then
an MLP), never a user id, so a user unseen at fit time, or one who clicked a minute ago, is
embedded from what they did with no refit. Training mirrors serving: each example holds one of a
user's items out and asks the tower to find it from the rest (leave-one-out), against the other
targets of the batch as negatives (in-batch sampled softmax), with the logQ correction that keeps
popular items, over-sampled as negatives, from being pushed down (without it, validation nDCG
on MovieLens falls by more than half).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
from torch import nn

from tuijian.domain import FloatArray, IntArray
from tuijian.recall.ann import EXACT_BELOW, ItemIndex
from tuijian.recall.models.base import ModelBase

Float32Array = npt.NDArray[np.float32]


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op pool is process-wide: set it for the fit, then give it back."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mlp(width: int, hidden: int) -> nn.Module:
    """width → hidden → width; the towers add it to their input (a residual block)."""
    if hidden <= 0:
        return nn.Identity()
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))


class _Towers(nn.Module):
    """Both towers; the history side has its own item table, distinct from the target side."""

    def __init__(self, n_items: int, n_features: int, factors: int, hidden: int) -> None:
        super().__init__()
        self.item_ids = nn.Embedding(n_items, factors)
        self.item_features = nn.Linear(n_features, factors, bias=False) if n_features else None
        self.item_mlp = _mlp(factors, hidden)
        self.history = nn.EmbeddingBag(n_items, factors, mode="sum")
        self.user_mlp = _mlp(factors, hidden)
        for table in (self.item_ids.weight, self.history.weight):
            nn.init.normal_(table, std=0.1)

    def items(self, ids: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        x = self.item_ids(ids)
        if self.item_features is not None and features is not None:
            x = x + self.item_features(features[ids])
        return nn.functional.normalize(x + self.item_mlp(x), dim=-1)

    def users(
        self, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Weights must already sum to one per bag: the bag's sum is then its weighted mean."""
        x = self.history(items, offsets, per_sample_weights=weights)
        return nn.functional.normalize(x + self.user_mlp(x), dim=-1)


def _bags(
    items: IntArray, weights: FloatArray, bag: IntArray, n_bags: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs from flat (item, weight, bag) triples sorted by bag."""
    totals = np.bincount(bag, weights=weights, minlength=n_bags)[bag]
    norm = np.divide(weights, totals, out=np.zeros(weights.shape), where=totals > 0)
    offsets = np.r_[0, np.cumsum(np.bincount(bag, minlength=n_bags))[:-1]]
    return (
        torch.from_numpy(np.asarray(items, dtype=np.int64)),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.from_numpy(norm.astype(np.float32)),
    )


@dataclass(slots=True)
class _Examples:
    """What every training batch reads: the history matrix and per-fit constants."""

    X: sp.csr_matrix
    users: IntArray  # the user of each stored interaction, aligned with X.indices
    log_q: torch.Tensor  # log share of the targets per item: the in-batch sampling odds
    user_weight: torch.Tensor  # per-user loss weight, history length ** -user_balance
    features: torch.Tensor | None


class TwoTower(ModelBase):
    """Item tower (id embedding + optional dense features → MLP) and a history-fed user tower,
    both L2-normalised, so the ANN's inner product is their cosine.

    Defaults are the values chosen on a validation split of MovieLens 100K.
    temperature: softmax temperature on the cosines; smaller sharpens and overfits sooner.
    history_dropout: share of the remaining history hidden in each example; without it the
    user tower memorises histories and validation nDCG collapses after a few epochs.
    user_balance: examples weigh history length ** -user_balance: 0 counts interactions alike,
    1 counts users alike, as per-user metrics do (and best on MovieLens validation).
    exact_below: catalog size under which the ANN index is an exact scan.
    """

    name = "two_tower"
    _state = ("towers_", "item_vectors_", "index_")

    def __init__(
        self,
        factors: int = 128,
        hidden: int = 256,
        temperature: float = 0.2,
        logq_correction: bool = True,
        history_dropout: float = 0.2,
        user_balance: float = 1.0,
        epochs: int = 10,
        batch_size: int = 1024,
        learning_rate: float = 0.003,
        weight_decay: float = 0.0,
        random_state: int = 42,
        num_threads: int = 2,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        self.factors = factors
        self.hidden = hidden
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.history_dropout = history_dropout
        self.user_balance = user_balance
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.num_threads = num_threads
        self.exact_below = exact_below

    def fit(self, X: sp.csr_matrix, item_features: npt.ArrayLike | None = None) -> Self:
        """Learn both towers from X (users × items weights); `item_features`: items × features.

        Deterministic for a given random_state and num_threads: numpy draws the batches and a
        forked torch RNG initialises the weights, leaving the caller's torch RNG untouched.
        """
        X = sp.csr_matrix(X, dtype=np.float64)
        X.sum_duplicates()
        X.eliminate_zeros()
        features = None
        if item_features is not None:
            if sp.issparse(item_features):
                item_features = sp.csr_matrix(item_features).toarray()
            features = torch.as_tensor(np.asarray(item_features, dtype=np.float32))
            if features.ndim != 2 or features.shape[0] != X.shape[1]:
                raise ValueError(f"item_features {tuple(features.shape)} for {X.shape[1]} items")
        lengths = np.maximum(np.diff(X.indptr), 1).astype(np.float32)
        examples = _Examples(
            X=X,
            users=np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr)),
            log_q=torch.from_numpy(np.log(np.maximum(X.getnnz(axis=0), 1) / max(X.nnz, 1))).float(),
            user_weight=torch.from_numpy(lengths**-self.user_balance),
            features=features,
        )
        rng = np.random.default_rng(self.random_state)
        with _torch_threads(self.num_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            n_features = 0 if features is None else features.shape[1]
            towers = _Towers(X.shape[1], n_features, self.factors, self.hidden)
            optimizer = torch.optim.Adam(
                towers.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            for _ in range(self.epochs):
                order = rng.permutation(X.nnz)
                # Stop one short: a lone last example would have no negatives at all.
                for start in range(0, order.size - 1, self.batch_size):
                    loss = self._loss(towers, examples, order[start : start + self.batch_size], rng)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            towers.eval()
            with torch.inference_mode():
                vectors = towers.items(torch.arange(X.shape[1]), features)
        self.towers_ = towers
        self.item_vectors_: Float32Array = vectors.numpy().astype(np.float32)
        self.index_ = ItemIndex.build(self.item_vectors_, exact_below=self.exact_below)
        return self

    def _loss(
        self, towers: _Towers, ex: _Examples, batch: IntArray, rng: np.random.Generator
    ) -> torch.Tensor:
        """Sampled softmax of each held-out target against the batch's other targets."""
        users, targets = ex.users[batch], ex.X.indices[batch].astype(np.int64)
        rows = ex.X[users]
        bag = np.repeat(np.arange(users.size), np.diff(rows.indptr))
        keep = rows.indices != targets[bag]
        if self.history_dropout > 0:
            keep &= rng.random(bag.size) >= self.history_dropout
        u = towers.users(*_bags(rows.indices[keep], rows.data[keep], bag[keep], users.size))
        v = towers.items(torch.from_numpy(targets), ex.features)
        logits = u @ v.T / self.temperature
        if self.logq_correction:
            logits = logits - ex.log_q[targets][None, :]
        # Another row's target that this user also holds is no negative ("accidental hit").
        hits = rows[:, targets].toarray() != 0
        np.fill_diagonal(hits, False)
        logits = logits.masked_fill(torch.from_numpy(hits), float("-inf"))
        loss = nn.functional.cross_entropy(logits, torch.arange(users.size), reduction="none")
        weight = ex.user_weight[users]
        return (loss * weight).sum() / weight.sum()

    @property
    def n_items(self) -> int:
        return int(self.item_vectors_.shape[0])

    def user_vectors(self, X: sp.csr_matrix) -> Float32Array:
        """One unit vector per row of X (history weights); an empty row gets the towers' bias
        direction, a fixed vector that is the same for every such user."""
        X = sp.csr_matrix(X, dtype=np.float64)
        if X.shape[1] != self.n_items:
            raise ValueError(f"X has {X.shape[1]} item columns, the model {self.n_items}")
        bag = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        with torch.inference_mode():
            out = self.towers_.users(*_bags(X.indices, X.data, bag, X.shape[0]))
        return out.numpy().astype(np.float32, copy=False)

    def user_vector(
        self, history_items: IntArray, weights: FloatArray | None = None
    ) -> Float32Array:
        """One request's user vector from its history item indexes (weights default to 1)."""
        items = np.asarray(history_items, dtype=np.int64)
        w = np.ones(items.size) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != items.shape:
            raise ValueError(f"{w.size} weights for {items.size} history items")
        total = w.sum()
        norm = (w / total if total > 0 else np.zeros_like(w)).astype(np.float32)
        offsets = torch.zeros(1, dtype=torch.int64)
        with torch.inference_mode():
            out = self.towers_.users(torch.from_numpy(items), offsets, torch.from_numpy(norm))
        return out.numpy()[0]

    def recommend(
        self, users: IntArray, X: sp.csr_matrix, k: int, exclude_seen: bool = True
    ) -> tuple[IntArray, FloatArray]:
        """Embed each X row with the user tower and search the item index. `users` only has
        to match X's rows: the towers know histories, not user ids, so any index is valid."""
        users = np.asarray(users, dtype=np.int64)
        X = sp.csr_matrix(X)
        if X.shape[0] != users.size:
            raise ValueError(f"X has {X.shape[0]} rows for {users.size} users")
        return self.index_.search(self.user_vectors(X), k, X if exclude_seen else None)

    def similar_items(self, items: IntArray, k: int) -> tuple[IntArray, FloatArray]:
        """Cosine between item-tower vectors, the item itself excluded."""
        items = np.asarray(items, dtype=np.int64)
        n = items.size
        itself = sp.csr_matrix((np.ones(n), (np.arange(n), items)), shape=(n, self.n_items))
        return self.index_.search(self.item_vectors_[items], k, itself)

    def save(self, path: str | Path) -> None:
        """`params.json`, `towers.pt` (a state dict), `item_vectors.npy` and `items.faiss`."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        feats = self.towers_.item_features
        meta: dict[str, Any] = {
            "model": self.name,
            "params": self.get_params(),
            "shape": {"n_items": self.n_items, "n_features": feats.in_features if feats else 0},
        }
        (out / "params.json").write_text(json.dumps(meta, indent=2) + "\n")
        torch.save(self.towers_.state_dict(), out / "towers.pt")
        np.save(out / "item_vectors.npy", self.item_vectors_)
        self.index_.save(out / "items.faiss")

    @classmethod
    def load(cls, path: str | Path) -> Self:
        src = Path(path)
        model, meta = cls.unfitted_from(src)
        shape = meta["shape"]
        towers = _Towers(shape["n_items"], shape["n_features"], model.factors, model.hidden)
        towers.load_state_dict(torch.load(src / "towers.pt", weights_only=True))
        model.towers_ = towers.eval()
        model.item_vectors_ = np.load(src / "item_vectors.npy", allow_pickle=False)
        model.index_ = ItemIndex.load(src / "items.faiss")
        return model
