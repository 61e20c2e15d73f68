"""In-process item search: term, range, geo and title filters over the item catalog."""

from tuijian.retrieval.base import RANGE_FIELDS, TERM_FIELDS, Query, SearchEngine, Sort
from tuijian.retrieval.engine import RetrievalEngine

__all__ = ["RANGE_FIELDS", "TERM_FIELDS", "Query", "RetrievalEngine", "SearchEngine", "Sort"]
