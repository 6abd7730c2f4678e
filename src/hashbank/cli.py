"""The hashbank command line: thin, every command calls the library.

JSON Lines with --json, aligned text otherwise; exit 0 on success, 1 when
some item failed (or matched, with --fail-on-match), 2 on bad usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hashbank.media import MediaLimits
from hashbank.signals.compute import hash_files, iter_files, resolve_signals

if TYPE_CHECKING:
    from hashbank.store import Store

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def usage_error(message: str) -> typer.Exit:
    """Print a usage problem and give the exit code for bad usage (2)."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def parse_signals(text: str | None) -> list[str] | None:
    """'pdq,md5' -> ['pdq', 'md5'] after checking each name is known."""
    if not text:
        return None
    try:
        return resolve_signals([s.strip() for s in text.split(",") if s.strip()])
    except ValueError as exc:
        raise usage_error(str(exc)) from None


def item_error(label: object, error: object) -> None:
    """One item of a batch that failed: its name and the reason, and the batch goes on."""
    out.print(f"{escape(str(label))}  [red]error:[/red] {escape(str(error))}")


def exit_if_failed(failed: int, what: str) -> None:
    """Exit 1 after a batch in which ``failed`` items could not be done."""
    if failed:
        err.print(f"{failed} {what}")
        raise typer.Exit(1)


@app.callback()
def root() -> None:
    """hashbank: fingerprints of known abuse media — hash, bank, match, scan, serve."""


@app.command("hash")
def hash_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders recurse).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    dihedral: Annotated[bool, typer.Option(help="Also the 8 rotated/flipped PDQ hashes.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes hashing in parallel.")] = 1,
    signals: Annotated[str | None, typer.Option(help="Comma-separated signals (default: all).")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Refuse images with more pixels.")] = None,
) -> None:
    """Fingerprint files: PDQ (with quality) and MD5/SHA-1/SHA-256 from one read."""
    chosen = parse_signals(signals)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise usage_error(f"no such file or folder: {', '.join(missing)}")
    limits = MediaLimits() if max_pixels is None else MediaLimits(max_pixels=max_pixels)
    failed = 0
    for result in hash_files(iter_files(paths), signals=chosen, dihedral=dihedral, limits=limits, workers=workers):
        failed += not result.ok
        if as_json:
            sys.stdout.write(json.dumps(result.to_json()) + "\n")
        elif result.ok:
            fields = [f"{name}={value}" for name, value in result.signals.items()]
            if result.pdq_quality is not None:
                fields.append(f"quality={result.pdq_quality}")
            out.print(f"{escape(str(result.path))}  {result.width}x{result.height}  " + "  ".join(fields))
        else:
            item_error(result.path, result.error)
    exit_if_failed(failed, "file(s) could not be hashed")


