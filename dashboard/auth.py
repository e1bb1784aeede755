"""Who is asking: login, sessions, API tokens, single sign-on, and the guard every request passes.

Every request but health, the login page and the static assets must carry a user: a session
cookie (from /login), an `Authorization: Bearer` token, or, with RETENTION_AUTH=proxy, the user
and groups headers of a trusted reverse proxy. Without one, pages redirect to /login and
everything else (the API, Dash's /_dash-* routes) answers 401. The guard then sets the request's
scope (analytics.access) so every selection is cut to a manager's book, and refuses a scope that
selects nobody in the loaded data.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure when the request came over
TLS) naming a session row in the state database, and end after RETENTION_SESSION_IDLE_MINUTES
without a request, RETENTION_SESSION_MAX_HOURS after login, or at logout (the row is ended, so
a copied cookie, or one that a response still in flight sets again, no longer works).
A cookie-authenticated state change needs a CSRF token (Flask-WTF): the forms carry it in a
hidden field, Dash's renderer sends the `_csrf_token` cookie back as the X-CSRFToken header on
every callback (its built-in double submit), and a token-authenticated request needs none (no
cookie, no CSRF). Wrong passwords are limited per
account and per address by Flask-Limiter (429 with Retry-After), with one message whether the
account exists or not.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_login import current_user as session_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from sqlalchemy import Engine
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from analytics import access
from analytics.config import ServeSettings
from analytics.store import accounts

log = logging.getLogger("dashboard.auth")

STATE_DB = "retention_state_db"  # server.extensions key of the state database's engine
AUTH = "retention_auth"  # server.extensions key of the AuthConfig
CSRF_COOKIE = "_csrf_token"  # the cookie Dash's renderer echoes as X-CSRFToken
SESSION_COOKIE = "retention_session"
SESSION_KEY = "key"  # the server-side session's key inside the signed cookie
LOGIN_WINDOW = "15 minutes"
TEMPLATES = Path(__file__).with_name("templates")

# Reachable without a user: health (load balancers), the login page, the stylesheets it uses.
PUBLIC_PATHS = ("/api/v1/health", "/login", "/_favicon.ico")
PUBLIC_PREFIXES = ("/assets/",)
# Answers that carry customer data, a user's layout or a new token: never stored by a browser or
# a proxy (the component files and assets stay cacheable).
PRIVATE_PREFIXES = (
    "/admin",
    "/login",
    "/api/",
    "/_dash-layout",
    "/_dash-dependencies",
    "/_dash-update-component",
)
# Pages a browser opens: without a user they redirect to /login instead of answering 401.
PAGE_PREFIXES = ("/admin",)
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

csrf = CSRFProtect()


class AuthSetupError(ValueError):
    """The server cannot start with these settings (one line for `cannot start:`)."""


@dataclass(frozen=True)
class AuthConfig:
    secret_key: str
    mode: str  # "password" or "proxy"
    trusted: tuple
    user_header: str
    groups_header: str
    group_roles: tuple[tuple[str, str], ...]
    idle: timedelta
    absolute: timedelta
    login_attempts: int
    storage: str

    @classmethod
    def from_settings(cls, config: ServeSettings, secret_key: str | None = None) -> AuthConfig:
        key = secret_key or config.secret_key
        if not key:
            raise AuthSetupError(
                "RETENTION_SECRET_KEY is not set: give it 32 or more random characters "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if config.auth == "proxy" and not config.trusted_proxies.strip():
            raise AuthSetupError(
                "RETENTION_AUTH=proxy needs RETENTION_TRUSTED_PROXIES (the proxy's addresses)"
            )
        return cls(
            secret_key=key,
            mode=config.auth,
            trusted=networks(config.trusted_proxies),
            user_header=config.proxy_user_header,
            groups_header=config.proxy_groups_header,
            group_roles=group_roles(config.proxy_roles),
            idle=timedelta(minutes=config.session_idle_minutes),
            absolute=timedelta(hours=config.session_max_hours),
            login_attempts=config.login_attempts,
            storage=config.ratelimit_storage,
        )

    @classmethod
    def for_tests(cls, **changes) -> AuthConfig:
        base = cls.from_settings(ServeSettings(), secrets.token_urlsafe(48))
        return cls(**{**base.__dict__, **changes})


def networks(text: str) -> tuple:
    parts = (p.strip() for p in (text or "").split(","))
    return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)


def group_roles(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        group, _, role = part.rpartition("=")
        pairs.append((group.strip(), role.strip()))
    return tuple(pairs)


# -- the current user ------------------------------------------------------------------------


class SessionUser(UserMixin):
    """Flask-Login's view of a user: its id carries the password stamp, so a password reset
    ends the sessions made before it."""

    def __init__(self, info: accounts.UserInfo) -> None:
        self.info = info

    def get_id(self) -> str:
        return f"{self.info.id}:{self.info.stamp}"

    @property
    def is_active(self) -> bool:
        return not self.info.disabled


def config() -> AuthConfig:
    return current_app.extensions[AUTH]


def state() -> Engine:
    return current_app.extensions[STATE_DB]


def user() -> accounts.UserInfo | None:
    """The request's user (set by the guard), None outside a request or without one."""
    return g.get("user") if _in_request() else None


