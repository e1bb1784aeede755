"""The admin pages: users (add, role, scope, disable, reset password), API tokens and the audit
log. Server-rendered forms (Flask-WTF: validation and the CSRF token); the guard in
dashboard.auth lets only admins reach /admin and checks the token of every POST. Every change
goes through analytics.store.accounts, which writes its audit event in the same transaction.
"""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from analytics import access
from analytics.store import accounts
from dashboard import auth

ROLE_CHOICES = list(access.ROLES)
AUDIT_LIMITS = (50, 100, 500, 1000)


class AddUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    role = SelectField("Role", choices=ROLE_CHOICES)
    scope = StringField("Scope (managers)", validators=[Optional(), Length(max=1000)])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD)]
    )


class ChangeUserForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    scope = StringField("Scope", validators=[Optional(), Length(max=1000)])
    disabled = BooleanField("Disabled")
    password = PasswordField(
        "New password", validators=[Optional(), Length(max=accounts.MAX_PASSWORD)]
    )


class TokenForm(FlaskForm):
    username = SelectField("User", choices=[])
    label = StringField("Label", validators=[Optional(), Length(max=128)])
    expires_days = IntegerField(
        "Expires in (days)",
        default=90,
        validators=[DataRequired(), NumberRange(1, accounts.MAX_TOKEN_DAYS)],
    )


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


def _scope(text: str | None, role: str) -> access.Scope | None:
    text = (text or "").strip()
    if not text:
        return None
    scope = access.Scope.parse(text)
    if role != access.MANAGER:
        raise accounts.AccountError(f"only a manager has a scope; {role} sees every customer")
    return scope


def _errors(form) -> str:
    return "; ".join(
        f"{form[name].label.text}: {', '.join(msgs)}" for name, msgs in form.errors.items()
    )


def register(server: Flask) -> None:
    bp = Blueprint("admin", __name__, url_prefix="/admin")

    @bp.get("/")
    def home():
        return redirect(url_for("admin.users"))

    @bp.route("/users", methods=["GET", "POST"])
    def users():
        form = AddUserForm(prefix="add")
        status = 200
        if request.method == "POST":
            if form.validate_on_submit():
                try:
                    made = accounts.add_user(
                        auth.state(),
                        form.username.data,
                        form.role.data,
                        form.password.data,
                        scope=_scope(form.scope.data, form.role.data),
                        actor=auth.actor(),
                        address=auth.client_address(),
                    )
                except (accounts.AccountError, access.ScopeError) as exc:
                    flash(str(exc), "danger")
                    status = 400
                else:
                    flash(f"Added {made.username} ({made.role}).", "success")
                    return redirect(url_for("admin.users"))
            else:
                flash(_errors(form), "danger")
                status = 400
        rows = accounts.users(auth.state())
        change = {
            u.username: ChangeUserForm(
                prefix=f"u{u.id}",
                formdata=None,
                role=u.role,
                scope=str(u.scope) if u.scope else "",
                disabled=u.disabled,
            )
            for u in rows
        }
        return render_template(
            "admin_users.html", form=form, rows=rows, change=change, active="users"
        ), status

    @bp.post("/users/<username>")
    def change_user(username: str):
        found = {u.username: u for u in accounts.users(auth.state())}.get(username)
        if found is None:
            flash(f"No user named {username!r}.", "danger")
            return redirect(url_for("admin.users"))
        form = ChangeUserForm(prefix=f"u{found.id}")
        if not form.validate_on_submit():
            flash(_errors(form), "danger")
            return redirect(url_for("admin.users"))
        me = auth.user()
        if (
            me is not None
            and me.username == username
            and (form.disabled.data or form.role.data != access.ADMIN)
        ):
            flash("You cannot disable yourself or take away your own admin role.", "danger")
            return redirect(url_for("admin.users"))
        try:
            accounts.change_user(
                auth.state(),
                username,
                role=form.role.data,
                scope=_scope(form.scope.data, form.role.data),
                disabled=form.disabled.data,
                password=form.password.data or None,
                actor=auth.actor(),
                address=auth.client_address(),
            )
        except (accounts.AccountError, access.ScopeError) as exc:
            flash(str(exc), "danger")
        else:
            flash(f"Saved {username}.", "success")
        return redirect(url_for("admin.users"))

    @bp.route("/tokens", methods=["GET", "POST"])
    def tokens():
        people = [u for u in accounts.users(auth.state()) if not u.disabled]
        form = TokenForm(prefix="tok")
        form.username.choices = [
            SelectChoice(u.username, f"{u.username} ({u.role})") for u in people
        ]
        secret, status = None, 200
        if request.method == "POST":
            if form.validate_on_submit():
                try:
                    _, secret = accounts.create_token(
                        auth.state(),
                        form.username.data,
                        expires_days=form.expires_days.data,
                        label=form.label.data,
                        actor=auth.actor(),
                        address=auth.client_address(),
                    )
                except accounts.AccountError as exc:
                    flash(str(exc), "danger")
                    status = 400
            else:
                flash(_errors(form), "danger")
                status = 400
        rows = accounts.tokens(auth.state())
        return render_template(
            "admin_tokens.html",
            form=form,
            rows=rows,
            secret=secret,
            revoke=ActionForm(),
            active="tokens",
        ), status

    @bp.post("/tokens/<int:token_id>/revoke")
    def revoke(token_id: int):
        if not ActionForm().validate_on_submit():
            flash("The form had expired. Please try again.", "danger")
            return redirect(url_for("admin.tokens"))
        try:
            accounts.revoke_token(
                auth.state(), token_id, actor=auth.actor(), address=auth.client_address()
            )
        except accounts.AccountError as exc:
            flash(str(exc), "danger")
        else:
            flash(f"Revoked token {token_id}.", "success")
        return redirect(url_for("admin.tokens"))

    @bp.get("/audit")
    def audit():
        try:
            limit = int(request.args.get("limit", 100))
        except ValueError:
            limit = 100
        limit = min(max(limit, 1), max(AUDIT_LIMITS))
        action = request.args.get("action", "").strip()
        rows = accounts.events(auth.state(), limit, [action] if action else ())
        return render_template(
            "admin_audit.html",
            rows=rows,
            usage=accounts.usage(auth.state())[:60],
            limit=limit,
            limits=AUDIT_LIMITS,
            action=action,
            active="audit",
        )

    server.register_blueprint(bp)
