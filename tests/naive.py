"""The independent ranking the change-feed and delta tests compare boards with: plain SQL over
`challenge_results`, written here and not in the migration (none of our functions or derived tables).

Per user the best score per challenge (reached first), summed; solved = bests above 0; the time = the
latest counted best; the display name of the latest submission. Rows: user_id (text), username, score,
solved, at (NULL when nothing is solved).
"""

from __future__ import annotations

_NAMES = """names as (
    select distinct on (user_id) user_id, username from challenge_results
     order by user_id, submitted_at desc, id desc
)"""

GLOBAL = f"""
with best as (
    select distinct on (user_id, challenge_id) user_id, challenge_id, score, submitted_at
      from challenge_results order by user_id, challenge_id, score desc, submitted_at, id
), {_NAMES}
select b.user_id::text as user_id, n.username, sum(b.score)::bigint as score,
       (count(*) filter (where b.score > 0))::int as solved,
       max(b.submitted_at) filter (where b.score > 0) as at
  from best b join names n using (user_id) group by b.user_id, n.username
"""

# $1: the challenge id
CHALLENGE = f"""
with best as (
    select distinct on (user_id) user_id, score, case when score > 0 then submitted_at end as at
      from challenge_results where challenge_id = $1 order by user_id, score desc, submitted_at, id
), {_NAMES}
select b.user_id::text as user_id, n.username, b.score::bigint as score, (b.score > 0)::int as solved, b.at
  from best b join names n using (user_id)
"""


def ranked(query: str) -> str:
    """The same rows with competition ranks, in board order (score desc, time asc never-solved last,
    user id)."""
    return f"""
select rank() over (order by score desc, at asc nulls last) as rank, *
  from ({query}) as board
 order by score desc, at asc nulls last, user_id::uuid
"""


def for_board(board: str) -> tuple[str, tuple[str, ...]]:
    """The query and its arguments for `global` or `challenge:<id>`."""
    if board == "global":
        return GLOBAL, ()
    return CHALLENGE, (board.partition(":")[2],)
