"""Notifications delivered to real services on loopback, through the dispatcher.

- Prometheus Alertmanager (Debian ``prometheus-alertmanager``), started with a temporary config
  and storage: the alert shows in ``/api/v2/alerts`` with its labels, then goes when resolved,
  and Alertmanager's own webhook (a loopback receiver here) reports it firing, then resolved.
- An SMTP server (aiosmtpd) with STARTTLS (a test CA and certificate made here) and AUTH: the
  mail arrives over TLS, authenticated, in Vietnamese UTF-8; a wrong password, a server without
  STARTTLS and an untrusted certificate are refused without retrying (and no password is sent).
- A webhook receiver (aiohttp) that answers 503 twice, then 200: delivered once after retries,
  counted in the metrics.

Skipped when a tool is missing, except under CI=true, where that is a failure. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import os
import shutil
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from collector.alerting.dispatch import Dispatcher
from collector.alerting.model import AlertView, NotificationGroup, fingerprint
from collector.alerting.notify import build_notifier, build_notifiers
from collector.alerting.notify.base import NotifyError
from collector.alerting.receivers import AlertingConfig, parse_alerting
from tests.conftest import Proc, free_port

pytestmark = pytest.mark.integration
T = TypeVar("T")
PASSWORD = "smtp-Pa55-for-tests"  # a test credential, on loopback only


def missing(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so not skipping: {why}")
    pytest.skip(why)


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], within: float = 20.0) -> T:
    """Poll ``probe`` until it gives a truthy value; bounded, fails naming ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (OSError, httpx.HTTPError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within:.0f} s waiting for {what} (last: {last!r})")


def now_ms() -> int:
    return int(time.time() * 1000)


def alert(status: str = "firing", starts_ms: int | None = None, uplink: str = "internet") -> AlertView:
    labels = {"alertname": "uplink_down", "center": "hai-chau", "severity": "critical", "uplink": uplink}
    starts = starts_ms if starts_ms is not None else now_ms() - 60_000
    return AlertView(
        fingerprint=fingerprint("uplink_down", labels),
        status=status,  # type: ignore[arg-type]
        rule="uplink_down",
        severity="critical",
        labels=labels,
        texts={
            "vi": {"summary": "Mất kết nối internet — Hải Châu", "description": "Đường truyền VNPT không phản hồi."},
            "en": {"summary": "Internet uplink down — Hải Châu", "description": "The VNPT line does not answer."},
        },
        starts_at_ms=starts,
        ends_at_ms=None if status == "firing" else now_ms(),
        url="http://127.0.0.1:8080/alerts/uplink",
    )


def load(receivers: str, env: dict[str, str] | None = None) -> AlertingConfig:
    text = (
        "route: {group_wait_s: 0, group_interval_s: 1, retry: {attempts: 5, initial_backoff_s: 0.05, "
        f"max_backoff_s: 0.2}}}}\nreceivers:\n{receivers}"
    )
    return parse_alerting(text, "alerting.yaml", env=env or {})


@pytest.fixture
async def dispatch() -> AsyncIterator[Callable[[AlertingConfig], tuple[Dispatcher, CollectorRegistry]]]:
    """A started dispatcher on the real clock; stopped (resolutions flushed) at teardown."""
    started: list[Dispatcher] = []

    def make(config: AlertingConfig) -> tuple[Dispatcher, CollectorRegistry]:
        registry = CollectorRegistry()
        dispatcher = Dispatcher(config, build_notifiers(config), registry, stop_timeout_s=5)
        dispatcher.start()
        started.append(dispatcher)
        return dispatcher, registry

    yield make
    for dispatcher in started:
        await dispatcher.stop()


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- a webhook receiver (aiohttp on loopback) -----------------------------------------------


