-- The change feed (issue 12): what changed on a board since a position, so that a refresh costs in
-- proportion to the players whose standing changed, not to the size of the board.
--
-- Applies on top of 20261129000000_leaderboard.sql, also on an install that already holds data: rows that
-- exist before this migration get change_seq 0 ("older than any position"); a worker's first refresh
-- after the upgrade is a full rebuild anyway, and every later change gets a number from the sequence.
--
-- Positions. `leaderboard_change_seq` numbers every change to a `leaderboard_totals` or `challenge_best`
-- row and every removal (a tombstone in `leaderboard_removed`). `_leaderboard_recompute` stamps a new
-- number only on rows whose ranked content really changes (rows it rewrites to the same values keep
-- theirs). Every writer takes the one advisory lock (727001, 0) before it takes numbers and holds it
-- until it commits, so numbers are handed out in commit order: a reader that sees change N sees every
-- change below N. That is why `head` below is the highest number *visible* in the reader's snapshot and
-- never the sequence's last_value (which can belong to a transaction that has not committed yet).
--
-- Tombstones say "this player left this board" (all their results deleted). They are kept until
-- `leaderboard_prune_removed` deletes old ones; pruning raises the board's horizon, and a reader whose
-- position is below the horizon may have missed a removal: `leaderboard_changes` refuses it with
-- SQLSTATE LB001 and the worker rebuilds the board from scratch.

create sequence if not exists public.leaderboard_change_seq as bigint;

-- A constant default adds the column without rewriting the table (PostgreSQL 11+).
alter table public.leaderboard_totals add column if not exists change_seq bigint not null default 0;
alter table public.challenge_best add column if not exists change_seq bigint not null default 0;

create index if not exists leaderboard_totals_change_idx on public.leaderboard_totals (change_seq);
create index if not exists challenge_best_change_idx on public.challenge_best (challenge_id, change_seq);

create table if not exists public.leaderboard_removed (
    board       text        not null,  -- 'global' or 'challenge:<id>'
    user_id     uuid        not null,
    change_seq  bigint      not null,
    removed_at  timestamptz not null default now(),
    primary key (board, user_id)
);

comment on table public.leaderboard_removed is
    'Tombstones: players who left a board, kept for the change feed until leaderboard_prune_removed.';

create index if not exists leaderboard_removed_change_idx on public.leaderboard_removed (board, change_seq);
create index if not exists leaderboard_removed_age_idx on public.leaderboard_removed (removed_at);

-- Per board: positions below the horizon may have missed a pruned tombstone.
create table if not exists public.leaderboard_feed_horizon (
    board    text   primary key,
    horizon  bigint not null
);

alter table public.leaderboard_removed enable row level security;
alter table public.leaderboard_feed_horizon enable row level security;

-- Same results as before (see the first migration for the ranking rules and why one lock serialises
-- the writers), plus: a new change_seq on each row whose ranked content changes, a tombstone for each
-- row that disappears, no tombstone for a row that comes back, and a new change_seq on every
-- challenge_best row of a user whose display name changes (challenge boards show the name too).
--
-- nextval() is evaluated for every candidate row, also for rows the ON CONFLICT clause then leaves
-- alone: the sequence has gaps, which is fine (positions only need to increase).
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

    -- 1. Per (user, challenge): the best result.
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
        returning b.user_id, b.challenge_id
    ),
    buried as (
        insert into public.leaderboard_removed as d (board, user_id, change_seq)
        select 'challenge:' || gone.challenge_id, gone.user_id, nextval('public.leaderboard_change_seq')
          from gone
        on conflict (board, user_id) do update
           set change_seq = excluded.change_seq, removed_at = now()
    ),
    upserted as (
        insert into public.challenge_best as b (user_id, challenge_id, best_score, best_at, change_seq)
        select user_id, challenge_id, score, best_at, nextval('public.leaderboard_change_seq') from best
        on conflict (user_id, challenge_id) do update
           set best_score = excluded.best_score, best_at = excluded.best_at, change_seq = excluded.change_seq
         where (b.best_score, b.best_at) is distinct from (excluded.best_score, excluded.best_at)
        returning b.user_id, b.challenge_id
    )
    delete from public.leaderboard_removed d
     using upserted u
     where d.board = 'challenge:' || u.challenge_id and d.user_id = u.user_id;

    -- 2. Per user: the total, and the display name of their latest submission.
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
    named as (
        select totals.*,
               (select r.username from public.challenge_results r
                 where r.user_id = totals.user_id
                 order by r.submitted_at desc, r.id desc limit 1) as username
          from totals
    ),
    gone as (
        delete from public.leaderboard_totals t
         using users u
         where t.user_id = u.user_id
           and not exists (select 1 from totals where totals.user_id = t.user_id)
        returning t.user_id
    ),
    buried as (
        insert into public.leaderboard_removed as d (board, user_id, change_seq)
        select 'global', gone.user_id, nextval('public.leaderboard_change_seq') from gone
        on conflict (board, user_id) do update
           set change_seq = excluded.change_seq, removed_at = now()
    ),
    renamed as (
        update public.challenge_best b
           set change_seq = nextval('public.leaderboard_change_seq')
          from public.leaderboard_totals t
          join named n on n.user_id = t.user_id
         where b.user_id = t.user_id and t.username is distinct from n.username
    ),
    upserted as (
        insert into public.leaderboard_totals as t (user_id, username, score, solved, last_solved_at, change_seq)
        select user_id, username, score, solved, last_solved_at, nextval('public.leaderboard_change_seq')
          from named
        on conflict (user_id) do update
           set username = excluded.username, score = excluded.score, solved = excluded.solved,
               last_solved_at = excluded.last_solved_at, change_seq = excluded.change_seq
         where (t.username, t.score, t.solved, t.last_solved_at)
               is distinct from (excluded.username, excluded.score, excluded.solved, excluded.last_solved_at)
        returning t.user_id
    )
    delete from public.leaderboard_removed d
     using upserted u
     where d.board = 'global' and d.user_id = u.user_id;
