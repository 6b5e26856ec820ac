"""``centerwatch-agent``: run, once, enroll, check-config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import httpx
import msgspec

from agent.config import AgentConfig, check_specs, load_config, parse_config
from agent.errors import AgentError, ConfigError
from agent.identity import IdentityFile, enroll


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="centerwatch-agent", description="CenterWatch agent")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run checks on schedule and upload to the collector")
    run.add_argument("-c", "--config", type=Path, required=True, help="agent YAML configuration")
    once = sub.add_parser("once", help="run every enabled check once and print the results as JSON")
    once.add_argument("-c", "--config", type=Path, help="agent YAML (default: the host check only)")
    once.add_argument(
        "--check", action="append", default=[], metavar="NAME",
        help="run only this check (repeatable), e.g. --check traceroute for a path trace on demand",
    )  # fmt: skip
    en = sub.add_parser("enroll", help="exchange the enrollment token for this agent's identity")
    en.add_argument("-c", "--config", type=Path, required=True)
    en.add_argument("--hostname", help="name to enroll under (default: this machine's hostname)")
    cc = sub.add_parser("check-config", help="validate a configuration file and exit")
    cc.add_argument("-c", "--config", type=Path, required=True)
    return p


async def _once(config: AgentConfig, source: str, only: list[str]) -> int:
    from agent.runtime import load_modules
    from agent.scheduler import run_once

    specs = check_specs(config, source)
    if only:
        unknown = sorted(set(only) - {spec.name for spec in specs})
        if unknown:
            enabled = ", ".join(spec.name for spec in specs)
            raise ConfigError(source, "checks", f"{', '.join(unknown)} not enabled here; enabled: {enabled}")
        specs = [spec for spec in specs if spec.name in only]
    modules = load_modules(specs)
    results = [await run_once(spec, modules[spec.name]) for spec in specs]
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode([r.body for r in results]), indent=2))
    sys.stdout.write("\n")
    return 0 if all(r.body.ok for r in results) else 1


async def _enroll(config: AgentConfig, hostname: str | None) -> int:
    async with httpx.AsyncClient(timeout=config.upload.timeout_s) as client:
        identity = await enroll(client, config.collector_url, config.enrollment_token, hostname)
    IdentityFile(Path(config.data_dir) / "identity.json").save(identity)
    print(f"enrolled: agent {identity.agent_id}, center {identity.center}, host {identity.host}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.command == "once":
            if args.config:
                config, source = load_config(args.config), str(args.config)
            else:
                config, source = (
                    parse_config({"collector_url": "http://127.0.0.1", "data_dir": "."}, "defaults"),
                    "defaults",
                )
            return asyncio.run(_once(config, source, args.check))
        config = load_config(args.config)
        if args.command == "check-config":
            check_specs(config, str(args.config))
            print(f"{args.config}: ok")
            return 0
        if args.command == "enroll":
            return asyncio.run(_enroll(config, args.hostname))
        from agent.runtime import run_agent

        asyncio.run(run_agent(config, str(args.config)))
        return 0
    except AgentError as exc:
        print(f"centerwatch-agent: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
