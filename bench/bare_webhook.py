"""The webhook benchmark's baseline: a bare Flask endpoint that reads the body and answers 200,
served like the real app."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/stripe")
def webhook() -> Any:
    request.get_data(cache=False)
    return jsonify(received=True, duplicate=False)


@app.get("/healthz")
def healthz() -> str:
    return "ok"
