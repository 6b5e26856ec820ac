"""E-mail over SMTP with STARTTLS: one plain-text UTF-8 message per notification group.

The subject is the notification's title (``[CẢNH BÁO:2] Mất kết nối internet — Hải Châu``), the
body lists firing then resolved alerts with their description, severity, local times (the
route's time zone), labels and link; every word comes from the message catalog, in the
receiver's language (Vietnamese by default).

TLS is required when ``starttls`` is set: a server that does not offer STARTTLS, or whose
certificate does not verify, is refused (not retried). Credentials never go over a connection
without TLS unless the file says ``allow_insecure_auth: true``. smtplib runs in a worker thread;
its socket timeout is the receiver's ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import cast

from centerwatch.i18n import t
from collector.alerting.model import AlertView, NotificationGroup
from collector.alerting.notify import render
from collector.alerting.notify.base import NotifyError
from collector.alerting.receivers import EmailSpec, Receiver

log = logging.getLogger("centerwatch.notify.email")


def alert_lines(view: AlertView, lang: str, zone: str) -> list[str]:
    lines = [f"• {render.summary(view, lang)}"]
    description = view.text(lang, "description")
    if description:
        lines.extend(f"  {line}" for line in description.splitlines())
    when = [t("notify.email.severity", lang, severity=render.severity(view, lang))]
    when.append(t("notify.email.started", lang, time=render.local_time(view.starts_at_ms, zone)))
    if view.status == "resolved" and view.ends_at_ms is not None:
        when.append(t("notify.email.ended", lang, time=render.local_time(view.ends_at_ms, zone)))
    lines.append("  " + " · ".join(when))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(view.labels.items()))
    lines.append("  " + t("notify.email.labels", lang, labels=labels))
    if view.url:
        lines.append("  " + t("notify.email.link", lang, url=view.url))
    return lines


def body_text(group: NotificationGroup, lang: str, zone: str) -> str:
    lines = [
        t("notify.email.intro", lang, firing=len(group.firing), resolved=len(group.resolved), group=group.key),
    ]
    for heading, views in (("notify.email.firing", group.firing), ("notify.email.resolved", group.resolved)):
        if not views:
            continue
        lines += ["", t(heading, lang, count=len(views)), ""]
        for view in views:
            lines += [*alert_lines(view, lang, zone), ""]
    if lines[-1]:
        lines.append("")
    lines += ["-- ", t("notify.email.footer", lang), ""]
    return "\n".join(lines)


class EmailNotifier:
    def __init__(
        self,
        receiver: Receiver,
        zone: str = "Asia/Ho_Chi_Minh",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert isinstance(receiver.spec, EmailSpec)
        self._receiver = receiver
        self._spec: EmailSpec = receiver.spec
        self._zone = zone
        self._now = now
        self._tls = ssl.create_default_context(cafile=str(self._spec.ca_file) if self._spec.ca_file else None)
        self._where = f"smtp://{self._spec.host}:{self._spec.port}"

    @property
    def name(self) -> str:
        return self._receiver.name

    def message(self, group: NotificationGroup) -> Message:
        """The mail. Built with the ``compat32`` classes: on Python 3.11 the modern policy folds a
        long non-ASCII Subject so that the space at the fold is lost when it is decoded."""
        lang = self._receiver.lang
        msg = MIMEText(body_text(group, lang, self._zone), "plain", "utf-8")
        msg["Subject"] = _encoded(render.title(group, lang))
        msg["From"] = _address_header(self._spec.from_)
        msg["To"] = ", ".join(_address_header(a) for a in self._spec.to)
        msg["Date"] = format_datetime(self._now())
        domain = parseaddr(self._spec.from_)[1].rpartition("@")[2] or "centerwatch.invalid"
        msg["Message-ID"] = make_msgid("centerwatch", domain=domain)
        msg["Auto-Submitted"] = "auto-generated"
        msg["Content-Language"] = lang
        msg["X-CenterWatch-Group"] = _encoded(group.key)
        return msg

    async def send(self, group: NotificationGroup) -> None:
        message = self.message(group)
        await asyncio.to_thread(self._deliver, message)

    async def aclose(self) -> None:
        return None

    def _fail(self, message: str, *, retryable: bool, status: int | None = None) -> NotifyError:
        return NotifyError(self.name, f"{self._where}: {message}", retryable=retryable, status=status)

    def _login(self, smtp: smtplib.SMTP, username: str) -> None:
        """AUTH with one mechanism (PLAIN, else LOGIN; over TLS). ``smtplib.login`` tries the next
        mechanism after a refusal: two failed logins per attempt, counting twice toward a lockout."""
        assert self._receiver.secret is not None
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        for mechanism in ("PLAIN", "LOGIN"):
            if mechanism in offered:
                smtp.user, smtp.password = username, self._receiver.secret.get_secret_value()
                try:
                    smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
                finally:
                    smtp.password = ""
                return
        raise self._fail(f"no AUTH mechanism in common (server offers: {' '.join(offered) or 'none'})", retryable=False)

    def _deliver(self, message: Message) -> None:
        spec = self._spec
        try:
            with smtplib.SMTP(
                spec.host, spec.port, timeout=spec.timeout_s, local_hostname=socket.gethostname()
            ) as smtp:
                smtp.ehlo()
                if spec.starttls:
                    if not smtp.has_extn("starttls"):
                        raise self._fail("the server does not offer STARTTLS (refusing to send)", retryable=False)
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if spec.username:
                    self._login(smtp, spec.username)
                refused = smtp.send_message(message)
        except NotifyError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise self._fail(f"TLS certificate not trusted ({exc.verify_message})", retryable=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise self._fail(
                f"authentication refused (SMTP {exc.smtp_code})", retryable=False, status=exc.smtp_code
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise self._fail(f"not supported by the server: {exc}", retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise self._fail(
                f"every recipient refused ({', '.join(exc.recipients)}; SMTP {codes})",
                retryable=all(400 <= c < 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            raise self._fail(
                f"SMTP {code}: {_text(exc.smtp_error)}", retryable=400 <= code < 500 or code < 0, status=code
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, timeouts
            raise self._fail(f"cannot deliver ({type(exc).__name__}: {exc})", retryable=True) from None
        if refused:
            log.warning("receiver %s: %s refused some recipients: %s", self.name, self._where, ", ".join(refused))


def _encoded(text: str) -> str:
    """An RFC 2047 header value; compat32 takes a ``Header`` where typeshed says ``str``."""
    return cast(str, Header(text, "utf-8"))


def _address_header(value: str) -> str:
    """``Giám sát <cw@example.org>`` with its display name RFC 2047-encoded when not ASCII."""
    name, addr = parseaddr(value)
    return formataddr((name, addr), charset="utf-8")


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text.replace("\n", " ")[:200]
