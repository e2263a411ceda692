-- Boards over time: ISO weeks (`week:2026-W49`), calendar months (`month:2026-12`) and seasons
-- (`season:<id>`, a range in `leaderboard_seasons`), all in UTC, kept by triggers like the global board.
--
-- Ranking rules: exactly the global board's, applied to the results submitted inside the period only
-- (starts_at <= submitted_at < ends_at): per challenge the best score within the period (first reached
-- within the period), summed; solved = challenges whose period best is > 0; last_solved_at = the latest
-- of those first-reached moments; order score desc, last_solved_at asc (NULL last), user_id; competition
-- ranks. The display name is the one on the user's latest submission *within the period*, so a closed
-- period's board never changes again unless its own results are edited or deleted.
--
-- Why aggregates kept by triggers (and not a GROUP BY at refresh time): a refresh of the current week
-- then reads the top rows of one index range, whatever the table holds (bench P10). A season can be
-- long, but maintaining it costs the same per submission as a week: a result touches one
-- (season, user, challenge) best and one (season, user) total. Creating a season, or moving its range,
-- rebuilds that season once from challenge_results (`_leaderboard_period_rebuild`).
--
-- Change feed: every period total carries `change_seq` from `leaderboard_change_seq`, stamped only when
-- the row really changes; a total that disappears leaves a tombstone in `leaderboard_removed`
-- (board = the period's board name). Every writer takes the one advisory lock (727001, 0) before it takes
-- sequence values, so change_seq order is commit order (docs/layout.md).
--
-- `leaderboard_changes` (20261201000000_change_feed.sql) is recreated below with the same body for
-- global and challenge boards, and hands week:, month: and season: boards to
-- `_leaderboard_period_changes`, so a period board gets delta refreshes like any board. Period
-- tombstones share the change feed's table, sequence, pruning (`leaderboard_prune_removed`) and per-board
-- horizon (`leaderboard_feed_horizon`): the change-feed migration must be applied first (it is: the
-- file names sort in that order).
--
-- Applies on an install that already has results: the periods inside the default retention (the
-- current and previous 12 weeks and months) are filled from existing results at the end of this file;
-- older periods are recorded as pruned.

create table if not exists public.leaderboard_seasons (
    id          text        primary key check (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    title       text        check (title is null or char_length(title) between 1 and 200),
    starts_at   timestamptz not null check (isfinite(starts_at)),
    ends_at     timestamptz not null check (isfinite(ends_at)),
    check (ends_at > starts_at)
);

comment on table public.leaderboard_seasons is
    'Contests and events: board season:<id> ranks the results with starts_at <= submitted_at < ends_at.';

create table if not exists public.leaderboard_period_best (
    period        text        not null,  -- the board name: week:2026-W49, month:2026-12, season:<id>
    user_id       uuid        not null,
    challenge_id  text        not null,
    best_score    integer     not null,
    best_at       timestamptz not null,  -- first time best_score was reached in the period; 'infinity' if 0
    primary key (period, user_id, challenge_id)
);

create table if not exists public.leaderboard_period_totals (
    period          text        not null,
    user_id         uuid        not null,
    username        text        not null,
    score           bigint      not null,
    solved          integer     not null,
    last_solved_at  timestamptz not null,  -- 'infinity' when nothing is solved in the period
    change_seq      bigint      not null,
    primary key (period, user_id)
);

create index if not exists leaderboard_period_totals_rank_idx
    on public.leaderboard_period_totals (period, (-score), last_solved_at, user_id);
create index if not exists leaderboard_period_totals_seq_idx
    on public.leaderboard_period_totals (period, change_seq);

-- Retention: periods of a kind that start before `kept_from` have been pruned (or were never filled) and
-- are unknown boards; results dated inside them are not aggregated again.
create table if not exists public.leaderboard_period_retention (
    kind       text        primary key check (kind in ('week', 'month')),
    kept_from  timestamptz not null
);

-- The periods a result submitted at p_at counts for. Plain SQL (no SET, not SECURITY DEFINER) so that
-- the planner inlines it into the triggers' set-based queries. Weeks and months exist from 1900 to 9998.
create or replace function public._leaderboard_periods_at(p_at timestamptz)
returns table (period text, starts_at timestamptz, ends_at timestamptz)
language sql
stable
as $$
    select p.period, p.starts_at, p.ends_at
      from (
            select 'week' as kind,
                   'week:' || to_char(p_at at time zone 'UTC', 'IYYY-"W"IW') as period,
                   date_trunc('week', p_at at time zone 'UTC') at time zone 'UTC' as starts_at,
                   (date_trunc('week', p_at at time zone 'UTC') + interval '7 days') at time zone 'UTC' as ends_at
            union all
            select 'month',
                   'month:' || to_char(p_at at time zone 'UTC', 'YYYY-MM'),
                   date_trunc('month', p_at at time zone 'UTC') at time zone 'UTC',
                   (date_trunc('month', p_at at time zone 'UTC') + interval '1 month') at time zone 'UTC'
           ) p
     where p_at >= '1900-01-01 00:00:00+00' and p_at < '9999-01-01 00:00:00+00'
       and not exists (select 1 from public.leaderboard_period_retention k
                        where k.kind = p.kind and p.starts_at < k.kept_from)
    union all
    select 'season:' || s.id, s.starts_at, s.ends_at
      from public.leaderboard_seasons s
     where p_at >= s.starts_at and p_at < s.ends_at
$$;

-- The range of a period board, or no row when the board is unknown: a malformed or impossible name
-- (week 53 of a 52-week year, month 13), a pruned period, a season that is not in the table.
create or replace function public._leaderboard_period_range(p_board text)
returns table (starts_at timestamptz, ends_at timestamptz)
language plpgsql
stable
set search_path = public
as $$
declare
    v_day date;
    v_kind text;
begin
    if p_board ~ '^week:(19|[2-9][0-9])[0-9]{2}-W(0[1-9]|[1-4][0-9]|5[0-3])$' then
        v_kind := 'week';
        v_day := to_date(substr(p_board, 6, 4) || '-' || substr(p_board, 12, 2), 'IYYY-IW');
        -- to_date rolls an impossible week over into the next year: the round trip rejects it
        if to_char(v_day, 'IYYY-"W"IW') <> substr(p_board, 6) then
            return;
        end if;
        starts_at := v_day::timestamp at time zone 'UTC';
        ends_at := (v_day + 7)::timestamp at time zone 'UTC';
    elsif p_board ~ '^month:(19|[2-9][0-9])[0-9]{2}-(0[1-9]|1[0-2])$' then
        v_kind := 'month';
        v_day := make_date(substr(p_board, 7, 4)::int, substr(p_board, 12, 2)::int, 1);
        starts_at := v_day::timestamp at time zone 'UTC';
        ends_at := (v_day + interval '1 month') at time zone 'UTC';
    elsif p_board ~ '^season:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        return query select s.starts_at, s.ends_at from leaderboard_seasons s where s.id = substr(p_board, 8);
        return;
    else
        return;
    end if;
    if starts_at < '1900-01-01 00:00:00+00' or starts_at >= '9999-01-01 00:00:00+00'
       or exists (select 1 from leaderboard_period_retention k where k.kind = v_kind and starts_at < k.kept_from) then
        return;
    end if;
    return next;
end;
$$;

-- Recompute the period bests and totals of the given (period, range, user, challenge) targets from
-- challenge_results. Same concurrency rules as _leaderboard_recompute: the advisory lock first, then
-- every statement (READ COMMITTED, VOLATILE) sees all results committed before it.
--
-- Plans: planning these two statements costs about ten times what running them costs for one
-- submission, and PostgreSQL's plan cache keeps re-planning them (a custom plan per call looks cheaper
-- than the generic one). So a small call (a submission, a few rows) runs the cached generic plan
-- (index lookups), and a large one (a COPY, a season rebuild) is planned for its real size (hash and
-- merge joins). The setting is transaction-local and restored before returning.
create or replace function public._leaderboard_period_apply(
    p_periods text[], p_starts timestamptz[], p_ends timestamptz[], p_users uuid[], p_challenges text[]
)
returns void
language plpgsql
volatile
set search_path = public
as $$
declare
    n integer := coalesce(array_length(p_periods, 1), 0);
    v_mode text := current_setting('plan_cache_mode');
begin
    if n = 0 then
        return;
    end if;
    perform pg_advisory_xact_lock(727001, 0);
    perform set_config('plan_cache_mode', case when n <= 1000 then 'force_generic_plan' else 'force_custom_plan' end, true);

    with targets as (
        select distinct p as period, s as starts_at, e as ends_at, u as user_id, c as challenge_id
          from unnest(p_periods, p_starts, p_ends, p_users, p_challenges) as t(p, s, e, u, c)
    ),
    best as (
        select distinct on (g.period, g.user_id, g.challenge_id)
               g.period, g.user_id, g.challenge_id, r.score,
               case when r.score > 0 then r.submitted_at else 'infinity'::timestamptz end as best_at
          from targets g
          join challenge_results r
            on r.user_id = g.user_id and r.challenge_id = g.challenge_id
           and r.submitted_at >= g.starts_at and r.submitted_at < g.ends_at
         order by g.period, g.user_id, g.challenge_id, r.score desc, r.submitted_at, r.id
    ),
    gone as (
        delete from leaderboard_period_best b
         using targets g
         where b.period = g.period and b.user_id = g.user_id and b.challenge_id = g.challenge_id
           and not exists (select 1 from best x
                            where x.period = b.period and x.user_id = b.user_id and x.challenge_id = b.challenge_id)
    )
    insert into leaderboard_period_best as b (period, user_id, challenge_id, best_score, best_at)
    select period, user_id, challenge_id, score, best_at from best
    on conflict (period, user_id, challenge_id) do update
       set best_score = excluded.best_score, best_at = excluded.best_at
     where (b.best_score, b.best_at) is distinct from (excluded.best_score, excluded.best_at);

    with keys as (
        select distinct p as period, s as starts_at, e as ends_at, u as user_id
          from unnest(p_periods, p_starts, p_ends, p_users) as t(p, s, e, u)
    ),
    totals as (
        select b.period, b.user_id,
               sum(b.best_score) as score,
               count(*) filter (where b.best_score > 0)::integer as solved,
               coalesce(max(b.best_at) filter (where b.best_score > 0), 'infinity'::timestamptz) as last_solved_at
          from leaderboard_period_best b
          join keys k on k.period = b.period and k.user_id = b.user_id
         group by b.period, b.user_id
    ),
    wanted as (
        select x.period, x.user_id,
               (select r.username from challenge_results r
                 where r.user_id = x.user_id and r.submitted_at >= k.starts_at and r.submitted_at < k.ends_at
                 order by r.submitted_at desc, r.id desc limit 1) as username,
               x.score, x.solved, x.last_solved_at
          from totals x
          join keys k on k.period = x.period and k.user_id = x.user_id
    ),
    changed as (
        select w.* from wanted w
          left join leaderboard_period_totals t on t.period = w.period and t.user_id = w.user_id
         where t.user_id is null
            or (t.username, t.score, t.solved, t.last_solved_at)
               is distinct from (w.username, w.score, w.solved, w.last_solved_at)
    ),
    gone as (
        delete from leaderboard_period_totals t
         using keys k
         where t.period = k.period and t.user_id = k.user_id
           and not exists (select 1 from totals x where x.period = t.period and x.user_id = t.user_id)
        returning t.period, t.user_id
    ),
    buried as (
        insert into leaderboard_removed as d (board, user_id, change_seq)
        select period, user_id, nextval('public.leaderboard_change_seq') from gone
        on conflict (board, user_id) do update
           set change_seq = excluded.change_seq, removed_at = now()
    ),
    upserted as (
        insert into leaderboard_period_totals as t
               (period, user_id, username, score, solved, last_solved_at, change_seq)
        select period, user_id, username, score, solved, last_solved_at, nextval('public.leaderboard_change_seq')
          from changed
         order by period, user_id  -- a bulk insert walks the primary key in order
        on conflict (period, user_id) do update
           set username = excluded.username, score = excluded.score, solved = excluded.solved,
               last_solved_at = excluded.last_solved_at, change_seq = excluded.change_seq
        returning t.period, t.user_id
    )
    delete from leaderboard_removed d
     using upserted u
     where d.board = u.period and d.user_id = u.user_id;

    perform set_config('plan_cache_mode', v_mode, true);
end;
$$;

-- Rebuild one period over [p_starts, p_ends): every pair with results in the range, and every pair the
-- period held before (so rows that fall outside a moved range go, with tombstones).
create or replace function public._leaderboard_period_rebuild(p_period text, p_starts timestamptz, p_ends timestamptz)
returns void
language plpgsql
volatile
set search_path = public
as $$
begin
    perform pg_advisory_xact_lock(727001, 0);
    perform _leaderboard_period_apply(array_agg(p_period), array_agg(p_starts), array_agg(p_ends),
                                      array_agg(user_id), array_agg(challenge_id))
       from (select r.user_id, r.challenge_id from challenge_results r
              where r.submitted_at >= p_starts and r.submitted_at < p_ends
             union
             select b.user_id, b.challenge_id from leaderboard_period_best b where b.period = p_period) pairs;
end;
$$;

-- The periods of the given results (a statement's rows, or existing results when a migration fills
-- periods), recomputed in one set-based pass. Plans as in _leaderboard_period_apply. No SET clause
-- (it costs every submission a configuration save and restore): names are qualified instead.
create or replace function public._leaderboard_period_touch(p_users uuid[], p_challenges text[], p_times timestamptz[])
returns void
language plpgsql
volatile
as $$
declare
    v_mode text := current_setting('plan_cache_mode');
begin
    perform set_config('plan_cache_mode',
        case when coalesce(array_length(p_users, 1), 0) <= 1000 then 'force_generic_plan' else 'force_custom_plan' end,
        true);
    perform public._leaderboard_period_apply(array_agg(p.period), array_agg(p.starts_at), array_agg(p.ends_at),
                                             array_agg(p.user_id), array_agg(p.challenge_id))
       from (select distinct r.u as user_id, r.c as challenge_id, w.period, w.starts_at, w.ends_at
               from unnest(p_users, p_challenges, p_times) as r(u, c, t)
              cross join lateral public._leaderboard_periods_at(r.t) w) p;
    perform set_config('plan_cache_mode', v_mode, true);
end;
$$;

-- Statement-level triggers (after the global ones: triggers fire in name order), one pass per statement;
-- one function for the three, which reads the transition tables its operation has.
create or replace function public._leaderboard_period_after_change() returns trigger
language plpgsql as $$
declare
    v_users uuid[];
    v_challenges text[];
    v_times timestamptz[];
    v_old_users uuid[];
    v_old_challenges text[];
    v_old_times timestamptz[];
begin
    if tg_op <> 'DELETE' then
        select array_agg(user_id), array_agg(challenge_id), array_agg(submitted_at)
          into v_users, v_challenges, v_times from new_rows;
    end if;
    if tg_op <> 'INSERT' then
        select array_agg(user_id), array_agg(challenge_id), array_agg(submitted_at)
          into v_old_users, v_old_challenges, v_old_times from old_rows;
    end if;
    perform public._leaderboard_period_touch(v_users || v_old_users, v_challenges || v_old_challenges,
                                             v_times || v_old_times);
    return null;
end;
$$;

drop trigger if exists leaderboard_period_after_insert on public.challenge_results;
create trigger leaderboard_period_after_insert after insert on public.challenge_results
    referencing new table as new_rows for each statement execute function public._leaderboard_period_after_change();

drop trigger if exists leaderboard_period_after_delete on public.challenge_results;
create trigger leaderboard_period_after_delete after delete on public.challenge_results
    referencing old table as old_rows for each statement execute function public._leaderboard_period_after_change();

drop trigger if exists leaderboard_period_after_update on public.challenge_results;
create trigger leaderboard_period_after_update after update on public.challenge_results
    referencing old table as old_rows new table as new_rows
    for each statement execute function public._leaderboard_period_after_change();

-- TRUNCATE fires no row triggers: empty the period aggregates with it (the feeds start over; a stored
-- position is then above the board's head, which _leaderboard_period_changes answers with LB001).
create or replace function public._leaderboard_period_after_truncate() returns trigger
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(727001, 0);
    -- DELETE, not TRUNCATE: the truncate that fired this may name these tables too
    delete from public.leaderboard_period_best;
    delete from public.leaderboard_period_totals;
    delete from public.leaderboard_removed where board ~ '^(week|month|season):';
    delete from public.leaderboard_feed_horizon where board ~ '^(week|month|season):';
    return null;
end;
$$;

drop trigger if exists leaderboard_period_after_truncate on public.challenge_results;
create trigger leaderboard_period_after_truncate after truncate on public.challenge_results
    for each statement execute function public._leaderboard_period_after_truncate();

-- A new season is built from the results already in its range; a moved range rebuilds it; a deleted or
-- renamed season's board is gone (rows and tombstones: the board is unknown, like a challenge nobody
-- has submitted to).
create or replace function public._leaderboard_season_changed() returns trigger
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(727001, 0);
    if tg_op = 'DELETE' or (tg_op = 'UPDATE' and old.id <> new.id) then
        delete from public.leaderboard_period_best where period = 'season:' || old.id;
        delete from public.leaderboard_period_totals where period = 'season:' || old.id;
        delete from public.leaderboard_removed where board = 'season:' || old.id;
        delete from public.leaderboard_feed_horizon where board = 'season:' || old.id;
    end if;
    if tg_op = 'INSERT' or (tg_op = 'UPDATE' and (old.id, old.starts_at, old.ends_at)
                                                 is distinct from (new.id, new.starts_at, new.ends_at)) then
        perform public._leaderboard_period_rebuild('season:' || new.id, new.starts_at, new.ends_at);
    end if;
    return null;
end;
$$;

drop trigger if exists leaderboard_season_changed on public.leaderboard_seasons;
create trigger leaderboard_season_changed after insert or update or delete on public.leaderboard_seasons
    for each row execute function public._leaderboard_season_changed();

-- One page of a ranked board (see 20261129000000_leaderboard.sql); now also week:, month: and season:
-- boards. An unknown period board (pruned, impossible, a season not in the table) returns no rows,
-- like a challenge nobody has submitted to.
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
security definer
set search_path = public
as $$
declare
    v_first boolean := coalesce(p_after_position, 0) = 0;
    v_position bigint := coalesce(p_after_position, 0);
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
    elsif p_board ~ '^(week|month|season):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        if not exists (select 1 from public._leaderboard_period_range(p_board)) then
            return;
        end if;
        return query
        with page as (
            select t.user_id, t.username, t.score, t.solved, t.last_solved_at as lst
              from public.leaderboard_period_totals t
             where t.period = p_board
               and (-t.score, t.last_solved_at, t.user_id) > (-v_score, v_time, v_user)
             order by -t.score, t.last_solved_at, t.user_id
             limit p_limit
        )
        select v_position + row_number() over w_all,
               case when not v_first and page.score = p_after_score and page.lst = v_time
                    then p_after_rank
                    else v_position + rank() over w_tie end,
               page.user_id, page.username, page.score, page.solved,
               nullif(page.lst, 'infinity'::timestamptz),
               case when v_first then
                   (select count(*) from public.leaderboard_period_totals c where c.period = p_board) end
          from page
        window w_tie as (order by -page.score, page.lst),
               w_all as (order by -page.score, page.lst, page.user_id)
         order by -page.score, page.lst, page.user_id;
    else
        raise exception 'unknown board %', left(p_board, 80) using errcode = '22023';
    end if;
end;
$$;

comment on function public.leaderboard_page is
    'Ranked page of a leaderboard (global, challenge:<id>, week:<YYYY-Www>, month:<YYYY-MM>, season:<id>), keyset-paged.';

-- The change feed of one period board: leaderboard_changes' contract exactly (same reply, same head,
-- horizon and LB001 rules, p_with_total), over leaderboard_period_totals and the board's tombstones.
-- The one difference: an unknown board (pruned period, deleted or unknown season, impossible name) has
-- no feed. A position on it (p_after > 0) raises LB001 ("rebuild"; the rebuild's first page is then
-- empty: the board is absent); p_after null or 0 gets head 0 and no changes. A period's tombstones go
-- with the period (leaderboard_prune_periods) or earlier through leaderboard_prune_removed, which
-- raises the board's horizon as for any board.
create or replace function public._leaderboard_period_changes(
    p_board       text,
    p_after       bigint,
    p_limit       integer,
    p_with_total  boolean default false
)
returns jsonb
language plpgsql
stable
security definer
set search_path = public
as $$
declare
    v_horizon bigint;
    v_head bigint;
    v_changes jsonb;
    v_total bigint;
