"""The alerting file (receivers), and what each notifier sends, with fake transports.

The real services (Alertmanager, an SMTP server, a webhook receiver) are in
tests/integration/test_notifier_services.py.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import httpx
import pytest

from centerwatch.i18n import t
from collector.alerting.model import AlertView, NotificationGroup, fingerprint
from collector.alerting.notify import build_notifiers
from collector.alerting.notify.alertmanager import AlertmanagerNotifier
from collector.alerting.notify.base import NotifyError
from collector.alerting.notify.email import EmailNotifier
from collector.alerting.notify.render import local_time, rfc3339, title
from collector.alerting.notify.webhook import WebhookNotifier
from collector.alerting.receivers import load_alerting, parse_alerting
from collector.errors import ConfigFileError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "collector" / "alerting" / "alerting.example.yaml"
SECRET = "pa55-w0rd-never-shown"
START_MS = 1_751_338_800_000  # 2025-07-01T03:00:00Z = 10:00 in Da Nang


def view(
    center: str = "hai-chau", status: str = "firing", uplink: str = "internet", severity: str = "critical"
) -> AlertView:
    labels = {"alertname": "uplink_down", "center": center, "severity": severity, "uplink": uplink}
    return AlertView(
        fingerprint=fingerprint("uplink_down", labels),
        status=status,  # type: ignore[arg-type]
        rule="uplink_down",
        severity=severity,  # type: ignore[arg-type]
        labels=labels,
        texts={
            "vi": {"summary": "Mất kết nối internet — Hải Châu", "description": "Đường truyền VNPT không phản hồi."},
            "en": {"summary": "Internet uplink down — Hải Châu", "description": "The VNPT line does not answer."},
        },
        starts_at_ms=START_MS,
        ends_at_ms=None if status == "firing" else START_MS + 600_000,
        url="https://cw.example.org/alerts/1",
    )


def group(*views: AlertView) -> NotificationGroup:
    return NotificationGroup(
        key="center=hai-chau,alertname=uplink_down",
        group_labels={"center": "hai-chau", "alertname": "uplink_down"},
        alerts=views,
    )


def cfg(receivers: str, route: str = "", env: dict[str, str] | None = None, base: Path | None = None) -> Any:
    text = f"route: {{{route}}}\nreceivers:\n{receivers}"
    return parse_alerting(text, "alerting.yaml", env=env or {}, base_dir=base)


# --- the alerting file ----------------------------------------------------------------------


def test_the_shipped_example_loads_with_its_secrets_from_the_environment() -> None:
    env = {"CENTERWATCH_WEBHOOK_TOKEN": "tok", "CENTERWATCH_SMTP_PASSWORD": SECRET}
    loaded = load_alerting(EXAMPLE, env=env)
    assert [r.name for r in loaded.receivers] == ["it-webhook", "it-mail", "site-alertmanager"]
    assert loaded.route.group_by == ("center", "alertname")
    assert loaded.route.lang == "vi"
    mail = loaded.receiver("it-mail")
    assert mail.secret is not None and mail.secret.get_secret_value() == SECRET
    assert mail.matches({"severity": "warning"}) and not mail.matches({"severity": "info"})
    assert loaded.receiver("site-alertmanager").timing.repeat_interval_s == 60
    assert SECRET not in repr(loaded) and SECRET not in str(loaded)
    assert "SAMPLE" in EXAMPLE.read_text(encoding="utf-8")


GOOD_MAIL = """  - name: mail
    type: email
    host: 127.0.0.1
    username: cw
    password_env: PW
    from: "CenterWatch <cw@example.org>"
    to: [it@example.org]
