"""The scan's progress bar: files/s, bytes/s, matches so far and ETA, on a terminal only."""

from __future__ import annotations

import time

from hashbank.scan.examine import Record


class ScanProgress:
    """Rich progress on a terminal (files/s, bytes/s, matches, ETA); nothing when not a TTY."""

    def __init__(self, enabled: bool, total_bytes: int, already: list[Record]) -> None:
        self.enabled = enabled
        self.files = sum(r.kind != "folder" for r in already)
        self.matches = sum(bool(r.matches) for r in already)
        self.started, self.new = time.monotonic(), 0
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("scan"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[files]} files {task.fields[rate]:.0f}/s"),
                TransferSpeedColumn(),
                TextColumn("[bold]{task.fields[matches]} matched"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            fields = {"files": self.files, "rate": 0.0, "matches": self.matches}
            self.task = self.bar.add_task("scan", total=total_bytes or None, **fields)

    def __enter__(self) -> ScanProgress:
        if self.enabled:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()

    def advance(self, found: list[Record], size: int) -> None:
        self.files += len(found)
        self.matches += sum(bool(r.matches) for r in found)
        if self.enabled:
            self.new += len(found)
            rate = self.new / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(self.task, advance=size, files=self.files, rate=rate, matches=self.matches)
