"""Formats that move entries in and out of banks; one module per format, registered on import."""

import importlib
import pkgutil

from hashbank.exchange.base import Format, ReadOptions, format_names, get_format, register
from hashbank.exchange.transfer import ImportResult, export_bank, import_file, import_stream

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Format",
    "ImportResult",
    "ReadOptions",
    "export_bank",
    "format_names",
    "get_format",
    "import_file",
    "import_stream",
    "register",
]
