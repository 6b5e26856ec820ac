"""``centerwatch-collector``: serve, and the few admin commands that act on the database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from collector.auth import hash_token, new_token
from collector.errors import CollectorError
from collector.settings import Settings
from collector.store.sqlite import SqliteStore


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="centerwatch-collector", description="CenterWatch collector")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the collector (HTTP API, ingest, status page)")
    serve.add_argument("--db", type=Path, default=Path("centerwatch.db"), help="SQLite database file")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    serve.add_argument("--inventory", type=Path, help="Ansible inventory directory (e.g. inventory/)")
    serve.add_argument("--lang", choices=["vi", "en"], default="vi", help="default page language")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--durability",
        choices=["normal", "full"],
        default="normal",
        help="normal: survives a collector crash; full: also a power loss (slower)",
    )
    serve.add_argument("--agent-interval", type=float, default=15.0, help="expected agent report interval, s")
    serve.add_argument(
        "--silent-after", type=float, default=2.5, help="an agent is silent after this many intervals (default 2.5)"
    )
    serve.add_argument("--alerting", type=Path, help="notification receivers file (see alerting.example.yaml)")
    serve.add_argument("--rules", type=Path, help="directory of site alert rules (*.yaml) on top of the shipped ones")
    serve.add_argument("--eval-interval", type=float, default=5.0, help="alert evaluation period, s (default 5)")
    serve.add_argument("--public-url", default="", help="URL browsers use to reach this collector (alert links)")

    rules = sub.add_parser("rules", help="alert rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    rcheck = rsub.add_parser("check", help="validate the shipped and site rules and the receivers; list them")
    rcheck.add_argument("--rules", type=Path, help="directory of site alert rules (*.yaml)")
    rcheck.add_argument("--alerting", type=Path, help="notification receivers file")

    operator = sub.add_parser("operator", help="operators: who may acknowledge, silence and set maintenance windows")
    osub = operator.add_subparsers(dest="operator_command", required=True)
    oadd = osub.add_parser("add", help="create (or replace) an operator's token and print it once")
    oadd.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    oadd.add_argument("name", help="the operator's name, recorded on every acknowledgement and silence")
    orevoke = osub.add_parser("revoke", help="revoke an operator's token")
    orevoke.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    orevoke.add_argument("name")

    token = sub.add_parser("token", help="enrollment tokens (one per center)")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="create an enrollment token and print it once")
    create.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    create.add_argument("--center", required=True, help="center slug, e.g. hoa-khanh")
    create.add_argument("--ttl", type=float, default=7 * 24, help="hours until it expires (0 = never)")
    create.add_argument("--max-uses", type=int, default=None, help="how many agents may use it")
    create.add_argument("--note", default="")
    create.add_argument("--inventory", type=Path, help="check the center against this inventory")
    tlist = tsub.add_parser("list", help="list enrollment tokens (never their secrets)")
    tlist.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    trevoke = tsub.add_parser("revoke", help="revoke an enrollment token")
    trevoke.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    trevoke.add_argument("id", type=int)

    probe = sub.add_parser("probe-config", help="print a center's probe-agent checks derived from inventory (YAML)")
    probe.add_argument("--inventory", type=Path, required=True, help="Ansible inventory directory")
    probe.add_argument("--center", required=True, help="center slug, e.g. hoa-khanh")
    probe.add_argument(
        "--snmp-credentials-file",
        default=None,
        help="where the probe agent keeps its SNMP secrets (default /etc/centerwatch/snmp-credentials.yaml)",
    )

    agent = sub.add_parser("agent", help="enrolled agents")
    asub = agent.add_subparsers(dest="agent_command", required=True)
    alist = asub.add_parser("list", help="list agents")
    alist.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    arevoke = asub.add_parser("revoke", help="revoke an agent's token")
    arevoke.add_argument("--db", type=Path, default=Path("centerwatch.db"))
    arevoke.add_argument("id")
    return p


def _make_server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """SIGINT/SIGTERM shut down gracefully and the process then exits 0.

        uvicorn re-raises the captured signal after shutdown, so a clean stop would otherwise
        look like a crash (exit -15) to systemd and to our own tests.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def stop(signum: int, frame: FrameType | None) -> None:
                self.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    _Server = _make_server_class()

    from collector.app import create_app

    try:
        settings = Settings(
            db=args.db,
            host=args.host,
            port=args.port,
            inventory=args.inventory,
            lang=args.lang,
            durability=args.durability,
            workers=args.workers,
            agent_interval_s=args.agent_interval,
            silent_after_intervals=args.silent_after,
            alerting=args.alerting,
            rules_dir=args.rules,
            alert_eval_interval_s=args.eval_interval,
            public_url=args.public_url,
        )
        if settings.workers > 1:
            # Each worker builds its own app from the same settings (see collector/asgi.py).
            import os

            os.environ["CENTERWATCH_SETTINGS"] = settings.model_dump_json()
            uvicorn.run(
                "collector.asgi:build",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level="warning",
                access_log=False,
            )
            return 0
        app = create_app(settings)
    except ValidationError as exc:
        print(f"centerwatch-collector: invalid settings: {exc}", file=sys.stderr)
        return 2
    except CollectorError as exc:
        print(f"centerwatch-collector: {exc}", file=sys.stderr)
        return 2
    print(f"CenterWatch collector on http://{settings.host}:{settings.port}/ (db {settings.db})", flush=True)
    server = _Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False))
    server.run()
    return 0 if server.started else 1


