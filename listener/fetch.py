"""A careful HTTP GET for URLs that come from configuration: feeds today, any page source later.

What it guards against, each with the reason it gives:

- addresses that are not public (loopback, private, link-local and cloud metadata, CGNAT, multicast,
  IPv4-mapped IPv6...) unless the source lists that host or network in `PrivateAllowance`; every redirect hop
  is checked again against the same list, and the connection goes to the address that was checked, so DNS
  cannot answer differently a moment later;
- schemes other than http and https, credentials in URLs, more than ``max_redirects`` redirects;
- bodies over ``max_bytes`` (after decompression, so a gzip bomb stops at the cap), servers that drip bytes
  past the total ``deadline``, and any single connect or read slower than ``timeout``.

A 429 or 503 with a usable ``Retry-After`` raises `RateLimited`, so the source pauses as long as the server
asked (at most ``MAX_RETRY_AFTER``) instead of coming back after the usual, shorter backoff.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from listener.model import RateLimited, SourceError

USER_AGENT = "passaparola/0.1 (+https://github.com/passaparola; brand-mention listener)"

#: The longest pause a Retry-After may impose: a wrong or hostile header must not silence a source for days.
MAX_RETRY_AFTER = timedelta(hours=6)
_DELAY_SECONDS = re.compile(r"\d+", re.ASCII)


class FetchError(SourceError):
    """The fetch was refused or cut short; the message names the limit or the address and what to do."""


def public_address(address: str) -> bool:
    """True only for addresses reachable on the public internet (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?", re.ASCII)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _canonical_host(host: str) -> str:
    """A host as entries and URLs are compared: lower case, no trailing dot, IP literals in canonical form."""
    host = host.strip().strip("[]").lower().rstrip(".")
    try:
        return str(_address(host))
    except ValueError:
        return host


@dataclass(frozen=True)
class PrivateAllowance:
    """Which non-public destinations one source may reach, checked at every hop; nothing by default.

    ``everything`` is the old ``allow_private = true``: any private address, at any hop, kept for compatibility.
    Otherwise a hop whose host resolves to a non-public address goes ahead only when that host is listed by name
    (as the URL writes it: "intranet.example", "127.0.0.1"), or when each such address lies in a listed network
    ("10.1.2.0/24"). A host entry may name one port ("intranet.example:8443"), and then allows that port only,
    so a redirect cannot reach another service on an allowed machine.
    """

    everything: bool = False
    hosts: tuple[tuple[str, int | None], ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, value: bool | Iterable[str] | PrivateAllowance) -> PrivateAllowance:
        """``true``/``false`` or a list of hosts, ``host:port`` and networks; ValueError names a bad entry."""
        if isinstance(value, PrivateAllowance):
            return value
        if isinstance(value, bool):
            return cls(everything=value)
        if isinstance(value, str):
            raise ValueError(f'allow_private = {value!r}: give a list, e.g. allow_private = ["{value}"]')
        hosts: list[tuple[str, int | None]] = []
        networks: list[IPNetwork] = []
        for entry in value:
            text = str(entry).strip()
            if "/" in text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValueError(
                        f"allow_private entry {text!r} is not a network; write it like 10.1.2.0/24 or fd00::/8"
                    ) from None
                continue
            hosts.append(cls._host_entry(text))
        return cls(hosts=tuple(hosts), networks=tuple(networks))

    @staticmethod
    def _host_entry(text: str) -> tuple[str, int | None]:
        name, port = text, None
        if text.startswith("["):  # [fd00::1] or [fd00::1]:8443
            name, _, rest = text[1:].partition("]")
            port_text = rest.removeprefix(":") if rest.startswith(":") else None
            if rest and port_text is None:
                name = ""
        else:
            head, colon, port_text = text.rpartition(":")
            if not colon or ":" in head:  # no port, or a bare IPv6 address
                port_text = None
            else:
                name = head
        if port_text is not None:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"allow_private entry {text!r}: {port_text!r} is not a port number")
            port = int(port_text)
        host = _canonical_host(name)
        try:
            _address(host)
        except ValueError:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(
                    f"allow_private entry {text!r} is not a host name, an IP address or a network; "
                    'write e.g. "intranet.example", "10.1.2.3", "intranet.example:8443" or "10.1.2.0/24"'
                ) from None
        return host, port

    def __bool__(self) -> bool:
        return self.everything or bool(self.hosts or self.networks)

    def permits(self, host: str, port: int, address: str) -> bool:
        """May ``host`` (as the URL names it) on ``port`` be contacted at the non-public ``address``?"""
        if self.everything:
            return True
        name = _canonical_host(host)
        if any(name == listed and allowed in (None, port) for listed, allowed in self.hosts):
            return True
        ip = _address(address)
        return any(ip in network for network in self.networks)

    def describe(self) -> str:
        listed = [f"{h}:{p}" if p else h for h, p in self.hosts] + [str(n) for n in self.networks]
        return "any private address" if self.everything else ", ".join(listed) or "nothing"


