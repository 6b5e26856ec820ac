"""``centerwatch-agent``: run, once, enroll, check-config, snmp-discover."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

from agent.config import AgentConfig, check_specs, load_config, parse_config
from agent.errors import AgentError, ConfigError
from agent.identity import IdentityFile, enroll
from centerwatch.i18n import DEFAULT_LANG, LANGS, t

if TYPE_CHECKING:
    from agent.snmp.client import Credentials

#: where ``snmp-discover --v3-user`` takes the keys from (never from the command line)
AUTH_KEY_ENV = "CENTERWATCH_SNMP_AUTH_KEY"
PRIV_KEY_ENV = "CENTERWATCH_SNMP_PRIV_KEY"


def _env_lang() -> str:
    lang = os.environ.get("CENTERWATCH_LANG", DEFAULT_LANG)
    return lang if lang in LANGS else DEFAULT_LANG


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
    _discover_parser(sub)
    return p


def _discover_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lang = _env_lang()

    def h(key: str) -> str:
        return t(f"snmp_discover.help.{key}", lang, auth_env=AUTH_KEY_ENV, priv_env=PRIV_KEY_ENV)

    d = sub.add_parser("snmp-discover", help=h("command"), description=h("command"))
    d.add_argument("--subnet", required=True, help=h("subnet"))
    d.add_argument("--credential", required=True, metavar="NAME", help=h("credential"))
    d.add_argument("--credentials-file", type=Path, metavar="FILE", help=h("credentials_file"))
    d.add_argument("--community", help=h("community"))
    d.add_argument("--v3-user", metavar="USER", help=h("v3_user"))
    d.add_argument("--auth-protocol", choices=("SHA", "SHA-256"), default="SHA", help=h("auth_protocol"))
    d.add_argument("--priv-protocol", choices=("AES", "AES-256", "AES-256-C"), default="AES", help=h("priv_protocol"))
    d.add_argument("--port", type=int, default=161, help=h("port"))
    d.add_argument("--timeout", type=float, default=1.0, metavar="SECONDS", help=h("timeout"))
    d.add_argument("--retries", type=int, default=1, help=h("retries"))
    d.add_argument("--concurrency", type=int, default=64, help=h("concurrency"))
    d.add_argument("--center", metavar="SLUG", help=h("center"))
    d.add_argument("--profiles-dir", metavar="DIR", help=h("profiles_dir"))
    d.add_argument("--lang", choices=LANGS, default=lang, help=h("lang"))


def _discover_credentials(args: argparse.Namespace) -> Credentials:
    from agent.snmp.client import V3, Secret, V2c
    from agent.snmp.credentials import NAME_RE, load_credentials
    from agent.snmp.discover import DiscoverError

    lang = args.lang
    if not NAME_RE.match(args.credential):
        raise DiscoverError(t("snmp_discover.bad_credential", lang, name=args.credential))
    sources = [s for s in (args.credentials_file, args.community, args.v3_user) if s]
    if len(sources) != 1:
        raise DiscoverError(t("snmp_discover.no_source", lang))
    if args.credentials_file:
        store = load_credentials(args.credentials_file)
        found = store.get(args.credential)
        if found is None:
            known = ", ".join(sorted(store)) or "-"
            where = args.credentials_file
            message = t("snmp_discover.credential_missing", lang, name=args.credential, file=where, known=known)
            raise DiscoverError(message)
        return found
    if args.community:
        return V2c(Secret(args.community))
    auth, priv = os.environ.get(AUTH_KEY_ENV, ""), os.environ.get(PRIV_KEY_ENV, "")
    if len(auth) < 8 or len(priv) < 8:
        raise DiscoverError(t("snmp_discover.v3_keys", lang, auth_env=AUTH_KEY_ENV, priv_env=PRIV_KEY_ENV))
    return V3(args.v3_user, Secret(auth), Secret(priv), args.auth_protocol, args.priv_protocol)


def _snmp_discover(args: argparse.Namespace) -> int:
    """Scan, report on stderr (progress, hosts, summary), the inventory snippet on stdout. Exit 0
    when at least one usable device answered, 1 when none did, 2 on a usage error."""
    from agent.snmp import discover as d
    from agent.snmp.credentials import version_of
    from agent.snmp.profiles import load_profiles

    lang = args.lang
    try:
        for option, value, low, high in (
            ("--port", args.port, 1, 65535),
            ("--timeout", args.timeout, 0.05, 30),
            ("--retries", args.retries, 0, 5),
            ("--concurrency", args.concurrency, 1, 256),
        ):
            if not low <= value <= high:
                raise d.DiscoverError(t("snmp_discover.bad_option", lang, option=option, low=low, high=high))
        if args.center is not None and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", args.center):
            raise d.DiscoverError(t("snmp_discover.bad_center", lang, center=args.center))
        network, hosts = d.subnet_hosts(args.subnet, lang)
        credentials = _discover_credentials(args)
        profiles = load_profiles(args.profiles_dir or None)
    except AgentError as exc:
        print(t("snmp_discover.error_prefix", lang, error=exc), file=sys.stderr)
        return 2
    version = version_of(credentials)
    print(
        t("snmp_discover.scanning", lang, version=version, count=len(hosts), subnet=network, port=args.port,
          credential=args.credential),
        file=sys.stderr,
    )  # fmt: skip
    progress = d.Progress(sys.stderr, len(hosts), lang)
    try:
        answers = asyncio.run(
            d.discover(
                hosts,
                args.port,
                credentials,
                timeout_s=args.timeout,
                retries=args.retries,
                concurrency=args.concurrency,
                on_done=lambda answer: progress.update(answer is not None),
                lang=lang,
            )
        )
    except AgentError as exc:
        print("\n" + t("snmp_discover.error_prefix", lang, error=exc), file=sys.stderr)
        return 2
    found = d.identify(answers, profiles, args.center)
    sys.stderr.write(d.report(found, answers, len(hosts), lang))
    sys.stdout.write(d.snippet(found, str(network), len(hosts), version, args.credential, lang))
    sys.stdout.flush()
    return 0 if found else 1


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
    if args.command == "snmp-discover":
        return _snmp_discover(args)
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
