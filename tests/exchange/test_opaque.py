"""PhotoDNA from a partner's VICS file: kept as the exact text it came as, matched only by that text."""

from __future__ import annotations

import io
import json

from hashbank.exchange import export_bank, import_stream
from hashbank.matching import Matcher
from hashbank.store import Store

TOP = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo+/=="
ALT = "12,0,255,7,33"


def test_photodna_top_level_or_alternative_is_stored_opaque_and_matched_exactly(store: Store) -> None:
    store.create_bank("vics")
    doc = {"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media",
           "value": [{"MediaID": 1, "Category": 1, "PhotoDNA": TOP},
                     {"MediaID": 2, "Category": 2, "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": ALT}]}]}
    assert import_stream(store, "vics", io.BytesIO(json.dumps(doc).encode()), "vics").added == 2
    assert {(e.signal, e.value, e.category) for e in store.entries("vics")} == {("photodna", TOP, "1"),
                                                                                  ("photodna", ALT, "2")}  # fmt: skip

    matcher = Matcher(store)
    matcher.catch_up()
    assert [(m.bank, m.distance) for m in matcher.match_values({"photodna": TOP})] == [("vics", 0)]
    assert [m.entry_id for m in matcher.match_values({"photodna": f"  {ALT} "})] != []  # trimmed, as stored
    assert matcher.match_values({"photodna": TOP.lower()}) == []  # opaque: case matters
    assert matcher.match_values({"photodna": ALT + ",1"}) == []

    out = io.StringIO()  # and they go back out as VICS AlternativeHashes, unchanged
    export_bank(store, "vics", out, "vics")
    alternatives = [m["AlternativeHashes"] for m in json.loads(out.getvalue())["value"]]
    assert alternatives == [[{"HashName": "PhotoDNA", "HashValue": TOP}], [{"HashName": "PhotoDNA", "HashValue": ALT}]]
