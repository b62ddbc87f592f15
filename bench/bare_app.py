"""The baseline: a bare Flask endpoint answering a small HTML page, served like the real app."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)

PAGE = "<!doctype html><title>ok</title><p>ok</p>"


@app.get("/")
def index() -> str:
    return PAGE
