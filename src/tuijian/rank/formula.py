"""The fusion formula of a rank id, e.g. `ctr * cvr ** 0.5 * dwell ** 0.2`.

Parsed once at load into a closure over numpy arrays. Hand-written over Python's `ast` because
the formula comes from a config file and must never be `eval`'d: only numbers, the names of the
rank id's models, + - * / **, unary minus and a few elementwise functions are accepted.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tuijian.domain import FloatArray

Formula = Callable[[Mapping[str, FloatArray]], FloatArray]

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
    ast.Pow: np.power,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "log": np.log, "log1p": np.log1p, "exp": np.exp, "sqrt": np.sqrt, "min": np.minimum,
    "max": np.maximum,
}


def compile_formula(text: str, names: set[str]) -> Formula:
    """A function of {name: scores} → fused scores; ValueError naming what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"formula {text!r}: {exc.msg}") from None
    return _compile(tree.body, names, text)


def _compile(node: ast.AST, names: set[str], text: str) -> Formula:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) \
            and not isinstance(node.value, bool):
        value = float(node.value)
        return lambda env: np.asarray(value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"formula {text!r}: unknown name {node.id!r} "
                             f"(the rank id's models: {', '.join(sorted(names))})")
        key = node.id
        return lambda env: env[key]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _compile(node.left, names, text), _compile(node.right, names, text)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _compile(node.operand, names, text)
        return lambda env: np.negative(inner(env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in _FUNCTIONS and not node.keywords:
        fn = _FUNCTIONS[node.func.id]
        args = [_compile(a, names, text) for a in node.args]
        return lambda env: fn(*(a(env) for a in args))
    raise ValueError(f"formula {text!r}: {ast.unparse(node)!r} is not allowed "
                     f"(numbers, model names, + - * / **, {', '.join(_FUNCTIONS)})")