@app.command("match")
def match_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (folders recurse).")] = None,
    hashes: Annotated[
        list[str] | None, typer.Option("--hash", help="A fingerprint as SIGNAL:VALUE (repeatable), e.g. pdq:f8f8...")
    ] = None,
    bank: Annotated[list[str] | None, typer.Option(help="Match only this bank (repeatable; default all).")] = None,
    threshold: Annotated[int | None, typer.Option(min=0, help="Largest distance that matches (default: per bank).")]
    = None,
    dihedral: Annotated[bool, typer.Option(help="Also match the 8 rotated/flipped forms.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file or hash.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes hashing in parallel.")] = 1,
    fail_on_match: Annotated[bool, typer.Option(help="Exit 1 when anything matched.")] = False,
) -> None:
    """Match files or fingerprints against the banks: bank, entry, category, signal, distance."""
    from hashbank.matching import Matcher

    if not paths and not hashes:
        raise usage_error("give files or folders to match, or --hash SIGNAL:VALUE")
    missing = [str(p) for p in paths or () if not p.exists()]
    if missing:
        raise usage_error(f"no such file or folder: {', '.join(missing)}")
    store = _open_store()
    known = {b.name for b in store.list_banks()}
    unknown = [b for b in bank or () if b not in known]
    if unknown:
        raise usage_error(f"no such bank: {', '.join(unknown)}")
    queries: list[tuple[str, dict[str, str]]] = []
    for item in hashes or ():
        name, sep, value = item.partition(":")
        if not sep:
            raise usage_error(f"--hash must look like SIGNAL:VALUE, got {item!r}")
        queries.append((item, {name.strip(): value.strip()}))
    matcher = Matcher(store)
    matcher.catch_up()
    failed = matched = 0

    def emit(label: str, matches: list, error: str | None) -> None:
        nonlocal failed, matched
        failed += error is not None
        matched += bool(matches)
        if as_json:
            key = "hash" if label in (hashes or ()) else "path"
            line: dict = {key: label, "error": error} if error else {key: label}
            if not error:
                line["matches"] = [m.to_json() for m in matches]
            sys.stdout.write(json.dumps(line) + "\n")
        elif error:
            item_error(label, error)
        elif not matches:
            out.print(f"{escape(label)}  no match")
        for m in matches if not as_json else ():
            out.print(f"{escape(label)}  [bold]match[/bold] bank={escape(m.bank)} entry={m.entry_id} "
                      f"category={m.category} signal={m.signal} distance={m.distance} via={m.query_signal}")

    for label, values in queries:
        try:
            emit(label, matcher.match_values(values, banks=bank, threshold=threshold), None)
        except ValueError as exc:
            emit(label, [], str(exc))
    if paths:
        for result in hash_files(iter_files(paths), dihedral=dihedral, workers=workers):
            if not result.ok:
                emit(str(result.path), [], result.error)
                continue
            try:
                emit(str(result.path), matcher.match(result, banks=bank, threshold=threshold, dihedral=dihedral), None)
            except ValueError as exc:
                raise usage_error(str(exc)) from None
    exit_if_failed(failed, "item(s) could not be matched")
    if fail_on_match and matched:
        raise typer.Exit(1)


@app.command("scan")
def scan_command(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, archives or fsspec URLs.")],
    bank: Annotated[list[str] | None, typer.Option(help="Match only this bank (repeatable; default all).")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write JSON Lines here ('-': stdout).")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the report as CSV.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes hashing (default: CPU count).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint beside the report.")] = False,
    dask: Annotated[str | None, typer.Option(help="Dask scheduler address, or 'local' for a LocalCluster.")] = None,
    signals: Annotated[str | None, typer.Option(help="Comma-separated signals (default: all).")] = None,
    fail_on_match: Annotated[bool, typer.Option(help="Exit 1 when any file matched.")] = False,
) -> None:
    """Triage folders and archives: hash every file once, match against the banks, report."""
    import os

    from hashbank.scan import Checkpoint, CheckpointMismatch, bank_matcher, build_report, run_scan
    from hashbank.scan.report import write_csv, write_html, write_jsonl

    chosen = parse_signals(signals)
    missing = [p for p in paths if "://" not in p and not os.path.lexists(p)]
    if missing:
        raise usage_error(f"no such file or folder: {', '.join(missing)}")
    outputs = [o for o in (report, json_out, csv_out) if o is not None and str(o) != "-"]
    if resume and not outputs:
        raise usage_error("--resume needs --report, --json FILE or --csv: the checkpoint is kept beside it")
    try:
        match = bank_matcher(bank)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    header = {"paths": paths, "banks": sorted(bank or []), "signals": chosen or []}
    checkpoint = Checkpoint(Path(f"{outputs[0]}.checkpoint"), header) if outputs else None
    try:
        result = run_scan(
            paths,
            match=match,
            signals=chosen,
            workers=workers or os.cpu_count() or 1,
            dask=dask,
            checkpoint=checkpoint,
            resume=resume,
            progress=err.is_terminal,
        )
    except CheckpointMismatch as exc:
        raise usage_error(str(exc)) from None
    scan = build_report(result.records, result.elapsed)
    for target, write in ((report, write_html), (json_out, write_jsonl), (csv_out, write_csv)):
        if target is not None:
            write(scan, target)
    if checkpoint:
        checkpoint.finish()
    s = scan.summary
    err.print(
        f"{s['files_seen']} files: {s['images']} images, {s['videos']} videos, {s['hashed']} hashed, "
        f"{s['matched_files']} matched, {s['unreadable']} unreadable, in {s['elapsed_seconds']:.1f} s"
    )
    if fail_on_match and s["matched_files"]:
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each follows the change log).")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request line (never keys or bodies).")] = False,
) -> None:
    """The authenticated HTTP API (docs at /docs); store from HASHBANK_DATABASE_URL."""
    from hashbank.service.server import serve
    from hashbank.store import open_store

    open_store().close()  # migrate once, before the workers race to
    serve(host, port, workers, access_log)


