"""The v2 snapshot layout, independent of any Valkey client (docs/layout.md).

- `encoding`: rank keys, members, stored values and the header (format 2);
- `scripts`: the Lua sources of every read and write, each with the names of its KEYS;
- `replies`: the read scripts' raw replies turned into Page / UserWindow / UserSet;
- `failures`: what a failed read means (WRONGTYPE = no snapshot), for both readers.

`common.cache` builds the worker's async GLIDE store on these; the API's sync reader
(`common.snapshot_reader`) loads the same scripts and parses with the same functions.
"""

from __future__ import annotations

from common.snapshot import scripts
from common.snapshot.encoding import (
    FORMAT,
    MAX_SCORE,
    RANKKEY_BYTES,
    TOP_ENTRIES,
    Ranked,
    SnapshotHeader,
    encode_value,
    member,
    micros,
    pack_pairs,
    rankkey,
    served_entry,
)
from common.snapshot.replies import (
    HeaderCache,
    Page,
    UserSet,
    UserWindow,
    page_from_reply,
    user_from_reply,
    users_from_reply,
)

__all__ = [
    "FORMAT",
    "MAX_SCORE",
    "RANKKEY_BYTES",
    "TOP_ENTRIES",
    "HeaderCache",
    "Page",
    "Ranked",
    "SnapshotHeader",
    "UserSet",
    "UserWindow",
    "encode_value",
    "member",
    "micros",
    "pack_pairs",
    "page_from_reply",
    "rankkey",
    "scripts",
    "served_entry",
    "user_from_reply",
    "users_from_reply",
]