def _in_request() -> bool:
    from flask import has_request_context

    return has_request_context()


def actor() -> str | None:
    found = user()
    return found.username if found else None


def audit(action: str, target: str | None = None, **details) -> None:
    """Record what the request's user did in the audit log."""
    accounts.record(state(), action, actor(), target, client_address(), **details)


def audit_export(what: str, query: str | None, rows: int, **details) -> None:
    """An export in the audit log: who, which list, which filters (and scope), how many rows."""
    found = user()
    if found is None:  # not a user's request (a test calling the function directly)
        return
    scope = str(found.scope) if found.role == access.MANAGER and found.scope else None
    audit("export", what, filters=query or "", scope=scope, rows=int(rows), **details)


def count(action: str, n: int = 1) -> None:
    """Count a call (predictions are counted per day and user, not logged one by one)."""
    found = user()
    if found is not None and n > 0:
        accounts.count_use(state(), found.username, action, n)


def client_address() -> str:
    """The client's address: the connection's, or, from a trusted proxy, the last address in
    X-Forwarded-For that is not itself a trusted proxy."""
    remote = request.remote_addr or ""
    trusted = current_app.extensions[AUTH].trusted if AUTH in current_app.extensions else ()
    if not _trusted(remote, trusted):
        if "X-Forwarded-For" in request.headers and not _warned_forwarded:
            # Behind a proxy that is not trusted, every client has the proxy's address: the
            # per-address login limit then counts everyone together.
            _warned_forwarded.append(remote)
            log.warning(
                "X-Forwarded-For from %s, which is not in RETENTION_TRUSTED_PROXIES: clients "
                "are counted by that address",
                remote,
            )
        return remote
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else remote


_warned_forwarded: list[str] = []  # said once per process


