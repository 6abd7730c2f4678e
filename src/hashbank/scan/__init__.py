"""Forensic scan: hash and match every file in folders and archives, locally or on Dask; report."""

from hashbank.scan.archives import ScanLimits
from hashbank.scan.checkpoint import Checkpoint, CheckpointMismatch
from hashbank.scan.examine import Record, examine
from hashbank.scan.report import Report, build_report, write_csv, write_html, write_jsonl
from hashbank.scan.runner import ScanResult, bank_matcher, run_scan

__all__ = [
    "Checkpoint",
    "CheckpointMismatch",
    "Record",
    "Report",
    "ScanLimits",
    "ScanResult",
    "bank_matcher",
    "build_report",
    "examine",
    "run_scan",
    "write_csv",
    "write_html",
    "write_jsonl",
]
