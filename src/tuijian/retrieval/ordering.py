"""Top-k ordering of search candidates: partial selection, then a sort of the few kept."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray, IntArray


def top(keys: FloatArray, ids: IntArray, limit: int) -> npt.NDArray[np.intp]:
    """Positions of the `limit` smallest keys, smallest first; equal keys go to the larger id
    (the newer listing), so a query answers the same way every time.

    `np.argpartition` selects in O(n) instead of sorting all n candidates; only when it cut
    through a run of equal keys are the tied ones re-chosen by id.
    """
    if keys.shape[0] > limit:
        part = np.argpartition(keys, limit - 1)[:limit]
        cut = keys[part].max()
        if np.count_nonzero(keys == cut) > np.count_nonzero(keys[part] == cut):
            better = np.flatnonzero(keys < cut)
            tied = np.flatnonzero(keys == cut)
            newest = np.argsort(-ids[tied], kind="stable")
            part = np.concatenate([better, tied[newest[: limit - better.shape[0]]]])
    else:
        part = np.arange(keys.shape[0])
    return part[np.lexsort((-ids[part], keys[part]))]
