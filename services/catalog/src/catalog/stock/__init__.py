"""The saga's stock commands: reserve all-or-nothing, release, commit, return.

Every command is answered once per operation and a replay (even under a new message id) repeats
the answer without moving stock again. Rows are always touched in product-id order, so two
reservations that share products can never deadlock.
"""

from catalog.stock.release import release_stock
from catalog.stock.reserve import Outcome, reserve_stocks
from catalog.stock.sale import commit_stock, return_stock

__all__ = ["Outcome", "commit_stock", "release_stock", "reserve_stocks", "return_stock"]
