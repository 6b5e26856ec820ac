"""The HTTP check against a real HTTP(S) server on 127.0.0.1 started here (asyncio streams).

Host names are resolved by a fake (``agent.checks.tcp.resolve``): a unit test never asks the system
resolver. The HTTPS tests use a self-signed certificate made by the ``openssl`` CLI; without it they
are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

import centerwatch
from agent.catalog import load_catalog
from agent.checks import http, tcp
from agent.checks.base import CheckContext, Observations
from agent.config import AgentConfig, check_specs
from agent.errors import ConfigError
from centerwatch.wire import BATCH_DECODER, Batch, Part

BODY = b"<html><body>Xin ch\xc3\xa0o CenterWatch</body></html>"
CERT_DAYS = 30


# --- the server -------------------------------------------------------------------------------------


def _response(status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "Connection: close", "", ""]
    return "\r\n".join(head).encode() + body


@dataclass
class Server:
    port: int = 0
    scheme: str = "http"
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            _, path, _ = request[0].split(" ")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in request[1:] if line)}
            self.requests.append((path, headers))
            await self.respond(path, headers, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the probe hung up first (redirects, capped bodies, timeouts)
        finally:
            writer.close()
            self.tasks.discard(task)

    async def respond(self, path: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        match path:
            case "/ok" | "/ok?q=1":
                writer.write(_response("200 OK", BODY, ("Content-Type: text/html; charset=utf-8",)))
            case "/r3":
                writer.write(_response("302 Found", headers=("Location: /r2",)))
            case "/r2":
                writer.write(_response("307 Temporary Redirect", headers=(f"Location: {self.base}/r1",)))
            case "/r1":
                writer.write(_response("301 Moved Permanently", b"moved", ("Location: ok",)))
            case "/loop":
                writer.write(_response("302 Found", headers=("Location: /loop",)))
            case "/ftp":
                writer.write(_response("302 Found", headers=("Location: ftp://127.0.0.1/file",)))
            case "/500":
                writer.write(_response("500 Internal Server Error", b"oops"))
            case "/404":
                writer.write(_response("404 Not Found", b"nope"))
            case "/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
                for part in (b"Xin ", b"ch\xc3\xa0o ", b"chunked world"):
                    writer.write(f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            case "/bad-chunk":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
            case "/until-close":
                writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + BODY)
            case "/big":
                writer.write(_response("200 OK", b"x" * 300_000))
            case "/short":  # promises 100 bytes, sends 10
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            case "/interim":
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + _response("200 OK", b"final"))
            case "/garbage":
                writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            case "/latin1":
                writer.write(_response("200 OK", "Phường Hải Châu".encode(), ("Content-Type: text/plain",)))
            case "/slow":
                await asyncio.sleep(5)
            case "/echo":
                body = f"{headers.get('host')}|{headers.get('user-agent')}|{headers.get('connection')}".encode()
                writer.write(_response("200 OK", body))
            case _:
                writer.write(_response("404 Not Found"))


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    listener = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.port = listener.sockets[0].getsockname()[1]
    yield srv
    listener.close()
    for task in list(srv.tasks):
        task.cancel()
    await asyncio.gather(*srv.tasks, return_exceptions=True)
    await listener.wait_closed()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, valid CERT_DAYS days."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl CLI is required under CI")
        pytest.skip("the openssl CLI is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, crt = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", str(CERT_DAYS), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    return crt, key


@pytest.fixture
async def tls_server(cert: tuple[Path, Path]) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    srv = Server(scheme="https")
    listener = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=context)
    srv.port = listener.sockets[0].getsockname()[1]
    yield srv
    listener.close()
    for task in list(srv.tasks):
        task.cancel()
    await asyncio.gather(*srv.tasks, return_exceptions=True)
    await listener.wait_closed()


class FakeResolver:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def __call__(self, host: str, port: int, family: int) -> list[tcp.Address]:
        await asyncio.sleep(0.001)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, (self.table[host], port))]


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    fake = FakeResolver({"portal.test": "127.0.0.1", "localhost": "127.0.0.1"})
    monkeypatch.setattr(tcp, "resolve", fake)
    return fake


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(*targets: http.Target, probe_s: float = 1.0, clock: Callable[[], int] | None = None) -> Observations:
    config = http.Config(targets, probe_timeout_s=probe_s)
    return await http.collect(CheckContext("http", config, clock or (lambda: 1_795_900_000_000)))


def values(obs: Observations, name: str, **labels: str) -> dict[str, float]:
    return {
        s.labels["target"]: s.value
        for s in obs.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    }


def reasons(obs: Observations) -> dict[str, str]:
    return {s.labels["target"]: s.labels["reason"] for s in obs.samples if s.name == "probe_failure_info"}


def phases(obs: Observations, target: str) -> dict[str, float]:
    return {
        s.labels["phase"]: s.value
        for s in obs.samples
        if s.name == "probe_http_phase_seconds" and s.labels["target"] == target
    }


def assert_cataloged(obs: Observations) -> None:
    """Every sample is in agent/metrics.csv, in range, once per series, and valid on the wire."""
    catalog = load_catalog()
    for sample in obs.samples:
        entry = catalog.get(sample.name)
        assert entry is not None, f"{sample.name} is not in agent/metrics.csv"
        assert entry.type == "gauge" and math.isfinite(sample.value)
        if entry.unit == "boolean":
            assert sample.value in (0.0, 1.0), sample
        assert sample.labels["probe"] == "http" and sample.labels["uplink"] in ("internet", "wan", "lan")
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in obs.samples]
    assert len(keys) == len(set(keys)), "a series is reported twice in one run"
    part = Part(1, "http", obs.ts_ms, 0.01, True, samples=obs.samples, events=obs.events)
    batch = Batch(v=1, agent_id="a1", sent_ms=obs.ts_ms, parts=[part])
    assert BATCH_DECODER.decode(msgspec.json.encode(batch)) == batch


# --- plain HTTP -------------------------------------------------------------------------------------


async def test_every_outcome_is_classified_and_none_hides_another(server: Server) -> None:
    b = server.base
    T = http.Target
    obs = await run(
        T(f"{b}/ok?q=1", name="ok", expect_text="Xin chào", uplink="wan"),
        T(f"{b}/r3", name="redirects"),
        T(f"{b}/r3", name="too-many", max_redirects=2),
        T(f"{b}/r3", name="not-followed", follow_redirects=False),
        T(f"{b}/loop", name="loop"),
        T(f"{b}/ftp", name="ftp"),
        T(f"{b}/500", name="500"),
        T(f"{b}/404", name="404-expected", expect_status=(404,)),
        T(f"{b}/ok", name="200-unexpected", expect_status=(204,)),
        T(f"{b}/chunked", name="chunked", expect_text="chào chunked"),
        T(f"{b}/bad-chunk", name="bad-chunk"),
        T(f"{b}/ok", name="content", expect_text="Tạm biệt"),
        T(f"{b}/until-close", name="until-close", expect_text="CenterWatch"),
        T(f"{b}/big", name="big", max_bytes=1000),
        T(f"{b}/short", name="short"),
        T(f"{b}/interim", name="interim", expect_text="final"),
        T(f"{b}/garbage", name="garbage"),
        T(f"{b}/slow", name="slow"),
        T(f"http://127.0.0.1:{closed_port()}/", name="refused", uplink="lan"),
        T(f"http://nowhere.test:{server.port}/ok", name="resolve"),
        T(f"http://portal.test:{server.port}/ok", name="by-name"),
        probe_s=0.4,
    )

    assert reasons(obs) == {
        "too-many": "too_many_redirects",
        "loop": "too_many_redirects",
        "ftp": "error",
        "500": "status",
        "200-unexpected": "status",
        "bad-chunk": "malformed",
        "content": "content",
        "short": "malformed",
        "garbage": "malformed",
        "slow": "timeout",
        "refused": "refused",
        "resolve": "resolve_failed",
    }
    ok = {"ok", "redirects", "not-followed", "404-expected", "chunked", "until-close", "big", "interim", "by-name"}
    assert {t for t, v in values(obs, "probe_success").items() if v == 1.0} == ok
    assert values(obs, "probe_http_status_code") == {
        "ok": 200, "redirects": 200, "too-many": 301, "not-followed": 302, "loop": 302, "ftp": 302, "500": 500,
        "404-expected": 404, "200-unexpected": 200, "chunked": 200, "bad-chunk": 200, "content": 200,
        "until-close": 200, "big": 200, "short": 200, "interim": 200, "by-name": 200,
    }  # fmt: skip
    redirects = values(obs, "probe_http_redirects")
    assert redirects["redirects"] == 3 and redirects["too-many"] == 2 and redirects["loop"] == 5
    assert redirects["not-followed"] == 0 and redirects["ok"] == 0
    length = values(obs, "probe_http_content_length_bytes")
    assert length["ok"] == len(BODY) and length["chunked"] == len("Xin chào chunked world".encode())
    assert length["big"] == 1000 and length["until-close"] == len(BODY) and length["500"] == 4
    assert values(obs, "probe_http_content_match") == {
        "ok": 1, "chunked": 1, "content": 0, "until-close": 1, "interim": 1
    }  # fmt: skip
    assert "probe_ssl_earliest_cert_expiry_days" not in {s.name for s in obs.samples}

    for target in ("ok", "redirects", "chunked", "big", "by-name"):
        p = phases(obs, target)
        assert 0 < p["connect"] <= p["ttfb"] <= p["total"], (target, p)
        assert "tls" not in p
    by_name = phases(obs, "by-name")
    assert (
        "resolve" not in phases(obs, "ok")
        and by_name["resolve"] > 0
        and by_name["resolve"] + by_name["connect"] <= by_name["ttfb"]
    )
    assert set(phases(obs, "slow")) == {"connect"}  # reached the server, no status line
    duration = values(obs, "probe_duration_seconds")
    assert 0.4 <= duration["slow"] < 0.8 and duration["redirects"] >= phases(obs, "redirects")["total"]

    events = {e.labels["target"]: e for e in obs.events}
    assert set(events) == set(reasons(obs))
    assert events["refused"].labels == {"probe": "http", "target": "refused", "uplink": "lan"}
    assert "status 500, expected 200-399" in events["500"].message
    assert "'Tạm biệt' not in the first" in events["content"].message
    assert "more than 2 redirects" in events["too-many"].message and "ftp://" in events["ftp"].message
    assert "SSH-2.0" in events["garbage"].message and "nowhere.test" in events["resolve"].message
    assert_cataloged(obs)


async def test_request_headers(server: Server) -> None:
    obs = await run(http.Target(f"{server.base}/echo", name="echo", expect_text="|"))
    assert reasons(obs) == {}
    (_, headers), *_ = server.requests
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["user-agent"] == f"CenterWatch/{centerwatch.__version__}"
    assert headers["connection"] == "close"


async def test_charset_decoding_defaults_to_utf8(server: Server) -> None:
    obs = await run(http.Target(f"{server.base}/latin1", name="vi", expect_text="Hải Châu"))
    assert values(obs, "probe_http_content_match") == {"vi": 1.0}


# --- HTTPS ------------------------------------------------------------------------------------------


async def test_https_verified_with_ca_file(tls_server: Server, cert: tuple[Path, Path]) -> None:
    port = tls_server.port
    obs = await run(
        http.Target(f"https://127.0.0.1:{port}/ok", name="verified", ca_file=str(cert[0]), expect_text="chào"),
        http.Target(f"https://localhost:{port}/r3", name="by-name", ca_file=str(cert[0])),
        http.Target(f"https://portal.test:{port}/ok", name="wrong-host", ca_file=str(cert[0])),
        http.Target(f"https://127.0.0.1:{port}/ok", name="untrusted"),
        http.Target(f"https://127.0.0.1:{port}/ok", name="insecure", insecure=True),
        http.Target(f"https://127.0.0.1:{port}/ok", name="no-ca", ca_file=str(cert[0]) + ".missing"),
        http.Target(f"http://127.0.0.1:{port}/ok", name="plain-to-tls"),
    )
    assert reasons(obs) == {
        "wrong-host": "tls",
        "untrusted": "tls",
        "no-ca": "error",
        "plain-to-tls": "malformed",
    }
    assert {t for t, v in values(obs, "probe_success").items() if v} == {"verified", "by-name", "insecure"}
    for target in ("verified", "by-name", "insecure"):
        p = phases(obs, target)
        assert p["connect"] > 0 and p["tls"] > 0 and p["connect"] + p["tls"] <= p["ttfb"] <= p["total"], p
    assert values(obs, "probe_http_redirects")["by-name"] == 3
    events = {e.labels["target"]: e.message for e in obs.events}
    assert "certificate verify failed" in events["untrusted"]
    assert "portal.test" in events["wrong-host"] or "mismatch" in events["wrong-host"]
    assert "cannot load ca_file" in events["no-ca"]


async def test_days_to_expiry_verified_and_from_der(tls_server: Server, cert: tuple[Path, Path]) -> None:
    port = tls_server.port
    now_ms = time.time_ns() // 1_000_000  # the certificate was made just now
    obs = await run(
        http.Target(f"https://127.0.0.1:{port}/ok", name="verified", ca_file=str(cert[0])),
        http.Target(f"https://127.0.0.1:{port}/ok", name="insecure", insecure=True),
        clock=lambda: now_ms,
    )
    days = values(obs, "probe_ssl_earliest_cert_expiry_days")
    assert CERT_DAYS - 0.01 < days["verified"] <= CERT_DAYS
    assert days["insecure"] == days["verified"]  # the DER parser reads the same notAfter
    assert_cataloged(obs)


def test_der_not_after(cert: tuple[Path, Path]) -> None:
    der = ssl.PEM_cert_to_DER_cert(cert[0].read_text())
    decoded = ssl._ssl._test_decode_cert(str(cert[0]))  # type: ignore[attr-defined]
    assert http.der_not_after(der) == ssl.cert_time_to_seconds(decoded["notAfter"])
    for cut in (0, 1, 10, len(der) // 3, len(der) - 1):
        http.der_not_after(der[:cut])  # None or a value: never an exception
    assert http.der_not_after(b"\x30\x03\x02\x01\x00") is None
    assert http.der_not_after(b"garbage") is None


# --- configuration ----------------------------------------------------------------------------------


def specs(checks: dict[str, Any]) -> list[Any]:
    return check_specs(AgentConfig("http://127.0.0.1:1", "/tmp/x", checks=checks), "agent.yaml")


def test_config() -> None:
    raw = {"timeout_s": 9, "probe_timeout_s": 7, "targets": [{"url": "https://dichvucong.gov.vn/", "uplink": "wan"}]}
    (spec,) = specs({"http": raw})
    assert spec.config == http.Config((http.Target("https://dichvucong.gov.vn/", uplink="wan"),), probe_timeout_s=7)
    target = spec.config.targets[0]
    assert target.label == "https://dichvucong.gov.vn/" and target.max_bytes == 1024 * 1024
    assert target.max_redirects == 5 and target.status_ok(399) and not target.status_ok(400)


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({"url": "ftp://a/"}, "checks.http.targets[0]: url 'ftp://a/': expected http:// or https:// and a host"),
        ({"url": "http://a:99999/"}, "checks.http.targets[0]: url 'http://a:99999/': Port out of range 0-65535"),
        ({"url": "http://u:p@a/"}, "checks.http.targets[0]: url 'http://u:p@a/': credentials in URLs are not"),
        ({"url": "https://a/", "insecure": True, "ca_file": "/x.pem"}, "checks.http.targets[0]: ca_file has no effect"),
        ({"url": "https://a/", "expect_status": [99]}, "checks.http.targets[0].expect_status[0]: expected int >= 100"),
        ({"url": "https://a/", "headers": {}}, "checks.http.targets[0].headers: unknown key"),
    ],
)
def test_invalid_targets_name_the_fault(target: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        specs({"http": {"targets": [target]}})
    assert str(info.value).startswith(f"agent.yaml: {error}")
