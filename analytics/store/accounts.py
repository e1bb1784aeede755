"""Accounts in the state database: users, passwords, API tokens, the audit log, usage counts.

The one home of these rules for the web app, the admin pages and the ops CLI:
- passwords are hashed with argon2 (argon2-cffi) and never stored, logged or returned;
- a token is 32 random bytes shown once; only its SHA-256 is stored (a token is as random as a
  key, so a fast hash is enough and a lookup by hash stays one indexed query);
- every change to a user or token writes an audit event in the same transaction, so a change
  is never without its record.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analytics.access import MANAGER, ROLES, Scope
from analytics.store.tables import ApiToken, AuditEvent, LoginSession, UsageCount, User

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes anything; a megabyte "password" is a denial of service
TOKEN_PREFIX = "rt_"
MAX_TOKEN_DAYS = 3650

_hasher = PasswordHasher()
# Checked when the account does not exist, so a wrong name costs the time of a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts cannot be done; the message says why, without secrets."""


@dataclass(frozen=True)
class UserInfo:
    """A user as the app needs one, detached from the database session."""

    id: int
    username: str
    role: str
    scope: Scope | None
    disabled: bool
    has_password: bool
    stamp: str  # changes when the password does: sessions made before a reset end

    @classmethod
    def of(cls, user: User) -> UserInfo:
        stamp = hashlib.sha256((user.password_hash or "sso").encode()).hexdigest()[:16]
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            scope=Scope.of(user.scope_column, user.scope_values),
            disabled=bool(user.disabled),
            has_password=user.password_hash is not None,
            stamp=stamp,
        )


@dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    prefix: str | None
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now():
            return "expired"
        return "active"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every time here is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# -- checks ---------------------------------------------------------------------------------


def check_username(username: str) -> str:
    name = (username or "").strip()
    if not USERNAME.match(name):
        raise AccountError(
            f"username {username!r}: 1 to 64 letters, digits or . _ @ -, starting with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_password(password: str, username: str = "") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    if username and password.strip().lower() == username.lower():
        raise AccountError("the password must not be the username")
    return password


def check_scope(role: str, scope: Scope | None) -> Scope | None:
    if scope is not None and role != MANAGER:
        raise AccountError(f"only a manager has a scope; {role} sees every customer")
    return scope


# -- users ----------------------------------------------------------------------------------


def _user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None:
        raise AccountError(f"no user named {username!r}")
    return user


def audit_in(
    session: Session, action: str, actor: str | None, target=None, address=None, **details
) -> None:
    """Add an audit event to `session`: it commits with the change it records, or not at all."""
    session.add(
        AuditEvent(
            at=now(),
            actor=actor,
            action=action,
            target=target,
            address=address,
            details=details or None,
        )
    )


def add_user(
    engine: Engine,
    username: str,
    role: str,
    password: str | None,
    *,
    scope: Scope | None = None,
    actor: str | None = None,
    address: str | None = None,
) -> UserInfo:
    """A new user; `password` None only for single sign-on users (they cannot log in here)."""
    name = check_username(username)
    check_role(role)
    check_scope(role, scope)
    hashed = None if password is None else _hasher.hash(check_password(password, name))
    with Session(engine) as session:
        user = User(
            username=name,
            role=role,
            password_hash=hashed,
            scope_column=scope.column if scope else None,
            scope_values=list(scope.values) if scope else None,
            disabled=False,
            created_at=now(),
            updated_at=now(),
        )
        session.add(user)
        audit_in(
            session,
            "user.add",
            actor,
            name,
            address,
            role=role,
            scope=str(scope) if scope else None,
        )
        try:
            session.commit()
        except IntegrityError:
            raise AccountError(f"a user named {name!r} already exists") from None
        return UserInfo.of(user)


def change_user(
    engine: Engine,
    username: str,
    *,
    role: str | None = None,
    scope: Scope | None | bool = False,
    disabled: bool | None = None,
    password: str | None = None,
    actor: str | None = None,
    address: str | None = None,
) -> UserInfo:
    """Change what is given (scope False = unchanged, None = no scope); one audit event per
    change. A disabled user's sessions and tokens stop working at their next request."""
    with Session(engine) as session:
        user = _user(session, username)
        new_role = check_role(role) if role is not None else user.role
        if scope is False:
            new_scope = Scope.of(user.scope_column, user.scope_values)
            if new_role != MANAGER:
                new_scope = None  # a scope means nothing for other roles
        else:
            new_scope = check_scope(new_role, scope)
        if new_role != user.role:
            audit_in(
                session, "user.role", actor, user.username, address, old=user.role, new=new_role
            )
            user.role = new_role
        old_scope = Scope.of(user.scope_column, user.scope_values)
        if new_scope != old_scope:
            audit_in(
                session,
                "user.scope",
                actor,
                user.username,
                address,
                old=str(old_scope) if old_scope else None,
                new=str(new_scope) if new_scope else None,
            )
            user.scope_column = new_scope.column if new_scope else None
            user.scope_values = list(new_scope.values) if new_scope else None
        if disabled is not None and bool(disabled) != bool(user.disabled):
            audit_in(
                session,
                "user.disable" if disabled else "user.enable",
                actor,
                user.username,
                address,
            )
            user.disabled = bool(disabled)
        if password is not None:
            user.password_hash = _hasher.hash(check_password(password, user.username))
            audit_in(session, "user.password", actor, user.username, address)
        user.updated_at = now()
        session.commit()
        return UserInfo.of(user)


def users(engine: Engine) -> list[UserInfo]:
    with Session(engine) as session:
        return [UserInfo.of(u) for u in session.scalars(select(User).order_by(User.username))]


def user_by_id(engine: Engine, user_id: int) -> UserInfo | None:
    with Session(engine) as session:
        user = session.get(User, user_id)
        return None if user is None else UserInfo.of(user)


def user_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def authenticate(engine: Engine, username: str, password: str) -> UserInfo | None:
    """The user if the name and password match an enabled account, else None; the same work
    either way, so timing does not tell whether the account exists."""
    name = (username or "").strip()
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.username == name)).one_or_none()
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, (password or "")[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.password_hash is None or user.disabled:
            return None
        if _hasher.check_needs_rehash(user.password_hash):  # parameters were raised since
            user.password_hash = _hasher.hash(password)
            session.commit()
        return UserInfo.of(user)


def single_sign_on(engine: Engine, username: str, role: str, address: str | None) -> UserInfo:
    """The user a trusted proxy vouches for, created on first sight with the role its groups
    give and kept in step with them (the proxy is the truth for the role; an admin sets a
    manager's scope here)."""
    name = check_username(username)
    check_role(role)
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.username == name)).one_or_none()
        if user is None:
            user = User(
                username=name, role=role, disabled=False, created_at=now(), updated_at=now()
            )
            session.add(user)
            audit_in(session, "user.add", "sso", name, address, role=role, source="proxy")
        elif user.role != role:
            audit_in(session, "user.role", "sso", name, address, old=user.role, new=role)
            user.role = role
            if role != MANAGER:
                user.scope_column = user.scope_values = None
        session.commit()
        return UserInfo.of(user)


