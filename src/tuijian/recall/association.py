"""Association recall: items co-clicked with the user's recent clicks (or the page's item),
from the `association` job's time-decayed co-click table."""

from __future__ import annotations

from tuijian.recall.neighbors import NeighborSource


class AssociationSource(NeighborSource):
    name = "association"
    model = "association"
