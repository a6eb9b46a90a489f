"""One egress policy for every URL a caller can name: ingest ``files[].url``, inline model ``base_url``s
and ``callback_url``s (docs/security-inputs.md).

A URL passes when:

1. its scheme is ``http`` or ``https``, it has a host, and it carries no ``user:password@``;
2. ``SWITCHYARD_EGRESS_ALLOW``, when set, lists it: a host (``example.com``), a domain and its
   subdomains (``*.example.com``) or a URL prefix (``https://api.example.com:8443/v1/``);
3. every address its host resolves to is public. Private, loopback, link-local, multicast, reserved,
   unspecified and other non-global addresses (IPv4 and IPv6; IPv4-mapped, 6to4, Teredo and NAT64
   IPv6 judged by the IPv4 inside; decimal, octal and hex IPv4 spellings read as ``inet_aton`` reads
   them) are refused unless ``SWITCHYARD_EGRESS_ALLOW_PRIVATE=true`` or an allowlist entry names the
   host explicitly (wildcards do not count).

Where the check runs: at the socket. httpx resolves names inside httpcore's network backend, so
``GuardedTransport`` gives httpcore a backend that resolves the host once, checks every address, and
opens the TCP connection to the checked IP itself (TLS still verifies the certificate against the
host name). A DNS answer that changes between a check and the connect (rebinding) therefore cannot
reach an address that was not checked. Redirects are not followed automatically: ``fetch`` follows
them by hand, and every request, first or redirected, passes ``check_url`` (an httpx request hook)
and the guarded connect. Environment proxies are ignored (``trust_env=False``): a proxy would connect
for us, unchecked. Fetches stop past ``SWITCHYARD_EGRESS_MAX_BYTES`` and after
``SWITCHYARD_EGRESS_TIMEOUT_S`` (per network operation, and in total between chunks).

Configuration-named endpoints (``SWITCHYARD_LLM_MODELS`` base_urls, database and broker URLs) are
the operator's and do not pass through this policy; only what a caller names does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from switchyard.config import get_settings
from switchyard.errors import InputRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refused(message: str, rule: str) -> InputRefused:
    return InputRefused(f"egress refused: {message}", rule=f"egress:{rule}")


# --- addresses --------------------------------------------------------------------------------------

def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be connected to (``"loopback"``, ``"private"``...), or ``None`` if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            if problem:
                return f"{problem}, via {inner}"
    for attr, name in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return name
    if not ip.is_global:
        return "not globally routable"
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one in any spelling a resolver accepts, without DNS.

    ``ipaddress`` takes the canonical forms; ``inet_aton`` also takes the legacy ones a URL may use to
    hide an address (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


# --- the allowlist ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AllowEntry:
    """One ``SWITCHYARD_EGRESS_ALLOW`` item: a host, ``*.domain``, or a URL prefix."""

    host: str
    wildcard: bool = False
    scheme: str | None = None
    port: int | None = None
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        text = text.strip()
        if "://" in text:
            url = httpx.URL(text)
            return cls(host=_norm_host(url.host), scheme=url.scheme, port=url.port or _DEFAULT_PORTS.get(url.scheme),
                       path=url.path or "/")
        if text.startswith("*."):
            return cls(host=_norm_host(text[2:]), wildcard=True)
        return cls(host=_norm_host(text.removeprefix(".")), wildcard=text.startswith("."))

    def matches_host(self, host: str, port: int | None = None) -> bool:
        host = _norm_host(host)
        if self.wildcard:
            return host == self.host or host.endswith("." + self.host)
        return host == self.host and (self.port is None or port is None or port == self.port)

    def matches_url(self, url: httpx.URL) -> bool:
        if not self.matches_host(url.host, _port(url)):
            return False
        if self.scheme is not None and url.scheme != self.scheme:
            return False
        return self.path is None or _path_under(url.path or "/", self.path)

    def names_host(self, host: str, port: int) -> bool:
        """An explicit (non-wildcard) entry for this host and port: it may be a private address."""
        return not self.wildcard and self.matches_host(host, port)


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


def _path_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix if prefix.endswith("/") else prefix + "/")


# --- the policy -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EgressPolicy:
    allow: tuple[AllowEntry, ...] = ()
    allow_private: bool = False
    max_bytes: int = 64 * 1024 * 1024
    timeout_s: float = 30.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls) -> EgressPolicy:
        s = get_settings()
        entries = tuple(AllowEntry.parse(item) for item in s.egress_allow.split(",") if item.strip())
        return cls(entries, s.egress_allow_private, s.egress_max_bytes, s.egress_timeout_s, s.egress_max_redirects)

    def check_url(self, url: str | httpx.URL, *, resolve: bool = False) -> httpx.URL:
        """Rules 1-2, and rule 3 for a literal address (no network). With ``resolve``, rule 3 also for
        the addresses the host resolves to now (a name that does not resolve passes: the connect
        checks again)."""
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise _refused(f"malformed URL ({exc})", "url") from None
        if parsed.scheme not in SCHEMES:
            raise _refused(f"scheme {parsed.scheme or '(none)'!r} is not http or https", "scheme")
        if not parsed.host:
            raise _refused("the URL has no host", "url")
        if parsed.userinfo:
            raise _refused("credentials in a URL are not accepted (secrets belong in configuration)",
                           "credentials")
        if self.allow and not any(entry.matches_url(parsed) for entry in self.allow):
            raise _refused(f"{parsed.host} is not on the allowlist (SWITCHYARD_EGRESS_ALLOW)", "allowlist")
        port = _port(parsed) or 0
        literal = literal_address(parsed.host)
        if literal is not None:
            self.check_address(parsed.host, port, literal)
        elif resolve:
            with contextlib.suppress(socket.gaierror):
                self.resolve(parsed.host, port)
        return parsed

    def may_be_private(self, host: str, port: int) -> bool:
        return self.allow_private or any(entry.names_host(host, port) for entry in self.allow)

    def check_address(self, host: str, port: int, ip: IPAddress) -> None:
        if self.may_be_private(host, port):
            return
        problem = address_problem(ip)
        if problem:
            where = str(ip) if str(ip) == _norm_host(host) else f"{host} ({ip})"
            raise _refused(f"{where} is not a public address ({problem}); set SWITCHYARD_EGRESS_ALLOW_PRIVATE=true "
                           "or name the host in SWITCHYARD_EGRESS_ALLOW", "address")

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, each checked; the caller connects to these and nothing else.
        ``socket.gaierror`` if the name does not resolve."""
        literal = literal_address(host)
        if literal is not None:
            ips: list[IPAddress] = [literal]
        else:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            ips = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        for ip in ips:
            self.check_address(host, port, ip)
        return [str(ip) for ip in ips]

    def check_request(self, request: httpx.Request) -> None:
        """httpx ``request`` event hook: every request a guarded client sends, redirects included."""
        self.check_url(request.url)

    async def acheck_request(self, request: httpx.Request) -> None:
        self.check_url(request.url)


