"""Banks of fingerprints with grading and provenance, and the change feed that keeps indexes in sync."""

from hashbank.store.api import Store, open_store
from hashbank.store.categories import TAXONOMIES, UNKNOWN
from hashbank.store.model import AddResult, AlreadyExists, Bank, Change, Entry, NewEntry, NotFound

__all__ = [
    "TAXONOMIES",
    "UNKNOWN",
    "AddResult",
    "AlreadyExists",
    "Bank",
    "Change",
    "Entry",
    "NewEntry",
    "NotFound",
    "Store",
    "open_store",
]
