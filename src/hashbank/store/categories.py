"""Grading taxonomies: US VICS 0-4, UK A/B/C, 'unknown', plus a bank's own categories."""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN = "unknown"

TAXONOMIES: dict[str, dict[str, str]] = {
    # Project VIC / US: what the field's tools write in VICS Category.
    "vics": {
        "0": "non-pertinent",
        "1": "CAM (child abuse material)",
        "2": "exploitive / age-difficult",
        "3": "CGI / animation",
        "4": "comparison",
    },
    # UK Sentencing Council categories for indecent images of children.
    "uk": {
        "A": "penetrative activity, sadism or bestiality",
        "B": "non-penetrative sexual activity",
        "C": "other indecent images",
    },
    # Only the bank's own categories (and 'unknown').
    "custom": {},
}


def allowed(taxonomy: str, custom: Mapping[str, str]) -> dict[str, str]:
    """Every category code a bank accepts, with its label."""
    if taxonomy not in TAXONOMIES:
        raise ValueError(f"unknown taxonomy {taxonomy!r} (known: {', '.join(TAXONOMIES)})")
    return {**TAXONOMIES[taxonomy], **custom, UNKNOWN: "not graded yet"}


class CategoryChecker:
    """Normalises category codes for one bank ('a' -> 'A'); built once per import, not per line."""

    def __init__(self, taxonomy: str, custom: Mapping[str, str]) -> None:
        self.taxonomy = taxonomy
        self.codes = allowed(taxonomy, custom)
        self._lookup = {code.lower(): code for code in self.codes}

    def __call__(self, code: object) -> str | None:
        if code is None:
            return None
        text = str(code).strip()
        if not text:
            return None
        try:
            return self._lookup[text.lower()]
        except KeyError:
            raise ValueError(
                f"category {text!r} is not in this bank's taxonomy ({self.taxonomy}: {', '.join(self.codes)})"
            ) from None
