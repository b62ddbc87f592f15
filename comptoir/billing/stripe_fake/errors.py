"""Stripe's error responses: ``{"error": {"type", "code", "message", "param", ...}}``."""

from __future__ import annotations

from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/"


class StripeFakeError(Exception):
    """Raised inside the fake; the WSGI layer turns it into Stripe's error body and status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - Stripe's field name
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        should_retry: bool | None = None,
        saved: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.should_retry = should_retry
        # Stripe saves the result of an idempotent request once the endpoint started executing
        # (a card decline), not when the parameters failed validation.
        self.saved = saved

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def missing(kind: str, object_id: str, param: str = "id") -> StripeFakeError:
    return StripeFakeError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def parameter_missing(param: str) -> StripeFakeError:
    return StripeFakeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def parameter_invalid(param: str, message: str, code: str = "parameter_invalid") -> StripeFakeError:
    return StripeFakeError(400, message, code=code, param=param)


def unexpected_state(
    message: str, *, code: str = "payment_intent_unexpected_state"
) -> StripeFakeError:
    return StripeFakeError(400, message, code=code)
