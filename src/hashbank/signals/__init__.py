"""Signal types: one module each, registered on import of this package."""

import importlib
import pkgutil

from hashbank.signals.base import Computed, Content, SignalType
from hashbank.signals.registry import get, names, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Computed", "Content", "SignalType", "get", "names", "register"]