end;
$$;

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
    if p_board = 'global' then
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
    'Change feed of a leaderboard after a position (LB001: rebuild); called by the refresh worker.';

-- Delete tombstones older than p_older_than and raise each affected board's horizon to the newest
-- position deleted. Run it now and then (pg_cron: `select leaderboard_prune_removed('7 days')` daily);
-- workers whose position is older than that rebuild once. Returns the number of tombstones deleted.
-- It takes the writers' lock, so a horizon never passes a removal that is still being committed.
create or replace function public.leaderboard_prune_removed(p_older_than interval default '7 days')
returns bigint
language plpgsql
volatile
security definer
set search_path = public
as $$
declare
    v_count bigint;
begin
    if p_older_than is null or p_older_than < interval '0' then
        raise exception 'p_older_than must be a non-negative interval' using errcode = '22023';
    end if;
    perform pg_advisory_xact_lock(727001, 0);
    with pruned as (
        delete from public.leaderboard_removed d
         where d.removed_at < now() - p_older_than
        returning d.board, d.change_seq
    ),
    per_board as (
        select board, max(change_seq) as horizon, count(*) as n from pruned group by board
    ),
    raised as (
        insert into public.leaderboard_feed_horizon as h (board, horizon)
        select board, horizon from per_board
        on conflict (board) do update set horizon = greatest(h.horizon, excluded.horizon)
    )
    select coalesce(sum(n), 0) into v_count from per_board;
    return v_count;
end;
$$;

comment on function public.leaderboard_prune_removed is
    'Deletes old tombstones and raises the change feed horizon; run periodically (pg_cron).';

-- Access, as in the first migration: only privileged roles (service_role, the table owner) may read the
-- feed or prune; anon and authenticated get nothing.
revoke all on function public.leaderboard_changes(text, bigint, integer, boolean) from public;
revoke all on function public.leaderboard_prune_removed(interval) from public;
revoke all on sequence public.leaderboard_change_seq from public;

do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        if exists (select 1 from pg_roles where rolname = r) then
            execute format('revoke all on function public.leaderboard_changes(text, bigint, integer, boolean) from %I', r);
            execute format('revoke all on function public.leaderboard_prune_removed(interval) from %I', r);
            execute format('revoke all on function public._leaderboard_recompute(uuid[], text[]) from %I', r);
            execute format('revoke all on table public.leaderboard_removed, public.leaderboard_feed_horizon from %I', r);
            execute format('revoke all on sequence public.leaderboard_change_seq from %I', r);
        end if;
    end loop;
    if exists (select 1 from pg_roles where rolname = 'service_role') then
        execute 'grant execute on function public.leaderboard_changes(text, bigint, integer, boolean) to service_role';
        execute 'grant execute on function public.leaderboard_prune_removed(interval) to service_role';
    end if;
end;
$$;
