"""`python -m testkit.seed` loads the sample into a real PostgreSQL with the migrations applied."""

from __future__ import annotations

import pytest

from testkit.engines import PostgresEngine
from testkit.seed import main


def test_the_loader_streams_the_sample_and_the_triggers_rank_it(
    postgres: PostgresEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a database with rows from earlier tests
    postgres.psql("insert into challenge_results (user_id, username, challenge_id, score) "
                  "values (gen_random_uuid(), 'old', 'a', 1);")  # fmt: skip
    # When the loader runs with --truncate, generating in chunks smaller than the sample
    args = ["--database-url", postgres.uri, "--users", "300", "--challenges", "10", "--results", "4000"]
    code = main([*args, "--chunk", "512", "--truncate"])
    # Then exactly the sample is there, and the derived tables rank it
    assert code == 0
    assert "seeded 4,000 results for 300 players on 10 challenges in" in capsys.readouterr().out
    counts = postgres.psql(
        "select (select count(*) from challenge_results), (select count(distinct user_id) from "
        "challenge_results) = (select count(*) from leaderboard_totals), (select count(*) from "
        "challenge_results where username = 'old');"
    )
    assert "4000 | t        |     0" in counts


def test_an_unreachable_database_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--database-url", "postgresql://postgres@127.0.0.1:9/postgres", "--results", "10"])
    assert code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("testkit.seed: error: cannot reach the database")