"""


@pytest.mark.parametrize(
    ("receivers", "route", "error"),
    [
        ("  - {name: a, type: webhook, url: 'ftp://x'}\n", "", "receivers[0](a).url: expected an http:// or https://"),
        ("  - {name: a, type: webhook, url: 'http://'}\n", "", "receivers[0](a).url: expected an http:// or https://"),
        (
            "  - {name: a, type: webhook, url: 'https://u:p@h/x'}\n",
            "",
            "receivers[0](a).url: no credentials in the URL",
        ),
        ("  - {name: a, type: webhook, url: 'http://h:99999'}\n", "", "receivers[0](a).url: bad port"),
        ("  - {name: a, type: webhook, url: 'http://h', colour: red}\n", "", "receivers[0](a).colour: unknown key"),
        ("  - {name: a, type: pager, url: 'http://h'}\n", "", "receivers[0](a).type: expected one of"),
        ("  - {name: a, url: 'http://h'}\n", "", "receivers[0](a).type: expected one of"),
        (
            "  - {name: a, type: webhook, url: 'http://h', headers: {Authorization: x}}\n",
            "",
            "receivers[0](a).headers: header Authorization is set by CenterWatch",
        ),
        (
            "  - {name: a, type: webhook, url: 'http://h'}\n  - {name: a, type: alertmanager, url: 'http://h'}\n",
            "",
            "receivers: receiver name 'a' is used twice",
        ),
        ("  - {name: a, type: webhook, url: 'http://h'}\n", "lang: fr", "route.lang:"),
        ("  - {name: a, type: webhook, url: 'http://h'}\n", "group_by: [center, center]", "route.group_by: a label"),
        ("  - {name: a, type: webhook, url: 'http://h'}\n", "timezone: Mars/Olympus", "route.timezone: unknown time"),
        ("  - {name: a, type: webhook, url: 'http://h'}\n", "group_wait: 30", "route.group_wait: unknown key"),
        ("  - {name: a, type: webhook, url: 'http://h'}\n", "repeat_interval_s: 0", "route.repeat_interval_s:"),
        (GOOD_MAIL.replace("[it@example.org]", "[not-an-address]"), "", "receivers[0](mail).to: not an e-mail"),
        (GOOD_MAIL.replace("    username: cw\n", ""), "", "receivers[0](mail): a password needs a username"),
        (GOOD_MAIL.replace("    password_env: PW\n", ""), "", "receivers[0](mail): a username needs password_env"),
        (
            GOOD_MAIL + "    starttls: false\n",
            "",
            "receivers[0](mail): credentials would be sent without TLS",
        ),
        (GOOD_MAIL + "    password_file: /x\n", "", "give password_env or password_file, not both"),
        (GOOD_MAIL.replace("    from:", "    frm:"), "", "receivers[0](mail).from: Field required"),
        (GOOD_MAIL + "    port: 0\n", "", "receivers[0](mail).port:"),
        ("", "", "receivers:"),
    ],
)
def test_invalid_files_name_the_file_and_key(receivers: str, route: str, error: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        cfg(receivers or "  []\n", route, env={"PW": SECRET})
    assert str(caught.value).startswith("alerting.yaml: ")
    assert error in str(caught.value)
    assert SECRET not in str(caught.value)


def test_duplicate_yaml_keys_are_refused_with_their_line() -> None:
    text = "route: {lang: vi}\nroute: {lang: en}\nreceivers: [{name: a, type: webhook, url: 'http://h'}]\n"
    with pytest.raises(ConfigFileError, match=r"alerting.yaml: line 2.*duplicate key 'route'"):
        parse_alerting(text, "alerting.yaml", env={})


def test_a_missing_secret_names_the_variable_not_a_value() -> None:
    with pytest.raises(ConfigFileError) as caught:
        cfg(GOOD_MAIL, env={})
    assert str(caught.value) == (
        "alerting.yaml: receivers[0](mail).password_env: environment variable PW is not set or empty"
    )


def test_password_file_is_read_relative_to_the_alerting_file(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text(SECRET + "\n", encoding="utf-8")
    loaded = cfg(GOOD_MAIL.replace("password_env: PW", "password_file: smtp-password"), base=tmp_path)
    assert loaded.receivers[0].secret.get_secret_value() == SECRET
    with pytest.raises(ConfigFileError, match=r"receivers\[0\]\(mail\)\.password_file: cannot read .*missing"):
        cfg(GOOD_MAIL.replace("password_env: PW", "password_file: missing"), base=tmp_path)


def test_ca_file_is_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"receivers\[0\]\(mail\)\.ca_file: cannot read .*missing\.pem"):
        cfg(GOOD_MAIL + "    ca_file: missing.pem\n", env={"PW": SECRET}, base=tmp_path)
    with pytest.raises(ConfigFileError, match=r"receivers\[0\]\(mail\)\.ca_file: .*junk\.pem is not a PEM"):
        cfg(GOOD_MAIL + "    ca_file: junk.pem\n", env={"PW": SECRET}, base=tmp_path)


def test_insecure_auth_only_when_asked() -> None:
    loaded = cfg(GOOD_MAIL + "    starttls: false\n    allow_insecure_auth: true\n", env={"PW": SECRET})
    assert loaded.receivers[0].spec.starttls is False


def test_receiver_overrides_language_and_timing() -> None:
    loaded = cfg(
        "  - {name: a, type: webhook, url: 'http://h', lang: en, group_wait_s: 5, match: {center: [a, b]}}\n"
        "  - {name: b, type: alertmanager, url: 'http://h', repeat_interval_s: 30}\n",
        "group_wait_s: 10, lang: vi",
    )
    a, b = loaded.receivers
    assert (a.lang, a.timing.group_wait_s, a.timing.group_interval_s) == ("en", 5, 300)
    assert a.matches({"center": "b"}) and not a.matches({"center": "c"}) and not a.matches({})
    assert (b.lang, b.timing.group_wait_s, b.timing.repeat_interval_s) == ("vi", 0, 30)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"nope\.yaml: cannot read"):
        load_alerting(tmp_path / "nope.yaml", env={})


# --- texts ----------------------------------------------------------------------------------


def test_times() -> None:
    assert rfc3339(START_MS) == "2025-07-01T03:00:00.000Z"
    assert rfc3339(START_MS + 123) == "2025-07-01T03:00:00.123Z"
    assert local_time(START_MS, "Asia/Ho_Chi_Minh") == "2025-07-01 10:00:00 (+07)"


def test_title_counts_and_languages() -> None:
    firing = group(view(), view(uplink="wan"))
    assert title(group(view()), "vi") == "[CẢNH BÁO:1] Mất kết nối internet — Hải Châu"
    assert title(group(view()), "en") == "[FIRING:1] Internet uplink down — Hải Châu"
    assert title(firing, "en") == "[FIRING:2] Internet uplink down — Hải Châu"
    assert title(group(view(status="resolved")), "en") == "[RESOLVED:1] Internet uplink down — Hải Châu"
    other = AlertView(**{**view(uplink="wan").__dict__, "texts": {"en": {"summary": "WAN down — Hải Châu"}}})
    assert title(group(view(), other), "en") == "[FIRING:2] Internet uplink down — Hải Châu (and 1 other alerts)"


# --- webhook --------------------------------------------------------------------------------


class Capture:
    def __init__(self, *statuses: int, error: Exception | None = None) -> None:
        self.statuses = list(statuses) or [200]
        self.error = error
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, text="" if status < 400 else "nope")

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


HOOK = "  - {name: hook, type: webhook, url: 'https://hooks.example.org/T0/secret-path', headers: {X-Team: it},"


async def test_webhook_body_is_the_documented_v1() -> None:
    capture = Capture()
    loaded = cfg(HOOK + " bearer_token_env: TOKEN}\n", env={"TOKEN": SECRET})
    notifier = WebhookNotifier(loaded.receivers[0], transport=httpx.MockTransport(capture))
    try:
        await notifier.send(group(view(), view(uplink="wan", status="resolved")))
    finally:
        await notifier.aclose()
    request = capture.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example.org/T0/secret-path"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["x-team"] == "it"
    assert len(request.headers["x-centerwatch-notification"]) == 32
    body = capture.json()
    assert body["schema"] == "centerwatch.notification" and body["version"] == 1
    assert body["receiver"] == "hook"
    assert body["groupKey"] == "center=hai-chau,alertname=uplink_down"
    assert body["groupLabels"] == {"center": "hai-chau", "alertname": "uplink_down"}
    assert body["status"] == "firing"
    assert body["lang"] == "vi"
    assert body["title"] == "[CẢNH BÁO:1] Mất kết nối internet — Hải Châu"
    assert body["counts"] == {"firing": 1, "resolved": 1}
    first, second = body["alerts"]
    assert first["status"] == "firing" and second["status"] == "resolved"
    assert first["summary"] == "Mất kết nối internet — Hải Châu"
    assert first["texts"]["en"]["summary"] == "Internet uplink down — Hải Châu"
    assert first["labels"]["uplink"] == "internet"
    assert first["startsAt"] == "2025-07-01T03:00:00.000Z" and first["endsAt"] is None
    assert second["endsAt"] == "2025-07-01T03:10:00.000Z"
    assert first["url"] == "https://cw.example.org/alerts/1"
    assert "Mất kết nối".encode() in request.content  # UTF-8, not \\u escapes


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (502, True), (503, True), (429, True), (400, False), (404, False)]
)
async def test_webhook_failures_say_whether_to_retry(status: int, retryable: bool) -> None:
    loaded = cfg(HOOK + " bearer_token_env: TOKEN}\n", env={"TOKEN": SECRET})
    notifier = WebhookNotifier(loaded.receivers[0], transport=httpx.MockTransport(Capture(status)))
    try:
        with pytest.raises(NotifyError) as caught:
            await notifier.send(group(view()))
    finally:
        await notifier.aclose()
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    message = str(caught.value)
    assert message.startswith("receiver hook: https://hooks.example.org: HTTP ")
    assert "secret-path" not in message and SECRET not in message


async def test_webhook_connection_errors_are_retryable_and_hide_the_path() -> None:
    error = httpx.ConnectError("connection refused")
    loaded = cfg(HOOK + "}\n")
    notifier = WebhookNotifier(loaded.receivers[0], transport=httpx.MockTransport(Capture(error=error)))
    try:
        with pytest.raises(NotifyError) as caught:
            await notifier.send(group(view()))
    finally:
        await notifier.aclose()
    assert caught.value.retryable
    assert "ConnectError" in str(caught.value) and "secret-path" not in str(caught.value)


# --- Alertmanager ---------------------------------------------------------------------------


async def test_alertmanager_body_carries_labels_annotations_and_times() -> None:
    capture = Capture()
    loaded = cfg("  - {name: am, type: alertmanager, url: 'http://127.0.0.1:9093/prefix/'}\n", "lang: en")
    now = START_MS / 1000 + 3600
    notifier = AlertmanagerNotifier(loaded.receivers[0], transport=httpx.MockTransport(capture), wall=lambda: now)
    try:
        await notifier.send(group(view(), view(uplink="wan", status="resolved")))
    finally:
        await notifier.aclose()
    assert str(capture.requests[0].url) == "http://127.0.0.1:9093/prefix/api/v2/alerts"
    firing, resolved = capture.json()
    assert firing["labels"] == {
        "alertname": "uplink_down",
        "center": "hai-chau",
        "severity": "critical",
        "uplink": "internet",
    }
    assert firing["annotations"]["summary"] == "Internet uplink down — Hải Châu"  # the receiver's language
    assert firing["annotations"]["summary_vi"] == "Mất kết nối internet — Hải Châu"
    assert firing["annotations"]["description_en"] == "The VNPT line does not answer."
    assert firing["startsAt"] == "2025-07-01T03:00:00.000Z"
    # valid four resend intervals (4 × 60 s) past now, renewed by each flush
    assert firing["endsAt"] == rfc3339(int(now * 1000) + 240_000)
    assert firing["generatorURL"] == "https://cw.example.org/alerts/1"
    assert resolved["endsAt"] == "2025-07-01T03:10:00.000Z"


async def test_alertmanager_bad_request_is_not_retried() -> None:
    loaded = cfg("  - {name: am, type: alertmanager, url: 'http://127.0.0.1:9093'}\n")
    notifier = AlertmanagerNotifier(loaded.receivers[0], transport=httpx.MockTransport(Capture(400)))
    try:
        with pytest.raises(NotifyError) as caught:
            await notifier.send(group(view()))
    finally:
        await notifier.aclose()
    assert not caught.value.retryable and caught.value.status == 400


# --- e-mail ---------------------------------------------------------------------------------


def parsed(message: Message) -> EmailMessage:
    msg = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_email_is_vietnamese_utf8_with_proper_headers() -> None:
    loaded = cfg(GOOD_MAIL, env={"PW": SECRET})
    fixed = datetime(2025, 7, 1, 3, 5, tzinfo=UTC)
    notifier = EmailNotifier(loaded.receivers[0], now=lambda: fixed)
    msg = parsed(notifier.message(group(view(), view(uplink="wan"), view(uplink="gov", status="resolved"))))
    assert msg["Subject"] == "[CẢNH BÁO:2] Mất kết nối internet — Hải Châu"
    assert msg["From"] == "CenterWatch <cw@example.org>"
    assert msg["To"] == "it@example.org"
    assert msg["Date"] == "Tue, 01 Jul 2025 03:05:00 +0000"
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Content-Language"] == "vi"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    body = msg.get_content()
    assert body.startswith(
        t("notify.email.intro", "vi", firing=2, resolved=1, group="center=hai-chau,alertname=uplink_down")
    )
    assert "ĐANG CẢNH BÁO (2)" in body and "ĐÃ HẾT CẢNH BÁO (1)" in body
    assert "Đường truyền VNPT không phản hồi." in body
    assert "Mức độ: Nghiêm trọng · Bắt đầu: 2025-07-01 10:00:00 (+07)" in body
    assert "Kết thúc: 2025-07-01 10:10:00 (+07)" in body
    assert "Chi tiết: https://cw.example.org/alerts/1" in body
    assert body.index("ĐANG CẢNH BÁO") < body.index("ĐÃ HẾT CẢNH BÁO")
    assert SECRET not in msg.as_string()


def test_email_subject_survives_folding_and_names_are_encoded() -> None:
    mail = GOOD_MAIL.replace('"CenterWatch <cw@example.org>"', '"Giám sát CenterWatch <cw@example.org>"')
    loaded = cfg(mail, env={"PW": SECRET})
    many = [view(uplink=f"u{i}") for i in range(12)]
    long_group = NotificationGroup(
        key="center=dien-ban-dong,alertname=uplink_down", group_labels={}, alerts=tuple(many)
    )
    raw = EmailNotifier(loaded.receivers[0]).message(long_group)
    assert all(ord(c) < 128 for c in raw.as_string())  # 7-bit on the wire: headers RFC 2047, body base64
    msg = parsed(raw)
    assert msg["Subject"] == title(long_group, "vi")
    assert msg["From"] == "Giám sát CenterWatch <cw@example.org>"


def test_email_in_english_when_the_receiver_says_so() -> None:
    loaded = cfg(GOOD_MAIL + "    lang: en\n", env={"PW": SECRET})
    msg = parsed(EmailNotifier(loaded.receivers[0]).message(group(view(status="resolved"))))
    assert msg["Subject"] == "[RESOLVED:1] Internet uplink down — Hải Châu"
    assert "RESOLVED (1)" in msg.get_content() and "Severity: Critical" in msg.get_content()


async def test_build_notifiers_makes_one_per_receiver() -> None:
    env = {"CENTERWATCH_WEBHOOK_TOKEN": "tok", "CENTERWATCH_SMTP_PASSWORD": SECRET}
    notifiers = build_notifiers(load_alerting(EXAMPLE, env=env))
    try:
        assert {name: type(n).__name__ for name, n in notifiers.items()} == {
            "it-webhook": "WebhookNotifier",
            "it-mail": "EmailNotifier",
            "site-alertmanager": "AlertmanagerNotifier",
        }
    finally:
        for n in notifiers.values():
            await n.aclose()
