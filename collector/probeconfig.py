"""The probe agent's settings for one center, derived from inventory: pure, data in, data out.

What inventory knows goes to the probe agent instead of being typed twice: the router to ping
over the LAN, the LAN subnet to sweep and the devices expected on it (by MAC and address, so ARP
discovery can tell a known printer from an unknown box), and the contracted bandwidth of each
uplink for the throughput check, and the devices to poll over SNMP: each one's name, address,
version and the *name* of its credential (``snmp: {version, credential}`` in inventory), its
profile chosen by sysObjectID. The secrets stay on the probe agent, in ``credentials_file``
(``agent/snmp/credentials.py``); nothing here ever holds one. Service targets (portals,
resolvers) are site settings merged in by the operator.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from collector.inventory import Center

#: where the probe agent keeps its SNMP credentials (name → community or v3 keys), mode 0600
SNMP_CREDENTIALS_FILE = "/etc/centerwatch/snmp-credentials.yaml"


def probe_checks(
    center: Center, lan_prefix: int = 24, snmp_credentials_file: str = SNMP_CREDENTIALS_FILE
) -> dict[str, Any]:
    """The ``checks:`` entries inventory can fill for ``center``'s probe agent."""
    checks: dict[str, Any] = {}
    routers = [d for d in center.devices if d.role == "router" and d.address is not None]
    if routers:
        checks["network"] = {"gateway": {"name": routers[0].name, "address": str(routers[0].address)}}
    probe = center.probe
    if probe.address is not None:
        subnet = ipaddress.ip_network(f"{probe.address}/{lan_prefix}", strict=False)
        known = []
        for device in center.devices:
            if device.mac is None and (device.address is None or device.address not in subnet):
                continue
            entry: dict[str, str] = {"name": device.name}
            if device.mac:
                entry["mac"] = device.mac
            if device.address is not None and device.address in subnet:
                entry["address"] = str(device.address)
            known.append(entry)
        checks["arp_discovery"] = {"interval_s": 900, "subnets": [{"cidr": str(subnet)}], "known": known}
    wan = [u for u in center.uplinks if u.kind == "gov_wan"]
    if wan:
        checks["throughput"] = {
            "uplink": "wan",
            "contracted_download_mbps": wan[0].bandwidth_mbps,
            "contracted_upload_mbps": wan[0].bandwidth_mbps,
        }
    snmp = snmp_devices(center)
    if snmp:
        checks["snmp"] = {
            "interval_s": 60,
            "timeout_s": 30,  # above the check's per-device poll_budget_s
            "credentials_file": snmp_credentials_file,
            "devices": snmp,
        }
    return checks


def snmp_devices(center: Center) -> list[dict[str, str]]:
    """The snmp check's ``devices`` for ``center``: every device with ``snmp`` and an address, by
    credential name; the profile is left to the device's sysObjectID."""
    devices = []
    for device in center.devices:
        if device.snmp is None or device.address is None:
            continue
        devices.append(
            {
                "name": device.name,
                "address": str(device.address),
                "version": device.snmp.version,
                "credential": device.snmp.credential,
            }
        )
    return devices
