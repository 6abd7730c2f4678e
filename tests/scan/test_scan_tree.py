"""A seized-drive-like tree with 10% bad files, scanned against a real bank."""

from __future__ import annotations

import pytest

from hashbank.scan import Report, ScanResult, bank_matcher, build_report, run_scan
from tests.scan.conftest import Tree


@pytest.fixture(scope="module")
def scanned(tree: Tree, bank_url: str) -> ScanResult:
    return run_scan([str(tree.root)], match=bank_matcher(url=bank_url), workers=2)


@pytest.fixture(scope="module")
def report(scanned: ScanResult) -> Report:
    return build_report(scanned.records, scanned.elapsed)


def test_every_bad_file_listed_with_its_reason(tree: Tree, report: Report) -> None:
    if len(tree.bad) < 5:
        pytest.skip("no way to make a file unreadable here (root, and /proc/sys refuses nothing)")
    listed = {row["path"]: row["reason"] for row in report.unreadable}
    assert set(listed) == set(tree.bad)
    for path, reason in tree.bad.items():
        assert reason in listed[path], (path, listed[path])
    assert report.summary["files_seen"] == tree.files
    assert report.summary["unreadable"] == len(tree.bad)


def test_known_files_matched_with_bank_category_and_signal(tree: Tree, report: Report, scanned: ScanResult) -> None:
    matched = {row["path"]: row for row in report.matches}
    assert set(matched) == set(tree.positives)
    for path, (signal, category) in tree.positives.items():
        row = matched[path]
        assert (row["bank"], row["signal"], row["category"]) == ("hotline", signal, category)
        assert row["distance"] <= (31 if signal == "pdq" else 0)
    sha = {r.path: r.signals.get("sha256") for r in scanned.records}
    assert all(row["sha256"] == sha[row["path"]] for row in report.matches)
    categories = [c for _, c in tree.positives.values()]
    expected = {c: categories.count(c) for c in sorted(set(categories))}
    assert report.summary["matched_by_category"] == expected
    assert report.summary["matched_by_bank"] == {"hotline": expected}


def test_counts_images_and_archives_by_content(tree: Tree, report: Report) -> None:
    s = report.summary
    # 45 photos + 4 archive members + truncated + bomb (+ the unreadable one, which cannot be identified)
    assert s["images"] == 45 + 3 + 2
    assert s["archives"] == 2
    assert s["hashed"] == 45 + 3
    assert s["matched_files"] == len(tree.positives)


def test_bank_filter_and_unknown_bank(tree: Tree, bank_url: str) -> None:
    only_other = run_scan([str(tree.root / "DCIM")], match=bank_matcher(["other"], url=bank_url))
    assert not any(r.matches for r in only_other.records) and len(only_other.records) == 5
    with pytest.raises(ValueError, match="no such bank: nope"):
        bank_matcher(["hotline", "nope"], url=bank_url)


def test_dask_local_cluster_gives_the_same_result(tree: Tree, bank_url: str, scanned: ScanResult) -> None:
    on_dask = run_scan([str(tree.root)], match=bank_matcher(url=bank_url), workers=2, dask="local")
    assert [r.to_json() for r in on_dask.records] == [r.to_json() for r in scanned.records]


def test_existing_dask_cluster_by_address(tree: Tree, bank_url: str, scanned: ScanResult) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        remote = run_scan([str(tree.root)], match=bank_matcher(url=bank_url), dask=cluster.scheduler_address)
    assert [r.to_json() for r in remote.records] == [r.to_json() for r in scanned.records]