# -- browser sessions -----------------------------------------------------------------------


def start_session(engine: Engine, user_id: int, *, keep: timedelta) -> str:
    """A new browser session for the user: its key (kept in the signed cookie), stored hashed.
    Sessions that ended, or began more than `keep` ago, are deleted on the way."""
    key = secrets.token_urlsafe(32)
    moment = now()
    with Session(engine) as session:
        session.execute(
            LoginSession.__table__.delete().where(
                (LoginSession.ended_at.is_not(None)) | (LoginSession.created_at < moment - keep)
            )
        )
        session.add(LoginSession(user_id=user_id, key_hash=_key_hash(key), created_at=moment))
        session.commit()
    return key


def session_user(engine: Engine, key: str) -> UserInfo | None:
    """The user of a browser session that has not ended, else None."""
    if not key or len(key) > 100:
        return None
    with Session(engine) as session:
        user = session.scalars(
            select(User)
            .join(LoginSession, LoginSession.user_id == User.id)
            .where(LoginSession.key_hash == _key_hash(key), LoginSession.ended_at.is_(None))
        ).one_or_none()
        return None if user is None else UserInfo.of(user)


def end_session(engine: Engine, key: str) -> bool:
    """End a browser session (logout, timeout); True if it was still open."""
    if not key:
        return False
    with Session(engine) as session:
        done = session.execute(
            update(LoginSession)
            .where(LoginSession.key_hash == _key_hash(key), LoginSession.ended_at.is_(None))
            .values(ended_at=now())
        )
        session.commit()
        return bool(done.rowcount)


# -- tokens ---------------------------------------------------------------------------------


