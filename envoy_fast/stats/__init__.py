"""Stats in shared memory: names from the data plane's tables, one row per worker."""
from .store import StatsLayout, StatsStore, stat_name_fragment

__all__ = ["StatsLayout", "StatsStore", "stat_name_fragment"]