begin
    if p_limit is null or p_limit < 0 or p_limit > 1000 then
        raise exception 'p_limit must be between 0 and 1000' using errcode = '22023';
    end if;
    if p_board is null or p_board !~ '^(week|month|season):' then
        raise exception 'not a period board: %', left(coalesce(p_board, 'null'), 80) using errcode = '22023';
    end if;
    if not exists (select 1 from _leaderboard_period_range(p_board)) then
        if coalesce(p_after, 0) <> 0 then
            raise exception 'position % is not covered by the change feed of % (no such board): rebuild',
                            p_after, left(p_board, 80)
                  using errcode = 'LB001',
                        hint = 'read the whole board again (leaderboard_page), starting at head';
        end if;
        if p_with_total then
            return jsonb_build_object('head', 0, 'horizon', 0, 'changes', '[]'::jsonb, 'total', 0);
        end if;
        return jsonb_build_object('head', 0, 'horizon', 0, 'changes', '[]'::jsonb);
    end if;

    v_horizon := coalesce((select h.horizon from leaderboard_feed_horizon h where h.board = p_board), 0);
    v_head := greatest(
        v_horizon,
        coalesce((select max(d.change_seq) from leaderboard_removed d where d.board = p_board), 0),
        coalesce((select max(t.change_seq) from leaderboard_period_totals t where t.period = p_board), 0));

    if p_after is not null and (p_after < v_horizon or p_after > v_head) then
        -- above the head: a history that is gone (the results were truncated)
        raise exception 'position % is not covered by the change feed of % (horizon %, head %): rebuild',
                        p_after, left(p_board, 80), v_horizon, v_head
              using errcode = 'LB001',
                    hint = 'read the whole board again (leaderboard_page), starting at head';
    end if;

    if p_after is null or p_limit = 0 then
        v_changes := '[]'::jsonb;
    else
        select coalesce(jsonb_agg(c.item order by c.change_seq), '[]'::jsonb) into v_changes
          from (
              select ch.change_seq, ch.item from (
                  (select t.change_seq,
                          jsonb_build_object('user_id', t.user_id, 'username', t.username, 'score', t.score,
                                             'solved', t.solved,
                                             'last_solved_at', nullif(t.last_solved_at, 'infinity'::timestamptz),
                                             'change_seq', t.change_seq, 'removed', false) as item
                     from leaderboard_period_totals t
                    where t.period = p_board and t.change_seq > p_after
                    order by t.change_seq
                    limit p_limit)
                  union all
                  (select d.change_seq,
                          jsonb_build_object('user_id', d.user_id, 'change_seq', d.change_seq, 'removed', true)
                     from leaderboard_removed d
                    where d.board = p_board and d.change_seq > p_after
                    order by d.change_seq
                    limit p_limit)
              ) as ch
              order by ch.change_seq
              limit p_limit
          ) as c;
    end if;

    if p_with_total then
        v_total := (select count(*) from leaderboard_period_totals t where t.period = p_board);
        return jsonb_build_object('head', v_head, 'horizon', v_horizon, 'changes', v_changes, 'total', v_total);
    end if;
    return jsonb_build_object('head', v_head, 'horizon', v_horizon, 'changes', v_changes);