def get_policy() -> EgressPolicy:
    return EgressPolicy.from_settings()


def check_url(url: str, *, resolve: bool = False) -> httpx.URL:
    """``get_policy().check_url``: refuse a caller's URL (``InputRefused``) before anything is sent."""
    return get_policy().check_url(url, resolve=resolve)


# --- guarded connections ----------------------------------------------------------------------------

class _GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to checked addresses (see module doc)."""

    def __init__(self, policy: EgressPolicy):
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.resolve(host, port)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        error: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise _refused("unix sockets are not reachable", "scheme")


class _AsyncGuardedBackend(httpcore.AnyIOBackend):
    def __init__(self, policy: EgressPolicy):
        self.policy = policy

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await anyio.to_thread.run_sync(self.policy.resolve, host, port)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        error: Exception | None = None
        for ip in addresses:
            try:
                return await super().connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address for {host}")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise _refused("unix sockets are not reachable", "scheme")


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go only to addresses the policy allows."""

    def __init__(self, policy: EgressPolicy):
        super().__init__(trust_env=False)
        # httpx 0.28 has no public parameter for httpcore's network backend; the pool it built is
        # replaced by the same pool with ours (httpcore's ``network_backend`` is public).
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                             network_backend=_GuardedBackend(policy))


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy):
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                                  network_backend=_AsyncGuardedBackend(policy))


def client(policy: EgressPolicy | None = None, *, timeout: float | None = None) -> httpx.Client:
    """An httpx client for caller-named URLs: guarded connects, every request checked, no redirects
    followed, no environment proxies."""
    policy = policy or get_policy()
    return httpx.Client(transport=GuardedTransport(policy), trust_env=False, follow_redirects=False,
                        timeout=timeout or policy.timeout_s, event_hooks={"request": [policy.check_request]})


def async_client(policy: EgressPolicy | None = None, *, timeout: float | None = None) -> httpx.AsyncClient:
    policy = policy or get_policy()
    return httpx.AsyncClient(transport=AsyncGuardedTransport(policy), trust_env=False, follow_redirects=False,
                             timeout=timeout or policy.timeout_s, event_hooks={"request": [policy.acheck_request]})


def fetch(url: str, *, max_bytes: int | None = None, policy: EgressPolicy | None = None) -> tuple[bytes, str]:
    """GET a caller's URL under the policy: ``(body, final URL)``. Redirects are followed by hand, each
    hop checked, up to ``max_redirects``; the body stops past ``max_bytes``; the whole fetch stops
    after ``timeout_s``. Raises ``InputRefused`` for the policy, ``httpx.HTTPError`` for the network."""
    policy = policy or get_policy()
    limit = min(max_bytes or policy.max_bytes, policy.max_bytes)
    deadline = time.monotonic() + policy.timeout_s
    policy.check_url(url)
    with client(policy) as http:
        request = http.build_request("GET", url)
        for _hop in range(policy.max_redirects + 1):
            response = http.send(request, stream=True)
            try:
                if response.next_request is not None:
                    request = response.next_request
                    continue
                response.raise_for_status()
                return _read_limited(response, limit, deadline, url), str(response.url)
            finally:
                response.close()
    raise _refused(f"more than {policy.max_redirects} redirects", "redirects")


def _read_limited(response: httpx.Response, limit: int, deadline: float, url: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _refused(f"{url} is larger than {limit} bytes", "size")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _refused(f"{url} is larger than {limit} bytes", "size")
        if time.monotonic() > deadline:
            raise _refused(f"{url} took longer than the egress time limit", "time")
        chunks.append(chunk)
    return b"".join(chunks)
