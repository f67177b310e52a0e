"""Dead letters from the command line, over the gateway's admin API (`make dlq ARGS=...`).

    python -m shopkit.dlq list [--service order]        # every service's when none is named
    python -m shopkit.dlq show ID [--service order]
    python -m shopkit.dlq redrive ID [--service order]
    python -m shopkit.dlq redrive --all --service order

It logs in as `--email` (admin@shop.local) with the password in SHOP_ADMIN_PASSWORD, else the
one `make dev` made (.local/secrets/shop.env), else asks for it. `--url` is the gateway (SHOP_GATEWAY_URL, else http://127.0.0.1:$SHOP_GATEWAY_PORT).
"""

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from shopkit.local_secrets import ADMIN_PASSWORD, read, secrets_file

SERVICES = ("wallet", "catalog", "order", "coupon", "payment", "analytics")
COLUMNS = ("service", "id", "dead_at", "topic", "partition", "offset", "type", "attempts", "error")


class Failed(Exception):
    """The API refused: its problem, to print."""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    port = os.environ.get("SHOP_GATEWAY_PORT", "8000")
    common.add_argument(
        "--url", default=os.environ.get("SHOP_GATEWAY_URL", f"http://127.0.0.1:{port}")
    )
    common.add_argument("--email", default="admin@shop.local")
    common.add_argument("--service", choices=SERVICES, help="default: every service")
    top = argparse.ArgumentParser(prog="python -m shopkit.dlq", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="DEAD letters, oldest first (a table)")
    show = commands.add_parser("show", parents=[common], help="one letter (JSON)")
    show.add_argument("id")
    redrive = commands.add_parser("redrive", parents=[common], help="send letters back")
    redrive.add_argument("id", nargs="?")
    redrive.add_argument("--all", action="store_true", help="every DEAD letter of --service")
    return top


async def run(
    argv: list[str], *, transport: httpx.AsyncBaseTransport | None = None, out: TextIO | None = None
) -> int:
    """Run one command; the exit status (0 done, 1 refused or not found)."""
    out = out or sys.stdout
    args = parser().parse_args(argv)
    if args.command == "redrive" and bool(args.all) == bool(args.id):
        print("redrive takes either an ID or --all --service S", file=sys.stderr)
        return 2
    if args.command == "redrive" and args.all and not args.service:
        print("redrive --all needs --service", file=sys.stderr)
        return 2
    async with httpx.AsyncClient(base_url=args.url, transport=transport, timeout=60) as client:
        try:
            client.headers["Authorization"] = f"Bearer {await login(client, args.email)}"
            if args.command == "list":
                letters = await list_letters(client, [args.service] if args.service else SERVICES)
                print_table(letters, out)
            elif args.command == "show":
                service, letter = await find(client, args.id, args.service)
                print(json.dumps({"service": service, **letter}, indent=2), file=out)
            elif args.all:
                answer = await call(client, "POST", f"/api/ops/{args.service}/dead-letters/redrive")
                print(json.dumps(answer, indent=2), file=out)
            else:
                service, _ = await find(client, args.id, args.service)
                path = f"/api/ops/{service}/dead-letters/{args.id}/redrive"
                print(json.dumps(await call(client, "POST", path), indent=2), file=out)
        except Failed as failed:
            print(str(failed), file=sys.stderr)
            return 1
    return 0


def _local_admin_password() -> str | None:
    file = secrets_file(Path(os.environ.get("SHOP_LOCAL_DIR", ".local")))
    return read(file).get(ADMIN_PASSWORD) if file.exists() else None


async def login(client: httpx.AsyncClient, email: str) -> str:
    password = os.environ.get(ADMIN_PASSWORD) or _local_admin_password()
    password = password or getpass.getpass(f"password of {email}: ")
    token = await call(client, "POST", "/api/auth/login", {"email": email, "password": password})
    return str(token["access_token"])


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    response = await client.request(method, path, json=body, params=params)
    if response.status_code >= 400:
        raise Failed(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


async def list_letters(client: httpx.AsyncClient, services: Any) -> list[dict[str, Any]]:
    """Every DEAD letter of `services`, following the pages."""
    found = []
    for service in services:
        cursor = None
        while True:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = await call(client, "GET", f"/api/ops/{service}/dead-letters", params=params)
            found += [{"service": service, **letter} for letter in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
    return found


async def find(
    client: httpx.AsyncClient, letter_id: str, service: str | None
) -> tuple[str, dict[str, Any]]:
    """The service holding the letter, and the letter."""
    for candidate in [service] if service else SERVICES:
        response = await client.get(f"/api/ops/{candidate}/dead-letters/{letter_id}")
        if response.status_code == 200:
            return candidate, response.json()
        if response.status_code != 404:
            raise Failed(f"GET {candidate}: {response.status_code} {response.text}")
    raise Failed(f"no dead letter {letter_id} in {service or 'any service'}")


def print_table(letters: list[dict[str, Any]], out: TextIO) -> None:
    rows = [[_cell(letter.get(c)) for c in COLUMNS] for letter in letters]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)]
    for row in [list(COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)
    print(f"{len(letters)} dead letter(s)", file=out)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
