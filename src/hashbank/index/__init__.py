"""Nearest-neighbour search in Hamming space and exact lookups: incremental, persisted, memory-mapped."""

from hashbank.index.hamming import HammingIndex

__all__ = ["HammingIndex"]
