r"""The Lua scripts of the v2 layout, as plain source strings (any client can load them: the worker's
async GLIDE store, the API's readers, a synchronous reader). docs/layout.md explains the layout.

Keys of one board (all share the board's hash tag, so every script runs on a cluster too):
    snapshot  ZSET  rank key (16 bytes) + user id, every score 0: byte order is rank order
    entries   HASH  user id -> stored value (rank key + username JSON \0 score \0 solved \0 time JSON)
    meta_key  STRING  the header JSON (format 2); no meta = no snapshot
and `refresh`, `absent`, `top`, `counter` (the version counter), `legacy` (v1's positions hash),
`staging` and `staging_entries` (a rebuild's copies); `KEY_SOURCES` says which BoardKeys field each is.

Each script is a `BoardScript`: the names of its KEYS, in order, and its body. Its source starts by
binding `KEYS[i]` to those names (`local snapshot, entries, meta_key = KEYS[1], KEYS[2], KEYS[3]`),
and `key_list` builds the keys in the same order from a board's BoardKeys, so the order is written in
one place and no script addresses a key by its position.

Competition ranks are computed while reading, never stored: rank = 1 + ZLEXCOUNT(snapshot, "-",
"(" .. rank key) (the players strictly better), and inside a page only the first entry needs that
O(log N) call. So a change rewrites one player's member and value and nobody else's bytes.

Comparisons of members are byte-wise: Valkey orders equal-score members with memcmp, and the scripts
never use Lua's `<` on strings (it follows the server's locale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.boards import BoardKeys

__all__ = [
    "APPLY_CHANGES",
    "COMMIT",
    "KEY_SOURCES",
    "MARK_ABSENT",
    "READ_PAGE",
    "READ_USER",
    "READ_USERS",
    "STAGE_CHANGES",
    "STAGE_ENTRIES",
    "BoardScript",
]


def _staging(keys: BoardKeys, version: int | None, which: int) -> str:
    if version is None:
        raise ValueError("a staging key needs the rebuild's version")
    return keys.staging(version)[which]


# The Lua name of each key -> the key of a board (and, for staging keys, of one rebuild's version).
KEY_SOURCES: dict[str, Callable[[BoardKeys, int | None], str]] = {
    "snapshot": lambda keys, version: keys.snapshot,
    "entries": lambda keys, version: keys.entries,
    "meta_key": lambda keys, version: keys.meta,
    "refresh": lambda keys, version: keys.refresh_marker,
    "absent": lambda keys, version: keys.absent,
    "top": lambda keys, version: keys.top,
    "counter": lambda keys, version: keys.version,
    "legacy": lambda keys, version: keys.legacy_positions,
    "staging": lambda keys, version: _staging(keys, version, 0),
    "staging_entries": lambda keys, version: _staging(keys, version, 1),
}


@dataclass(frozen=True, slots=True)
class BoardScript:
    """A script of one board: the names of its KEYS in order, and its body (which uses the names)."""

    keys: tuple[str, ...]
    body: str
    source: str = field(init=False)

    def __post_init__(self) -> None:
        unknown = set(self.keys) - set(KEY_SOURCES)
        if unknown:
            raise ValueError(f"keys with no source: {sorted(unknown)}")
        bound = ", ".join(f"KEYS[{i}]" for i in range(1, len(self.keys) + 1))
        object.__setattr__(self, "source", f"local {', '.join(self.keys)} = {bound}\n{self.body}")

    def key_list(self, keys: BoardKeys, version: int | None = None) -> list[Any]:
        """The KEYS to send, in the order the source binds them (`version`: a rebuild's staging keys).
        Strings, typed `list[Any]`: each client's `invoke_script` wants its own (invariant) list type."""
        return [KEY_SOURCES[name](keys, version) for name in self.keys]


# ---- shared helpers --------------------------------------------------------------------------------

_META = r"""
local function meta_of(key)
  local meta = redis.pcall('GET', key)
  if type(meta) ~= 'string' or string.sub(meta, 1, 12) ~= '{"format":2,' then return nil end
  return meta
end
local function field(meta, name)
  return string.match(meta, '"' .. name .. '":(%d+)')
end
"""

_RENDER = r"""
local function quoted_id(uid)
  if string.find(uid, '["\\]') then return (string.gsub(uid, '["\\]', '\\%0')) end
  return uid
end
-- value: rank key (16 bytes), username JSON, NUL, score, NUL, solved, NUL, last_solved_at JSON
local function render(rank, uid, value)
  local name, score, solved, at = string.match(value, '^([^%z]*)%z([^%z]*)%z([^%z]*)%z(.*)$', 17)
  if not name then return nil end
  return '{"rank":' .. rank .. ',"user_id":"' .. quoted_id(uid) .. '","username":' .. name ..
    ',"score":' .. score .. ',"solved":' .. solved .. ',"last_solved_at":' .. at .. '}'
end
-- The served entries for `members`, the first of which is at board position `first` (0-based).
-- nil when an entry is missing (a partly evicted snapshot): the caller answers "no snapshot".
local function render_range(snapshot, entries, first, members)
  local n = #members
  local out = {}
  if n == 0 then return out end
  local ids = {}
  for i = 1, n do ids[i] = string.sub(members[i], 17) end
  local values = {}
  for s = 1, n, 500 do
    local part = redis.call('HMGET', entries, unpack(ids, s, math.min(n, s + 499)))
    for j = 1, #part do values[s + j - 1] = part[j] end
  end
  local key = string.sub(members[1], 1, 16)
  local rank = 1 + redis.call('ZLEXCOUNT', snapshot, '-', '(' .. key)
  for i = 1, n do
    local k = string.sub(members[i], 1, 16)
    if k ~= key then
      key = k
      rank = first + i
    end
    local value = values[i]
    if not value then return nil end
    local entry = render(rank, ids[i], value)
    if not entry then return nil end
    out[i] = entry
  end
  return out
end
"""

_WRITE = r"""
local function from_hex(hex)
  return (string.gsub(hex, '%x%x', function(pair) return string.char(tonumber(pair, 16)) end))
end
local function to_hex(bytes)
  return (string.gsub(bytes, '.', function(c) return string.format('%02x', string.byte(c)) end))
end
-- a <= b, byte by byte
local function at_or_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
-- The (user id, value) pairs of a write, packed in one argument (common.snapshot.pack_pairs): each
-- item is a 4-byte big-endian length and its bytes.
local function unpack_pairs(blob)
  local ids, values, n, pos, size = {}, {}, 0, 1, #blob
  local length
  while pos <= size do
    n = n + 1
    length, pos = struct.unpack('>I4', blob, pos)
    ids[n] = string.sub(blob, pos, pos + length - 1)
    pos = pos + length
    length, pos = struct.unpack('>I4', blob, pos)
    values[n] = string.sub(blob, pos, pos + length - 1)
    pos = pos + length
  end
  return ids, values, n
end
-- Apply changes: value '' removes the player. With a boundary (a capped board), a player whose new
-- member sorts after it is not kept.
local function apply(snapshot, entries, blob, boundary)
  local ids, values, n = unpack_pairs(blob)
  for i = 1, n do
    local uid, value = ids[i], values[i]
    local old = redis.call('HGET', entries, uid)
    if old then redis.call('ZREM', snapshot, string.sub(old, 1, 16) .. uid) end
    local kept = false
    if value ~= '' then
      local member = string.sub(value, 1, 16) .. uid
      if not boundary or at_or_before(member, boundary) then
        redis.call('ZADD', snapshot, 0, member)
        redis.call('HSET', entries, uid, value)
        kept = true
      end
    end
    if old and not kept then redis.call('HDEL', entries, uid) end
  end
end
-- LEADERBOARD_SIZE: keep the top `cap` (0 = everyone); the last one kept becomes the boundary.
local function trim(snapshot, entries, cap, boundary)
  local size = redis.call('ZCARD', snapshot)
  if cap > 0 and size > cap then
    local dropped = redis.call('ZRANGE', snapshot, cap, -1)
    for s = 1, #dropped, 500 do
      local ids = {}
      for j = s, math.min(#dropped, s + 499) do ids[#ids + 1] = string.sub(dropped[j], 17) end
      redis.call('HDEL', entries, unpack(ids))
    end
    redis.call('ZREMRANGEBYRANK', snapshot, cap, -1)
    boundary = redis.call('ZRANGE', snapshot, -1, -1)[1]
    size = cap
  end
  return size, boundary
end
local function write_meta(key, prefix, total, size, boundary)
  if total == '' then total = size end
  local b = 'null'
  if boundary then b = '"' .. to_hex(boundary) .. '"' end
  local meta = prefix .. ',"total":' .. total .. ',"size":' .. size .. ',"boundary":' .. b .. '}'
  redis.call('SET', key, meta)
  return meta
end
local function boundary_of(meta)
  local hex = string.match(meta, '"boundary":"(%x+)"')
  if hex then return from_hex(hex) end
  return nil
end
"""

_TOP = r"""
-- The top list: the header, then the first TOP entries already served as JSON, rewritten by every
-- script that changes the board. `LRANGE top 0 count` is then the whole first page in one command.
local function write_top(snapshot, entries, top, meta, count)
  redis.call('DEL', top)
  local page = render_range(snapshot, entries, 0, redis.call('ZRANGE', snapshot, 0, count - 1))
  if not page then return end  -- a partly evicted board: no top list, the script path answers a miss
  table.insert(page, 1, meta)
  redis.call('RPUSH', top, unpack(page))
end
"""

# ---- reads (the API): one script, one round trip, O(log N + count) ---------------------------------

# ARGV: offset (0-based), count (>= 1)
# Returns {} (no snapshot), {meta} (offset past the end), or {meta, entry...}.
READ_PAGE = BoardScript(
    ("snapshot", "entries", "meta_key"),
    _META
    + _RENDER
    + r"""
local offset, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local meta = meta_of(meta_key)
if not meta then return {} end
local members = redis.call('ZRANGE', snapshot, offset, offset + count - 1)
if #members == 0 then
  if offset < tonumber(field(meta, 'size')) then return {} end  -- the members are gone (evicted)
  return {meta}
end
local page = render_range(snapshot, entries, offset, members)
if not page then return {} end
table.insert(page, 1, meta)
return page
""",
)

# ARGV: user id, around
# Returns {} (no snapshot), {meta} (the user is not on the board), or
# {meta, first position, user position, entry...} (0-based positions). The window keeps 2*around+1
# entries at the edges of the board, as Steam's "around me" does.
READ_USER = BoardScript(
    ("snapshot", "entries", "meta_key"),
    _META
    + _RENDER
    + r"""
local user_id, around = ARGV[1], tonumber(ARGV[2])
local meta = meta_of(meta_key)
if not meta then return {} end
local value = redis.call('HGET', entries, user_id)
if not value then return {meta} end
local index = redis.call('ZRANK', snapshot, string.sub(value, 1, 16) .. user_id)
if not index then return {} end
local last = redis.call('ZCARD', snapshot) - 1
local first = index - around
if first < 0 then first = 0 end
local stop = first + 2 * around
if stop > last then
  stop = last
  first = stop - 2 * around
  if first < 0 then first = 0 end
end
local window = render_range(snapshot, entries, first, redis.call('ZRANGE', snapshot, first, stop))
if not window then return {} end
local out = {meta, tostring(first), tostring(index)}
for i = 1, #window do out[i + 3] = window[i] end
return out
""",
)

# ARGV: the user ids (1..100, distinct), joined by "\n" (no id holds a control character:
#       common.models.USER_ID). One argument: 100 arguments cost glide-sync ~0.2 ms more (bench P9).
# Returns {} (no snapshot, or a sorted set or hash that disagrees with the header's size: partly
# evicted), or {meta, n, the n ranked users' entries in rank order, then the ids not on the board in
# the order given}. The missing ids come back from here so that the API never decodes an entry to tell
# who was found. One ZLEXCOUNT per distinct rank key (the rank); a ZRANK only for friends who tie, to
# order them by user id as the board does (numbers are compared, never strings).
READ_USERS = BoardScript(
    ("snapshot", "entries", "meta_key"),
    _META
    + _RENDER
    + r"""
local meta = meta_of(meta_key)
if not meta then return {} end
local size = tonumber(field(meta, 'size'))
if redis.call('ZCARD', snapshot) ~= size or redis.call('HLEN', entries) ~= size then return {} end
local ids = {}
for uid in string.gmatch(ARGV[1], '[^\n]+') do ids[#ids + 1] = uid end
local values = redis.call('HMGET', entries, unpack(ids))
local ranks, friends, key_of, rank_of, found, missing = {}, {}, {}, {}, {}, {}
for i = 1, #ids do
  local value = values[i]
  if value then
    local key = string.sub(value, 1, 16)
    local rank = ranks[key]
    if not rank then
      rank = 1 + redis.call('ZLEXCOUNT', snapshot, '-', '(' .. key)
      ranks[key] = rank
    end
    friends[key] = (friends[key] or 0) + 1
    key_of[i], rank_of[i] = key, rank
    found[#found + 1] = i
  else
    missing[#missing + 1] = ids[i]
  end
end
-- Sorted by a number (no Lua comparator: measured 4x cheaper): rank * 2^24, plus, for friends who tie,
-- their place in the tie group (exact for ranks below 2^29 and tie groups below 2^24 players).
local order, at = {}, {}
for j = 1, #found do
  local i = found[j]
  local sort_key = rank_of[i] * 16777216
  if friends[key_of[i]] > 1 then
    local position = redis.call('ZRANK', snapshot, key_of[i] .. ids[i])
    if not position then return {} end
    sort_key = sort_key + position - (rank_of[i] - 1)
  end
  order[j] = sort_key
  at[sort_key] = i
end
table.sort(order)
local out = {meta, tostring(#found)}
for j = 1, #order do
  local i = at[order[j]]
  local entry = render(rank_of[i], ids[i], values[i])
  if not entry then return {} end
  out[j + 2] = entry
end
for j = 1, #missing do out[#out + 1] = missing[j] end
return out
""",
)

# ---- writes (the worker) ---------------------------------------------------------------------------

# A delta refresh: one batch of changes, all or nothing.
# ARGV: version, expected position, meta prefix, total ('' = the board's size), cap (0 = none),
#       the packed (user id, value) pairs (value '' = removed), top list length
# Returns {1, size} applied; {0} refused, the stored version is newer or the same (never applied twice
# or on top of a newer state); {-1} no usable snapshot (missing, flushed, partly evicted): rebuild;
# {-2} refused, the stored position is not the one the batch starts from (out of order).
APPLY_CHANGES = BoardScript(
    ("snapshot", "entries", "meta_key", "refresh", "absent", "top"),
    _META
    + _RENDER
    + _TOP
    + _WRITE
    + r"""
local version, expected, prefix, total, cap = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local meta = meta_of(meta_key)
if not meta then return {-1} end
if tonumber(field(meta, 'version')) >= version then return {0} end
if field(meta, 'position') ~= expected then return {-2} end
local size = tonumber(field(meta, 'size'))
if redis.pcall('ZCARD', snapshot) ~= size or redis.pcall('HLEN', entries) ~= size then return {-1} end
local boundary = boundary_of(meta)
apply(snapshot, entries, ARGV[6], boundary)
size, boundary = trim(snapshot, entries, cap, boundary)
write_top(snapshot, entries, top, write_meta(meta_key, prefix, total, size, boundary), tonumber(ARGV[7]))
redis.call('DEL', refresh, absent)
return {1, size}
""",
)

# A full rebuild's pages, into the staging keys (bulk commands: a page is ~4 calls, not 4 per player).
# ARGV: ttl ms, the packed (user id, value) pairs
# A player seen on an earlier page under another rank key (they moved during the paging) keeps one
# entry; the catch-up then sets it to their latest state. Returns {staged count, last staged member}.
STAGE_ENTRIES = BoardScript(
    ("staging", "staging_entries"),
    _WRITE
    + r"""
local ids, values, n = unpack_pairs(ARGV[2])
for s = 1, n, 500 do
  local part, zadd, hset = {}, {}, {}
  for j = s, math.min(n, s + 499) do
    local uid, value = ids[j], values[j]
    part[#part + 1] = uid
    zadd[#zadd + 1] = 0
    zadd[#zadd + 1] = string.sub(value, 1, 16) .. uid
    hset[#hset + 1] = uid
    hset[#hset + 1] = value
  end
  local old = redis.call('HMGET', staging_entries, unpack(part))
  for k = 1, #part do
    local before = old[k]
    if before and string.sub(before, 1, 16) ~= string.sub(hset[2 * k], 1, 16) then
      redis.call('ZREM', staging, string.sub(before, 1, 16) .. part[k])
    end
  end
  redis.call('ZADD', staging, unpack(zadd))
  redis.call('HSET', staging_entries, unpack(hset))
end
redis.call('PEXPIRE', staging, ARGV[1])
redis.call('PEXPIRE', staging_entries, ARGV[1])
return {redis.call('ZCARD', staging), redis.call('ZRANGE', staging, -1, -1)[1] or ''}
""",
)

# A full rebuild's catch-up (the changes committed while it paged), into the staging keys.
# ARGV: ttl ms, boundary (hex, '' = none), the packed pairs
# Returns the staged count.
STAGE_CHANGES = BoardScript(
    ("staging", "staging_entries"),
    _WRITE
    + r"""
local boundary = nil
if ARGV[2] ~= '' then boundary = from_hex(ARGV[2]) end
apply(staging, staging_entries, ARGV[3], boundary)
redis.call('PEXPIRE', staging, ARGV[1])
redis.call('PEXPIRE', staging_entries, ARGV[1])
return redis.call('ZCARD', staging)
""",
)

# The fenced swap of a full rebuild.
# `legacy` is the v1 layout's positions hash: deleted, so an upgraded board leaves nothing behind.
# ARGV: version, lowest stored position it may replace ('' = any), meta prefix, total ('' = size),
#       cap (0 = none), boundary (hex, '' = none), staged count, top list length
# Returns 1 swapped in; 0 refused (a newer version, or a newer position, is stored); -1 the staged data
# is not all there (expired, or evicted by a volatile-* maxmemory policy).
COMMIT = BoardScript(
    ("snapshot", "entries", "meta_key", "refresh", "absent", "staging", "staging_entries", "legacy", "top"),
    _META
    + _RENDER
    + _TOP
    + _WRITE
    + r"""
local version, newest, prefix, total = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local cap, staged = tonumber(ARGV[5]), tonumber(ARGV[7])
local meta = meta_of(meta_key)
if meta then
  local stored = field(meta, 'position')
  if tonumber(field(meta, 'version')) >= version
     or (newest ~= '' and stored and tonumber(stored) > tonumber(newest)) then
    redis.call('DEL', staging, staging_entries)
    return 0
  end
end
if redis.call('ZCARD', staging) ~= staged or redis.call('HLEN', staging_entries) ~= staged then
  redis.call('DEL', staging, staging_entries)
  return -1
end
local boundary = nil
if ARGV[6] ~= '' then boundary = from_hex(ARGV[6]) end
local size
size, boundary = trim(staging, staging_entries, cap, boundary)
if size > 0 then
  redis.call('RENAME', staging, snapshot)
  redis.call('PERSIST', snapshot)
  redis.call('RENAME', staging_entries, entries)
  redis.call('PERSIST', entries)
else
  redis.call('DEL', snapshot, entries, staging, staging_entries)
end
write_top(snapshot, entries, top, write_meta(meta_key, prefix, total, size, boundary), tonumber(ARGV[8]))
redis.call('DEL', refresh, absent, legacy)
return 1
""",
)

# The source says the board does not exist: drop any snapshot (fenced like a commit) and remember that
# for a while. The version counter goes too: a probed, non-existent board leaves only keys that expire.
# (Versions stay monotonic without it: they are max(counter + 1, server time).)
# ARGV: version, absent ttl ms
MARK_ABSENT = BoardScript(
    ("snapshot", "entries", "meta_key", "refresh", "absent", "counter", "legacy", "top"),
    _META
    + r"""
local meta = meta_of(meta_key)
if meta and tonumber(field(meta, 'version')) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', snapshot, entries, meta_key, refresh, counter, legacy, top)
redis.call('SET', absent, ARGV[1], 'PX', ARGV[2])
return 1
""",
)
