"""Pusher's input rules and the wire contract's field types, checked before
anything is published. The worker applies the same rules
(src/config/pusher_rules.rs, src/intent/) and would dead-letter an intent that
breaks one; checking here turns that later, silent failure into an
InvalidIntent the calling code sees at once."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import InvalidIntent

#: Characters Pusher allows in a channel name.
CHANNEL_PATTERN = re.compile(r"\A[-a-zA-Z0-9_=@,.;]+\Z")
#: Longest channel name Pusher accepts.
MAX_CHANNEL_LENGTH = 164
#: Most channels one event may go to.
MAX_CHANNELS = 100
#: Longest event name, in characters.
MAX_EVENT_LENGTH = 200
#: Pusher's limit on one event's data (PUSHER_MAX_EVENT_BYTES on the worker).
DEFAULT_MAX_EVENT_BYTES = 10240
#: The worker reads identifiers as 64-bit integers, signed or not.
MIN_INTEGER_ID = -(2**63)
MAX_INTEGER_ID = 2**64 - 1

# The reserved prefix of Pusher's server-to-user channels, followed by a user id.
_SERVER_TO_USER_PREFIX = "#server-to-user-"
# Strict on purpose, ASCII digits only: a socket id is signed into channel
# auth strings, and laxer checks let crafted ids such as "1.1:" delegate auth.
_SOCKET_ID_PATTERN = re.compile(r"\A[0-9]+\.[0-9]+\Z")


def describe(value: Any) -> str:
    """A short description of a value's type for error messages."""
    if value is None:
        return "None"
    if isinstance(value, float):
        return f"the number {value!r}"
    return type(value).__name__


def to_json(value: Any) -> str:
    """Compact UTF-8 JSON, the bytes the worker will send; NaN and infinities
    are refused because JSON has no such numbers."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _excerpt(text: str) -> str:
    return text[:40] + "..." if len(text) > 40 else text


def check_channel(field: str, channel: Any) -> None:
    if not isinstance(channel, str):
        raise InvalidIntent(field, f"{field} must be a channel name (a str), got {describe(channel)}")
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise InvalidIntent(
            field, f"{field} is {len(channel)} characters long; Pusher allows at most {MAX_CHANNEL_LENGTH}"
        )
    rest = channel
    if channel.startswith(_SERVER_TO_USER_PREFIX) and len(channel) > len(_SERVER_TO_USER_PREFIX):
        rest = channel[len(_SERVER_TO_USER_PREFIX):]
    if not CHANNEL_PATTERN.match(rest):
        raise InvalidIntent(
            field,
            f'{field} "{_excerpt(channel)}" is not a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ;)',
        )


def check_channels(channels: Any) -> None:
    if not isinstance(channels, (list, tuple)):
        raise InvalidIntent("channels", f"channels must be a list of channel names, got {describe(channels)}")
    if not channels:
        raise InvalidIntent("channels", "channels must name at least one channel")
    if len(channels) > MAX_CHANNELS:
        raise InvalidIntent(
            "channels", f"channels has {len(channels)} entries; Pusher allows at most {MAX_CHANNELS} per event"
        )
    for i, channel in enumerate(channels):
        check_channel(f"channels[{i}]", channel)
    # Its payload is encrypted with a key derived from that one channel's name.
    if len(channels) > 1 and any(c.startswith("private-encrypted-") for c in channels):
        raise InvalidIntent("channels", "a private-encrypted- channel must be the only channel of its event")


def check_event_name(event: Any) -> None:
    if not isinstance(event, str) or event == "":
        raise InvalidIntent("event", f"event must be a non-empty str, got {describe(event)}")
    if len(event) > MAX_EVENT_LENGTH:
        raise InvalidIntent(
            "event", f"event is {len(event)} characters long; Pusher allows at most {MAX_EVENT_LENGTH}"
        )


def check_socket_id(socket_id: Any) -> None:
    if not isinstance(socket_id, str) or not _SOCKET_ID_PATTERN.match(socket_id):
        raise InvalidIntent("socket_id", 'socket_id must look like "123.456" (digits, a dot, digits)')


def is_identifier(value: Any) -> bool:
    """Identifiers (user_id, room_id, ...) are JSON strings or integers in the
    wire contract; a bool is an int to Python but not to JSON."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return MIN_INTEGER_ID <= value <= MAX_INTEGER_ID
    return isinstance(value, str) and value != ""


def check_identifier(field: str, value: Any) -> None:
    if is_identifier(value):
        return
    beyond = " outside 64 bits (pass it as a str)" if isinstance(value, int) and not isinstance(value, bool) else ""
    raise InvalidIntent(field, f"{field} must be an int or a non-empty str, got {describe(value)}{beyond}")


def check_string(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidIntent(field, f"{field} must be a str, got {describe(value)}")


def check_number(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidIntent(field, f"{field} must be a finite number, got {describe(value)}")


def check_size(field: str, encoded: str, limit: int) -> None:
    size = len(encoded.encode("utf-8"))
    if size > limit:
        raise InvalidIntent(field, f"{field} is {size} bytes as JSON; Pusher allows at most {limit}")
