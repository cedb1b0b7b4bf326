"""One Messages API call, as runner makes them (the anthropic agent's turns, the review
gate's verdicts): the SDK's own retries off (max_retries=0) and tenacity the one retry layer,
so every retry is seen, logged, counted, and bounded by the caller's deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
from tenacity import (RetryCallState, Retrying, retry_if_exception, stop_after_attempt,
                      wait_exponential_jitter)

ATTEMPTS = 6                  # one call and up to five retries
RETRY_AFTER_CAP = 60.0        # seconds we will wait on the server's say-so
REQUEST_TIMEOUT = 600.0
_backoff = wait_exponential_jitter(initial=1, max=30, jitter=1)


def retryable(error: BaseException) -> bool:
    """Rate limits, overload (529), 5xx, connection errors and timeouts."""
    if isinstance(error, anthropic.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, anthropic.APIConnectionError)


def retry_wait(state: RetryCallState) -> float:
    """The server's retry-after when it gives one (capped), else exponential with jitter."""
    error = state.outcome.exception() if state.outcome else None
    header = (error.response.headers.get("retry-after", "")
              if isinstance(error, anthropic.APIStatusError) else "")
    try:
        return min(max(float(header), 0.0), RETRY_AFTER_CAP)
    except ValueError:
        return _backoff(state)


def api_message(error: anthropic.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    detail = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
    return f"API error {error.status_code}: {detail or error.message}"


def create_message(client: anthropic.Anthropic, *, deadline: float, cancelled: Any,
                   on_retry: Callable[[RetryCallState], None], **params: Any) -> Any:
    """messages.create with tenacity as the one retry layer, never past ``deadline``."""
    def out_of_time(state: RetryCallState) -> bool:
        return time.monotonic() >= deadline or cancelled.is_set()

    def wait(state: RetryCallState) -> float:
        return min(retry_wait(state), max(0.0, deadline - time.monotonic()))

    def call() -> Any:
        remaining = max(1.0, deadline - time.monotonic())
        return client.with_options(timeout=min(REQUEST_TIMEOUT, remaining)).messages.create(
            **params)

    return Retrying(retry=retry_if_exception(retryable), wait=wait,
                    stop=stop_after_attempt(ATTEMPTS) | out_of_time, before_sleep=on_retry,
                    reraise=True)(call)
