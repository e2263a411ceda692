"""A wrong or unreachable endpoint at cold start: a 503 from the API and one error line that names
VALKEY_HOST / VALKEY_PORT (or the variable that is wrong) and says what is wrong, never the password."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api_lambda.app import ApiApp
from testkit.engines import ValkeyServer, free_port
from tests.connectivity.conftest import DEFAULT_PASSWORD, Endpoint, endpoint_of, error_lines, get
from tests.support import body_of

pytestmark = pytest.mark.usefixtures("sqs")

ApiFor = Callable[..., ApiApp]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("nothing-listens", "connection refused: nothing listens at VALKEY_HOST:VALKEY_PORT"),
        ("unknown-host", "the host name in VALKEY_HOST does not resolve"),
        ("cluster-mode-on-a-standalone-server", "not in cluster mode: set VALKEY_CLUSTER_MODE=false"),
    ],
)
def test_a_wrong_endpoint_is_one_clear_error_naming_it(
    valkey: ValkeyServer, api_for: ApiFor, case: str, reason: str, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given an endpoint that is wrong in one way (and a password that must not leak)
    endpoint = {
        "nothing-listens": Endpoint("127.0.0.1", free_port(), password=DEFAULT_PASSWORD),
        "unknown-host": Endpoint("valkey.invalid", 6379, password=DEFAULT_PASSWORD),
        "cluster-mode-on-a-standalone-server": endpoint_of(valkey, cluster=True, password=DEFAULT_PASSWORD),
    }[case]
    app = api_for(endpoint, VALKEY_CONNECT_TIMEOUT_MS="300")
    capfd.readouterr()
    # When the cold container handles a request
    response = get(app)
    # Then a 503 cache_unavailable
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "cache_unavailable"
    # And one error line with the endpoint's variables and what is wrong with it
    out, err = capfd.readouterr()
    [line] = error_lines(out)
    assert line["message"] == "cache_unavailable"
    assert f"Valkey at {endpoint.host}:{endpoint.port} (VALKEY_HOST, VALKEY_PORT)" in line["error"]
    assert reason in line["error"]
    assert DEFAULT_PASSWORD not in out + err
