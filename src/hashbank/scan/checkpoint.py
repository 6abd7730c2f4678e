"""A scan's progress on disk, so a killed scan continues where it stopped.

JSON Lines beside the report: a header naming the scan, then one line per
finished file with its records (paths, sizes, fingerprints, matches, reasons;
never media). Each line is flushed as it is written, so SIGKILL loses at most
the file in hand; a torn last line is dropped on resume.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

from hashbank.scan.examine import Record


class CheckpointMismatch(ValueError):
    """The checkpoint on disk belongs to a different scan."""


class Checkpoint:
    """Append-only log of finished files; ``open`` returns what an earlier run already did."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = json.loads(json.dumps({"hashbank_scan_checkpoint": 1, **header}))
        self._fh: IO[str] | None = None
        self._synced = time.monotonic()

    def open(self, resume: bool) -> dict[str, list[Record]]:
        """Start fresh, or (``resume``) load the finished files and append after them."""
        done: dict[str, list[Record]] = {}
        if resume and self.path.exists():
            raw = self.path.read_bytes()
            raw = raw[: raw.rfind(b"\n") + 1]  # drop a line torn by the kill
            lines = raw.decode().splitlines()
            if not lines or json.loads(lines[0]) != self.header:
                raise CheckpointMismatch(
                    f"checkpoint {self.path} belongs to a different scan; remove it or run without --resume"
                )
            for line in lines[1:]:
                entry = json.loads(line)
                done[entry["unit"]] = [Record.from_json(r) for r in entry["records"]]
            self.path.write_bytes(raw)
            self._fh = self.path.open("a", encoding="utf-8")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8")
            self._write(self.header)
        return done

    def add(self, unit: str, records: list[Record]) -> None:
        """Record one finished file (and its members)."""
        self._write({"unit": unit, "records": [r.to_json() for r in records]})

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self._fh.flush()
        if time.monotonic() - self._synced > 5:  # flush survives SIGKILL; fsync now and then survives power loss
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """The reports are written: the checkpoint has done its job."""
        self.close()
        self.path.unlink(missing_ok=True)