end;
$$;

-- leaderboard_changes as in 20261201000000_change_feed.sql (the global and challenge branches are that
-- body unchanged), plus: week:, month: and season: boards are answered by _leaderboard_period_changes.
--
-- What changed on a board after position p_after, oldest first, at most p_limit changes (<= 1000,
-- Supabase's max rows: one request never returns more), in ONE snapshot (a STABLE function: all its
-- statements see the calling query's snapshot):
--
--   {"head": H, "horizon": Z, "changes": [{"user_id", "username", "score", "solved", "last_solved_at",
--    "change_seq", "removed"}, ...], "total": N (only when p_with_total)}
--
-- head: the highest position visible for this board (never below its horizon). Fewer than p_limit
-- changes back means the caller is caught up at head; otherwise it continues after the last change's
-- change_seq. Each player appears at most once (rows and tombstones carry their latest number).
-- p_after null: no changes, only head and horizon (where a full rebuild starts).
-- p_after below the horizon (a tombstone it needs was pruned) or above head (a position from another
-- database, or a restored backup): SQLSTATE LB001, "rebuild from scratch".
-- p_with_total: also count the board's players (O(players): only for boards capped by LEADERBOARD_SIZE,
-- whose snapshot cannot count them itself).
create or replace function public.leaderboard_changes(
    p_board       text,
    p_after       bigint  default null,
    p_limit       integer default 1000,
    p_with_total  boolean default false
)
returns jsonb
language plpgsql
stable
security definer  -- as leaderboard_page: RLS is on with no policies; only privileged roles may call it
set search_path = public
as $$
declare
    v_challenge text;
    v_horizon bigint;
    v_head bigint;
    v_changes jsonb;
    v_total bigint;
