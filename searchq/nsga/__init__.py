"""NSGA-II search of subnets (and bits) on a trained elastic supernet.

>>> import searchq
>>> result = searchq.nsga.search("runs/elastic-digits", evals=200)   # doctest: +SKIP
"""

from __future__ import annotations

from searchq.nsga.indicators import hypervolume, non_dominated
from searchq.nsga.problem import Encoding, SubnetProblemCore
from searchq.nsga.search import ALGORITHMS, search

__all__ = ["ALGORITHMS", "Encoding", "SubnetProblemCore", "hypervolume", "non_dominated", "search"]