@dataclass
class Sink:
    """An HTTP receiver: answers the next statuses in ``script`` (then 200), records everything."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)

    def accepted(self) -> list[Any]:
        return [body for status, _, body in self.requests if status == 200]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = Sink()

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        status = state.script.pop(0) if state.script else 200
        state.requests.append((status, dict(request.headers), body))
        return web.Response(status=status, text="ok" if status == 200 else "try later")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_webhook_503_twice_then_accepted_is_delivered_once(dispatch: Any, sink: Sink) -> None:
    sink.script = [503, 503]
    dispatcher, registry = dispatch(load(f"  - {{name: hook, type: webhook, url: '{sink.url}/hook/s3cret'}}\n"))
    dispatcher.submit([alert()])

    async def delivered() -> list[Any]:
        return sink.accepted()

    bodies = await eventually("the webhook to accept a notification", delivered)
    await asyncio.sleep(0.3)  # nothing more should come: the group is unchanged
    assert len(bodies) == 1
    assert [status for status, _, _ in sink.requests] == [503, 503, 200]
    ids = {headers["X-CenterWatch-Notification"] for _, headers, _ in sink.requests}
    assert len(ids) == 1  # every retry is the same notification
    body = bodies[0]
    assert body["schema"] == "centerwatch.notification" and body["version"] == 1
    assert body["status"] == "firing" and body["groupKey"] == "center=hai-chau,alertname=uplink_down"
    assert body["alerts"][0]["summary"] == "Mất kết nối internet — Hải Châu"
    assert body["alerts"][0]["texts"]["en"]["summary"] == "Internet uplink down — Hải Châu"
    assert metric(registry, "centerwatch_notification_attempts_total", receiver="hook", result="error") == 2
    assert metric(registry, "centerwatch_notification_attempts_total", receiver="hook", result="ok") == 1
    assert metric(registry, "centerwatch_notifications_total", receiver="hook", result="ok") == 1
    assert metric(registry, "centerwatch_notifier_last_success_timestamp_seconds", receiver="hook") > 0
    assert metric(registry, "centerwatch_notification_latency_seconds_count", receiver="hook") == 1


async def test_webhook_4xx_is_counted_and_not_retried(
    dispatch: Any, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.script = [404]
    dispatcher, registry = dispatch(load(f"  - {{name: hook, type: webhook, url: '{sink.url}/wrong/s3cret'}}\n"))
    dispatcher.submit([alert()])

    async def refused() -> float:
        return metric(registry, "centerwatch_notifications_total", receiver="hook", result="rejected")

    await eventually("the refusal to be counted", refused)
    assert [status for status, _, _ in sink.requests] == [404]
    assert metric(registry, "centerwatch_notification_attempts_total", receiver="hook", result="rejected") == 1
    logged = [r.getMessage() for r in caplog.records if "HTTP 404" in r.getMessage()]
    assert logged and "receiver hook" in logged[0] and "s3cret" not in logged[0]


# --- Prometheus Alertmanager ----------------------------------------------------------------


@pytest.fixture
async def alertmanager(tmp_path: Path, sink: Sink, procs: Callable[..., Proc]) -> AsyncIterator[str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        missing("prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
    assert binary is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n"
        "  receiver: sink\n"
        "  group_by: [center, alertname]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: sink\n"
        "    webhook_configs:\n"
        f"      - url: {sink.url}/from-alertmanager\n"
        "        send_resolved: true\n",
        encoding="utf-8",
    )
    port = free_port()
    proc = procs(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp_path / "alertmanager.log",
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:

        async def ready() -> bool:
            if proc.popen.poll() is not None:
                raise AssertionError(f"alertmanager exited: {proc.output()[-2000:]}")
            return (await client.get(f"{url}/-/ready")).status_code == 200

        await eventually("alertmanager to be ready", ready)
    yield url


async def test_alertmanager_receives_the_alert_then_its_resolution(
    dispatch: Any, alertmanager: str, sink: Sink
) -> None:
    dispatcher, registry = dispatch(load(f"  - {{name: am, type: alertmanager, url: '{alertmanager}'}}\n"))
    firing = alert()
    dispatcher.submit([firing])
    query = urllib.parse.quote('alertname="uplink_down"')

    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:

        async def listed() -> list[Any]:
            response = await client.get(f"{alertmanager}/api/v2/alerts?filter={query}")
            response.raise_for_status()
            return [a for a in response.json() if a["labels"].get("center") == "hai-chau"]

        shown = (await eventually("the alert in Alertmanager's /api/v2/alerts", listed))[0]
        assert shown["labels"] == {
            "alertname": "uplink_down",
            "center": "hai-chau",
            "severity": "critical",
            "uplink": "internet",
        }
        assert shown["annotations"]["summary"] == "Mất kết nối internet — Hải Châu"
        assert shown["annotations"]["summary_en"] == "Internet uplink down — Hải Châu"
        assert shown["annotations"]["description_vi"] == "Đường truyền VNPT không phản hồi."
        assert shown["generatorURL"] == "http://127.0.0.1:8080/alerts/uplink"
        assert shown["status"]["state"] == "active"
        starts = dt.datetime.fromisoformat(shown["startsAt"].replace("Z", "+00:00"))
        assert abs(starts.timestamp() * 1000 - firing.starts_at_ms) < 1000
        ends = dt.datetime.fromisoformat(shown["endsAt"].replace("Z", "+00:00"))
        assert ends.timestamp() > time.time() + 60  # kept alive by our resends, not by its resolve_timeout

        async def told_firing() -> list[Any]:
            return [b for b in sink.accepted() if b.get("status") == "firing"]

        await eventually("Alertmanager's own notification of the firing alert", told_firing)

        dispatcher.submit([alert("resolved", starts_ms=firing.starts_at_ms)])

        async def gone() -> bool:
            return not await listed()

        await eventually("the resolved alert to leave /api/v2/alerts", gone)

        async def told_resolved() -> list[Any]:
            return [b for b in sink.accepted() if b.get("status") == "resolved"]

        resolved = (await eventually("Alertmanager's notification of the resolution", told_resolved))[0]
        assert resolved["alerts"][0]["labels"]["center"] == "hai-chau"
    assert metric(registry, "centerwatch_notifications_total", receiver="am", result="ok") >= 2
    assert metric(registry, "centerwatch_notifications_total", receiver="am", result="failed") == 0


async def test_alertmanager_down_is_retried_and_counted(dispatch: Any) -> None:
    closed = free_port()  # nothing listens there
    dispatcher, registry = dispatch(load(f"  - {{name: am, type: alertmanager, url: 'http://127.0.0.1:{closed}'}}\n"))
    dispatcher.submit([alert()])

    async def failed() -> float:
        return metric(registry, "centerwatch_notifications_total", receiver="am", result="failed")

    await eventually("the failed flush to be counted", failed)
    assert metric(registry, "centerwatch_notification_attempts_total", receiver="am", result="error") == 5
    assert metric(registry, "centerwatch_notification_queue_groups") == 1


# --- SMTP (aiosmtpd) with STARTTLS and AUTH -------------------------------------------------


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(folder: Path) -> Pki:
    """A test CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CenterWatch test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digitalSignature, keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@dataclass