begin
    if p_limit is null or p_limit < 0 or p_limit > 1000 then
        raise exception 'p_limit must be between 0 and 1000' using errcode = '22023';
    end if;
    if p_board ~ '^(week|month|season):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        return public._leaderboard_period_changes(p_board, p_after, p_limit, p_with_total);
    elsif p_board = 'global' then
        v_challenge := null;
    elsif p_board ~ '^challenge:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' then
        v_challenge := substr(p_board, 11);
    else
        raise exception 'unknown board %', left(p_board, 80) using errcode = '22023';
    end if;

    v_horizon := coalesce((select h.horizon from public.leaderboard_feed_horizon h where h.board = p_board), 0);
    v_head := greatest(
        v_horizon,
        coalesce((select max(d.change_seq) from public.leaderboard_removed d where d.board = p_board), 0),
        case when v_challenge is null
             then coalesce((select max(t.change_seq) from public.leaderboard_totals t), 0)
             else coalesce((select max(b.change_seq) from public.challenge_best b
                             where b.challenge_id = v_challenge), 0) end
    );

    if p_after is not null and (p_after < v_horizon or p_after > v_head) then
        raise exception 'position % is not covered by the change feed of % (horizon %, head %): rebuild',
                        p_after, left(p_board, 80), v_horizon, v_head
              using errcode = 'LB001',
                    hint = 'read the whole board again (leaderboard_page), starting at head';
    end if;

    if p_after is null or p_limit = 0 then
        v_changes := '[]'::jsonb;
    elsif v_challenge is null then
        select coalesce(jsonb_agg(c.item order by c.change_seq), '[]'::jsonb) into v_changes
          from (
              select ch.change_seq, ch.item from (
                  (select t.change_seq,
                          jsonb_build_object('user_id', t.user_id, 'username', t.username, 'score', t.score,
                                             'solved', t.solved,
                                             'last_solved_at', nullif(t.last_solved_at, 'infinity'::timestamptz),
                                             'change_seq', t.change_seq, 'removed', false) as item
                     from public.leaderboard_totals t
                    where t.change_seq > p_after
                    order by t.change_seq
                    limit p_limit)
                  union all
                  (select d.change_seq,
                          jsonb_build_object('user_id', d.user_id, 'change_seq', d.change_seq, 'removed', true)
                     from public.leaderboard_removed d
                    where d.board = p_board and d.change_seq > p_after
                    order by d.change_seq
                    limit p_limit)
              ) as ch
              order by ch.change_seq
              limit p_limit
          ) as c;
    else
        select coalesce(jsonb_agg(c.item order by c.change_seq), '[]'::jsonb) into v_changes
          from (
              select ch.change_seq, ch.item from (
                  (select b.change_seq,
                          jsonb_build_object('user_id', b.user_id, 'username', t.username,
                                             'score', b.best_score::bigint,
                                             'solved', case when b.best_score > 0 then 1 else 0 end,
                                             'last_solved_at', nullif(b.best_at, 'infinity'::timestamptz),
                                             'change_seq', b.change_seq, 'removed', false) as item
                     from public.challenge_best b
                     join public.leaderboard_totals t on t.user_id = b.user_id
                    where b.challenge_id = v_challenge and b.change_seq > p_after
                    order by b.change_seq
                    limit p_limit)
                  union all
                  (select d.change_seq,
                          jsonb_build_object('user_id', d.user_id, 'change_seq', d.change_seq, 'removed', true)
                     from public.leaderboard_removed d
                    where d.board = p_board and d.change_seq > p_after
                    order by d.change_seq
                    limit p_limit)
              ) as ch
              order by ch.change_seq
              limit p_limit
          ) as c;
    end if;

    if p_with_total then
        if v_challenge is null then
            v_total := (select count(*) from public.leaderboard_totals);
        else
            v_total := (select count(*) from public.challenge_best b where b.challenge_id = v_challenge);
        end if;
        return jsonb_build_object('head', v_head, 'horizon', v_horizon, 'changes', v_changes, 'total', v_total);
    end if;
    return jsonb_build_object('head', v_head, 'horizon', v_horizon, 'changes', v_changes);
