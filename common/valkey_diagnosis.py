"""Why a connection to Valkey failed, asked of the network itself.

GLIDE's standalone client reports an untrusted certificate, a refused port, an unknown host name and a
plaintext client on a TLS port all as "timed out" after the whole connect timeout (upstream:
valkey-io/valkey-glide-ruby#268). So when creating a client fails for a reason other than credentials,
`diagnose()` connects once with blocking sockets (and TLS when configured), once per container
(`Diagnosis`), and says which variable to fix. Certificates are always verified.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    from common.config import ValkeySettings

__all__ = ["Diagnosis", "diagnose"]


class Diagnosis:
    """`diagnose()` at most once per container: an unreachable endpoint costs the extra look once."""

    def __init__(self, settings: ValkeySettings) -> None:
        self._settings = settings
        self._reason: tuple[str | None] | None = None

    def __call__(self) -> str | None:
        if self._reason is None:
            self._reason = (diagnose(self._settings),)
        return self._reason[0]


# A TLS server that reads plaintext may answer with a TLS record (an alert, 21) before it hangs up.
_TLS_RECORD_TYPES = frozenset({21, 22})


def diagnose(settings: ValkeySettings) -> str | None:
    """Why can this process not talk to Valkey? Words an operator can act on, or None if nothing is wrong.

    One plain look at the endpoint, within VALKEY_CONNECT_TIMEOUT_MS: resolve and open a TCP connection,
    do the TLS handshake with the same trust as the client (the CA file, else the system's store) and the
    same host name check, then send `INFO cluster` and read the start of the answer. Only called after a
    failure, so a failed cold start costs up to twice the connect timeout, and a healthy one nothing.
    Blocking sockets: the API has no event loop to spare, and the worker runs it in a thread.
    """
    progress: list[str] = []
    try:
        reply = _look(settings, progress, time.monotonic() + settings.connect_timeout_ms / 1000)
    except OSError as exc:  # ssl errors and socket timeouts are OSErrors
        stage = progress[-1] if progress else "connect"
        if stage == "answer" and isinstance(exc, ConnectionError):
            return _hung_up(settings)
        return _network_problem(exc, stage, settings)
    if not reply or reply[0] in _TLS_RECORD_TYPES:
        return _hung_up(settings)
    if settings.cluster_mode and b"cluster_enabled:0" in reply:
        return "the server is not in cluster mode: set VALKEY_CLUSTER_MODE=false"
    return None


def _look(settings: ValkeySettings, progress: list[str], deadline: float) -> bytes:
    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    progress.append("connect")
    import socket  # on the failure path only: socket and ssl are ~20 ms of the API's cold import
    import ssl

    sock = socket.create_connection((settings.host, settings.port), timeout=left())
    try:
        if settings.tls:
            progress.append("tls")
            # Reads the CA file: small, once, and only on the failure path.
            context = ssl.create_default_context(cafile=settings.tls_ca_file)
            sock.settimeout(left())
            sock = context.wrap_socket(sock, server_hostname=settings.host)
        progress.append("answer")
        sock.settimeout(left())
        sock.sendall(b"INFO cluster\r\n")
        return sock.recv(512)
    finally:
        sock.close()


def _hung_up(settings: ValkeySettings) -> str:
    """The server closed (or reset) the connection instead of answering INFO."""
    if not settings.tls:
        return "the server hung up without answering: it requires TLS (set VALKEY_TLS=true)"
    return "the server hung up without answering"


def _network_problem(exc: BaseException, stage: str, settings: ValkeySettings) -> str:
    import socket  # loaded already by _look
    import ssl

    ms = settings.connect_timeout_ms
    if isinstance(exc, TimeoutError):
        problem = {
            "connect": f"no TCP connection within {ms} ms (VALKEY_CONNECT_TIMEOUT_MS): check VALKEY_HOST, "
            "VALKEY_PORT and the network path (VPC subnets, security groups)",
            "tls": f"no TLS handshake within {ms} ms: the endpoint may not speak TLS "
            "(VALKEY_TLS=false is for a plaintext server)",
            "answer": f"the server accepted the connection but did not answer within {ms} ms: "
            "it is hung or overloaded",
        }[stage]
    elif isinstance(exc, socket.gaierror):
        problem = "the host name in VALKEY_HOST does not resolve (DNS)"
    elif isinstance(exc, ConnectionRefusedError):
        problem = "connection refused: nothing listens at VALKEY_HOST:VALKEY_PORT"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        problem = _certificate_problem(exc, settings)
    elif isinstance(exc, ssl.SSLError):
        problem = f"the TLS handshake failed ({exc.reason}): is TLS enabled on this endpoint? (VALKEY_TLS)"
    elif stage == "tls":
        problem = "the server hung up during the TLS handshake: is TLS enabled on it? (VALKEY_TLS)"
    else:
        problem = (
            f"cannot reach VALKEY_HOST:VALKEY_PORT ({getattr(exc, 'strerror', None) or type(exc).__name__})"
        )
    return problem


def _certificate_problem(exc: ssl.SSLCertVerificationError, settings: ValkeySettings) -> str:
    why = exc.verify_message or exc.reason or "verification failed"
    if "mismatch" in why.lower():
        advice = (
            "the certificate does not name VALKEY_HOST; use the endpoint name the certificate was issued "
            "for (for ElastiCache, the endpoint it shows, not an IP address or a CNAME)"
        )
    elif settings.tls_ca_file:
        advice = "the certificate is not signed by the CA in VALKEY_TLS_CA_FILE"
    else:
        advice = (
            "the certificate is not signed by a CA in the system trust store: set VALKEY_TLS_CA_FILE "
            "to the PEM file of the CA that signed it"
        )
    return f"TLS certificate verification failed ({why}): {advice}"
