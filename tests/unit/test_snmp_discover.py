"""The pure parts of ``centerwatch-agent snmp-discover``: subnet bounds, host names inventory
accepts, roles, the snippet, the report and the progress line; the scan through a fake probe; the
command's usage errors (which stop it before anything is sent)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import get_args

import pytest
import yaml

from agent import cli
from agent.snmp import discover as d
from agent.snmp.client import Secret, Target, V2c, Value
from agent.snmp.errors import SnmpError
from agent.snmp.profiles import load_profiles
from centerwatch.i18n import t
from collector.inventory import SLUG_RE, DeviceRole

PROFILES = load_profiles()


def ok(address: str, oid: str, name: str = "", descr: str = "", services: int | None = None) -> d.Answer:
    return d.Answer(address, "ok", oid, descr, name, services)


# --- subnet -----------------------------------------------------------------------------------------


def test_subnet_hosts_and_bounds() -> None:
    network, hosts = d.subnet_hosts("10.1.2.0/24", "en")
    assert str(network) == "10.1.2.0/24"
    assert hosts[0] == "10.1.2.1" and hosts[-1] == "10.1.2.254" and len(hosts) == 254
    assert len(d.subnet_hosts("10.1.0.0/20", "en")[1]) == 4094
    assert d.subnet_hosts("10.1.2.7/24", "en")[0] == network  # host bits ignored
    assert d.subnet_hosts("10.1.2.7/32", "en")[1] == ["10.1.2.7"]
    assert len(d.subnet_hosts("fd00::/116", "en")[1]) == 4095


@pytest.mark.parametrize("subnet", ["10.1.0.0/19", "10.0.0.0/8", "fd00::/64", "0.0.0.0/0"])
def test_a_subnet_larger_than_a_slash_20_is_refused_with_its_size(subnet: str) -> None:
    with pytest.raises(d.DiscoverError) as caught:
        d.subnet_hosts(subnet, "en")
    assert str(caught.value).startswith(f"Subnet {subnet} has ")
    assert "more than the 4096 (a /20) one scan may cover" in str(caught.value)
    with pytest.raises(d.DiscoverError, match="quá 4096 địa chỉ"):
        d.subnet_hosts(subnet, "vi")


@pytest.mark.parametrize("subnet", ["", "10.1.2", "10.1.2.0/33", "hoa-khanh", "10.1.2.0/24 10.1.3.0/24"])
def test_not_a_subnet(subnet: str) -> None:
    with pytest.raises(d.DiscoverError, match=r"is not a subnet, e\.g\. 10\.1\.2\.0/24"):
        d.subnet_hosts(subnet, "en")


# --- names and roles -----------------------------------------------------------------------------------


def test_the_host_name_rule_is_inventorys() -> None:
    assert d.HOST_NAME_RE.pattern == SLUG_RE.pattern
    assert set(get_args(d.Role)) <= set(get_args(DeviceRole))


@pytest.mark.parametrize(
    ("sys_name", "address", "center", "expected"),
    [
        ("Hòa Khánh SW1", "10.1.2.2", None, "hoa-khanh-sw1"),
        ("Hòa Khánh SW1", "10.1.2.2", "hoa-khanh", "hoa-khanh-sw1"),
        ("core.lab.example.vn", "10.1.2.2", "hoa-khanh", "hoa-khanh-core"),
        ("Đà Nẵng_AP#2", "10.1.2.3", "da-nang", "da-nang-ap-2"),
        ("hoa-khanh", "10.1.2.3", "hoa-khanh", "hoa-khanh"),
        ("", "10.1.2.3", None, "snmp-10-1-2-3"),
        ("  \x00\t", "10.1.2.3", "an-hai", "an-hai-snmp-10-1-2-3"),
        ("10.1.2.9", "10.1.2.9", None, "10-1-2-9"),
        ("", "fd00::1:2", None, "snmp-fd00-1-2"),
        ("RICOH Aficio MP 2554 (ricoh-3f)", "10.1.2.5", None, "ricoh-aficio-mp-2554-ricoh-3f"),
        ("x" * 100, "10.1.2.5", "an-hai", "an-hai-" + "x" * 56),
        ("---", "10.1.2.5", None, "snmp-10-1-2-5"),
    ],
)
def test_host_names_from_sysname_fit_inventory(sys_name: str, address: str, center: str | None, expected: str) -> None:
    name = d.host_name(sys_name, address, center)
    assert name == expected
    assert SLUG_RE.match(name)
    assert len(name) <= d.MAX_NAME


def test_repeated_names_get_a_number() -> None:
    assert d.unique_names(["sw", "sw", "ap", "sw", "sw-2"]) == ["sw", "sw-2", "ap", "sw-3", "sw-2-2"]
    long = "a" * 63
    assert d.unique_names([long, long]) == [long, "a" * 61 + "-2"]


@pytest.mark.parametrize(
    ("profile", "descr", "services", "expected"),
    [
        ("cisco-catalyst", "", None, ("switch", "profile")),
        ("printer", "", None, ("printer", "profile")),
        ("ups", "", None, ("ups", "profile")),
        ("apc", "", None, ("ups", "profile")),
        ("ubiquiti-airmax", "", None, ("ap", "profile")),
        ("generic", "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153", None, ("printer", "descr")),
        ("generic", "RouterOS RB951Ui-2HnD", None, ("router", "descr")),
        ("generic", "ProCurve J9019B Switch 2510B-24", 2, ("switch", "descr")),
        ("generic", "Linux hk-probe1 6.1.0-18-amd64 #1 SMP x86_64", 72, ("pc", "services")),
        ("generic", "Embedded box", 4, ("router", "services")),
        ("generic", "Embedded box", 6, ("router", "services")),
        ("generic", "Embedded box", 2, ("switch", "services")),
        ("generic", "", None, ("switch", "default")),
        ("generic", "Supply Chain box", None, ("switch", "default")),  # no "ups" inside a word
    ],
)
def test_roles(profile: str, descr: str, services: int | None, expected: tuple[str, str]) -> None:
    assert d.guess_role(profile, descr, services) == expected


def test_identify_matches_profiles_by_sys_object_id() -> None:
    answers = [
        ok("10.1.2.2", "1.3.6.1.4.1.9.1.516", "sw1.hoa-khanh.lab", "Cisco IOS Software, C3750"),
        ok("10.1.2.5", "1.3.6.1.4.1.11.2.3.9.1", "LaserJet M404", "HP LaserJet"),
        ok("10.1.2.6", "1.3.6.1.4.1.705.1", "", "Eaton 93E"),
        ok("10.1.2.7", "1.3.6.1.4.1.8072.3.2.10", "sw1", "Linux", 72),
        d.Answer("10.1.2.9", "refused", error="auth: UnknownUserName"),
    ]
    found = d.identify(answers, PROFILES, "hoa-khanh")
    assert [(f.name, f.profile, f.role) for f in found] == [
        ("hoa-khanh-sw1", "cisco-catalyst", "switch"),
        ("hoa-khanh-laserjet-m404", "printer", "printer"),
        ("hoa-khanh-snmp-10-1-2-6", "ups", "ups"),
        ("hoa-khanh-sw1-2", "generic", "pc"),
    ]


def test_answer_from_values() -> None:
    values: dict[str, Value] = {
        d.SYS_OBJECT_ID: "1.3.6.1.4.1.9.1.516",
        d.SYS_NAME: b"sw1\x00",
        d.SYS_DESCR: b"Cisco",
        d.SYS_SERVICES: 6,
    }
    assert d.answer_from("10.1.2.2", values) == ok("10.1.2.2", "1.3.6.1.4.1.9.1.516", "sw1", "Cisco", 6)
    assert d.answer_from("10.1.2.2", {d.SYS_DESCR: b"odd"}).status == "error"


# --- output --------------------------------------------------------------------------------------------


def test_snippet_is_inventory_yaml_with_names_not_secrets() -> None:
    found = d.identify(
        [
            ok("10.1.2.2", "1.3.6.1.4.1.9.1.516", "sw1", "Cisco IOS Software,\nC3750 #1"),
            ok("10.1.2.7", "1.3.6.1.4.1.8072.3.2.10", "", "", None),
        ],
        PROFILES,
        "hoa-khanh",
    )
    text = d.snippet(found, "10.1.2.0/24", 254, "v2c", "snmp-v2c-ro", "en")
    assert yaml.safe_load(text) == {
        "hosts": {
            "hoa-khanh-sw1": {
                "device_role": "switch",
                "ansible_host": "10.1.2.2",
                "snmp": {"version": "v2c", "credential": "snmp-v2c-ro"},
            },
            "hoa-khanh-snmp-10-1-2-7": {
                "device_role": "switch",
                "ansible_host": "10.1.2.7",
                "snmp": {"version": "v2c", "credential": "snmp-v2c-ro"},
            },
        }
    }
    assert "device_role: switch  # from profile cisco-catalyst" in text
    assert "  # 10.1.2.2 · sysName sw1 · Cisco IOS Software, C3750 #1" in text
    assert "could not be guessed (profile generic); check it" in text
    assert text.startswith("# centerwatch-agent snmp-discover 10.1.2.0/24: 2 usable devices among 254 addresses\n")
    assert yaml.safe_load(d.snippet([], "10.1.2.0/24", 254, "v3", "x", "vi")) == {"hosts": {}}


def test_report_lists_hosts_refusals_and_a_summary() -> None:
    answers = [
        ok("10.1.2.2", "1.3.6.1.4.1.9.1.516", "sw1", "Cisco IOS Software"),
        d.Answer("10.1.2.9", "refused", error="auth: UnknownUserName"),
        d.Answer("10.1.2.10", "error", error="no sysObjectID"),
    ]
    found = d.identify(answers, PROFILES)
    text = d.report(found, answers, 254, "en")
    lines = text.splitlines()
    assert lines[0].split() == ["Address", "Name", "Profile", "Role", "sysDescr"]
    assert lines[1].split()[:4] == ["10.1.2.2", "sw1", "cisco-catalyst", "switch"]
    assert lines[2] == "10.1.2.9: answers SNMP but refused the credentials (auth: UnknownUserName)"
    assert lines[3] == "10.1.2.10: answers SNMP but is not usable (no sysObjectID)"
    assert lines[4] == "3/254 addresses answered SNMP: 1 usable devices, 2 refused or failed."
    assert d.report([], [], 6, "vi").strip() == t("snmp_discover.summary", answered=0, scanned=6, usable=0, refused=0)


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    tty = io.StringIO()
    bar = d.Progress(tty, 4, "en", tty=True, width=8)
    for answered in (True, False, False, True):
        bar.update(answered)
    assert tty.getvalue().split("\r")[1:] == [
        "[##......] 1/4 addresses · 1 answered",
        "[####....] 2/4 addresses · 1 answered",
        "[######..] 3/4 addresses · 1 answered",
        "[########] 4/4 addresses · 2 answered\n",
    ]
    plain = io.StringIO()
    lines = d.Progress(plain, 254, "en", tty=False)
    for _ in range(254):
        lines.update(False)
    out = plain.getvalue().splitlines()
    assert len(out) == 10 and "\r" not in plain.getvalue()
    assert out[0] == "26/254 addresses · 0 answered" and out[-1] == "254/254 addresses · 0 answered"
    assert d.Progress(io.StringIO(), 1, "en").tty is False  # a StringIO is no terminal


# --- the scan ------------------------------------------------------------------------------------------


async def test_scan_asks_every_address_within_the_concurrency_and_keeps_order() -> None:
    in_flight = peak = 0
    asked: list[str] = []

    async def probe(address: str) -> d.Answer | None:
        nonlocal in_flight, peak
        asked.append(address)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001 * (7 - int(address.rsplit(".", 1)[1]) % 7))
        in_flight -= 1
        return ok(address, "1.3.6.1.4.1.9.1.516") if address.endswith((".3", ".40")) else None

    done: list[d.Answer | None] = []
    _, hosts = d.subnet_hosts("192.0.2.0/26", "en")  # probed by the fake only
    answers = await d.scan(hosts, probe, 5, done.append)
    assert sorted(asked) == sorted(hosts)
    assert peak == 5
    assert [a.address for a in answers] == ["192.0.2.3", "192.0.2.40"]
    assert len(done) == 62 and sum(a is not None for a in done) == 2


# --- the command's usage errors (before anything is sent) ----------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["snmp-discover", "--lang", "en", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subnet", "10.0.0.0/16", "--credential", "ro", "--community", "x"], "Subnet 10.0.0.0/16 has 65536"),
        (["--subnet", "127.0.0.0/30", "--credential", "bad name", "--community", "x"], "'bad name' is not a valid"),
        (["--subnet", "127.0.0.0/30", "--credential", "ro"], "give exactly one source of credentials"),
        (
            ["--subnet", "127.0.0.0/30", "--credential", "ro", "--community", "x", "--v3-user", "u"],
            "give exactly one source of credentials",
        ),
        (["--subnet", "127.0.0.0/30", "--credential", "ro", "--v3-user", "u"], "CENTERWATCH_SNMP_AUTH_KEY"),
        (["--subnet", "127.0.0.0/30", "--credential", "ro", "--community", "x", "--center", "Hoa Khanh"], "center"),
        (["--subnet", "127.0.0.0/30", "--credential", "ro", "--community", "x", "--concurrency", "0"], "1..256"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.delenv("CENTERWATCH_SNMP_AUTH_KEY", raising=False)
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("centerwatch-agent snmp-discover: error: ")
    assert message in err


def test_credentials_file_problems_name_file_and_credential(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text('ro:\n  community: "s3cret-Zq1"\n', encoding="utf-8")
    path.chmod(0o600)
    code, _, err = run_cli(capsys, "--subnet", "127.0.0.0/30", "--credential", "rw", "--credentials-file", str(path))
    assert code == 2
    assert f"credential 'rw' is not in {path} (it has: ro)" in err
    path.chmod(0o644)
    code, _, err = run_cli(capsys, "--subnet", "127.0.0.0/30", "--credential", "ro", "--credentials-file", str(path))
    assert code == 2
    assert f"{path}: mode 0644" in err
    assert "s3cret-Zq1" not in err


def test_vietnamese_by_default(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CENTERWATCH_LANG", raising=False)
    code = cli.main(["snmp-discover", "--subnet", "10.0.0.0/8", "--credential", "ro", "--community", "x"])
    assert code == 2
    assert "lỗi: Mạng con 10.0.0.0/8 có 16777216 địa chỉ" in capsys.readouterr().err


class FakeSession:
    """Stands for ``PysnmpSession``: ``client`` fails with ``open_error`` or gives a client whose
    GET answers ``values`` or raises ``get_error``."""

    def __init__(self, values: dict[str, Value] | None = None, get_error: SnmpError | None = None,
                 open_error: SnmpError | None = None) -> None:  # fmt: skip
        self.values, self.get_error, self.open_error = values or {}, get_error, open_error
        self.targets: list[Target] = []

    async def client(self, target: Target, credentials: object) -> FakeSession:
        self.targets.append(target)
        if self.open_error is not None:
            raise self.open_error
        return self

    async def get(self, oids: list[str]) -> dict[str, Value]:
        if self.get_error is not None:
            raise self.get_error
        return {o: self.values[o] for o in oids if o in self.values}


def probe_with(session: FakeSession) -> d.Probe:
    creds = V2c(Secret("c0mm-Secret-1"))
    return d.snmp_probe(session, 1161, creds, 0.5, 0, "en")  # type: ignore[arg-type]


async def test_probe_turns_each_outcome_into_an_answer_or_silence() -> None:
    values: dict[str, Value] = {d.SYS_OBJECT_ID: "1.3.6.1.4.1.9.1.516", d.SYS_NAME: b"sw1"}
    session = FakeSession(values)
    assert await probe_with(session)("192.0.2.7") == ok("192.0.2.7", "1.3.6.1.4.1.9.1.516", "sw1")
    assert session.targets == [Target("192.0.2.7", 1161, 0.5, 0)]
    assert await probe_with(FakeSession(get_error=SnmpError("timeout", "no answer")))("192.0.2.7") is None
    refused = await probe_with(FakeSession(get_error=SnmpError("auth", "UnknownUserName c0mm-Secret-1")))("192.0.2.7")
    assert refused == d.Answer("192.0.2.7", "refused", error="auth: UnknownUserName ***")
    garbled = await probe_with(FakeSession(get_error=SnmpError("malformed", "truncated")))("192.0.2.7")
    assert garbled is not None and garbled.status == "error"


async def test_a_local_send_failure_ends_the_scan_with_its_cause() -> None:
    session = FakeSession(
        open_error=SnmpError("error", "cannot open a UDP socket to 192.0.2.7:1161: Network is unreachable")
    )
    with pytest.raises(d.DiscoverError) as caught:
        await d.scan(["192.0.2.7", "192.0.2.8"], probe_with(session), 1)
    assert str(caught.value) == (
        "cannot send to 192.0.2.7: error: cannot open a UDP socket to 192.0.2.7:1161: Network is unreachable; "
        "check this machine's network (routes, firewall)."
    )
