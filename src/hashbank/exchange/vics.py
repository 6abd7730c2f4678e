"""Project VIC VICS JSON (2.0; 1.2/1.3 tolerated): hash-set form (a list of Media) and case form
(Cases each holding Media). Read as a stream, so a file of millions of records is fine.

Per Media: MD5, SHA1 (and SHA256, PDQ, PhotoDNA top-level or in AlternativeHashes as
{HashName, HashValue}), Category, MediaID (-> content_id and external_id), the VICS flags
(kept as tags of the same name when true; "true"/"false" strings accepted) and Comments.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from itertools import chain, groupby
from typing import Any, BinaryIO, TextIO

from hashbank.exchange.base import Format, Item, ReadOptions, register
from hashbank.exchange.jsonstream import JsonError, JsonStream
from hashbank.exchange.text import parse_bool, signal_name
from hashbank.signals import get as get_signal
from hashbank.store import Entry, NewEntry

CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"
CASE_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases"
FLAGS = ("IsPrecategorized", "IsDistributed", "VictimIdentified", "OffenderIdentified")
#: Written as top-level Media fields (upper-case hex, as VICS tools do); the rest go to AlternativeHashes.
TOP_LEVEL = {"md5": "MD5", "sha1": "SHA1"}
_ALT_NAMES = {"sha256": "SHA256", "pdq": "PDQ", "photodna": "PhotoDNA"}


@register
class VicsFormat(Format):
    name = "vics"
    description = "Project VIC VICS 2.0 JSON (hash-set or case form; 1.2/1.3 read too)"

    def read(self, stream: BinaryIO, options: ReadOptions) -> Iterator[Item]:
        js = JsonStream(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline=""))
        try:
            first = js.peek()
            if first not in ("{", "["):
                raise JsonError(js.line, "broken JSON: a VICS file starts with '{' or '['")
            for line, record in _records(js):
                if not isinstance(record, dict):
                    yield line, "Media item is not a JSON object"
                    continue
                for item in _entries(record, options):
                    yield line, item
        except JsonError as exc:
            yield exc.line, str(exc)

    def write(self, entries: Iterable[Entry], out: TextIO) -> int:
        out.write('{"@odata.context": ' + json.dumps(CONTEXT) + ', "value": [')
        count = _write_media(entries, out)
        out.write("\n]}\n")
        return count


@register
class VicsCaseFormat(VicsFormat):
    """The same Media, inside one Case named after the bank (what case-management tools exchange)."""

    name = "vics-case"
    description = "Project VIC VICS 2.0 JSON, case form: one Case (the bank) holding its Media"

    def write(self, entries: Iterable[Entry], out: TextIO) -> int:
        it = iter(entries)
        first = next(it, None)
        case = {"CaseNumber": first.bank if first else "", "SourceID": "hashbank"}
        out.write('{"@odata.context": ' + json.dumps(CASE_CONTEXT) + ', "value": [' + json.dumps(case)[:-1])
        out.write(', "Media": [')
        count = _write_media(chain([first], it) if first else (), out)
        out.write("\n]}]}\n")
        return count


def _write_media(entries: Iterable[Entry], out: TextIO) -> int:
    """Media records, comma-separated. Signals of one piece of content are stored together, so they
    arrive together; a regraded or re-annotated signal gets a Media of its own (same MediaID) so its
    grading is not lost."""
    count = 0
    key = lambda e: (e.content_id or f"#{e.id}", e.category, e.tags, e.note)  # noqa: E731
    for index, (_key, group) in enumerate(groupby(entries, key=key)):
        media = _media(list(group))
        count += media.pop("_count")
        out.write(("," if index else "") + "\n" + json.dumps(media))
    return count


def _records(js: JsonStream) -> Iterator[tuple[int, Any]]:
    """(line, Media record) from anywhere under 'value' / 'Media' arrays, or a bare array."""
    line = js.line
    if js.expect("{[") == "[":
        yield from _array(js)
        return
    record: dict[str, Any] = {}
    container = False
    for key in js.members():
        if key.lower() in ("value", "media") and js.peek() == "[":
            container = True
            js.expect("[")
            yield from _array(js)
        else:
            record[key] = js.value()
    if not container:
        yield line, record


def _array(js: JsonStream) -> Iterator[tuple[int, Any]]:
    for line in js.items():
        if js.peek() == "{":
            yield from _records(js)
        else:
            yield line, js.value()


def _entries(record: dict[str, Any], options: ReadOptions) -> Iterator[NewEntry | str]:
    fields = {str(k).lower(): v for k, v in record.items()}
    media_id = fields.get("mediaid")
    content_id = None if media_id in (None, "") else str(media_id)
    category = fields.get("category")
    category = options.category if category in (None, "") else str(category)
    try:
        tags = [flag for flag in FLAGS if parse_bool(fields.get(flag.lower()))]
    except ValueError as exc:
        yield str(exc)
        return
    extra = fields.get("tags") or []
    tags += [t.strip() for t in extra.split("|")] if isinstance(extra, str) else [str(t) for t in extra]
    note = fields.get("comments") or fields.get("notes")
    hashes = [(label, fields[label]) for label in ("md5", "sha1", "sha256", "pdq", "photodna") if fields.get(label)]
    alternatives = fields.get("alternativehashes") or []
    if not isinstance(alternatives, list):
        yield "AlternativeHashes is not a list"
        return
    for alt in alternatives:
        alt = {str(k).lower(): v for k, v in alt.items()} if isinstance(alt, dict) else {}
        hashes.append((str(alt.get("hashname") or "?"), alt.get("hashvalue")))
    if not hashes:
        yield f"Media {content_id or '(no MediaID)'} has no fingerprint"
    for label, value in hashes:
        try:
            signal = get_signal(signal_name(label))
            if not isinstance(value, str):
                raise ValueError(f"value is {type(value).__name__}, not text")
            yield NewEntry(
                signal.name,
                signal.parse(value),
                category=category,
                source=options.source,
                external_id=content_id,
                tags=tuple(t for t in tags if t),
                note=note and str(note),
                content_id=content_id,
            )
        except ValueError as exc:
            yield f"Media {content_id or '(no MediaID)'} {label}: {exc}"


def _media(group: list[Entry]) -> dict[str, Any]:
    first = group[0]
    media_id = first.content_id or first.external_id or str(first.id)
    # VICS MediaID is a number; keep other keys as text rather than lose them.
    numeric = media_id.isdigit() and len(media_id) < 10 and str(int(media_id)) == media_id
    media: dict[str, Any] = {"MediaID": int(media_id) if numeric else media_id}
    if first.category is not None:
        media["Category"] = int(first.category) if first.category.isdigit() else first.category
    alternatives = []
    for entry in group:
        if entry.signal in TOP_LEVEL:
            media[TOP_LEVEL[entry.signal]] = entry.value.upper()
        else:
            name = _ALT_NAMES.get(entry.signal, entry.signal)
            alternatives.append({"HashName": name, "HashValue": get_signal(entry.signal).format(entry.value)})
    if alternatives:
        media["AlternativeHashes"] = alternatives
    for flag in FLAGS:
        if flag in first.tags:
            media[flag] = True
    others = [t for t in first.tags if t not in FLAGS]
    if others:
        media["Tags"] = others
    if first.note:
        media["Comments"] = first.note
    media["_count"] = len(group)
    return media
