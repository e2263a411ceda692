-- Leaderboard schema: raw results, per-challenge bests and per-user totals kept by triggers, and the
-- ranked-page function the refresh worker calls (as a Supabase RPC or over a direct connection).
--
-- Board "global": per user, the sum over challenges of their best score per challenge.
--   solved          = challenges whose best score is > 0
--   last_solved_at  = when they reached their current total: the latest of the moments at which each
--                     counted best was first reached; NULL for a player who has solved nothing
--   order           = score desc, last_solved_at asc (first to reach a total wins, NULL last), user_id
--   rank            = competition rank: equal score and equal last_solved_at share a rank (1, 2, 2, 4)
-- Board "challenge:<id>": the same rules over that one challenge (score = best score on it).
--
-- Why totals are kept by triggers: ranking a million raw rows with GROUP BY on every refresh grows with
-- the table. With `leaderboard_totals` and `challenge_best` indexed in ranking order, a refresh reads
-- the top N rows by index, whatever the table's size.
--
-- "Never solved" is stored as 'infinity' (not NULL) so that the ranking order is one plain btree order
-- and keyset paging can use a row comparison; the functions turn it back into NULL.

create table if not exists public.challenge_results (
    id            bigint generated always as identity primary key,
    user_id       uuid        not null,
    username      text        not null check (char_length(username) between 1 and 64),
    challenge_id  text        not null check (challenge_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    score         integer     not null check (score >= 0),
    submitted_at  timestamptz not null default now()
);

comment on table public.challenge_results is
    'One row per graded submission. Insert-only in normal use; updates and deletes are honoured too.';

-- Recomputing one (user, challenge) best reads this index top-down.
create index if not exists challenge_results_best_idx
    on public.challenge_results (user_id, challenge_id, score desc, submitted_at);
-- The display name is the one on the user's most recent submission.
create index if not exists challenge_results_user_recent_idx
    on public.challenge_results (user_id, submitted_at desc, id desc);

create table if not exists public.challenge_best (
    user_id       uuid        not null,
    challenge_id  text        not null,
    best_score    integer     not null,
    best_at       timestamptz not null,  -- first time best_score was reached; 'infinity' when it is 0
    primary key (user_id, challenge_id)
);

create index if not exists challenge_best_rank_idx
    on public.challenge_best (challenge_id, (-best_score), best_at, user_id);

create table if not exists public.leaderboard_totals (
    user_id         uuid        primary key,
    username        text        not null,
    score           bigint      not null,
    solved          integer     not null,
    last_solved_at  timestamptz not null  -- 'infinity' when nothing is solved
);

create index if not exists leaderboard_totals_rank_idx
    on public.leaderboard_totals ((-score), last_solved_at, user_id);

-- Recompute bests and totals for the given users and (user, challenge) pairs from challenge_results.
--
-- Concurrency: under READ COMMITTED (Postgres' and Supabase's default) each statement of this VOLATILE
-- function takes a new snapshot. Writers of results first take one transaction-scoped advisory lock, so
-- the statements after it see every result committed by earlier writers and concurrent inserts can never
-- leave a stale total behind. One lock for all writers (instead of one per user) is deliberate: a
-- transaction that inserts for several users in several statements would otherwise take per-user locks
-- in an order no one can fix, and deadlock against another such transaction. Submitting a result is one
-- short insert, so serialising them costs little (measured in `make bench`); a long-running transaction
-- that inserts results holds the others back until it commits.
create or replace function public._leaderboard_recompute(p_users uuid[], p_challenges text[])
returns void
language plpgsql
volatile
set search_path = public
as $$
declare
    n_users integer := coalesce(array_length(p_users, 1), 0);
begin
    if n_users = 0 then
        return;
    end if;
    perform pg_advisory_xact_lock(727001, 0);

    with pairs as (
        select distinct u as user_id, c as challenge_id
          from unnest(p_users, p_challenges) as t(u, c)
    ),
    best as (
        select distinct on (r.user_id, r.challenge_id)
               r.user_id, r.challenge_id, r.score,
               case when r.score > 0 then r.submitted_at else 'infinity'::timestamptz end as best_at
          from public.challenge_results r
          join pairs p on p.user_id = r.user_id and p.challenge_id = r.challenge_id
         order by r.user_id, r.challenge_id, r.score desc, r.submitted_at, r.id
    ),
    gone as (
        delete from public.challenge_best b
         using pairs p
         where b.user_id = p.user_id and b.challenge_id = p.challenge_id
           and not exists (select 1 from best where best.user_id = b.user_id and best.challenge_id = b.challenge_id)
    )
    insert into public.challenge_best as b (user_id, challenge_id, best_score, best_at)
    select user_id, challenge_id, score, best_at from best
    on conflict (user_id, challenge_id) do update
       set best_score = excluded.best_score, best_at = excluded.best_at
     where (b.best_score, b.best_at) is distinct from (excluded.best_score, excluded.best_at);

    with users as (
        select distinct unnest(p_users) as user_id
    ),
    totals as (
        select b.user_id,
               sum(b.best_score) as score,
               count(*) filter (where b.best_score > 0)::integer as solved,
               coalesce(max(b.best_at) filter (where b.best_score > 0), 'infinity'::timestamptz) as last_solved_at
          from public.challenge_best b
          join users u on u.user_id = b.user_id
         group by b.user_id
    ),
    gone as (
        delete from public.leaderboard_totals t
         using users u
         where t.user_id = u.user_id
           and not exists (select 1 from totals where totals.user_id = t.user_id)
    )
    insert into public.leaderboard_totals as t (user_id, username, score, solved, last_solved_at)
    select totals.user_id,
           (select r.username from public.challenge_results r
             where r.user_id = totals.user_id
             order by r.submitted_at desc, r.id desc limit 1),
           totals.score, totals.solved, totals.last_solved_at
      from totals
    on conflict (user_id) do update
       set username = excluded.username, score = excluded.score, solved = excluded.solved,
           last_solved_at = excluded.last_solved_at
     where (t.username, t.score, t.solved, t.last_solved_at)
           is distinct from (excluded.username, excluded.score, excluded.solved, excluded.last_solved_at);
end;
$$;

-- Statement-level triggers with transition tables: one recompute per statement, so a COPY of a million
-- rows costs one set-based pass, not a million row-level calls.
create or replace function public._leaderboard_after_insert() returns trigger
language plpgsql as $$
begin
    perform public._leaderboard_recompute(array_agg(user_id), array_agg(challenge_id)) from new_rows;
    return null;
end;
$$;

create or replace function public._leaderboard_after_delete() returns trigger
language plpgsql as $$
begin
    perform public._leaderboard_recompute(array_agg(user_id), array_agg(challenge_id)) from old_rows;
    return null;
end;
$$;

create or replace function public._leaderboard_after_update() returns trigger
language plpgsql as $$
begin
    perform public._leaderboard_recompute(array_agg(user_id), array_agg(challenge_id))
       from (select user_id, challenge_id from old_rows union select user_id, challenge_id from new_rows) as changed;
    return null;
end;
$$;

drop trigger if exists leaderboard_after_insert on public.challenge_results;
create trigger leaderboard_after_insert after insert on public.challenge_results
    referencing new table as new_rows for each statement execute function public._leaderboard_after_insert();

drop trigger if exists leaderboard_after_delete on public.challenge_results;
create trigger leaderboard_after_delete after delete on public.challenge_results
    referencing old table as old_rows for each statement execute function public._leaderboard_after_delete();

drop trigger if exists leaderboard_after_update on public.challenge_results;
create trigger leaderboard_after_update after update on public.challenge_results
    referencing old table as old_rows new table as new_rows
    for each statement execute function public._leaderboard_after_update();

-- One page of a ranked board, in order. Page 1: p_after_position = 0. Next pages: pass the last row's
-- score, last_solved_at, user_id, rank and position (keyset paging: each page is an index range scan,
-- so reading a 100,000-player board costs the same per page at the end as at the start).
-- `total` (players on the board) is computed on the first page only; NULL on later pages.
-- A challenge nobody has submitted to returns no rows.
create or replace function public.leaderboard_page(
    p_board           text    default 'global',
    p_limit           integer default 1000,
    p_after_score     bigint  default null,
    p_after_time      timestamptz default null,
    p_after_user      uuid    default null,
    p_after_rank      bigint  default null,
    p_after_position  bigint  default 0
)
returns table (
    "position"      bigint,
    rank            bigint,
    user_id         uuid,
    username        text,
    score           bigint,
    solved          integer,
    last_solved_at  timestamptz,
    total           bigint
)
language plpgsql
stable
-- Runs as its owner: the tables have row level security with no policies, and a role that may call
-- this function (service_role, or the worker's own database user) must read the whole board, not an
-- empty one. Only privileged roles can execute it (see the grants below).
security definer
set search_path = public
as $$
declare
    v_first boolean := coalesce(p_after_position, 0) = 0;
    v_position bigint := coalesce(p_after_position, 0);
    -- Page 1 starts "after" a cursor that sorts before every row, so both cases are one index range scan.
    v_score bigint := case when v_first then 9223372036854775807 else p_after_score end;
    v_time timestamptz := case when v_first then '-infinity'::timestamptz else coalesce(p_after_time, 'infinity') end;
    v_user uuid := case when v_first then '00000000-0000-0000-0000-000000000000'::uuid else p_after_user end;
    v_challenge text;
begin
    if p_limit is null or p_limit < 1 or p_limit > 10000 then
        raise exception 'p_limit must be between 1 and 10000' using errcode = '22023';
    end if;
    if not v_first and (p_after_score is null or p_after_user is null or p_after_rank is null) then
        raise exception 'a next page needs p_after_score, p_after_user and p_after_rank' using errcode = '22023';
    end if;

    if p_board = 'global' then
        return query
        with page as (
            select t.user_id, t.username, t.score, t.solved, t.last_solved_at as lst
              from public.leaderboard_totals t
             where (-t.score, t.last_solved_at, t.user_id) > (-v_score, v_time, v_user)
             order by -t.score, t.last_solved_at, t.user_id
             limit p_limit
        )
        select v_position + row_number() over w_all,
               case when not v_first and page.score = p_after_score and page.lst = v_time
                    then p_after_rank
                    else v_position + rank() over w_tie end,
               page.user_id, page.username, page.score, page.solved,
               nullif(page.lst, 'infinity'::timestamptz),
               case when v_first then (select count(*) from public.leaderboard_totals) end
          from page
        window w_tie as (order by -page.score, page.lst),
               w_all as (order by -page.score, page.lst, page.user_id)
         order by -page.score, page.lst, page.user_id;
    elsif p_board ~ '^challenge:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        v_challenge := substr(p_board, 11);
        return query
        with page as (
            select b.user_id, b.best_score::bigint as score, b.best_at as lst
              from public.challenge_best b
             where b.challenge_id = v_challenge
               and (-b.best_score, b.best_at, b.user_id) > (-v_score, v_time, v_user)
             order by -b.best_score, b.best_at, b.user_id
             limit p_limit
        )
        select v_position + row_number() over w_all,
               case when not v_first and page.score = p_after_score and page.lst = v_time
                    then p_after_rank
                    else v_position + rank() over w_tie end,
               page.user_id, t.username, page.score,
               case when page.score > 0 then 1 else 0 end,
               nullif(page.lst, 'infinity'::timestamptz),
               case when v_first then
                   (select count(*) from public.challenge_best c where c.challenge_id = v_challenge) end
          from page
          join public.leaderboard_totals t on t.user_id = page.user_id
        window w_tie as (order by -page.score, page.lst),
               w_all as (order by -page.score, page.lst, page.user_id)
         order by -page.score, page.lst, page.user_id;
    else
        raise exception 'unknown board %', left(p_board, 80) using errcode = '22023';
    end if;
end;
$$;

comment on function public.leaderboard_page is
    'Ranked page of a leaderboard (global or challenge:<id>), keyset-paged; called by the refresh worker.';

-- Access. The worker reads with Supabase's service_role key (or as the table owner over a direct
-- connection). Raw results and derived tables are not exposed to anon/authenticated clients: row level
-- security is on with no policies. The trigger functions run as their owner (SECURITY DEFINER) so that
-- inserting through any role that may insert results still maintains the derived tables.
alter table public.challenge_results enable row level security;
alter table public.challenge_best enable row level security;
alter table public.leaderboard_totals enable row level security;

alter function public._leaderboard_after_insert() security definer set search_path = public;
alter function public._leaderboard_after_delete() security definer set search_path = public;
alter function public._leaderboard_after_update() security definer set search_path = public;

revoke all on function public._leaderboard_recompute(uuid[], text[]) from public;
revoke all on function public._leaderboard_after_insert() from public;
revoke all on function public._leaderboard_after_delete() from public;
revoke all on function public._leaderboard_after_update() from public;
revoke all on function public.leaderboard_page(text, integer, bigint, timestamptz, uuid, bigint, bigint) from public;

do $$
declare
    r text;
begin
    -- Supabase grants every new function to these roles by default; take that back where they exist.
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on function public.leaderboard_page(text, integer, bigint, timestamptz, uuid, bigint, bigint) from %I', r);
            execute format('revoke all on function public._leaderboard_recompute(uuid[], text[]) from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        execute 'grant execute on function public.leaderboard_page(text, integer, bigint, timestamptz, uuid, bigint, bigint) to service_role';
    end if;
end;
$$;