async def _admin(args: argparse.Namespace) -> int:
    store = SqliteStore(args.db)
    try:
        if args.command == "token" and args.token_command == "create":
            if args.inventory:
                from collector.inventory import load_inventory

                if args.center not in load_inventory(args.inventory).centers:
                    print(f"centerwatch-collector: center {args.center!r} is not in {args.inventory}", file=sys.stderr)
                    return 2
            token = new_token("cwe")
            now = int(time.time() * 1000)
            expires = None if args.ttl <= 0 else now + int(args.ttl * 3_600_000)
            token_id = await store.create_enroll_token(
                hash_token(token), args.center, now, expires, args.max_uses, args.note
            )
            print(token)
            print(f"# token {token_id} for center {args.center}; shown once, stored hashed", file=sys.stderr)
        elif args.command == "token" and args.token_command == "list":
            for tok in await store.enroll_tokens():
                print(
                    f"{tok.id}\t{tok.center}\tuses={tok.uses}/{tok.max_uses or '∞'}\t"
                    f"expires_ms={tok.expires_ms or '-'}\trevoked={int(tok.revoked)}\t{tok.note}"
                )
        elif args.command == "token" and args.token_command == "revoke":
            if not await store.revoke_enroll_token(args.id):
                print(f"centerwatch-collector: no token {args.id}", file=sys.stderr)
                return 1
        elif args.command == "agent" and args.agent_command == "list":
            for a in await store.agents():
                print(
                    f"{a.id}\t{a.center}\t{a.host}\t{a.version}\tlast_seen_ms={a.last_seen_ms}\trevoked={int(a.revoked)}"
                )
        elif args.command == "agent" and args.agent_command == "revoke" and not await store.revoke_agent(args.id):
            print(f"centerwatch-collector: no agent {args.id}", file=sys.stderr)
            return 1
        return 0
    finally:
        await store.close()


def _probe_config(args: argparse.Namespace) -> int:
    import yaml

    from collector.inventory import load_inventory
    from collector.probeconfig import probe_checks

    inventory = load_inventory(args.inventory)
    center = inventory.centers.get(args.center)
    if center is None:
        print(f"centerwatch-collector: center {args.center!r} is not in {args.inventory}", file=sys.stderr)
        return 2
    print(f"# probe agent {center.probe_host} of {center.name} ({center.slug}), from {args.inventory}")
    checks = (
        probe_checks(center, snmp_credentials_file=args.snmp_credentials_file)
        if args.snmp_credentials_file
        else probe_checks(center)
    )
    print(yaml.safe_dump({"checks": checks}, allow_unicode=True, sort_keys=False), end="")
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from collector.alerting.rules import load_rules

    rules = load_rules(args.rules)
    for lr in rules.rules:
        print(f"{lr.name}\t{lr.rule.severity}\t{lr.rule.kind}\t{lr.file}")
    if args.alerting is not None:
        from collector.alerting.receivers import load_alerting

        config = load_alerting(args.alerting)
        for receiver in config.receivers:
            print(f"receiver {receiver.name}\t{receiver.type}")
    print(f"# {len(rules.rules)} rules OK", file=sys.stderr)
    return 0


def _operator(args: argparse.Namespace) -> int:
    from collector.alerting.state import AlertState

    state = AlertState(Settings(db=args.db).alerts_db)
    try:
        if args.operator_command == "add":
            token = new_token("cwo")
            state.add_operator(args.name, hash_token(token), int(time.time() * 1000))
            print(token)
            print(f"# operator {args.name}: token shown once, stored hashed", file=sys.stderr)
            return 0
        if not state.revoke_operator(args.name):
            print(f"centerwatch-collector: no operator {args.name!r}", file=sys.stderr)
            return 1
        return 0
    finally:
        state.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "rules":
            return _rules_check(args)
        if args.command == "operator":
            return _operator(args)
        if args.command == "probe-config":
            return _probe_config(args)
        return asyncio.run(_admin(args))
    except CollectorError as exc:
        print(f"centerwatch-collector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
