"""HTTP(S) GET with each phase timed by hand on asyncio streams.

One HTTP/1.1 request per connection (``Connection: close``), no library in between, so each phase
is measured where it happens. For the request whose response is reported (the last one, after any
redirects) ``probe_http_phase_seconds{phase}`` gives:

* ``resolve``: ``getaddrinfo`` (only when a name was resolved), ``connect``: the TCP handshake,
  ``tls``: the TLS handshake (HTTPS only) — each the duration of that step;
* ``ttfb``: request start (before resolving) to the status line received, ``total``: request start to
  the body read (at most ``max_bytes``), so ``connect ≤ ttfb ≤ total``.

``probe_duration_seconds`` covers the whole probe, redirects included. Redirects (301, 302, 303,
307, 308 with a ``Location``) are followed up to ``max_redirects``; ``probe_http_redirects`` counts
them. The final status must be in ``expect_status`` (default 200-399) and, when ``expect_text`` is
set, the body (decoded with the response's charset, UTF-8 by default) must contain it.

TLS verifies against the system CAs plus ``ca_file`` if given; ``insecure`` turns verification off.
``probe_ssl_earliest_cert_expiry_days`` is the days until the leaf certificate expires (the earliest
over the HTTPS hops): from the verified certificate, or, in insecure mode, from its DER (the only
certificate Python gives before 3.13). Host names are resolved through ``agent.checks.tcp.resolve``.

Reasons: status, content, timeout, refused, tls, resolve_failed, too_many_redirects, malformed,
error. Example::

    checks:
      http:
        timeout_s: 10           # the check's deadline (schedule)
        probe_timeout_s: 8      # per target, redirects included; below the deadline
        targets:
          - {url: "https://dichvucong.gov.vn/", name: dvc, expect_text: "Dịch vụ công"}
          - {url: "https://igate.danang.gov.vn/health", uplink: wan, ca_file: /etc/centerwatch/gov-ca.pem}
          - {url: "http://10.10.1.20:8080/", uplink: lan, expect_status: [200, 401]}
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import quote, urljoin, urlsplit

import msgspec

import centerwatch
from agent.checks.base import CheckContext, Observations
from agent.checks.tcp import Family, ProbeFailed, connect, lookup

PROBE = "http"
Uplink = Literal["internet", "wan", "lan"]
USER_AGENT = f"CenterWatch/{centerwatch.__version__}"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HEADERS = 100
MAX_INTERIM = 5  # 1xx responses skipped before the final one
_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([1-9][0-9]{2})(?: .*)?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.I)


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    #: The ``target`` label; "" means the URL.
    name: str = ""
    uplink: Uplink = "internet"
    #: Statuses that count as success; empty: 200-399.
    expect_status: tuple[Annotated[int, msgspec.Meta(ge=100, le=599)], ...] = ()
    #: A substring the decoded body must contain.
    expect_text: str | None = None
    follow_redirects: bool = True
    max_redirects: Annotated[int, msgspec.Meta(ge=0, le=30)] = 5
    #: The body is read up to this many bytes.
    max_bytes: Annotated[int, msgspec.Meta(ge=0, le=64 * 1024 * 1024)] = 1024 * 1024
    #: Skip TLS verification (the certificate's expiry is still reported).
    insecure: bool = False
    #: PEM file of CAs trusted besides the system's (a government CA, a self-signed server).
    ca_file: str | None = None
    family: Family = "any"

    def __post_init__(self) -> None:
        _split_url(self.url)
        if self.insecure and self.ca_file:
            raise ValueError("ca_file has no effect with insecure: true; drop one of them")

    @property
    def label(self) -> str:
        return self.name or self.url

    def status_ok(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status <= 399


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    targets: tuple[Target, ...] = ()
    #: Per target, redirects included; keep it below the check's deadline.
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 8.0

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for target in self.targets:
            if target.label in seen:
                raise ValueError(f"two targets are named {target.label!r}; give one a distinct `name`")
            seen.add(target.label)


# --- URL and TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Url:
    tls: bool
    host: str  # without brackets
    port: int
    host_header: str
    path: str  # path and query, percent-encoded


def _split_url(url: str) -> _Url:
    """Raises ValueError naming what is wrong with ``url``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url {url!r}: expected http:// or https:// and a host")
    if parts.username is not None:
        raise ValueError(f"url {url!r}: credentials in URLs are not supported")
    tls = parts.scheme == "https"
    host = parts.hostname
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"url {url!r}: the host cannot be encoded (IDNA)") from None
    default = 443 if tls else 80
    shown = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return _Url(tls, ascii_host, port or default, shown if port in (None, default) else f"{shown}:{port}", path)


