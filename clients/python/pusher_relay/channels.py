"""The worker's channel name templates, known here so each intent can carry
its ordering key (the ``ordering-key`` header) and so an identifier that
would render an invalid channel is refused before it is published.

The worker renders a typed intent's channels from templates
(src/config/channels.rs, ChannelTemplates): a style, RELAY_CHANNEL_STYLE
(``private``, the default, or ``legacy``, the seed app's public names), with
any slot replaced by its RELAY_CHANNEL_* variable. The ordering key is the
LAST channel an intent is delivered to (Intent::ordering_key); the worker's
shards route on it. Give the producer the same RELAY_CHANNEL_* values as the
worker, or keys and channels disagree and cross-worker order is lost (the
intents are still delivered)."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional

from .errors import ConfigError
from .rules import CHANNEL_PATTERN, MAX_CHANNEL_LENGTH, is_identifier

# Each slot: its variable, private and legacy templates, and the
# placeholders it may use, exactly as the worker's Slot::placeholders.
_SLOTS = {
    "notification": ("RELAY_CHANNEL_NOTIFICATION", "private-user-{user_id}", "user-{user_id}", ("user_id",)),
    "announcement": ("RELAY_CHANNEL_ANNOUNCEMENT", "system", "system", ()),
    "chat": ("RELAY_CHANNEL_CHAT", "chat-room-{room_id}", "chat-room-{room_id}", ("room_id", "user_id")),
    "order": ("RELAY_CHANNEL_ORDER", "private-order-{order_id}", "order-{order_id}", ("order_id",)),
    "customer": (
        "RELAY_CHANNEL_CUSTOMER",
        "private-customer-{customer_id}",
        "customer-{customer_id}",
        ("customer_id", "order_id"),
    ),
    "dashboard": ("RELAY_CHANNEL_DASHBOARD", "dashboard", "dashboard", ()),
    "inventory": ("RELAY_CHANNEL_INVENTORY", "inventory", "inventory", ("product_id",)),
    "presence_activity": (
        "RELAY_CHANNEL_PRESENCE_ACTIVITY",
        "presence-activity",
        "presence-activity",
        ("user_id",),
    ),
}

# Intent type => the slot whose template names its (last) channel.
_TYPE_SLOTS = {
    "notification": "notification",
    "announcement": "announcement",
    "chat.message": "chat",
    "chat.joined": "chat",
    "chat.left": "chat",
    "order.status": "order",
    "dashboard.metrics": "dashboard",
    "inventory.stock": "inventory",
    "presence.activity": "presence_activity",
}

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _identifier_text(value: Any) -> Optional[str]:
    """An identifier as the worker writes it into a channel name (Ident::text)."""
    if not is_identifier(value):
        return None
    return str(value)


def _render(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _template_error(slot: str, template: str) -> Optional[str]:
    """Why a template cannot be used, as the worker's ChannelTemplates::validate decides."""
    allowed = _SLOTS[slot][3]
    stripped = _PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        return f'"{template}" has a "{{" or "}}" without its pair'
    for name in _PLACEHOLDER.findall(template):
        if name not in allowed:
            known = ", ".join("{" + p + "}" for p in allowed) or "none"
            return f'"{template}" uses unknown placeholder {{{name}}} (allowed: {known})'
    sample = _render(template, {p: "0" for p in allowed})
    if len(sample) > MAX_CHANNEL_LENGTH or not CHANNEL_PATTERN.match(sample):
        return (
            f'"{template}" does not render a valid channel name '
            f"(allowed: a-z A-Z 0-9 _ - = @ , . ; at most {MAX_CHANNEL_LENGTH} characters)"
        )
    return None


class ChannelTemplates:
    """The worker's channel templates, one per slot."""

    def __init__(self, templates: Mapping[str, str]) -> None:
        # Read-only, so a shared instance cannot drift from the worker's.
        self.templates: Mapping[str, str] = MappingProxyType(dict(templates))

    @classmethod
    def private(cls) -> "ChannelTemplates":
        """The worker's default (RELAY_CHANNEL_STYLE=private)."""
        return cls({slot: s[1] for slot, s in _SLOTS.items()})

    @classmethod
    def legacy(cls) -> "ChannelTemplates":
        """RELAY_CHANNEL_STYLE=legacy: the seed app's public user-{id}, order-{id}, customer-{id}."""
        return cls({slot: s[2] for slot, s in _SLOTS.items()})

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ChannelTemplates":
        """Reads RELAY_CHANNEL_STYLE and the RELAY_CHANNEL_* overrides as the
        worker does; raises ConfigError naming the variable of a bad value."""

        def read(name: str) -> Optional[str]:
            value = (env.get(name) or "").strip()
            return value or None

        style = read("RELAY_CHANNEL_STYLE") or "private"
        if style not in ("private", "legacy"):
            raise ConfigError(
                "RELAY_CHANNEL_STYLE",
                "RELAY_CHANNEL_STYLE must be private (private-user-{id}, ...) or legacy (the seed app's "
                f'public user-{{id}}, order-{{id}}, customer-{{id}}), got "{style}"',
            )
        templates = dict((cls.legacy() if style == "legacy" else cls.private()).templates)
        for slot, (variable, *_rest) in _SLOTS.items():
            template = read(variable)
            if template is None:
                continue
            error = _template_error(slot, template)
            if error is not None:
                raise ConfigError(variable, f"{variable} {error}")
            templates[slot] = template
        return cls(templates)

    def channels(self, intent: Mapping[str, Any]) -> Optional[List[str]]:
        """The channels the worker will deliver an intent to, in its order:
        one per typed intent, two for an ``order.status`` with a customer_id
        (the order's, then the customer's); for ``event``, its channels as
        given. None when the intent cannot have them (unknown type, missing
        or malformed identifier)."""
        kind = intent.get("type")
        if kind == "event":
            channels = intent.get("channels")
            if isinstance(channels, (list, tuple)) and channels and all(isinstance(c, str) for c in channels):
                return list(channels)
            return None
        slot = _TYPE_SLOTS.get(kind) if isinstance(kind, str) else None
        if slot is None:
            return None
        slots = [slot]
        # Like the worker, a None customer_id counts as absent.
        if kind == "order.status" and intent.get("customer_id") is not None:
            slots.append("customer")
        rendered = []
        for name in slots:
            template = self.templates[name]
            values: Dict[str, str] = {}
            for field in _PLACEHOLDER.findall(template):
                text = _identifier_text(intent.get(field))
                if text is None:
                    return None
                values[field] = text
            rendered.append(_render(template, values))
        return rendered

    def ordering_key(self, intent: Mapping[str, Any]) -> Optional[str]:
        """The intent's ordering key: the last channel the worker will deliver
        it to (for an ``order.status`` with a customer_id, the customer's
        channel, which also keeps the order's channel in order). None when it
        cannot have one; it is then published without the header, which the
        worker also accepts."""
        channels = self.channels(intent)
        return channels[-1] if channels else None
