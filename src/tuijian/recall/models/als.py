"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through the `implicit` library, on CPU."""

from __future__ import annotations

from typing import Self

import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares

from tuijian.recall.models.factors import FactorModel


class ALS(FactorModel):
    """Factorizes confidence-weighted interactions: confidence = alpha · weight.

    Defaults are near the ml-100k validation optimum; implicit's own regularization default (0.01)
    is orders of magnitude too weak for binary interaction data of that density.

    num_threads is implicit's own pool; BLAS is pinned to one thread during the fit, as
    implicit recommends (its pool and BLAS's would otherwise fight over the cores).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 50.0,
        alpha: float = 10.0,
        iterations: int = 15,
        random_state: int = 42,
        num_threads: int = 1,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, X: sp.csr_matrix) -> Self:
        return self._fit_implicit(
            AlternatingLeastSquares, X,
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
