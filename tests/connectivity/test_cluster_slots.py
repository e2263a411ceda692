"""Boards on every node of a real 3-node cluster. Each board's keys share one hash slot (the snapshot
key's name is the helper keys' hash tag), so its lock, version script, refresh marker and atomic swap
run on whichever node owns that slot, including nodes the client was not pointed at."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from api_lambda.app import ApiApp
from common.lock import RefreshLock
from common.runtime import run
from testkit.engines import Queues, SqsEngine, ValkeyCluster, ValkeyServer
from tests.connectivity.conftest import Endpoint, Writer, endpoint_of, get
from tests.support import body_of, make_entries

ApiFor = Callable[..., ApiApp]
WriterFor = Callable[[Endpoint], Writer]


@dataclass
class Spread:
    """One challenge board per node, found by asking the cluster where their keys go."""

    cluster: ValkeyCluster
    endpoint: Endpoint
    writer: Writer
    boards: dict[int, str]  # node port -> board whose keys that node owns

    def node(self, port: int) -> ValkeyServer:
        return next(node for node in self.cluster.nodes if node.port == port)

    def away_from_seed(self) -> tuple[str, ValkeyServer]:
        """A board whose keys live on a node other than the one in VALKEY_PORT, and that node."""
        port = next(port for port in self.boards if port != self.cluster.port)
        return self.boards[port], self.node(port)

    def slot(self, key: str) -> int:
        return int(self.writer.command("CLUSTER", "KEYSLOT", key))


@pytest.fixture
def spread(valkey_cluster: ValkeyCluster, writer_for: WriterFor) -> Spread:
    endpoint = endpoint_of(valkey_cluster)
    writer = writer_for(endpoint)
    owner_of_slot: dict[int, int] = {}
    for shard in writer.command("CLUSTER", "SHARDS"):
        [primary] = [n for n in shard[b"nodes"] if n[b"role"] == b"master"]
        ranges = shard[b"slots"]
        for start, end in zip(ranges[::2], ranges[1::2], strict=True):
            owner_of_slot.update(dict.fromkeys(range(start, end + 1), int(primary[b"port"])))
    found = Spread(valkey_cluster, endpoint, writer, {})
    for i in range(200):
        board = f"challenge:c{i}"
        found.boards.setdefault(owner_of_slot[found.slot(writer.keys(board).snapshot)], board)
        if len(found.boards) == len(valkey_cluster.nodes):
            break
    return found


def test_boards_spread_over_every_node_and_each_is_read_back(spread: Spread, api_for: ApiFor) -> None:
    # Given one board per node, Then every node of the cluster owns one of them
    assert set(spread.boards) == {node.port for node in spread.cluster.nodes}
    app = api_for(spread.endpoint)
    for port, board in spread.boards.items():
        keys = spread.writer.keys(board)
        # And all of a board's keys, staging keys included, hash to the snapshot key's slot
        slot = spread.slot(keys.snapshot)
        helpers = [
            keys.entries,
            keys.meta,
            keys.top,
            keys.lock,
            keys.version,
            keys.refresh_marker,
            keys.absent,
        ]
        assert {spread.slot(key) for key in [*helpers, *keys.staging(1)]} == {slot}
        # When the worker's code writes the board and the API reads it
        entries = make_entries(6, start_rank=port % 1000)
        version = spread.writer.write(entries, board=board)
        response = get(app, {"board": board, "count": "6"})
        # Then it is served, and the snapshot sits on the node that owns the slot
        assert response["statusCode"] == 200, response
        body = body_of(response)
        assert [e["user_id"] for e in body["entries"]] == [e.user_id for e in entries]
        assert body["version"] == version
        assert spread.node(port).cli("EXISTS", keys.snapshot).strip() == "1"


def test_the_lock_and_fencing_work_on_a_node_other_than_the_first(spread: Spread, api_for: ApiFor) -> None:
    board, node = spread.away_from_seed()
    keys = spread.writer.keys(board)
    mine = spread.writer.lock
    other_worker = RefreshLock(spread.writer.connection, spread.writer.keys, holder="other-worker")

    async def contend() -> None:
        # Given a worker holding the lock of a board on another node than the seed
        first = await mine.acquire(board, 10_000)
        assert first is not None
        assert node.cli("EXISTS", keys.lock).strip() == "1"
        # When a second worker tries to take it, Then it is refused
        assert await other_worker.acquire(board, 10_000) is None
        # And once released, the next lease gets a newer fencing version
        assert await mine.release(first)
        second = await other_worker.acquire(board, 10_000)
        assert second is not None
        assert second.version > first.version
        newer = make_entries(4, start_rank=100)
        assert await spread.writer.cache.write_snapshot(
            Writer.header(board, second.version, newer), newer, staging_ttl_ms=10_000
        )
        assert await other_worker.release(second)
        # When the first worker, late, tries to swap in its older data, Then the swap refuses it
        older = make_entries(4, start_rank=1)
        assert not await spread.writer.cache.write_snapshot(
            Writer.header(board, first.version, older), older, staging_ttl_ms=10_000
        )

    run(contend())
    # And readers see the newer snapshot, and no staging key was left behind
    body = body_of(get(api_for(spread.endpoint), {"board": board}))
    assert body["entries"][0]["username"] == "player-100"  # the newer snapshot's players
    assert node.cli("KEYS", f"{keys.tag}:staging*").strip() == ""


def test_the_refresh_marker_is_set_and_cleared_on_the_boards_node(
    spread: Spread, api_for: ApiFor, sqs: SqsEngine, queues: Queues
) -> None:
    board, node = spread.away_from_seed()
    marker = spread.writer.keys(board).refresh_marker
    # Given a stale snapshot of a board on another node than the seed
    spread.writer.write(make_entries(3), board=board, age_seconds=300)
    # When the API serves it
    response = get(api_for(spread.endpoint), {"board": board})
    # Then it is served stale, the marker is set on the board's node and one refresh is requested
    assert response["headers"]["X-Cache"] == "STALE"
    assert node.cli("EXISTS", marker).strip() == "1"
    sent = sqs.client().receive_message(QueueUrl=queues.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["board"] for m in sent] == [board]
    # And the worker's swap clears it in the same script
    spread.writer.write(make_entries(3), board=board)
    assert node.cli("EXISTS", marker).strip() == "0"
