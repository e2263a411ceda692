"""Friends' ranks in the read path's logic, on the read-service fakes: the near-cache keys a read by its
id list, and stale-if-error serves the list's last copy."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from api_lambda.service import HIT, STALE
from common.errors import CacheUnavailable
from common.snapshot import UserSet
from tests.unit.test_read_service import FakeStore, service


class FriendsStore(FakeStore):
    """The read-service fake, plus READ_USERS: everyone whose id starts with "u" is on the board."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, ...]] = []

    def read_users(self, board: str, user_ids: Sequence[str]) -> UserSet | None:
        self.asked.append(tuple(user_ids))
        page = self.read_page(board, 0, 0)  # counts the read, fails when down
        if page is None:
            return None
        ranked = [f'{{"user_id":"{u}"}}'.encode() for u in user_ids if u.startswith("u")]
        return UserSet(page.header, ranked, [u for u in user_ids if not u.startswith("u")])


def test_each_id_list_is_its_own_near_read_and_the_same_list_costs_no_read() -> None:
    store = FriendsStore()
    store.put("global", 3)
    reader, _, _ = service(store, near_cache_ms=60_000)
    first = reader.users("global", ("u1", "x2"))
    assert (first.cache_status, first.missing, len(first.entries)) == (HIT, ["x2"], 1)
    other = reader.users("global", ("u1", "u3"))
    assert other.missing == [] and len(other.entries) == 2
    assert reader.users("global", ("u1", "x2")).missing == ["x2"]
    assert store.asked == [("u1", "x2"), ("u1", "u3")]  # the repeat was served near
    # and a user's own window or a page under the same board is never taken for a list
    assert reader.page("global", 0, 10).missing is None


def test_valkey_down_serves_the_lists_last_copy_and_only_that_list() -> None:
    store = FriendsStore()
    store.put("global", 9)
    reader, _, _ = service(store, near_cache_ms=0)
    reader.users("global", ("u1",))
    store.down = True
    view = reader.users("global", ("u1",))
    assert (view.cache_status, view.served_on_error, view.header.version) == (STALE, True, 9)
    with pytest.raises(CacheUnavailable):
        reader.users("global", ("u1", "u2"))
