"""TLS end to end, as ElastiCache requires it: the API reads over TLS, and the server's certificate is
always verified, by chain and by name. A client that does not trust the server gets a 503 and a log line
that says what to fix, not a bare "timed out"."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from api_lambda.app import ApiApp
from testkit.engines import ValkeyCluster, ValkeyServer
from tests.connectivity.conftest import Endpoint, Pki, Writer, endpoint_of, error_lines, get
from tests.support import body_of, make_entries

pytestmark = pytest.mark.usefixtures("sqs")

ApiFor = Callable[..., ApiApp]
WriterFor = Callable[[Endpoint], Writer]


def test_the_api_reads_a_snapshot_written_over_tls(
    tls_engine: ValkeyServer | ValkeyCluster, pki: Pki, api_for: ApiFor, writer_for: WriterFor
) -> None:
    # Given a TLS-only endpoint, and both functions configured with VALKEY_TLS and our CA
    endpoint = endpoint_of(tls_engine, tls=True, tls_ca_file=str(pki.ca.cert))
    # When the worker's cache code writes a snapshot over TLS
    entries = make_entries(25)
    version = writer_for(endpoint).write(entries)
    # Then the API reads it over TLS
    response = get(api_for(endpoint), {"count": "5"})
    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert [e["user_id"] for e in body["entries"]] == [e.user_id for e in entries[:5]]
    assert body["version"] == version


def test_the_tls_endpoint_has_no_plaintext_port(tls_server: ValkeyServer) -> None:
    # Given the TLS test server, Then the only port it listens on is its TLS port (as on ElastiCache)
    assert tls_server.cli("CONFIG", "GET", "port").split() == ["port", "0"]
    assert tls_server.cli("CONFIG", "GET", "tls-port").split() == ["tls-port", str(tls_server.port)]


@pytest.mark.parametrize("trust", ["system-store", "another-ca"])
def test_a_client_that_does_not_trust_the_server_is_refused_with_a_clear_reason(
    tls_engine: ValkeyServer | ValkeyCluster,
    pki: Pki,
    api_for: ApiFor,
    trust: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Given a client that trusts the system's CAs only, or a CA that did not sign the server's certificate
    ca_file = None if trust == "system-store" else str(pki.other_ca.cert)
    endpoint = endpoint_of(tls_engine, tls=True, tls_ca_file=ca_file)
    app = api_for(endpoint, VALKEY_CONNECT_TIMEOUT_MS="300")
    capfd.readouterr()
    # When it handles a request
    response = get(app)
    # Then the answer is a 503 cache_unavailable, with nothing about the cause in the body
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "cache_unavailable"
    assert "certificate" not in response["body"]
    # And one error line says it is the certificate, and which variable to set
    [line] = error_lines(capfd.readouterr().out)
    assert line["message"] == "cache_unavailable"
    assert "TLS certificate verification failed" in line["error"]
    assert "VALKEY_TLS_CA_FILE" in line["error"]
    assert "timed out" not in line["error"]


@pytest.fixture
def wrong_name_server(pki: Pki) -> Iterator[ValkeyServer]:
    """A server whose certificate, signed by our CA, was issued for another host name."""
    files = pki.ca.issue("elsewhere", hosts=("cache.elsewhere.example",))
    server = ValkeyServer(tls=files).start()
    yield server
    server.stop()


def test_a_certificate_for_another_host_name_is_refused(
    wrong_name_server: ValkeyServer, pki: Pki, api_for: ApiFor, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a client that trusts our CA, connecting to 127.0.0.1 whose certificate names another host
    endpoint = endpoint_of(wrong_name_server, tls=True, tls_ca_file=str(pki.ca.cert))
    app = api_for(endpoint, VALKEY_CONNECT_TIMEOUT_MS="300")
    capfd.readouterr()
    # When it handles a request
    response = get(app)
    # Then it is refused: the host name is verified, not only the chain
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "cache_unavailable"
    [line] = error_lines(capfd.readouterr().out)
    assert "TLS certificate verification failed" in line["error"]
    assert "mismatch" in line["error"]
    assert "does not name VALKEY_HOST" in line["error"]


def test_a_plaintext_client_on_a_tls_endpoint_is_told_to_set_valkey_tls(
    tls_server: ValkeyServer, api_for: ApiFor, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given VALKEY_TLS=false against a TLS-only endpoint (ElastiCache Serverless is TLS-only)
    app = api_for(endpoint_of(tls_server), VALKEY_CONNECT_TIMEOUT_MS="300")
    capfd.readouterr()
    # When it handles a request
    response = get(app)
    # Then a 503, and the log says to turn TLS on
    assert response["statusCode"] == 503
    [line] = error_lines(capfd.readouterr().out)
    assert "set VALKEY_TLS=true" in line["error"]


def test_a_tls_client_on_a_plaintext_server_is_told_tls_is_not_spoken_there(
    valkey: ValkeyServer, pki: Pki, api_for: ApiFor, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given VALKEY_TLS=true against the plaintext test server
    endpoint = replace(endpoint_of(valkey), tls=True, tls_ca_file=str(pki.ca.cert))
    app = api_for(endpoint, VALKEY_CONNECT_TIMEOUT_MS="300")
    capfd.readouterr()
    # When it handles a request
    response = get(app)
    # Then a 503, and the log says the endpoint does not speak TLS
    assert response["statusCode"] == 503
    [line] = error_lines(capfd.readouterr().out)
    assert "VALKEY_TLS" in line["error"]
    assert "TLS" in line["error"].split(": ", 1)[1]


def test_no_code_of_ours_turns_certificate_verification_off() -> None:
    # Given every Python file that ships or runs the stack
    root = Path(__file__).resolve().parents[2]
    sources = [
        path
        for package in ("common", "api_lambda", "refresh_worker", "ops", "devstack")
        for path in (root / package).rglob("*.py")
    ]
    assert sources
    # Then none of them asks GLIDE (or Python's ssl) to skip verification
    forbidden = ("use_insecure_tls", "InsecureTls", "CERT_NONE", "check_hostname = False", "_unverified")
    offenders = [
        f"{path.relative_to(root)}: {word}"
        for path in sources
        for word in forbidden
        if word in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
