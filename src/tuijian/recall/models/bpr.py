"""Bayesian Personalized Ranking (Rendle et al. 2009) through the `implicit` library, on CPU."""

from __future__ import annotations

from typing import Self

import scipy.sparse as sp
from implicit.cpu.bpr import BayesianPersonalizedRanking

from tuijian.recall.models.factors import FactorModel


class BPR(FactorModel):
    """Pairwise ranking factorization; item factors carry a bias column (implicit's layout).

    With num_threads > 1 implicit's SGD is lock-free (Hogwild), so only num_threads=1 makes a
    seeded fit bit-for-bit reproducible; that is the default.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.005,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, X: sp.csr_matrix) -> Self:
        return self._fit_implicit(
            BayesianPersonalizedRanking, X,
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
