"""Wire contract v1 intents: one builder per type of the seed app's use
cases, and the check every intent passes before it is published.

Builders return the intent's body (a dict) without ``id`` and
``created_at``, which the publisher adds. Identifiers go into the body as
given: an int stays an int, a str a str, as the worker renders both into
channels."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import InvalidIntent
from .rules import (
    DEFAULT_MAX_EVENT_BYTES,
    check_channel,
    check_channels,
    check_event_name,
    check_identifier,
    check_number,
    check_size,
    check_socket_id,
    check_string,
    describe,
    to_json,
)

#: An identifier of the wire contract: an int or a non-empty str.
Id = Union[int, str]
#: An intent body as published.
Intent = Dict[str, Any]

# Each typed intent's fields, as the worker's decoder requires them.
_FIELDS: Dict[str, Dict[str, Sequence[str]]] = {
    "notification": {"identifiers": ("user_id",), "strings": ("message",), "optional_strings": ("level",)},
    "announcement": {"strings": ("message",), "optional_strings": ("priority",)},
    "chat.message": {"identifiers": ("room_id", "user_id"), "strings": ("user_name", "message")},
    "chat.joined": {"identifiers": ("room_id", "user_id"), "strings": ("user_name",)},
    "chat.left": {"identifiers": ("room_id", "user_id"), "strings": ("user_name",)},
    "order.status": {"identifiers": ("order_id",), "strings": ("status",), "optional_identifiers": ("customer_id",)},
    "dashboard.metrics": {"objects": ("metrics",)},
    "inventory.stock": {"identifiers": ("product_id",), "numbers": ("quantity",)},
    "presence.activity": {"identifiers": ("user_id",), "strings": ("activity",)},
}

#: Every type of wire contract v1, in the contract's order.
INTENT_TYPES: List[str] = [*_FIELDS, "event"]


def _with_common(body: Intent, socket_id: Optional[str], intent_id: Optional[str]) -> Intent:
    if socket_id is not None:
        body["socket_id"] = socket_id
    if intent_id is not None:
        body["id"] = intent_id
    return body


def notification(
    user_id: Id, message: str, level: str = "info", *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """notification → private-user-{user_id}, event "notification"."""
    body = {"type": "notification", "user_id": user_id, "message": message, "level": level}
    return _with_common(body, socket_id, intent_id)


def announcement(
    message: str, priority: str = "normal", *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """announcement → "system", event "announcement"."""
    return _with_common({"type": "announcement", "message": message, "priority": priority}, socket_id, intent_id)


def chat_message(
    room_id: Id, user_id: Id, user_name: str, message: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """chat.message → chat-room-{room_id}, event "new-message"."""
    body = {"type": "chat.message", "room_id": room_id, "user_id": user_id, "user_name": user_name, "message": message}
    return _with_common(body, socket_id, intent_id)


def chat_joined(
    room_id: Id, user_id: Id, user_name: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """chat.joined → chat-room-{room_id}, event "user-joined"."""
    body = {"type": "chat.joined", "room_id": room_id, "user_id": user_id, "user_name": user_name}
    return _with_common(body, socket_id, intent_id)


def chat_left(
    room_id: Id, user_id: Id, user_name: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """chat.left → chat-room-{room_id}, event "user-left"."""
    body = {"type": "chat.left", "room_id": room_id, "user_id": user_id, "user_name": user_name}
    return _with_common(body, socket_id, intent_id)


def order_status(
    order_id: Id,
    status: str,
    customer_id: Optional[Id] = None,
    *,
    socket_id: Optional[str] = None,
    intent_id: Optional[str] = None,
) -> Intent:
    """order.status → private-order-{order_id} (+ private-customer-{customer_id}),
    event "order-status-changed". A customer_id of None adds no customer channel."""
    body: Intent = {"type": "order.status", "order_id": order_id, "status": status}
    if customer_id is not None:
        body["customer_id"] = customer_id
    return _with_common(body, socket_id, intent_id)


def dashboard_metrics(
    metrics: Mapping[str, Any], *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """dashboard.metrics → "dashboard", event "metrics-update"; metrics is a dict."""
    return _with_common({"type": "dashboard.metrics", "metrics": metrics}, socket_id, intent_id)


def inventory_stock(
    product_id: Id, quantity: Union[int, float], *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """inventory.stock → "inventory", event "stock-update"; quantity is a number."""
    body = {"type": "inventory.stock", "product_id": product_id, "quantity": quantity}
    return _with_common(body, socket_id, intent_id)


def presence_activity(
    user_id: Id, activity: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
) -> Intent:
    """presence.activity → "presence-activity", event "user-activity"."""
    body = {"type": "presence.activity", "user_id": user_id, "activity": activity}
    return _with_common(body, socket_id, intent_id)


def event(
    channels: Sequence[str],
    name: str,
    data: Any,
    *,
    info: Optional[str] = None,
    socket_id: Optional[str] = None,
    intent_id: Optional[str] = None,
) -> Intent:
    """event: ``data`` on every channel of ``channels`` (1 to 100), as
    Pusher's trigger does. ``info`` asks Pusher for channel attributes."""
    # A str is a sequence too; kept as given, check_intent refuses it.
    given = list(channels) if isinstance(channels, (list, tuple)) else channels
    body: Intent = {"type": "event", "channels": given, "event": name, "data": data}
    if info is not None:
        body["info"] = info
    return _with_common(body, socket_id, intent_id)


