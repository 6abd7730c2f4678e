"""Signal types by name; a module registers its types when imported."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from hashbank.signals.base import SignalType

_REGISTRY: dict[str, SignalType] = {}
T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: make one instance of the signal type known by its name."""
    instance = cls()
    _REGISTRY[instance.name] = instance
    return cls


def get(name: str) -> SignalType:
    """The signal type called ``name``; ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown signal type {name!r} (known: {', '.join(sorted(_REGISTRY))})") from None


def names() -> list[str]:
    """Registered signal names, in registration order."""
    return list(_REGISTRY)
