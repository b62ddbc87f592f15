"""View guards: who may open a page. The role table itself lives in ``permissions``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from comptoir.platform.tenancy import Scope, enter_scope, leave_scope
from comptoir.tenants.context import current_membership, current_role
from comptoir.tenants.permissions import Permission, ensure

View = TypeVar("View", bound=Callable[..., Any])


def _to_login() -> Any:
    return redirect(url_for("tenants_accounts.login", next=request.full_path.rstrip("?")))


def staff_required(permission: Permission = Permission.VIEW_ADMIN) -> Callable[[View], View]:
    """Staff of the request's organization only: others get 404, so nothing is confirmed to exist.

    A member whose role lacks ``permission`` gets 403 with a clear message.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return _to_login()
            if g.get("organization") is None or current_membership() is None:
                abort(404)
            ensure(current_role(), permission)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def operator_required(view: View) -> View:
    """Platform operators only (others get 404); the view runs across organizations."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return _to_login()
        if not current_user.is_operator:
            abort(404)
        previous = g.pop("tenant_scope_token", None)
        if previous is not None:
            leave_scope(previous)
        g.tenant_scope_token = enter_scope(Scope(unscoped=True))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