def _trusted(address: str, trusted) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def over_tls() -> bool:
    if request.is_secure:
        return True
    from_proxy = _trusted(request.remote_addr or "", config().trusted)
    return from_proxy and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, Secure whenever the request came over TLS."""

    def get_cookie_secure(self, app) -> bool:
        return _in_request() and over_tls()


# -- identifying the user --------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def _from_token() -> accounts.UserInfo | Refusal | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        return Refusal(401, "Authorization must be 'Bearer <token>'")
    found = accounts.token_user(state(), secret.strip())
    if found is None:
        return Refusal(401, "the token is unknown, expired or revoked, or its user is disabled")
    return found


def _from_proxy() -> accounts.UserInfo | Refusal | None:
    cfg = config()
    name = request.headers.get(cfg.user_header, "").strip()
    if not name:
        return None
    if not _trusted(request.remote_addr or "", cfg.trusted):
        log.warning("ignored %s from untrusted address %s", cfg.user_header, request.remote_addr)
        return None
    groups = {x.strip() for x in request.headers.get(cfg.groups_header, "").split(",")}
    role = next((r for grp, r in cfg.group_roles if grp in groups), None)
    if role is None:
        return Refusal(403, f"none of your groups gives a role here (user {name})")
    try:
        found = accounts.single_sign_on(state(), name, role, client_address())
    except accounts.AccountError as exc:
        return Refusal(403, str(exc))
    if found.disabled:
        return Refusal(403, f"user {name} is disabled")
    return found


def _from_session() -> accounts.UserInfo | None:
    if not session_user.is_authenticated:
        return None
    cfg, now = config(), time.time()
    login_at, seen_at = session.get("login_at", 0), session.get("seen_at", 0)
    if now - login_at > cfg.absolute.total_seconds() or now - seen_at > cfg.idle.total_seconds():
        g.session_ended = True
        accounts.end_session(state(), session.get(SESSION_KEY, ""))
        logout_user()
        session.clear()
        return None
    if now - seen_at > 30:  # a new cookie at most every 30 s, not on every callback
        session["seen_at"] = now
    return session_user.info


def _load_user(user_id: str) -> SessionUser | None:
    """The session's user while its server-side session is open (logout ends it there, so a
    cookie a late response sets again is refused)."""
    number, _, stamp = (user_id or "").partition(":")
    if not number.isdigit():
        return None
    found = accounts.session_user(state(), session.get(SESSION_KEY, ""))
    if found is None or found.id != int(number) or found.disabled or found.stamp != stamp:
        return None
    return SessionUser(found)


def _is_page(path: str) -> bool:
    return path == "/" or path.startswith(PAGE_PREFIXES)


def json_response(body: dict, status: int, headers: dict | None = None):
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def unauthenticated():
    if _is_page(request.path):
        target = request.full_path if request.query_string else request.path
        expired = {"expired": 1} if g.get("session_ended") else {}
        return redirect(url_for("auth.login", next=target, **expired))
    message = (
        "your session has ended: log in again at /login"
        if g.get("session_ended")
        else "authentication required: log in at /login or send 'Authorization: Bearer <token>'"
    )
    return json_response({"error": message}, 401, {"WWW-Authenticate": 'Bearer realm="retention"'})


def refused(status: int, message: str):
    return json_response({"error": message}, status)


def forbidden(right: str):
    """403 naming the role needed (and the user's)."""
    found = user()
    yours = f"; you are {found.role}" if found else ""
    return json_response(
        {
            "error": f"forbidden: {access.RIGHT_NAMES[right]} needs {access.needed(right)}{yours}",
            "required_roles": list(access.RIGHTS[right]),
        },
        403,
    )


# -- login and logout ------------------------------------------------------------------------


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD)]
    )


class LogoutForm(FlaskForm):
    pass


WRONG = "Wrong username or password."  # the same whether the account exists or not


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //evil.example): no open redirect."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _account_key() -> str:
    return "account:" + (request.form.get("username") or "").strip().lower()[:64]


def _failed(response) -> bool:
    return response.status_code != 302


def _login_limits():
    n = config().login_attempts
    return f"{n} per {LOGIN_WINDOW}"


def _address_limits():
    return f"{4 * config().login_attempts} per {LOGIN_WINDOW}"


def _login_page(form, error=None, status=200, notice=None):
    cfg = config()
    return (
        render_template(
            "login.html",
            form=form,
            error=error,
            notice=notice,
            proxy=cfg.mode == "proxy",
        ),
        status,
    )


