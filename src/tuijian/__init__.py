"""Tuijian (推荐): a recommendation system service for large marketplaces."""

__version__ = "0.1.0"
