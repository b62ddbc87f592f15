"""The Flask extensions, created unbound here and bound to an app in ``create_app``."""

from __future__ import annotations

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

from comptoir.platform.db import db
from comptoir.platform.errors import ErrorSchema


class ComptoirApi(Api):
    """flask-smorest, minus its app-wide JSON error handler.

    The platform's error handlers answer JSON under ``/api/`` and HTML pages elsewhere
    (``comptoir.platform.errors``); flask-smorest would otherwise turn every 404 page into JSON.
    The OpenAPI document describes those errors with the platform's own shape.
    """

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        return None


migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="moving-window")
api = ComptoirApi()

__all__ = ["api", "babel", "csrf", "db", "limiter", "login_manager", "migrate"]