def _register_login(server: Flask, cfg: AuthConfig) -> None:
    from flask import Blueprint

    # One limiter per app: its counts are this app's (memory: per worker process).
    limiter = Limiter(
        key_func=client_address,
        app=server,
        storage_uri=cfg.storage,
        headers_enabled=True,
        default_limits=[],
    )
    bp = Blueprint("auth", __name__, template_folder=str(TEMPLATES))

    @bp.route("/login", methods=["GET", "POST"])
    @limiter.limit(_login_limits, key_func=_account_key, deduct_when=_failed, methods=["POST"])
    @limiter.limit(_address_limits, deduct_when=_failed, methods=["POST"])
    def login():
        form = LoginForm()
        notice = None
        if request.args.get("expired"):
            notice = "Your session has ended. Log in again."
        if request.method == "GET":
            return _login_page(form, notice=notice)
        if config().mode == "proxy":
            return _login_page(form, "Log in through your organisation's sign-in.", 400)
        if not form.validate_on_submit():
            return _login_page(form, "Enter a username and a password.", 400)
        name = form.username.data.strip()
        found = accounts.authenticate(state(), name, form.password.data)
        if found is None:
            accounts.record(state(), "login.failed", None, name[:64], client_address())
            return _login_page(form, WRONG, 401)
        session.clear()  # a new session: no fixation
        login_user(SessionUser(found))
        session[SESSION_KEY] = accounts.start_session(state(), found.id, keep=config().absolute)
        session.permanent = True
        session["login_at"] = session["seen_at"] = time.time()
        accounts.record(state(), "login", found.username, found.username, client_address())
        log.info("login: %s (%s)", found.username, found.role)
        return redirect(_safe_next(request.args.get("next")))

    @bp.post("/logout")
    def logout():
        who = actor()
        accounts.end_session(state(), session.get(SESSION_KEY, ""))
        logout_user()
        session.clear()
        if who:
            accounts.record(state(), "logout", who, who, client_address())
        return redirect(url_for("auth.login"))

    server.register_blueprint(bp)

    @server.errorhandler(RateLimitExceeded)
    def _too_many(exc):
        current = limiter.current_limit
        wait = current.reset_at - time.time() if current is not None else 15 * 60
        minutes = max(1, math.ceil(wait / 60))
        text = f"Too many attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
        if request.path == "/login":
            body, status = _login_page(LoginForm(), text, 429)
            response = current_app.make_response((body, status))
        else:
            response = json_response({"error": text}, 429)
        return response

    @server.errorhandler(CSRFError)
    def _csrf_error(exc):
        if request.path == "/login":
            return _login_page(LoginForm(), "The form had expired. Please try again.", 400)
        return json_response({"error": f"CSRF check failed: {exc.description}"}, 400)


# -- the guard -------------------------------------------------------------------------------


def install(server: Flask, engine: Engine, cfg: AuthConfig, *, dash_rights=None) -> None:
    """Sessions, login, CSRF, rate limits and the guard on `server`. `dash_rights(user, body)`
    returns the right a Dash callback request needs beyond the views (None: none)."""
    server.secret_key = cfg.secret_key
    server.session_interface = _SessionInterface()
    server.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=cfg.absolute,
        WTF_CSRF_CHECK_DEFAULT=False,  # the guard decides which requests need it
        WTF_CSRF_TIME_LIMIT=int(cfg.absolute.total_seconds()),
    )
    server.extensions[STATE_DB] = engine
    server.extensions[AUTH] = cfg
    server.template_folder = str(TEMPLATES)
    manager = LoginManager()
    manager.user_loader(_load_user)
    manager.session_protection = "basic"
    manager.init_app(server)
    csrf.init_app(server)
    _register_login(server, cfg)
    server.context_processor(lambda: {"user": user()})

    @server.before_request
    def _guard():
        path = request.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            if path == "/login" and request.method == "POST":
                csrf.protect()
            return None
        found = _from_token()
        g.by_token = found is not None
        if found is None and cfg.mode == "proxy":
            found = _from_proxy()  # a browser behind the proxy: its cookies are ambient too
        if found is None:
            found = _from_session()
        if isinstance(found, Refusal):
            return refused(found.status, found.message)
        if found is None:
            return unauthenticated()
        g.user = found
        if _admin_only(path) and not access.allowed(found.role, access.ADMINISTER):
            # Before CSRF, which reads a form's body: a non-admin's upload is refused unread.
            return forbidden(access.ADMINISTER)
        if not g.by_token and request.method in UNSAFE:
            csrf.protect()  # raises CSRFError (400) without a valid token
        problem = _scope_problem(found)
        if problem:
            return refused(403, problem)
        g.scope_token = access.enter(found.scope if found.role == access.MANAGER else None)
        if dash_rights is not None and path.startswith("/_dash-update-component"):
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return refused(400, "a callback request is a JSON object")
            right = dash_rights(found, body)
            if right is not None and not access.allowed(found.role, right):
                return forbidden(right)
        return None

    @server.teardown_request
    def _leave_scope(_exc=None):
        token = g.pop("scope_token", None)
        if token is not None:
            access.leave(token)

    @server.after_request
    def _csrf_cookie(response):
        path = request.path
        if path.startswith(PRIVATE_PREFIXES) and path != "/api/v1/health":
            response.headers["Cache-Control"] = "no-store"  # private data, a new token
        # The double-submit cookie Dash echoes: only for a browser (session or proxy) user.
        if g.get("user") is not None and not g.get("by_token"):
            response.set_cookie(
                CSRF_COOKIE,
                generate_csrf(),
                secure=over_tls(),
                samesite="Lax",
                httponly=False,  # Dash's renderer reads it
                max_age=int(cfg.absolute.total_seconds()),
            )
        return response


