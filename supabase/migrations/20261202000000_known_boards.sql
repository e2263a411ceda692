-- The boards the source has (issue #14, "known boards"): the refresh worker publishes this list to
-- Valkey, and the API answers a request for any other challenge or season with 404 at once, with no
-- refresh request, no source query and no wait.
--
-- A challenge is known when somebody has a result for it (a row of challenge_best: exactly the
-- challenges whose `leaderboard_page` is not empty); a season when it has a row in leaderboard_seasons,
-- results or not (a season without results yet is an empty board, not an unknown one). Weeks and months
-- are not listed: which ones exist follows from the calendar and the retention (common/boards.py).
--
-- One jsonb array, not a set of rows: PostgREST cuts row sets at Supabase's "max rows" (1000), and
-- a deployment can have more challenges than that.
--
-- Cost: the distinct challenge ids are read with a loose index scan of challenge_best_rank_idx (one
-- index descent per challenge, however many results each has), not a scan of the table.

create or replace function public.leaderboard_known_boards()
returns jsonb
language sql
stable
security definer
set search_path = public
as $$
    with recursive challenge as (
        (select b.challenge_id from challenge_best b order by b.challenge_id limit 1)
        union all
        select (select b.challenge_id from challenge_best b
                 where b.challenge_id > c.challenge_id
                 order by b.challenge_id limit 1)
          from challenge c
         where c.challenge_id is not null
    )
    select coalesce(jsonb_agg(board order by board), '[]'::jsonb)
      from (
            select 'challenge:' || c.challenge_id as board from challenge c where c.challenge_id is not null
            union all
            select 'season:' || s.id from leaderboard_seasons s
           ) known
$$;

comment on function public.leaderboard_known_boards is
    'The challenge and season boards the source has, as one JSON array of board names; read by the refresh worker.';

do $$
declare
    r text;
begin
    execute 'revoke all on function public.leaderboard_known_boards() from public';
    -- Supabase grants every new function to these roles by default; take that back where they exist.
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on function public.leaderboard_known_boards() from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        execute 'grant execute on function public.leaderboard_known_boards() to service_role';
    end if;
end;
$$;