def resolve(host: str, port: int, allow_private: bool | PrivateAllowance) -> str:
    """The first address of ``host`` if every address it resolves to may be contacted from this source."""
    allowance = PrivateAllowance.parse(allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchError(f"cannot resolve {host!r} ({error.strerror}); check the URL") from None
    addresses = [str(info[4][0]) for info in infos]
    blocked = [a for a in addresses if not public_address(a) and not allowance.permits(host, port, a)]
    if blocked and not allowance:
        raise FetchError(
            f"{host} resolves to {blocked[0]}, which is not a public address; refused. For an intranet "
            f'feed, list it on this source: allow_private = ["{host}"] (or its network, e.g. "10.1.2.0/24")'
        )
    if blocked:
        raise FetchError(
            f"{host}:{port} resolves to {blocked[0]}, which is not a public address and not in this source's "
            f"allow_private ({allowance.describe()}); refused. Add the host or its network only if it is yours"
        )
    return addresses[0]


def retry_after(value: str, now: datetime, longest: timedelta = MAX_RETRY_AFTER) -> datetime | None:
    """When a ``Retry-After`` (delay-seconds or HTTP-date) lets us try again, capped at ``longest``.

    None when the header is missing, unreadable or already past: then it says nothing about when, and the
    caller's usual backoff applies. The feeds and the X source read it alike.
    """
    value = value.strip()
    latest = now + longest
    if _DELAY_SECONDS.fullmatch(value):
        at = latest if len(value) > 9 else now + timedelta(seconds=int(value))  # no huge ints from a header
    else:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)  # HTTP-dates are GMT
    return min(at, latest) if at > now else None


@dataclass(frozen=True)
class Fetched:
    status: int  # 200, or 304 when not modified
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


@dataclass
class Fetcher:
    timeout: float = 10.0
    deadline: float = 30.0
    max_bytes: int = 5_000_000
    max_redirects: int = 3
    allow_private: bool | Sequence[str] | PrivateAllowance = False

    def get(self, url: str, headers: Mapping[str, str] | None = None, now: datetime | None = None) -> Fetched:
        """GET ``url``; ``now`` (the poll's clock, default the wall clock) anchors a Retry-After in seconds."""
        started = time.monotonic()
        now = now or datetime.now(UTC)
        current = httpx.URL(url)
        previous = ""
        with httpx.Client(
            timeout=httpx.Timeout(self.timeout), follow_redirects=False, trust_env=False
        ) as client:  # fmt: skip
            for _ in range(self.max_redirects + 1):
                try:
                    response = self._one(client, current, headers or {}, started, now)
                except FetchError as error:
                    if previous:  # say where the hop came from: the feed's own URL may be fine
                        raise FetchError(f"{error} (redirected there from {previous})") from None
                    raise
                if response.status not in (301, 302, 303, 307, 308):
                    return response
                location = response.headers.get("location", "")
                if not location:
                    raise FetchError(f"{current} answered {response.status} without a Location; fix the URL")
                previous, current = str(current), current.join(location)
            raise FetchError(f"{url}: more than {self.max_redirects} redirects; use the final URL")

    def _one(
        self, client: httpx.Client, url: httpx.URL, headers: Mapping[str, str], started: float, now: datetime
    ) -> Fetched:
        if url.scheme not in ("http", "https"):
            raise FetchError(f"{url}: only http and https URLs are fetched, not {url.scheme!r}")
        if url.userinfo:
            raise FetchError(f"{url.host}: credentials in the URL are refused; remove them")
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        address = resolve(host, port, PrivateAllowance.parse(self.allow_private))
        pinned = url.copy_with(host=address)  # connect to the address we checked
        request_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **headers}
        request_headers["Host"] = f"{host}:{url.port}" if url.port else host
        request = client.build_request("GET", pinned, headers=request_headers, extensions={"sni_hostname": host})
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException:
            raise FetchError(
                f"{host}: no answer within {self.timeout:g} s; try later or raise timeout_seconds"
            ) from None
        except httpx.HTTPError as error:
            raise FetchError(f"{host}: {type(error).__name__}: {error}") from None
        try:
            if response.status_code in (301, 302, 303, 307, 308, 304):
                return Fetched(response.status_code, headers=dict(response.headers), url=str(url))
            if response.status_code in (429, 503):
                asked = response.headers.get("retry-after", "")
                retry_at = retry_after(asked, now)
                if retry_at is not None:
                    raise RateLimited(
                        f"{url} answered {response.status_code} with Retry-After: {asked.strip()[:40]}; paused until "
                        f"{retry_at.isoformat(timespec='seconds')} as the server asked, nothing to do unless it lasts",
                        retry_at,
                    )
            if response.status_code >= 400:
                raise FetchError(f"{url} answered {response.status_code}; check the URL, or wait if it is 5xx")
            body = bytearray()
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise FetchError(
                            f"{url}: more than {self.max_bytes:,} bytes (after decompression); refused. "
                            "Raise max_bytes if the feed is really this large"
                        )
                    if time.monotonic() - started > self.deadline:
                        raise FetchError(f"{url}: still sending after {self.deadline:g} s; cut short")
            except httpx.TimeoutException:
                raise FetchError(f"{url}: stalled for {self.timeout:g} s mid-body; try later") from None
            except httpx.DecodingError as error:
                raise FetchError(f"{url}: body cannot be decompressed ({error}); the server sent bad data") from None
            return Fetched(response.status_code, bytes(body), dict(response.headers), str(url))
        finally:
            response.close()


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: "a list", "a string"... (for messages about a body's shape)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
