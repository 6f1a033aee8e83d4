"""The three ways a publish can fail, each its own class so callers can tell
"fix the input" from "fix the setup" from "the broker did not take it".
Messages name the field or variable at fault and never hold a password."""

from __future__ import annotations

from typing import Literal, Optional

Reason = Literal["unreachable", "refused", "returned", "nacked"]


class InvalidIntent(ValueError):
    """An intent the worker would refuse (dead-letter); nothing was sent."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        #: The field at fault, e.g. "user_id" or "channels[2]".
        self.field = field


class ConfigError(ValueError):
    """A setting (environment variable or argument) that cannot be used."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        #: The variable or argument at fault, e.g. "AMQP_URL".
        self.variable = variable


class PublishFailed(Exception):
    """The broker did not confirm the intent: unreachable, refused it (e.g. no
    such exchange), returned it as unroutable (no queue bound), or nacked it.
    The intent may be published again with the same id; the worker drops a
    duplicate it already delivered."""

    def __init__(self, reason: Reason, message: str, intent_id: Optional[str] = None) -> None:
        super().__init__(message)
        #: Why, as one word a caller can switch on.
        self.reason: Reason = reason
        #: The id of the intent that was not published, when there was one.
        self.intent_id = intent_id
