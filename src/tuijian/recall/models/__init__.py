"""Interaction models (CF, factorization, closed forms) shared by recall sources and evaluation."""