class Mailbox:
    port: int
    pki: Pki
    messages: list[tuple[EmailMessage, bool, list[str]]] = field(default_factory=list)  # (mail, over TLS, rcpt)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, password right)


def _aiosmtpd() -> Any:
    try:
        import aiosmtpd.controller
        import aiosmtpd.smtp
    except ImportError:
        missing("aiosmtpd is not installed (pip install aiosmtpd; in the test extra)")
    return aiosmtpd


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def start_smtp(pki: Pki, *, starttls: bool) -> Iterator[Mailbox]:
    aiosmtpd = _aiosmtpd()
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(port=free_port(), pki=pki)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            box.messages.append((message, session.ssl is not None, list(envelope.rcpt_tos)))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        good = data.login == b"centerwatch" and data.password == PASSWORD.encode()
        box.logins.append((data.login.decode(), good))
        return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 235/535

    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": True}
    if starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.cert, pki.key)
        kwargs |= {"tls_context": context, "require_starttls": True}
    live: set[Any] = set()

    class Session(aiosmtpd.smtp.SMTP):
        def connection_made(self, transport: Any) -> None:
            live.add(self)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            live.discard(self)

    class DrainingController(aiosmtpd.controller.Controller):
        """``Controller.stop`` halts the loop at once: a session whose client has just hung up can
        be dropped before its transport closes the socket (a ResourceWarning, an error under
        ``filterwarnings = error``). Stopping waits for the sessions to end first."""

        def factory(self) -> Any:
            return Session(self.handler, **self.SMTP_kwargs)

    controller = DrainingController(Handler(), hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        deadline = time.monotonic() + 5
        while live and time.monotonic() < deadline:
            time.sleep(0.01)
        # One more loop turn: the transport closes its socket right after connection_lost returns.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), controller.loop).result(timeout=5)
        controller.stop()


@pytest.fixture
def smtp(pki: Pki) -> Iterator[Mailbox]:
    yield from start_smtp(pki, starttls=True)


@pytest.fixture
def smtp_without_tls(pki: Pki) -> Iterator[Mailbox]:
    yield from start_smtp(pki, starttls=False)


def mail_receiver(box: Mailbox, *, ca: bool = True, extra: str = "") -> str:
    return (
        "  - name: it-mail\n"
        "    type: email\n"
        "    host: 127.0.0.1\n"
        f"    port: {box.port}\n"
        "    starttls: true\n" + (f"    ca_file: {box.pki.ca}\n" if ca else "") + "    username: centerwatch\n"
        "    password_env: CW_SMTP_PASSWORD\n"
        '    from: "Giám sát CenterWatch <centerwatch@example.org>"\n'
        "    to: [it@example.org, truc-ban@example.org]\n"
        "    timeout_s: 10\n" + extra
    )


async def test_email_over_starttls_with_auth_in_vietnamese(dispatch: Any, smtp: Mailbox) -> None:
    config = load(mail_receiver(smtp), env={"CW_SMTP_PASSWORD": PASSWORD})
    dispatcher, registry = dispatch(config)
    dispatcher.submit([alert(), alert(uplink="wan")])

    async def received() -> list[Any]:
        return smtp.messages

    message, over_tls, rcpt = (await eventually("the mail to arrive", received))[0]
    assert over_tls
    assert smtp.logins == [("centerwatch", True)]
    assert sorted(rcpt) == ["it@example.org", "truc-ban@example.org"]
    assert message["Subject"] == "[CẢNH BÁO:2] Mất kết nối internet — Hải Châu"
    assert message["From"] == "Giám sát CenterWatch <centerwatch@example.org>"
    assert message["Content-Language"] == "vi"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert "ĐANG CẢNH BÁO (2)" in body
    assert "Đường truyền VNPT không phản hồi." in body
    assert "Mức độ: Nghiêm trọng" in body
    assert PASSWORD not in message.as_string()
    assert metric(registry, "centerwatch_notifications_total", receiver="it-mail", result="ok") == 1

    dispatcher.submit([alert("resolved"), alert("resolved", uplink="wan")])

    async def resolved_mail() -> bool:
        return len(smtp.messages) >= 2

    await eventually("the resolution mail", resolved_mail)
    message = smtp.messages[1][0]
    assert message["Subject"] == "[ĐÃ HẾT:2] Mất kết nối internet — Hải Châu"
    assert "ĐÃ HẾT CẢNH BÁO (2)" in message.get_content()


async def test_email_wrong_password_is_refused_not_retried(smtp: Mailbox) -> None:
    config = load(mail_receiver(smtp), env={"CW_SMTP_PASSWORD": "wrong-password"})
    notifier = build_notifier(config.receivers[0], config.route.timezone)
    with pytest.raises(NotifyError) as caught:
        await asyncio.wait_for(notifier.send(_group()), timeout=20)
    assert not caught.value.retryable
    assert caught.value.status == 535
    assert "authentication refused" in str(caught.value) and "wrong-password" not in str(caught.value)
    assert smtp.messages == []


async def test_email_refuses_a_server_without_starttls_and_keeps_the_password(smtp_without_tls: Mailbox) -> None:
    config = load(mail_receiver(smtp_without_tls), env={"CW_SMTP_PASSWORD": PASSWORD})
    notifier = build_notifier(config.receivers[0], config.route.timezone)
    with pytest.raises(NotifyError, match="does not offer STARTTLS") as caught:
        await asyncio.wait_for(notifier.send(_group()), timeout=20)
    assert not caught.value.retryable
    assert smtp_without_tls.logins == [] and smtp_without_tls.messages == []


async def test_email_refuses_an_untrusted_certificate(smtp: Mailbox) -> None:
    config = load(mail_receiver(smtp, ca=False), env={"CW_SMTP_PASSWORD": PASSWORD})
    notifier = build_notifier(config.receivers[0], config.route.timezone)
    with pytest.raises(NotifyError, match="TLS certificate not trusted") as caught:
        await asyncio.wait_for(notifier.send(_group()), timeout=20)
    assert not caught.value.retryable
    assert smtp.logins == [] and smtp.messages == []


def _group() -> NotificationGroup:
    return NotificationGroup(
        key="center=hai-chau,alertname=uplink_down",
        group_labels={"center": "hai-chau", "alertname": "uplink_down"},
        alerts=(alert(),),
    )