def check_intent(intent: Any, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
    """Checks an intent as the worker's decoder will, so an intent that would
    be dead-lettered is refused here instead; raises InvalidIntent naming the
    field at fault."""
    if not isinstance(intent, Mapping):
        raise InvalidIntent("intent", f'an intent must be a dict with a "type", got {describe(intent)}')
    kind = intent.get("type")
    if not isinstance(kind, str) or kind not in INTENT_TYPES:
        got = f'"{kind}"' if isinstance(kind, str) else describe(kind)
        raise InvalidIntent("type", f"type must be one of {', '.join(INTENT_TYPES)}, got {got}")
    # The worker reads a None (null) optional field as absent.
    intent_id = intent.get("id")
    if intent_id is not None and (not isinstance(intent_id, str) or intent_id == ""):
        raise InvalidIntent("id", f"id must be a non-empty str, got {describe(intent_id)}")
    if intent.get("socket_id") is not None:
        check_socket_id(intent["socket_id"])
    created_at = intent.get("created_at")
    if created_at is not None and (
        isinstance(created_at, bool) or not isinstance(created_at, int) or not -(2**63) <= created_at < 2**63
    ):
        raise InvalidIntent("created_at", f"created_at must be unix milliseconds (an int), got {describe(created_at)}")

    if kind == "event":
        check_channels(intent.get("channels"))
        check_event_name(intent.get("event"))
        if "data" not in intent:
            raise InvalidIntent("data", 'event intent is missing field "data" (any JSON value; None is sent as null)')
        if intent.get("info") is not None:
            check_string("info", intent["info"])
        # A str is already the encoded payload, as Pusher SDKs treat it.
        data = intent["data"]
        check_size("data", data if isinstance(data, str) else _encode("data", data), max_event_bytes)
        return

    fields = _FIELDS[kind]

    def required(name: str) -> Any:
        if intent.get(name) is None:
            raise InvalidIntent(name, f'{kind} intent is missing field "{name}"')
        return intent[name]

    for name in fields.get("identifiers", ()):
        check_identifier(name, required(name))
    for name in fields.get("strings", ()):
        check_string(name, required(name))
    for name in fields.get("optional_strings", ()):
        if intent.get(name) is not None:
            check_string(name, intent[name])
    for name in fields.get("optional_identifiers", ()):
        if intent.get(name) is not None:
            check_identifier(name, intent[name])
    for name in fields.get("objects", ()):
        if not isinstance(required(name), Mapping):
            raise InvalidIntent(name, f"{name} must be a dict (a JSON object), got {describe(intent[name])}")
    for name in fields.get("numbers", ()):
        check_number(name, required(name))
    # The worker builds the event's data from these same fields, so the whole
    # body bounds it (slightly stricter than Pusher's limit).
    check_size(f"{kind} intent", _encode(f"{kind} intent", dict(intent)), max_event_bytes)


def check_rendered_channels(intent: Mapping[str, Any], channels: Sequence[str]) -> None:
    """Checks the channels a typed intent's identifiers render through the
    templates: an identifier such as "a b" passes the type check but makes a
    channel Pusher refuses, and the worker would dead-letter the intent."""
    for channel in channels:
        try:
            check_channel("channel", channel)
        except InvalidIntent:
            raise InvalidIntent(
                "channel",
                f"the {intent['type']} intent's identifiers render channel \"{channel[:40]}\", which is not a "
                "valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ; at most 164 characters)",
            ) from None


def _encode(field: str, value: Any) -> str:
    try:
        return to_json(value)
    except (TypeError, ValueError) as error:
        raise InvalidIntent(field, f"{field} cannot be encoded as JSON: {error}") from None