keys_app = typer.Typer(no_args_is_help=True, help="API keys for `hashbank serve`: shown once, stored hashed.")
app.add_typer(keys_app, name="keys")


def _keyring() -> object:
    from hashbank.service.keys import KeyRing
    from hashbank.store import open_store

    return KeyRing(open_store().engine)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, curator, matcher or auditor.")],
    bank: Annotated[list[str] | None, typer.Option(help="Limit the key to this bank (repeatable).")] = None,
    name: Annotated[str, typer.Option(help="A label: who or what uses the key.")] = "",
    rate: Annotated[float | None, typer.Option(min=0.1, help="Requests per second per worker.")] = None,
) -> None:
    """Create a key and print it once; only its salted hash is kept."""
    try:
        key_id, key = _keyring().create(role, bank, name=name, rate_limit=rate)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    err.print(f"key {key_id} ({role}) created; it is shown only now, store it safely:")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="JSON Lines.")] = False) -> None:
    """Keys with role, banks and dates (never the key)."""
    for row in _keyring().list():  # type: ignore[attr-defined]
        if as_json:
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            banks = ",".join(row["banks"] or ["*"])
            state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
            out.print(f"{row['key_id']}  {row['role']:<8} banks={escape(banks)}  {state}  {escape(row['name'])}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (the part after 'hb_').")]) -> None:
    """Revoke a key; running servers refuse it within seconds."""
    if not _keyring().revoke(key_id):  # type: ignore[attr-defined]
        raise usage_error(f"no active key with id {key_id!r}")
    out.print(f"revoked {key_id}")


bank_app = typer.Typer(no_args_is_help=True, help="Banks of fingerprints: create, fill, grade, import, export.")
app.add_typer(bank_app, name="bank")


def _open_store() -> Store:
    from hashbank.store import open_store

    return open_store()


def _print_json(record: object) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """['pdq=20', 'X=label'] -> {'pdq': '20', 'X': 'label'}."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise usage_error(f"{what} must look like NAME=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _whoami() -> str:
    """Who runs the command, for an entry's added_by: the OS account, or 'cli' when there is none."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


ADDED_BY_HELP = "Recorded as each new entry's added_by (default: cli:<your user name>)."


def _bank_call(action: Callable[[], T]) -> T:
    """Run a store call, turning unknown banks, refused values and unreadable or unwritable files
    into bad-usage exits with the reason (never a traceback)."""
    from hashbank.store import NotFound

    try:
        return action()
    except (NotFound, ValueError) as exc:
        raise usage_error(str(exc)) from None
    except OSError as exc:
        raise usage_error(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)) from None