# Blueprints only admins reach: the admin pages and the data and model lifecycle's API
# (dashboard/admin_data.py, dashboard/api/lifecycle.py; each checks the role again itself).
ADMIN_BLUEPRINTS = ("admin", "admin_data", "api_lifecycle")


def _admin_only(path: str) -> bool:
    return path.startswith("/admin") or request.blueprint in ADMIN_BLUEPRINTS


def _scope_problem(found: accounts.UserInfo) -> str | None:
    if found.role != access.MANAGER or found.scope is None:
        return None
    base = current_app.extensions.get("retention_served_base")
    problem = base.scope_problem(found.scope) if base is not None else None
    if problem:
        return f"your scope {found.scope} selects nobody: {problem}; ask an admin to change it"
    return None


# -- first start -----------------------------------------------------------------------------


DEMO_ACCOUNTS = (("demo-admin", access.ADMIN), ("demo-analyst", access.ANALYST))
DEMO_MANAGER = "demo-manager"


def demo_scope(levels: dict[str, list[str]]) -> access.Scope | None:
    """One region of the data for the demo manager: `region` when there is one (North first),
    else the first of the data's own filter columns."""
    fixed = {"segment", "risk_band", "value_tier"}
    columns = [c for c in levels if c not in fixed and levels[c]]
    if not columns:
        return None
    column = "region" if "region" in columns else columns[0]
    values = levels[column]
    return access.Scope(column, ("North",) if "North" in values else (values[0],))


def demo_accounts(engine: Engine, levels: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(name, role, password) of the development server's demo accounts, with new random
    passwords on every start (printed once, in the log)."""
    made = []
    scope = demo_scope(levels)
    wanted = [*DEMO_ACCOUNTS, (DEMO_MANAGER, access.MANAGER)]
    existing = {u.username for u in accounts.users(engine)}
    for name, role in wanted:
        password = secrets.token_urlsafe(12)
        user_scope = scope if role == access.MANAGER else None
        if name in existing:
            accounts.change_user(
                engine,
                name,
                role=role,
                scope=user_scope,
                disabled=False,
                password=password,
                actor="development server",
            )
        else:
            accounts.add_user(
                engine, name, role, password, scope=user_scope, actor="development server"
            )
        made.append((name, role if user_scope is None else f"{role}, {user_scope}", password))
    return made


FIRST_ADMIN_HINT = (
    "no user accounts yet: create the first admin with "
    "'python -m dashboard users add NAME --role admin' (it asks for the password, or reads "
    "RETENTION_NEW_PASSWORD)"
)
