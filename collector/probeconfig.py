"""The probe agent's settings for one center, derived from inventory: pure, data in, data out.

What inventory knows goes to the probe agent instead of being typed twice: the router to ping
over the LAN, the LAN subnet to sweep and the devices expected on it (by MAC and address, so ARP
discovery can tell a known printer from an unknown box), and the contracted bandwidth of each
uplink for the throughput check. Service targets (portals, resolvers) are site settings merged
in by the operator.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from collector.inventory import Center


def probe_checks(center: Center, lan_prefix: int = 24) -> dict[str, Any]:
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
    return checks
