"""The WSGI entry point for gunicorn: ``gunicorn wsgi:app``."""

from comptoir.app import create_app

app = create_app()
