"""INTERPOL ICSE hash exports: semicolon-separated CSV with a header, one image per row.

Columns are matched loosely: a column per hash (MD5, SHA1, SHA256, PhotoDNA, PDQ), the
image's ICSE id ('Image ID', 'ICSE ID', 'ID'), and optionally category / series / comments.
"""

from __future__ import annotations

from typing import ClassVar

from hashbank.exchange.base import Format, register
from hashbank.exchange.csvfile import ALIASES, CsvFormat


@register
class IcseFormat(CsvFormat):
    name = "icse"
    description = "INTERPOL ICSE semicolon CSV (import only)"
    delimiter = ";"
    aliases: ClassVar[dict[str, str]] = {
        **ALIASES,
        "imageid": "external_id",
        "icseid": "external_id",
        "mediaid": "external_id",
        "series": "tags",
        "seriesname": "tags",
    }
    write = Format.write  # import only
