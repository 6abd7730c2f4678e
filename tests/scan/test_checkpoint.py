"""The checkpoint survives a kill mid-line and refuses another scan's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from hashbank.scan import Checkpoint, CheckpointMismatch, Record


def test_torn_last_line_is_dropped_and_appending_continues(tmp_path: Path) -> None:
    path = tmp_path / "r.html.checkpoint"
    first = Checkpoint(path, {"paths": ["/evidence"]})
    assert first.open(resume=False) == {}
    first.add("/evidence/a.jpg", [Record("/evidence/a.jpg", "image", 10, {"md5": "0" * 32})])
    first.close()
    with path.open("a") as fh:
        fh.write('{"unit": "/evidence/b.jpg", "records": [{"pa')  # killed while writing
    again = Checkpoint(path, {"paths": ["/evidence"]})
    done = again.open(resume=True)
    assert list(done) == ["/evidence/a.jpg"] and done["/evidence/a.jpg"][0].signals == {"md5": "0" * 32}
    again.add("/evidence/c.jpg", [Record("/evidence/c.jpg", "other", 3, error="not an image or video")])
    again.close()
    reopened = Checkpoint(path, {"paths": ["/evidence"]}).open(resume=True)
    assert sorted(reopened) == ["/evidence/a.jpg", "/evidence/c.jpg"]
    with pytest.raises(CheckpointMismatch):
        Checkpoint(path, {"paths": ["/elsewhere"]}).open(resume=True)