end;
$$;

comment on function public.leaderboard_changes is
    'Change feed of a leaderboard after a position (LB001: rebuild); called by the refresh worker. Period boards: _leaderboard_period_changes.';

-- What the worker needs to know about a period board: whether it exists, and when it ends (a snapshot
-- generated after the end, plus a grace for late commits, is final: docs/layout.md "Time boards").
-- {"board", "known": bool, "starts_at", "ends_at"} (times as ISO-8601 UTC with microseconds).
create or replace function public.leaderboard_board_period(p_board text)
returns jsonb
language sql
stable
security definer
set search_path = public
as $$
    select coalesce(
        (select jsonb_build_object(
                    'board', p_board, 'known', true,
                    'starts_at', to_char(r.starts_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    'ends_at', to_char(r.ends_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
           from _leaderboard_period_range(p_board) r),
        jsonb_build_object('board', p_board, 'known', false, 'starts_at', null, 'ends_at', null))
$$;

-- Retention: delete the weeks and months that ended before the current period minus the kept ones
-- (defaults: the current and previous 12 weeks, the current and previous 12 months), with their
-- tombstones, and record the cut so that they stay unknown boards. Seasons are never pruned: delete
-- the season row to remove its board. Run it daily, e.g. with pg_cron on Supabase:
--   select cron.schedule('leaderboard-prune-periods', '17 3 * * *', 'select public.leaderboard_prune_periods()');
create or replace function public.leaderboard_prune_periods(p_keep_weeks integer default 12, p_keep_months integer default 12)
returns jsonb
language plpgsql
volatile
security definer
set search_path = public
as $$
declare
    v_now timestamp := now() at time zone 'UTC';
    v_week_cut timestamp;
    v_month_cut timestamp;
    v_week_key text;
    v_month_key text;
    v_weeks bigint;
    v_months bigint;
begin
    if p_keep_weeks is null or p_keep_weeks < 0 or p_keep_weeks > 5200 then
        raise exception 'p_keep_weeks must be between 0 and 5200' using errcode = '22023';
    end if;
    if p_keep_months is null or p_keep_months < 0 or p_keep_months > 1200 then
        raise exception 'p_keep_months must be between 0 and 1200' using errcode = '22023';
    end if;
    perform pg_advisory_xact_lock(727001, 0);
    v_week_cut := date_trunc('week', v_now) - make_interval(weeks => p_keep_weeks);
    v_month_cut := date_trunc('month', v_now) - make_interval(months => p_keep_months);
    -- Period names sort like their dates byte-wise (four-digit years, two-digit weeks and months); "C"
    -- so that no locale's collation can reorder them.
    v_week_key := 'week:' || to_char(v_week_cut, 'IYYY-"W"IW');
    v_month_key := 'month:' || to_char(v_month_cut, 'YYYY-MM');

    with gone as (
        delete from leaderboard_period_totals
         where (period like 'week:%' and period collate "C" < v_week_key)
            or (period like 'month:%' and period collate "C" < v_month_key)
        returning period
    )
    select count(distinct period) filter (where period like 'week:%'),
           count(distinct period) filter (where period like 'month:%')
      into v_weeks, v_months
      from gone;
    delete from leaderboard_period_best
     where (period like 'week:%' and period collate "C" < v_week_key)
        or (period like 'month:%' and period collate "C" < v_month_key);
    delete from leaderboard_removed
     where (board like 'week:%' and board collate "C" < v_week_key)
        or (board like 'month:%' and board collate "C" < v_month_key);
    delete from leaderboard_feed_horizon
     where (board like 'week:%' and board collate "C" < v_week_key)
        or (board like 'month:%' and board collate "C" < v_month_key);

    insert into leaderboard_period_retention as k (kind, kept_from)
    values ('week', v_week_cut at time zone 'UTC'), ('month', v_month_cut at time zone 'UTC')
    on conflict (kind) do update set kept_from = greatest(k.kept_from, excluded.kept_from);

    return jsonb_build_object('weeks_pruned', v_weeks, 'months_pruned', v_months,
                              'weeks_kept_from', v_week_key, 'months_kept_from', v_month_key);
end;
$$;

-- Access: as for the global board (RLS on, no policies; functions run as their owner; only privileged
-- roles may call the worker's functions).
alter table public.leaderboard_seasons enable row level security;
alter table public.leaderboard_period_best enable row level security;
alter table public.leaderboard_period_totals enable row level security;
alter table public.leaderboard_period_retention enable row level security;

alter function public._leaderboard_period_after_change() security definer set search_path = public;
alter function public._leaderboard_season_changed() security definer set search_path = public;
alter function public._leaderboard_period_after_truncate() security definer set search_path = public;

do $$
declare
    f text;
    r text;
begin
    foreach f in array array[
        'public._leaderboard_periods_at(timestamptz)',
        'public._leaderboard_period_range(text)',
        'public._leaderboard_period_apply(text[], timestamptz[], timestamptz[], uuid[], text[])',
        'public._leaderboard_period_rebuild(text, timestamptz, timestamptz)',
        'public._leaderboard_period_touch(uuid[], text[], timestamptz[])',
        'public._leaderboard_period_after_change()',
        'public._leaderboard_season_changed()',
        'public._leaderboard_period_after_truncate()',
        'public._leaderboard_period_changes(text, bigint, integer, boolean)',
        'public.leaderboard_changes(text, bigint, integer, boolean)',
        'public.leaderboard_board_period(text)',
        'public.leaderboard_prune_periods(integer, integer)',
        'public.leaderboard_page(text, integer, bigint, timestamptz, uuid, bigint, bigint)'
    ] loop
        execute format('revoke all on function %s from public', f);
        -- Supabase grants every new function to these roles by default; take that back where they exist.
        foreach r in array array['anon', 'authenticated'] loop
            if exists (select 1 from pg_roles where rolname = r) then
                execute format('revoke all on function %s from %I', f, r);
            end if;
        end loop;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        execute 'grant execute on function public.leaderboard_page(text, integer, bigint, timestamptz, uuid, bigint, bigint) to service_role';
        execute 'grant execute on function public.leaderboard_changes(text, bigint, integer, boolean) to service_role';
        execute 'grant execute on function public.leaderboard_board_period(text) to service_role';
        execute 'grant execute on function public.leaderboard_prune_periods(integer, integer) to service_role';
    end if;
end;
$$;

-- An existing install: fill the periods inside the default retention from the results already there,
-- and record the older ones as pruned. Idempotent (a second run changes nothing).
do $$
declare
    v_now timestamp := now() at time zone 'UTC';
    v_week_from timestamptz := (date_trunc('week', v_now) - interval '12 weeks') at time zone 'UTC';
    v_month_from timestamptz := (date_trunc('month', v_now) - interval '12 months') at time zone 'UTC';
begin
    -- Older periods are not filled: record them as pruned (only if there are older results at all, so
    -- that a fresh install knows every period).
    if exists (select 1 from public.challenge_results where submitted_at < greatest(v_week_from, v_month_from)) then
        insert into public.leaderboard_period_retention (kind, kept_from)
        values ('week', v_week_from), ('month', v_month_from)
        on conflict (kind) do nothing;
    end if;
    perform public._leaderboard_period_touch(array_agg(user_id), array_agg(challenge_id), array_agg(submitted_at))
       from public.challenge_results
      where submitted_at >= least(v_week_from, v_month_from);
end;
$$;
