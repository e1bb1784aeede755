"""`python -m dashboard users|tokens ...`: accounts for ops, scriptable.

    users add NAME --role admin|analyst|manager [--scope COLUMN=V1,V2]
    users list
    users disable NAME | users enable NAME
    users set-password NAME
    tokens create NAME [--expires-days N] [--label TEXT]   (the token alone on the last line)
    tokens list [NAME]
    tokens revoke ID

A password comes from RETENTION_NEW_PASSWORD or a prompt (twice), never from a flag: flags end
up in shell history and process lists. Every change is in the audit log, by "cli:<os user>".
Errors are one line on stderr and exit status 1 (2 for a wrong command line).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from analytics import access
from analytics.config import ConfigError, serve_settings_from_env
from analytics.store import accounts, db

PASSWORD_VARIABLE = "RETENTION_NEW_PASSWORD"


class CliError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dashboard", description="Accounts and API tokens (the state database)."
    )
    groups = p.add_subparsers(dest="group", required=True)

    users = groups.add_parser("users", help="user accounts").add_subparsers(
        dest="action", required=True
    )
    add = users.add_parser("add", help="add a user (password: RETENTION_NEW_PASSWORD or prompt)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=access.ROLES)
    add.add_argument("--scope", metavar="COLUMN=V1,V2", help="a manager's customers")
    users.add_parser("list", help="every user, role, scope and state")
    for action, text in (("disable", "stop a user's logins and tokens"), ("enable", "undo")):
        users.add_parser(action, help=text).add_argument("name")
    users.add_parser("set-password", help="a new password (ends the user's sessions)").add_argument(
        "name"
    )

    tokens = groups.add_parser("tokens", help="personal API tokens").add_subparsers(
        dest="action", required=True
    )
    create = tokens.add_parser("create", help="a new token, printed alone on the last line")
    create.add_argument("name")
    create.add_argument("--expires-days", type=int, default=90, help="1 to 3650 (default 90)")
    create.add_argument("--label", help="what the token is for")
    listing = tokens.add_parser("list", help="tokens (never their secrets)")
    listing.add_argument("name", nargs="?")
    tokens.add_parser("revoke", help="revoke a token by id").add_argument("id", type=int)
    return p


def new_password() -> str:
    given = os.environ.get(PASSWORD_VARIABLE)
    if given:
        return given
    if not sys.stdin.isatty():
        raise CliError(f"no password: set {PASSWORD_VARIABLE} or run in a terminal to be asked")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise CliError("the two passwords differ")
    return first


def _engine():
    config = serve_settings_from_env()
    url = db.database_url(config.state_dir, config.database_url)
    engine, _ = db.open_state(url)
    return engine


def _actor() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"cli:{who}"


def run(args) -> None:
    engine = _engine()
    actor = _actor()
    if args.group == "users":
        if args.action == "add":
            scope = access.Scope.parse(args.scope) if args.scope else None
            accounts.check_username(args.name)
            accounts.check_scope(args.role, scope)
            made = accounts.add_user(
                engine, args.name, args.role, new_password(), scope=scope, actor=actor
            )
            print(f"added {made.username} ({made.role}{', ' + str(scope) if scope else ''})")
        elif args.action == "list":
            rows = accounts.users(engine)
            print(f"{'user':<24} {'role':<8} {'state':<9} scope")
            for u in rows:
                state = "disabled" if u.disabled else "active"
                print(f"{u.username:<24} {u.role:<8} {state:<9} {u.scope or ''}")
        elif args.action in ("disable", "enable"):
            accounts.change_user(engine, args.name, disabled=args.action == "disable", actor=actor)
            print(f"{args.action}d {args.name}")
        elif args.action == "set-password":
            names = {u.username for u in accounts.users(engine)}
            if args.name not in names:
                raise accounts.AccountError(f"no user named {args.name!r}")
            accounts.change_user(engine, args.name, password=new_password(), actor=actor)
            print(f"new password set for {args.name}; their sessions have ended")
    else:
        if args.action == "create":
            info, secret = accounts.create_token(
                engine, args.name, expires_days=args.expires_days, label=args.label, actor=actor
            )
            until = info.expires_at.strftime("%Y-%m-%d") if info.expires_at else "never"
            print(f"token {info.id} for {info.username}, expires {until}; shown this once:")
            print(secret)
        elif args.action == "list":
            print(f"{'id':>4} {'user':<20} {'starts':<12} {'status':<8} {'expires':<10} label")
            for t in accounts.tokens(engine, args.name):
                until = t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never"
                print(
                    f"{t.id:>4} {t.username:<20} {t.prefix or '':<12} {t.status:<8} "
                    f"{until:<10} {t.label or ''}"
                )
        elif args.action == "revoke":
            info = accounts.revoke_token(engine, args.id, actor=actor)
            print(f"revoked token {info.id} of {info.username}")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (
        accounts.AccountError,
        access.ScopeError,
        CliError,
        ConfigError,
        db.StateError,
        OSError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