#: TLS contexts by (insecure, ca_file), with the ca_file's mtime: loading the system CAs costs
#: milliseconds, so a context is built on first use and again only when the ca_file changes.
_ssl_contexts: dict[tuple[bool, str | None], tuple[int, ssl.SSLContext]] = {}


def _ssl_context(target: Target) -> ssl.SSLContext:
    mtime = os.stat(target.ca_file).st_mtime_ns if target.ca_file else 0
    key = (target.insecure, target.ca_file)
    cached = _ssl_contexts.get(key)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    context = ssl.create_default_context()
    if target.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif target.ca_file:
        context.load_verify_locations(cafile=target.ca_file)
    _ssl_contexts[key] = (mtime, context)
    return context


def _der_element(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``; ValueError when cut off."""
    if pos + 2 > len(der):
        raise ValueError("cut off")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 1 <= n <= 4 or pos + n > len(der):
            raise ValueError("bad length")
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    if pos + length > len(der):
        raise ValueError("cut off")
    return tag, pos, pos + length


def der_not_after(der: bytes) -> float | None:
    """The notAfter of a DER X.509 certificate (Unix seconds), or None when it cannot be read."""
    try:
        _, start, _ = _der_element(der, 0)  # Certificate
        tag, pos, end = _der_element(der, start)  # tbsCertificate
        if tag != 0x30:
            return None
        elements: list[tuple[int, int, int]] = []
        while pos < end and len(elements) < 6:
            tag, content, pos = _der_element(der, pos)
            elements.append((tag, content, pos))
        if elements and elements[0][0] == 0xA0:  # [0] version
            elements = elements[1:]
        tag, pos, end = elements[3]  # serialNumber, signature, issuer, validity
        if tag != 0x30:
            return None
        _, _, pos = _der_element(der, pos)  # notBefore
        tag, content, end = _der_element(der, pos)
        text = der[content:end].decode("ascii")
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: 50..99 are 19xx
            year = int(text[:2])
            text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
        elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
            return None
        when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    except (ValueError, IndexError):
        return None
    return when.timestamp()


def _cert_expiry(ssl_object: ssl.SSLObject | None, verified: bool) -> float | None:
    if ssl_object is None:
        return None
    if verified:
        not_after = (ssl_object.getpeercert() or {}).get("notAfter")
        return float(ssl.cert_time_to_seconds(not_after)) if isinstance(not_after, str) else None
    der = ssl_object.getpeercert(binary_form=True)
    return der_not_after(der) if der else None


# --- one request ------------------------------------------------------------------------------------


@dataclass
class _Result:
    target: Target
    duration_s: float = 0.0
    reason: str | None = None
    message: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    status: int | None = None
    redirects: int = 0
    body_bytes: int | None = None
    content_match: bool | None = None
    cert_expiry: float | None = None


@dataclass
class _Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[-1] if values else None


def _malformed(message: str) -> ProbeFailed:
    return ProbeFailed("malformed", message)


async def _readline(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        line = await reader.readline()
    except ValueError:  # longer than the stream's limit
        raise _malformed(f"the {what} is longer than {64 * 1024} bytes") from None
    if not line.endswith(b"\n"):
        raise _malformed(f"the connection closed in the {what}")
    return line.rstrip(b"\r\n")


async def _read_head(reader: asyncio.StreamReader, result: _Result, t0: float) -> tuple[int, dict[str, list[str]]]:
    for _ in range(MAX_INTERIM + 1):
        line = await _readline(reader, "status line")
        result.phases.setdefault("ttfb", time.perf_counter() - t0)
        text = line.decode("latin-1")
        match = _STATUS_LINE.fullmatch(text)
        if match is None:
            raise _malformed(f"not an HTTP/1.x status line: {text[:80]!r}")
        status = int(match.group(1))
        headers: dict[str, list[str]] = {}
        last: str | None = None
        for _ in range(MAX_HEADERS + 1):
            line = await _readline(reader, "headers")
            if not line:
                break
            text = line.decode("latin-1")
            if text[0] in " \t" and last is not None:  # obsolete line folding
                headers[last][-1] += " " + text.strip()
                continue
            name, sep, value = text.partition(":")
            if not sep or not _TOKEN.fullmatch(name):
                raise _malformed(f"not a header line: {text[:80]!r}")
            last = name.lower()
            headers.setdefault(last, []).append(value.strip())
        else:
            raise _malformed(f"more than {MAX_HEADERS} header lines")
        if status >= 200 or status == 101:
            return status, headers
    raise _malformed(f"more than {MAX_INTERIM} interim (1xx) responses")


async def _read_body(reader: asyncio.StreamReader, status: int, headers: dict[str, list[str]], limit: int) -> bytes:
    """The body, at most ``limit`` bytes of it (a longer body is not read to its end)."""
    if status < 200 or status in (204, 304):
        return b""
    codings = [c.strip().lower() for v in headers.get("transfer-encoding", []) for c in v.split(",")]
    try:
        if codings and codings[-1] == "chunked":
            return await _read_chunked(reader, limit)
        lengths = {part.strip() for value in headers.get("content-length", []) for part in value.split(",")}
        if lengths:
            length = lengths.pop()
            if lengths or not length.isdigit():
                raise _malformed(f"invalid Content-Length {headers['content-length']!r}")
            return await reader.readexactly(min(int(length), limit))
        body = bytearray()
        while len(body) < limit:  # no length: the body ends when the server closes
            chunk = await reader.read(min(65536, limit - len(body)))
            if not chunk:
                break
            body += chunk
        return bytes(body)
    except asyncio.IncompleteReadError as exc:
        raise _malformed(f"the connection closed {len(exc.partial)} bytes into a body part") from None


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while len(body) < limit:  # every chunk but the last adds at least a byte
        line = await _readline(reader, "chunk size")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _malformed(f"invalid chunk size {size_text[:40]!r}") from None
        if size == 0:
            break  # trailers, if any, are not read: the connection is closed next
        take = min(size, limit - len(body))
        body += await reader.readexactly(take)
        if take < size:
            break
        if await reader.readexactly(2) != b"\r\n":
            raise _malformed("a chunk does not end with CRLF")
    return bytes(body)


async def _fetch(url: str, target: Target, result: _Result) -> _Response:
    """One request; fills ``result.phases`` for it (replacing an earlier hop's)."""
    try:
        where = _split_url(url)
    except ValueError as exc:
        raise ProbeFailed("error", f"cannot follow a redirect: {exc}") from None
    result.phases = phases = {}
    t0 = time.perf_counter()
    addresses, resolve_s = await lookup(where.host, where.port, target.family)
    if resolve_s is not None:
        phases["resolve"] = resolve_s
    t1 = time.perf_counter()
    try:
        sock, peer = await connect(addresses)
    except ProbeFailed as exc:
        if exc.reason == "unreachable":  # not an HTTP reason: the message says it
            raise ProbeFailed("error", exc.message) from None
        raise
    phases["connect"] = time.perf_counter() - t1
    context = None
    if where.tls:
        try:
            context = _ssl_context(target)
        except OSError as exc:  # ca_file unreadable, not PEM
            sock.close()
            raise ProbeFailed("error", f"cannot load ca_file {target.ca_file!r}: {exc}") from None
    t2 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=context, server_hostname=where.host if context else None
        )
    except ssl.SSLError as exc:
        sock.close()
        raise ProbeFailed("tls", f"TLS handshake with {peer} failed: {_tls_cause(exc)}") from None
    except BaseException:
        sock.close()
        raise
    try:
        if context is not None:
            phases["tls"] = time.perf_counter() - t2
            expiry = _cert_expiry(writer.get_extra_info("ssl_object"), not target.insecure)
            if expiry is not None:
                result.cert_expiry = expiry if result.cert_expiry is None else min(result.cert_expiry, expiry)
        request = (
            f"GET {where.path} HTTP/1.1\r\nHost: {where.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        await writer.drain()
        status, headers = await _read_head(reader, result, t0)
        result.status = status
        redirect = target.follow_redirects and status in REDIRECTS and bool(headers.get("location", [""])[-1])
        body = b"" if redirect else await _read_body(reader, status, headers, target.max_bytes)
        phases["total"] = time.perf_counter() - t0
        return _Response(status, headers, body)
    except ssl.SSLError as exc:
        raise ProbeFailed("tls", f"TLS error with {peer}: {_tls_cause(exc)}") from None
    finally:
        writer.transport.abort()  # Connection: close; no graceful TLS shutdown to wait for


def _tls_cause(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)


def _decode(body: bytes, content_type: str | None) -> str:
    match = _CHARSET.search(content_type or "")
    if match:
        with contextlib.suppress(LookupError):  # unknown, or not a text encoding ("base64")
            return body.decode(match.group(1), errors="replace")
    return body.decode("utf-8", errors="replace")


async def _request_chain(target: Target, result: _Result) -> None:
    url = target.url
    while True:  # bounded: at most max_redirects + 1 requests
        response = await _fetch(url, target, result)
        location = response.header("location")
        if not (target.follow_redirects and response.status in REDIRECTS and location):
            break
        if result.redirects >= target.max_redirects:
            raise ProbeFailed("too_many_redirects", f"more than {target.max_redirects} redirects (last: {url})")
        result.redirects += 1
        if not location.isascii():
            location = quote(location, safe=":/?#[]@!$&'()*+,;=%")
        url = urljoin(url, location)
    result.body_bytes = len(response.body)
    if not target.status_ok(response.status):
        expected = ", ".join(map(str, target.expect_status)) or "200-399"
        raise ProbeFailed("status", f"{url}: status {response.status}, expected {expected}")
    if target.expect_text is not None:
        result.content_match = target.expect_text in _decode(response.body, response.header("content-type"))
        if not result.content_match:
            raise ProbeFailed(
                "content", f"{url}: {target.expect_text!r} not in the first {len(response.body)} bytes of the body"
            )


async def _probe(target: Target, timeout_s: float) -> _Result:
    result = _Result(target)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await _request_chain(target, result)
    except ProbeFailed as exc:
        result.reason, result.message = exc.reason, exc.message
    except TimeoutError:
        result.reason, result.message = "timeout", f"no complete response within {timeout_s:g} s"
    except OSError as exc:  # a reset while sending or reading
        result.reason = "timeout" if isinstance(exc, TimeoutError) else "error"
        result.message = f"{type(exc).__name__}: {exc.strerror or exc}"
    result.duration_s = time.perf_counter() - t0
    return result


async def collect(ctx: CheckContext[Config]) -> Observations:
    cfg = ctx.config
    outcomes = await asyncio.gather(*(_probe(t, cfg.probe_timeout_s) for t in cfg.targets), return_exceptions=True)
    obs = Observations(ts_ms=ctx.clock_ms())
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome  # a programming error: failures of the network are results
        labels = {"probe": PROBE, "target": outcome.target.label, "uplink": outcome.target.uplink}
        obs.probe_outcome(
            PROBE, labels["target"], labels["uplink"], reason=outcome.reason, message=outcome.message,
            duration_s=outcome.duration_s,
        )  # fmt: skip
        for phase, seconds in outcome.phases.items():
            obs.add("probe_http_phase_seconds", seconds, phase=phase, **labels)
        if outcome.status is not None:
            obs.add("probe_http_status_code", outcome.status, **labels)
            obs.add("probe_http_redirects", outcome.redirects, **labels)
        if outcome.body_bytes is not None:
            obs.add("probe_http_content_length_bytes", outcome.body_bytes, **labels)
        if outcome.content_match is not None:
            obs.add("probe_http_content_match", 1.0 if outcome.content_match else 0.0, **labels)
        if outcome.cert_expiry is not None:
            days = (outcome.cert_expiry - obs.ts_ms / 1000.0) / 86400.0
            obs.add("probe_ssl_earliest_cert_expiry_days", days, **labels)
    return obs
