"""Exchange tests use the store fixtures: both backends."""

from tests.store.conftest import store, store_url

__all__ = ["store", "store_url"]
