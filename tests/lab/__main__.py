"""Manual use of the lab: ``python -m tests.lab up|down|status`` (as root, from the repository root).

``up`` builds a lab, starts its services, prints the addresses and leaves it running; its state is
kept in /tmp/centerwatch-lab/<prefix>.json. ``down`` removes the labs recorded there (or the given
prefixes); ``status`` shows them, and any other ``cw????-*`` namespaces (test runs, leftovers).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from tests.lab.netlab import ADDRESSES, ROLES, Lab, LabError, existing_namespaces, run

STATE_DIR = Path("/tmp/centerwatch-lab")


def cmd_up(args: argparse.Namespace) -> int:
    lab = Lab(services=not args.no_services)
    lab.up()
    STATE_DIR.mkdir(exist_ok=True)
    state_file = STATE_DIR / f"{lab.prefix}.json"
    state_file.write_text(json.dumps(lab.state(), indent=2))
    print(f"lab {lab.prefix} is up (state: {state_file})")
    print("namespaces: " + " ".join(lab.namespaces))
    for name, (v4, v6) in ADDRESSES.items():
        print(f"  {name:<11} {v4:<15} {v6}")
    if lab.services:
        print(f"services: DNS {ADDRESSES['inet-dns'][0]} / {ADDRESSES['gov-dns'][0]} (portal.lab, dichvucong.lab),")
        print(f"  HTTP :80 and HTTPS :443 on portal / dichvucong (cert {lab.cert}), logs in {lab.tmpdir}")
    print(f"try: ip netns exec {lab.ns('center')} ping -c 3 portal.lab")
    print(f"stop: python -m tests.lab down {lab.prefix}")
    return 0


def _states(prefixes: list[str]) -> list[tuple[Path | None, dict[str, object]]]:
    files = sorted(STATE_DIR.glob("cw*.json")) if STATE_DIR.is_dir() else []
    known: list[tuple[Path | None, dict[str, object]]] = [(f, dict(json.loads(f.read_text()))) for f in files]
    if not prefixes:
        return known
    chosen: list[tuple[Path | None, dict[str, object]]] = []
    for prefix in prefixes:
        match = [(f, s) for f, s in known if s.get("prefix") == prefix]
        chosen += match or [(None, {"prefix": prefix})]
    return chosen


def cmd_down(args: argparse.Namespace) -> int:
    bad = [p for p in args.prefix if not re.fullmatch(r"cw[0-9a-f]{4}", p)]
    if bad:
        print(f"error: not a lab prefix (cw + 4 hex digits): {' '.join(bad)}", file=sys.stderr)
        return 2
    states = _states(args.prefix)
    if not states:
        print("no lab recorded in", STATE_DIR)
    for state_file, state in states:
        Lab.attach(state).down()
        if state_file is not None:
            state_file.unlink(missing_ok=True)
        print(f"lab {state['prefix']} is down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    present = existing_namespaces()
    recorded: set[str] = set()
    for state_file, state in _states([]):
        prefix = str(state["prefix"])
        names = [f"{prefix}-{role}" for role in ROLES]
        recorded.update(names)
        alive = [n for n in names if n in present]
        procs = sum(len(run(["ip", "netns", "pids", n], check=False).stdout.split()) for n in alive)
        print(f"lab {prefix}: {len(alive)}/{len(names)} namespaces, {procs} processes (state: {state_file})")
    others = sorted(n for n in present if n.startswith("cw") and n not in recorded)
    if others:
        print("other cw* namespaces (test runs in progress or leftovers; `down PREFIX` removes one):")
        print("  " + " ".join(others))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="CenterWatch namespace lab")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build a lab and leave it running")
    up.add_argument("--no-services", action="store_true", help="topology only: no DNS/HTTP servers")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="remove the recorded labs, or those given")
    down.add_argument("prefix", nargs="*", help="lab prefix, e.g. cw1a2b (default: every recorded lab)")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", help="show recorded labs").set_defaults(func=cmd_status)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