@bank_app.command("create")
def bank_create(
    name: Annotated[str, typer.Argument(help="Bank name.")],
    description: Annotated[str, typer.Option(help="What the bank holds and where it comes from.")] = "",
    taxonomy: Annotated[str, typer.Option(help="Categories: vics (0-4), uk (A/B/C) or custom.")] = "vics",
    threshold: Annotated[list[str] | None, typer.Option(help="SIGNAL=MAX_DISTANCE match override.")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Extra category CODE=LABEL (repeatable).")] = None,
) -> None:
    """Create an empty, enabled bank."""
    limits = _pairs(threshold, "--threshold")
    if any(not v.isdigit() for v in limits.values()):
        raise usage_error("--threshold distances must be whole numbers")
    store = _open_store()
    bank = _bank_call(lambda: store.create_bank(
        name, description=description, taxonomy=taxonomy,
        thresholds={k: int(v) for k, v in limits.items()}, categories=_pairs(category, "--category"),
    ))
    out.print(f"created bank {escape(bank.name)} ({bank.taxonomy})")


@bank_app.command("list")
def bank_list(as_json: Annotated[bool, typer.Option("--json", help="JSON Lines.")] = False) -> None:
    """Every bank with its state and size."""
    store = _open_store()
    for bank in store.list_banks():
        count = store.stats(bank.name)["entries"]
        if as_json:
            _print_json({"name": bank.name, "enabled": bank.enabled, "taxonomy": bank.taxonomy, "entries": count,
                         "description": bank.description})  # fmt: skip
        else:
            state = "enabled " if bank.enabled else "disabled"
            text = f"{escape(bank.name)}  {state}  {bank.taxonomy:<6} {count:>10} entries"
            out.print(f"{text}  {escape(bank.description)}")


@bank_app.command("show")
def bank_show(
    name: Annotated[str, typer.Argument(help="Bank name.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """A bank's settings, categories and counts per signal and category."""
    from hashbank.store.categories import allowed

    store = _open_store()
    bank = _bank_call(lambda: store.get_bank(name))
    record = {"name": bank.name, "description": bank.description, "enabled": bank.enabled,
              "taxonomy": bank.taxonomy, "categories": allowed(bank.taxonomy, bank.categories),
              "thresholds": bank.thresholds, "created_at": bank.created_at.isoformat(),
              **store.stats(name), "last_seq": store.last_seq()}  # fmt: skip
    if as_json:
        _print_json(record)
        return
    for key, value in record.items():
        out.print(f"{key:<12} {escape(str(value))}")


@bank_app.command("rename")
def bank_rename(old: Annotated[str, typer.Argument()], new: Annotated[str, typer.Argument()]) -> None:
    """Rename a bank (its entries appear in the change feed under the new name)."""
    store = _open_store()
    _bank_call(lambda: store.rename_bank(old, new))
    out.print(f"renamed {escape(old)} to {escape(new)}")


@bank_app.command("enable")
def bank_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Let the bank's entries match again."""
    store = _open_store()
    _bank_call(lambda: store.set_bank_enabled(name, True))
    out.print(f"enabled {escape(name)}")


@bank_app.command("disable")
def bank_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Stop the bank's entries matching, keeping them."""
    store = _open_store()
    _bank_call(lambda: store.set_bank_enabled(name, False))
    out.print(f"disabled {escape(name)}")


@bank_app.command("delete")
def bank_delete(
    name: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a bank and its entries (tombstones stay in the change feed)."""
    store = _open_store()
    _bank_call(lambda: store.get_bank(name))
    if not yes and not typer.confirm(f"delete bank {name!r} and all its entries?"):
        raise typer.Exit(1)
    count = _bank_call(lambda: store.delete_bank(name))
    out.print(f"deleted {escape(name)} ({count} entries)")


@bank_app.command("add")
def bank_add(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (folders recurse).")],
    category: Annotated[str | None, typer.Option(help="Category for every file.")] = None,
    source: Annotated[str | None, typer.Option(help="Where the files came from (provenance).")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with each entry.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes hashing in parallel.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
    added_by: Annotated[str | None, typer.Option(help=ADDED_BY_HELP)] = None,
) -> None:
    """Fingerprint files and store only their fingerprints (never the files)."""
    from hashbank.store.files import entries_for

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise usage_error(f"no such file or folder: {', '.join(missing)}")
    store = _open_store()
    target = _bank_call(lambda: store.get_bank(bank))
    checked = _bank_call(lambda: target.check_category(category))
    failed = 0
    for result in hash_files(iter_files(paths), workers=workers):
        if not result.ok:
            failed += 1
            line = {"path": result.path, "error": result.error}
        else:
            entries, skipped = entries_for(result, category=checked, source=source, note=note)
            added = store.add_entries(bank, entries, added_by=added_by or _whoami())
            line = {"path": result.path, "added": added.added, "existing": added.existing, "skipped": skipped,
                    "content_id": entries[0].content_id if entries else None}  # fmt: skip
        if as_json:
            _print_json(line)
        elif "error" in line:
            item_error(result.path, result.error)
        else:
            extra = "".join(f"  (left out: {escape(s)})" for s in line["skipped"])
            out.print(f"{escape(str(result.path))}  added {line['added']}, already there {line['existing']}{extra}")
    exit_if_failed(failed, "file(s) could not be hashed")


@bank_app.command("add-hash")
def bank_add_hash(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    values: Annotated[list[str], typer.Argument(help="Fingerprint values.")],
    signal: Annotated[str, typer.Option(help="Signal type of the values (pdq, md5, sha1, sha256, photodna).")],
    category: Annotated[str | None, typer.Option(help="Category for every value.")] = None,
    source: Annotated[str | None, typer.Option(help="Where the values came from.")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with each entry.")] = None,
    added_by: Annotated[str | None, typer.Option(help=ADDED_BY_HELP)] = None,
) -> None:
    """Add fingerprint values directly; invalid ones are reported and the rest are added."""
    from hashbank.store import NewEntry

    store = _open_store()
    target = _bank_call(lambda: store.get_bank(bank))
    checked = _bank_call(lambda: target.check_category(category))
    new = [NewEntry(signal, v, category=checked, source=source, note=note) for v in values]
    result = _bank_call(lambda: store.add_entries(bank, new, added_by=added_by or _whoami()))
    for position, reason in result.errors:
        sys.stderr.write(f"error: {values[position]}: {reason}\n")
    out.print(f"added {result.added}, already there {result.existing}, refused {len(result.errors)}")
    if result.errors:
        raise typer.Exit(1)


@bank_app.command("import")
def bank_import(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    file: Annotated[Path, typer.Argument(help="The file to import.", exists=True, dir_okay=False)],
    fmt: Annotated[str, typer.Option("--format", help="te, csv, vics, vics-case or icse.")],
    signal: Annotated[str | None, typer.Option(help="Signal type of bare values / rows without one.")] = None,
    category: Annotated[str | None, typer.Option(help="Category for entries the file leaves ungraded.")] = None,
    source: Annotated[str | None, typer.Option(help="Provenance (default: the file name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Errors and the summary as JSON Lines.")] = False,
    added_by: Annotated[str | None, typer.Option(help=ADDED_BY_HELP)] = None,
) -> None:
    """Import a hash list; every refused line is reported with its number and reason, valid lines load."""
    from hashbank.exchange import ReadOptions, get_format, import_file

    _bank_call(lambda: get_format(fmt))
    if signal:
        parse_signals(signal)

    def report(line: int, reason: str) -> None:
        if as_json:
            _print_json({"file": str(file), "line": line, "error": reason})
        else:
            sys.stderr.write(f"{file}:{line}: {reason}\n")

    store = _open_store()
    options = ReadOptions(signal=signal, category=category, source=source)
    result = _bank_call(lambda: import_file(store, bank, file, fmt, options=options, on_error=report,
                                            added_by=added_by or _whoami()))
    summary = {"added": result.added, "existing": result.existing, "refused": result.error_count}
    if as_json:
        _print_json(summary)
    else:
        out.print(f"added {result.added}, already there {result.existing}, refused {result.error_count}")
    if result.error_count:
        raise typer.Exit(1)


@bank_app.command("export")
def bank_export(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    fmt: Annotated[str, typer.Option("--format", help="te, csv, vics or vics-case.")],
    since: Annotated[int, typer.Option(min=0, help="Only entries changed after this change-feed cursor.")] = 0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a bank's entries in an exchange format."""
    from hashbank.exchange import export_bank, get_format

    if not _bank_call(lambda: get_format(fmt)).can_write:
        raise usage_error(f"format {fmt!r} can be imported but not exported")
    store = _open_store()
    _bank_call(lambda: store.get_bank(bank))  # before creating an output file for nothing
    if output is None:
        count = _bank_call(lambda: export_bank(store, bank, sys.stdout, fmt, since=since))
    else:
        with _bank_call(lambda: open(output, "w", encoding="utf-8", newline="")) as fh:
            count = _bank_call(lambda: export_bank(store, bank, fh, fmt, since=since))
    err.print(f"exported {count} entries")


@bank_app.command("changes")
def bank_changes(
    bank: Annotated[str, typer.Argument(help="Bank name.")],
    since: Annotated[int, typer.Option(min=0, help="Cursor: changes after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines.")] = False,
) -> None:
    """The bank's change feed after a cursor: adds, updates and delete tombstones, in order."""
    store = _open_store()
    for change in _bank_call(lambda: store.changes(since=since, limit=limit, bank=bank)):
        if as_json:
            _print_json(change.to_json())
        else:
            state = "" if change.enabled else "  (disabled)"
            out.print(f"{change.seq:>8} {change.op:<6} {change.signal:<8} {change.value}  {change.category}{state}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
