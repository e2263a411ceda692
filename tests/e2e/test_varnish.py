"""A real Varnish in front of the real stack: fresh → stale → refreshed → source down → Valkey down.

Two varnishd run side by side in front of one `python -m devstack` (API, worker, SQS; Valkey and the
upstream source are the test's, so that it can stop them): one with the built-in VCL only, one with
deploy/varnish/leaderboard.vcl (stale-if-error). Clients read three URLs through both, all the time,
while the test makes the snapshot go stale, refresh, fail to refresh, and finally stops Valkey. What
Varnish asked the origin for comes from its own log (varnishncsa), what clients got from the answers.

Targets (issue 13): at most one origin request per URL per freshness window, plus one per refresh
attempt (the check, LEADERBOARD_STALE_MAX_AGE_SECONDS after the snapshot went stale, for its result);
200s through a Valkey outage for as long as stale-if-error says, with the sample VCL.
`pytest tests/e2e/test_varnish.py -s` prints the figures.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testkit.engines import ValkeyServer
from tests.e2e.harness import StackProcess, clean_env, eventually, start_stack
from tests.e2e.rig import SAMPLE_VCL, UpstreamSource, Varnish, varnishd_binary
from tests.support import missing_tool

pytestmark = pytest.mark.timeout(150)

FRESH = 3  # LEADERBOARD_FRESH_SECONDS
STALE_MAX_AGE = 1  # LEADERBOARD_STALE_MAX_AGE_SECONDS
SWR = 2  # LEADERBOARD_STALE_WHILE_REVALIDATE_SECONDS
SIE = 6  # LEADERBOARD_STALE_IF_ERROR_SECONDS
USER = "00000000-0000-4000-8000-000000000007"
URLS = ("/leaderboard?count=5", "/leaderboard?count=5&offset=5", f"/leaderboard/users/{USER}?around=1")


@dataclass(frozen=True)
class Answer:
    at: float
    front: str  # "builtin" or "sample"
    url: str
    status: int
    version: int | None
    age: int  # Varnish's Age: seconds the copy has been in its cache
    max_age: int | None


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[StackProcess, ValkeyServer, UpstreamSource, dict[str, Varnish]]]:
    if varnishd_binary() is None:
        missing_tool("varnishd is not installed (apt-get install varnish; .ci/run installs it)")
    valkey = ValkeyServer().start()
    source = UpstreamSource()
    env = clean_env(
        VALKEY_HOST=valkey.host,
        VALKEY_PORT=str(valkey.port),
        LEADERBOARD_API_URL=source.url,
        LEADERBOARD_BOARDS="global",
        LEADERBOARD_FRESH_SECONDS=str(FRESH),
        LEADERBOARD_STALE_MAX_AGE_SECONDS=str(STALE_MAX_AGE),
        LEADERBOARD_STALE_WHILE_REVALIDATE_SECONDS=str(SWR),
        LEADERBOARD_STALE_IF_ERROR_SECONDS=str(SIE),
        SOURCE_RETRY_ATTEMPTS="2",
        SOURCE_RETRY_BASE_MS="10",
    )
    stack = start_stack(tmp_path, "--api-workers", "1", env=env)
    fronts: dict[str, Varnish] = {}
    try:
        stack.wait_ready()
        fronts["builtin"] = Varnish(tmp_path / "builtin", stack.port)
        fronts["sample"] = Varnish(tmp_path / "sample", stack.port, SAMPLE_VCL)
        for front in fronts.values():
            front.wait_ready()
        yield stack, valkey, source, fronts
    finally:
        for front in fronts.values():
            front.stop()
        stack.kill()
        valkey.stop()
        source.stop()


class Clients:
    """Read every URL through every Varnish, round after round, and keep every answer."""

    def __init__(self, fronts: dict[str, Varnish]) -> None:
        self.http = {name: httpx.Client(base_url=f.url, timeout=10) for name, f in fronts.items()}
        self.answers: list[Answer] = []

    def round(self) -> None:
        for front, client in self.http.items():
            for url in URLS:
                response = client.get(url)
                version = response.json().get("version") if response.status_code == 200 else None
                match = re.search(r"max-age=(\d+)", response.headers.get("cache-control", ""))
                self.answers.append(Answer(time.time(), front, url, response.status_code, version,
                                           int(response.headers.get("age", 0)),
                                           int(match.group(1)) if match else None))  # fmt: skip

    def until(self, done: Callable[[], bool], limit: float) -> None:
        deadline = time.time() + limit
        while not done():
            assert time.time() < deadline, "the workload did not reach its next phase in time"
            self.round()
            time.sleep(0.05)

    def during(self, seconds: float) -> None:
        end = time.time() + seconds
        self.until(lambda: time.time() >= end, seconds + 5)

    def between(self, start: float, end: float, front: str) -> list[Answer]:
        return [a for a in self.answers if start <= a.at < end and a.front == front]

    def close(self) -> None:
        for client in self.http.values():
            client.close()


def test_a_shared_cache_asks_the_origin_once_per_window_and_rides_out_a_valkey_outage(
    rig: tuple[StackProcess, ValkeyServer, UpstreamSource, dict[str, Varnish]],
) -> None:
    stack, valkey, source, fronts = rig
    clients = Clients(fronts)
    try:
        # Given a board with a snapshot (the first read waits for the worker: MISS)
        first = eventually(lambda: (r := stack.get(count=5)).status_code == 200 and r).json()
        v1 = first["version"]
        generated = stack.get(count=5).json()["generated_at"]
        g1 = _epoch(generated)
        start = time.time()
        # When clients read through both Varnish while the snapshot is fresh
        clients.until(lambda: time.time() >= g1 + FRESH, FRESH + 5)
        heads = {
            name: (httpx.head(f"{f.url}{URLS[0]}"), httpx.get(f"{f.url}{URLS[0]}"))
            for name, f in fronts.items()
        }
        # ... and it goes stale, the worker refreshes it, and the new one reaches every client
        source.bump()

        def everyone_has_the_new_one() -> bool:
            latest = {(a.front, a.url): a.version for a in clients.answers}
            return len(latest) == 6 and all(v is not None and v > v1 for v in latest.values())

        clients.until(everyone_has_the_new_one, 20)
        refreshed = stack.get(count=5).json()
        v2, g2 = refreshed["version"], _epoch(refreshed["generated_at"])
        # ... and then the source fails, so that the next refresh cannot happen
        source.down = True
        clients.until(lambda: time.time() >= g2 + FRESH + STALE_MAX_AGE + 2 * FRESH + 0.5, 20)
        valkey_down = time.time()
        # ... and finally Valkey stops, for longer than stale-if-error covers
        valkey.kill()
        clients.during(FRESH + SIE + 3)
        end = time.time()
    finally:
        clients.close()

    origin = {name: f.backend_requests() for name, f in fronts.items()}
    report = {"fronts": {}}
    for name, front in fronts.items():
        # Then the origin saw at most one request per URL per freshness window (counted from the first
        # snapshot's making), plus one per refresh attempt (two: one that worked, one that the source
        # outage failed), before Valkey stopped
        windows = math.ceil((valkey_down - g1) / FRESH)
        before = [r for r in origin[name] if r.at < valkey_down]
        per_url = Counter(r.url for r in before)
        assert set(per_url) == set(URLS), per_url
        assert max(per_url.values()) <= windows + 2, (name, per_url, windows)
        sent = [r for r in origin[name] if r.status]  # fetches the VCL abandoned before sending have none
        assert front.counter("MAIN.backend_req") == len(sent), name
        # And clients got 200s all along, the new snapshot within a second or so of its making
        answers = clients.between(start, valkey_down, name)
        assert Counter(a.status for a in answers) == Counter({200: len(answers)}), name
        lag = min(a.at for a in answers if a.version == v2) - g2
        assert lag <= STALE_MAX_AGE + 1.5, (name, lag)
        # And HEAD through Varnish has the GET's length (Varnish fetched it with GET)
        head, get = heads[name]
        assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
        outage = clients.between(valkey_down, end, name)
        report["fronts"][name] = {
            "origin_requests_per_url": dict(per_url),
            "freshness_windows": windows,
            "client_requests_before_outage": len(answers),
            "new_snapshot_visible_after_s": round(lag, 2),
            "outage_answers": dict(Counter(a.status for a in outage)),
            "outage_origin_requests": len([r for r in sent if r.at >= valkey_down]),
        }

    # And with the sample VCL, clients got 200s through the Valkey outage until stale-if-error ran
    # out for their copy (its TTL end + SIE), and the origin's 503 after that, never before
    for url in URLS:
        outage = [a for a in clients.between(valkey_down, end, "sample") if a.url == url]
        last = [a for a in clients.between(start, valkey_down, "sample") if a.url == url][-1]
        assert last.max_age is not None
        expires = last.at - last.age + last.max_age  # when the copy stopped being fresh (±1 s)
        bound = expires + SIE
        assert all(a.status == 200 for a in outage if a.at < bound - 1.5), url
        assert all(a.status == 503 for a in outage if a.at > bound + 1.5), url
        assert any(a.status == 200 and a.at > expires + SWR + 1 for a in outage), "not past swr"
        assert any(a.status == 503 for a in outage), "the outage outlasted stale-if-error"
        report.setdefault("sample_bound_s", {})[url] = round(bound - valkey_down, 1)
    for name in fronts:
        report["fronts"][name]["outage_200_share_within_sie"] = _share_within_bound(
            clients, name, valkey_down, end
        )
    assert report["fronts"]["sample"]["outage_200_share_within_sie"] == 1.0
    report["source_fetches"] = source.fetches
    print("\nvarnish workload:", report)


def _share_within_bound(clients: Clients, front: str, valkey_down: float, end: float) -> float:
    """Of a front's outage answers that stale-if-error covers (the copy's TTL end + SIE, less 1.5 s
    for the Age header's whole seconds), the share that were 200."""
    covered = []
    for url in URLS:
        last = [a for a in clients.between(0, valkey_down, front) if a.url == url][-1]
        bound = last.at - last.age + (last.max_age or 0) + SIE - 1.5
        covered += [a for a in clients.between(valkey_down, end, front) if a.url == url and a.at < bound]
    return round(sum(a.status == 200 for a in covered) / len(covered), 3) if covered else 0.0


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