def _key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    engine: Engine,
    username: str,
    *,
    expires_days: int | None = 90,
    label: str | None = None,
    actor: str | None = None,
    address: str | None = None,
) -> tuple[TokenInfo, str]:
    """A new token for `username`: (its record, the secret, shown this once)."""
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise AccountError(f"expires_days {expires_days}: expected 1 to {MAX_TOKEN_DAYS}")
    label = (label or "").strip()[:128] or None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as session:
        user = _user(session, username)
        if user.disabled:
            raise AccountError(f"user {username!r} is disabled")
        created = now()
        token = ApiToken(
            user_id=user.id,
            token_hash=_key_hash(secret),
            prefix=secret[:10],
            label=label,
            created_at=created,
            expires_at=created + timedelta(days=expires_days) if expires_days else None,
        )
        session.add(token)
        session.flush()
        audit_in(
            session,
            "token.create",
            actor,
            user.username,
            address,
            token_id=token.id,
            expires_days=expires_days,
            label=label,
        )
        session.commit()
        return _token_info(token, user.username), secret


def _token_info(token: ApiToken, username: str) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        username=username,
        prefix=token.prefix,
        label=token.label,
        created_at=_aware(token.created_at),
        expires_at=_aware(token.expires_at),
        revoked_at=_aware(token.revoked_at),
        last_used_at=_aware(token.last_used_at),
    )


def token_user(engine: Engine, secret: str) -> UserInfo | None:
    """The enabled user an active token belongs to, else None (unknown, expired, revoked)."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    with Session(engine) as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == _key_hash(secret))
        ).one_or_none()
        if row is None:
            return None
        token, user = row
        moment = now()
        if token.revoked_at is not None or user.disabled:
            return None
        if token.expires_at is not None and _aware(token.expires_at) <= moment:
            return None
        last = _aware(token.last_used_at)
        if last is None or moment - last > timedelta(minutes=5):  # not a write per request
            token.last_used_at = moment
            session.commit()
        return UserInfo.of(user)


def revoke_token(
    engine: Engine, token_id: int, *, actor: str | None = None, address: str | None = None
) -> TokenInfo:
    with Session(engine) as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.id == token_id)
        ).one_or_none()
        if row is None:
            raise AccountError(f"no token with id {token_id}")
        token, user = row
        if token.revoked_at is None:
            token.revoked_at = now()
            audit_in(session, "token.revoke", actor, user.username, address, token_id=token.id)
            session.commit()
        return _token_info(token, user.username)


def tokens(engine: Engine, username: str | None = None) -> list[TokenInfo]:
    with Session(engine) as session:
        query = select(ApiToken, User.username).join(User, ApiToken.user_id == User.id)
        if username is not None:
            query = query.where(User.username == username)
        rows = session.execute(query.order_by(ApiToken.id.desc())).all()
        return [_token_info(t, name) for t, name in rows]


# -- audit log and usage ---------------------------------------------------------------------


def record(
    engine: Engine,
    action: str,
    actor: str | None,
    target: str | None = None,
    address: str | None = None,
    **details,
) -> None:
    with Session(engine) as session:
        audit_in(session, action, actor, target, address, **details)
        session.commit()


def events(engine: Engine, limit: int = 100, actions: Sequence[str] = ()) -> list[dict]:
    """The newest `limit` audit events, newest first."""
    with Session(engine) as session:
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if actions:
            query = query.where(AuditEvent.action.in_(list(actions)))
        return [
            {
                "id": e.id,
                "at": _aware(e.at).isoformat(timespec="seconds"),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "address": e.address,
                "details": e.details or {},
            }
            for e in session.scalars(query)
        ]


def count_use(engine: Engine, username: str, action: str, n: int = 1) -> None:
    """Add `n` to today's count of `action` by `username` (one row per day, user and action)."""
    today = now().date()
    key = {"day": today, "username": username, "action": action}
    with Session(engine) as session:
        done = session.execute(
            update(UsageCount)
            .where(*(getattr(UsageCount, k) == v for k, v in key.items()))
            .values(count=UsageCount.count + n)
        )
        if done.rowcount == 0:
            session.add(UsageCount(**key, count=n))
        try:
            session.commit()
        except IntegrityError:  # another worker added today's row first: add to it
            session.rollback()
            session.execute(
                update(UsageCount)
                .where(*(getattr(UsageCount, k) == v for k, v in key.items()))
                .values(count=UsageCount.count + n)
            )
            session.commit()


def usage(engine: Engine, since: date | None = None) -> list[dict]:
    with Session(engine) as session:
        query = select(UsageCount).order_by(UsageCount.day.desc(), UsageCount.username)
        if since is not None:
            query = query.where(UsageCount.day >= since)
        return [
            {"day": u.day.isoformat(), "username": u.username, "action": u.action, "count": u.count}
            for u in session.scalars(query)
        ]
