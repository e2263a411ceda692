"""The `ids` list of GET /leaderboard/users, validated with no engine (api_lambda.routes.user_ids)."""

from __future__ import annotations

import pytest

from api_lambda.http import ApiError
from api_lambda.routes import MAX_IDS, MAX_IDS_LENGTH, user_ids

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def rejected(raw: str | None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        user_ids(raw)
    assert caught.value.status == 400
    return caught.value


def test_ids_keep_their_order_and_duplicates_fold_into_the_first() -> None:
    assert user_ids("b,a,b,c,a") == ("b", "a", "c")


def test_a_uuid_is_looked_up_in_lower_case_and_folds_with_its_other_spellings() -> None:
    assert user_ids(f"{UUID.upper()},{UUID},Other-Id") == (UUID, "Other-Id")


def test_one_and_a_hundred_ids_are_accepted_duplicates_counted() -> None:
    assert user_ids("x") == ("x",)
    assert len(user_ids(",".join(f"u{n}" for n in range(MAX_IDS)))) == MAX_IDS
    assert user_ids(",".join(["same"] * MAX_IDS)) == ("same",)


@pytest.mark.parametrize("raw", [None, ""])
def test_no_ids_is_a_400(raw: str | None) -> None:
    error = rejected(raw)
    assert error.code == "invalid_ids" and "1 to 100" in error.message


def test_more_than_a_hundred_ids_is_a_400_that_says_how_many() -> None:
    error = rejected(",".join(["same"] * (MAX_IDS + 1)))
    assert error.code == "invalid_ids" and "101" in error.message


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("ok,has space", '"has space"'),
        ("ok,,ok2", '""'),
        ("trailing,", '""'),
        ("a/b", '"a/b"'),
        ("tab\there", '"tab\\there"'),
        ("ok," + "y" * 129, '"' + "y" * 129 + '"'),
    ],
)
def test_a_bad_id_is_a_400_that_names_it(raw: str, named: str) -> None:
    error = rejected(raw)
    assert error.code == "invalid_user_id" and error.message.startswith(named)


def test_a_very_long_bad_id_is_named_shortened() -> None:
    error = rejected("z" * 2000)
    assert error.message.startswith('"' + "z" * 128 + '…"') and len(error.message) < 200


def test_a_hundred_uuids_fit_and_a_longer_list_is_a_400() -> None:
    hundred = ",".join(f"{n:08x}-d9cb-469f-a165-70867728950e" for n in range(MAX_IDS))
    assert len(hundred) <= MAX_IDS_LENGTH and len(user_ids(hundred)) == MAX_IDS
    error = rejected("a" * 128 + ",b" * (MAX_IDS_LENGTH // 2))
    assert error.code == "invalid_ids" and str(MAX_IDS_LENGTH) in error.message
