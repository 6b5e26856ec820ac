"""The namespace lab itself works: paths, services, and every fault it can inject.

All traffic stays inside the lab's own namespaces (198.18.0.0/15, fd00:cafe::/48).
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest

from tests.lab.netlab import ADDRESSES, Lab, existing_namespaces

pytest_plugins = ["tests.lab.fixtures"]
pytestmark = pytest.mark.integration

PORTAL4, PORTAL6 = ADDRESSES["portal"]
GOV4, GOV6 = ADDRESSES["dichvucong"]
DNS4, DNS6 = ADDRESSES["inet-dns"]
GOV_DNS4, GOV_DNS6 = ADDRESSES["gov-dns"]
GET = """
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
with urllib.request.urlopen(sys.argv[1], timeout=5, context=ctx) as r:
    sys.stdout.write(f"{r.status} {r.url}\\n" + r.read().decode())
"""
TIMED_GET = """
import sys, time, urllib.request
t0 = time.perf_counter()
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    size = len(r.read())
print(size, time.perf_counter() - t0)
"""


def ping(lab: Lab, target: str, count: int = 3, interval: str = "0.2", ns: str = "center") -> tuple[int, int]:
    """(transmitted, received) of ``ping -c count -i interval -W 1`` from ``ns``."""
    out = lab.exec(ns, "ping", "-q", "-c", str(count), "-i", interval, "-W", "1", target, check=False, timeout=30)
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out.stdout)
    assert match, f"unexpected ping output: {out.stdout!r} {out.stderr!r}"
    return int(match[1]), int(match[2])


def dig(lab: Lab, server: str, name: str, rtype: str = "A") -> tuple[str, list[str]]:
    """(status, answers) of one query from center; status is TIMEOUT when no answer came."""
    out = lab.exec("center", "dig", "+time=1", "+tries=1", "+noall", "+comments", "+answer", f"@{server}", name, rtype,
                   check=False)  # fmt: skip
    status = re.search(r"status: (\w+)", out.stdout)
    answers = [line.split()[-1] for line in out.stdout.splitlines() if line and not line.startswith(";")]
    return (status[1] if status else "TIMEOUT"), answers


def get(lab: Lab, url: str, cafile: str | None = None) -> str:
    return lab.exec("center", sys.executable, "-c", GET, url, *([cafile] if cafile else [])).stdout


def tx_packets(lab: Lab, ns: str, dev: str) -> int:
    (link,) = json.loads(lab.exec(ns, "ip", "-j", "-s", "link", "show", dev).stdout)
    return int(link["stats64"]["tx"]["packets"])


@pytest.fixture(autouse=True)
def _tools() -> None:
    # imported here: importing the plugin module before pytest_plugins loads it defeats assert rewriting
    from tests.lab.fixtures import require_lab

    require_lab(("ping", "dig"))  # iputils-ping, dnsutils


def test_center_reaches_internet_through_isp_and_gov_through_wan(lab: Lab) -> None:
    isp_before, wan_before = tx_packets(lab, "isp", "to-inet"), tx_packets(lab, "wan", "to-gov")
    assert ping(lab, PORTAL4) == (3, 3)
    assert ping(lab, PORTAL6) == (3, 3)
    assert tx_packets(lab, "isp", "to-inet") - isp_before >= 6
    assert tx_packets(lab, "wan", "to-gov") == wan_before  # internet traffic never takes the WAN

    isp_before, wan_before = tx_packets(lab, "isp", "to-inet"), tx_packets(lab, "wan", "to-gov")
    assert ping(lab, GOV4) == (3, 3)
    assert ping(lab, GOV6) == (3, 3)
    assert tx_packets(lab, "wan", "to-gov") - wan_before >= 6
    assert tx_packets(lab, "isp", "to-inet") == isp_before
    assert ping(lab, ADDRESSES["printer"][0], ns="pc2") == (3, 3)  # the LAN bridge joins the hosts


def test_dns_answers_from_center(lab: Lab) -> None:
    assert dig(lab, DNS4, "portal.lab") == ("NOERROR", [PORTAL4])
    assert dig(lab, DNS6, "portal.lab", "AAAA") == ("NOERROR", [PORTAL6])
    assert dig(lab, GOV_DNS6, "dichvucong.lab") == ("NOERROR", [GOV4])
    assert dig(lab, DNS4, "www.portal.lab") == ("NOERROR", ["portal.lab.", PORTAL4])
    assert dig(lab, DNS4, "ipv4only.lab", "AAAA") == ("NOERROR", [])
    assert dig(lab, DNS4, "nothing.lab") == ("NXDOMAIN", [])
    assert dig(lab, DNS4, "example.com") == ("REFUSED", [])
    # the center's resolv.conf (/etc/netns/<ns>/resolv.conf) points at the lab's DNS
    out = lab.exec("center", sys.executable, "-c", "import socket; print(socket.gethostbyname('dichvucong.lab'))")
    assert out.stdout.strip() == GOV4


def test_http_from_center(lab: Lab) -> None:
    assert "Cổng Dịch vụ công" in get(lab, "http://portal.lab/")
    assert "Cổng Dịch vụ công" in get(lab, f"http://[{PORTAL6}]/")
    assert "mạng WAN Chính phủ" in get(lab, "http://dichvucong.lab/")
    assert lab.cert is not None
    body = get(lab, "https://portal.lab/redirect?n=2", str(lab.cert))
    assert body.startswith("200 https://portal.lab/\n") and "Cổng Dịch vụ công" in body
    assert "HTTP Error 503" in lab.exec("center", sys.executable, "-c", GET, "http://portal.lab/status/503",
                                        check=False).stderr  # fmt: skip
    assert len(get(lab, "http://portal.lab/bytes?n=100000")) == len("200 http://portal.lab/bytes?n=100000\n") + 100000


def test_loss_on_isp_is_exactly_what_nftables_dropped(lab: Lab) -> None:
    lab.set_loss("isp", 30)
    sent, received = ping(lab, PORTAL4, count=100, interval="0.01")
    dropped = lab.drop_count("isp")
    assert sent == 100
    assert received + dropped == sent, (received, dropped)
    assert 0 < dropped < 100
    assert ping(lab, GOV4) == (3, 3)  # the WAN is not affected
    lab.clear_loss("isp")
    assert lab.drop_count("isp") == 0
    assert ping(lab, PORTAL4) == (3, 3)


def test_isp_down_cuts_the_internet_but_not_the_gov_wan(lab: Lab) -> None:
    lab.link_down("isp")
    assert ping(lab, PORTAL4, count=2) == (2, 0)
    assert ping(lab, PORTAL6, count=2) == (2, 0)
    assert ping(lab, GOV4) == (3, 3)
    assert ping(lab, GOV6) == (3, 3)
    assert dig(lab, GOV_DNS4, "portal.lab") == ("NOERROR", [PORTAL4])  # the gov DNS still answers
    lab.link_up("isp")  # routes flushed with the interface come back
    assert ping(lab, PORTAL4) == (3, 3)
    assert ping(lab, PORTAL6) == (3, 3)


def test_broken_dns(lab: Lab) -> None:
    lab.break_dns()
    assert dig(lab, DNS4, "portal.lab") == ("SERVFAIL", [])
    assert dig(lab, GOV_DNS4, "dichvucong.lab") == ("SERVFAIL", [])
    lab.break_dns("refused", names=["portal.lab"], server="inet")
    assert dig(lab, DNS4, "portal.lab") == ("REFUSED", [])
    assert dig(lab, DNS4, "dichvucong.lab") == ("NOERROR", [GOV4])
    lab.break_dns("silent", names=["portal.lab"])
    t0 = time.monotonic()
    assert dig(lab, DNS4, "portal.lab") == ("TIMEOUT", [])
    assert time.monotonic() - t0 >= 0.9
    lab.fix_dns()
    assert dig(lab, DNS4, "portal.lab") == ("NOERROR", [PORTAL4])


def test_rate_limit_on_isp(lab: Lab) -> None:
    def download_s() -> float:  # timed inside the namespace: interpreter start-up does not count
        out = lab.exec("center", sys.executable, "-c", TIMED_GET, "http://portal.lab/bytes?n=250000")
        size, seconds = out.stdout.split()
        assert size == "250000"
        return float(seconds)

    fast = download_s()
    lab.set_rate("isp", 2000)  # 250 kB/s: 250 kB take 1 s, less the 25 kB bucket
    slow = download_s()
    assert fast < 0.5, fast
    assert 0.85 < slow < 5.0, slow
    assert "tbf" in lab.exec("isp", "tc", "qdisc", "show", "dev", "to-gw").stdout
    lab.clear_rate("isp")
    assert "tbf" not in lab.exec("isp", "tc", "qdisc", "show", "dev", "to-gw").stdout


def test_second_lab_is_separate_and_down_is_idempotent(lab: Lab) -> None:
    other = Lab(services=False)
    assert other.prefix != lab.prefix and re.fullmatch(r"cw[0-9a-f]{4}", other.prefix)
    with other:
        names = set(other.namespaces)
        assert len(names) == 8 and names <= existing_namespaces()
        assert ping(other, ADDRESSES["inet"][0], count=1) == (1, 1)
    other.down()  # a second time: nothing left to do, no error
    present = existing_namespaces()
    assert not names & present
    assert not any(name.startswith(other.prefix + "-") for name in present)
    assert set(lab.namespaces) <= present  # the module's lab is untouched
