"""Settings read once from the environment, with the names the worker and
the PHP client use, checked before anything connects. A bad value raises a
ConfigError naming the variable (never a password)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import List, Mapping, Optional
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .channels import ChannelTemplates
from .errors import ConfigError
from .rules import DEFAULT_MAX_EVENT_BYTES

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
DEFAULT_EXCHANGE = "pusher.intents"
#: Seconds to wait for the broker (each connect, a blocked connection): a
#: request handler must not hang on it.
DEFAULT_AMQP_TIMEOUT = 5.0

_URL_SHAPE = "must look like amqp://user:password@host:5672/vhost (or amqps://), several separated by commas"


@dataclass(frozen=True)
class AmqpNode:
    """One RabbitMQ node of AMQP_URL."""

    #: The URL as given, password included: pass it to pika, never to a log.
    url: str
    #: The URL with its password replaced, for messages.
    redacted: str
    #: amqps://: TLS, checking the node's certificate and host name.
    secure: bool
    #: The host name, which TLS checks the certificate against.
    host: str
    #: amqps:// only: the URL's TLS parameters.
    tls: Optional["AmqpTls"] = None


#: RabbitMQ's URI query parameters for TLS, which pika does not take itself.
TLS_PARAMETERS = ("cacertfile", "certfile", "keyfile", "verify", "server_name_indication")


@dataclass(frozen=True)
class AmqpTls:
    """The TLS query parameters of RabbitMQ's URI specification, as the worker
    reads them. The files are read when connecting."""

    #: PEM CAs trusted besides the system's.
    cacertfile: Optional[str] = None
    #: A client certificate (PEM) and its key.
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    #: False for verify=verify_none.
    verify: bool = True
    #: server_name_indication: the name sent and checked instead of the host.
    server_name: Optional[str] = None


def _parse_tls(query: str, variable: str, which: str) -> AmqpTls:
    params = dict(parse_qsl(query, keep_blank_values=True))
    verify = params.get("verify", "verify_peer")
    if verify not in ("verify_peer", "verify_none"):
        raise ConfigError(variable, f"{which}: verify={verify!r} is not one of verify_peer, verify_none")
    certfile, keyfile = params.get("certfile") or None, params.get("keyfile") or None
    if (certfile is None) != (keyfile is None):
        given, missing = ("certfile", "keyfile") if certfile else ("keyfile", "certfile")
        raise ConfigError(
            variable,
            f"{which}: {given} is set without {missing}; expected both (a client certificate and its key) or neither",
        )
    server_name = params.get("server_name_indication") or None
    if server_name == "disable":
        raise ConfigError(
            variable,
            f"{which}: server_name_indication=disable is not supported by the Python client "
            "(its ssl module checks the name it sends); give the name to check instead",
        )
    return AmqpTls(
        cacertfile=params.get("cacertfile") or None,
        certfile=certfile,
        keyfile=keyfile,
        verify=verify == "verify_peer",
        server_name=server_name,
    )


def parse_amqp_urls(value: str, variable: str = "AMQP_URL") -> List[AmqpNode]:
    """Parses AMQP_URL: one URL, or several nodes' URLs separated by commas
    (blanks around them and empty entries ignored, as the worker does). Every
    entry must parse and all must share one scheme. Errors name the entry by
    number, never by its text, which holds a password."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not entries:
        raise ConfigError(variable, f"{variable} {_URL_SHAPE}")
    nodes = []
    for i, entry in enumerate(entries):
        which = variable if len(entries) == 1 else f"{variable} entry {i + 1} of {len(entries)}"
        try:
            parts = urlsplit(entry)
            port = parts.port
        except ValueError:
            raise ConfigError(variable, f"{which} {_URL_SHAPE}") from None
        if parts.scheme.lower() not in ("amqp", "amqps") or not parts.hostname:
            raise ConfigError(variable, f"{which} {_URL_SHAPE}")
        secure = parts.scheme.lower() == "amqps"
        user = unquote(parts.username) if parts.username else "guest"
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        redacted = "{}://{}:***@{}:{}/{}".format(
            "amqps" if secure else "amqp",
            quote(user, safe=""),
            parts.hostname,
            port or (5671 if secure else 5672),
            quote(vhost, safe=""),
        )
        tls = _parse_tls(parts.query, variable, which) if secure else None
        nodes.append(AmqpNode(url=entry, redacted=redacted, secure=secure, host=parts.hostname, tls=tls))
    for i, node in enumerate(nodes):
        if node.secure != nodes[0].secure:
            raise ConfigError(
                variable,
                f"{variable} entry {i + 1} uses {'amqps' if node.secure else 'amqp'}:// but entry 1 uses "
                f"{'amqps' if nodes[0].secure else 'amqp'}://; every node must use the same scheme",
            )
    return nodes


@dataclass(frozen=True)
class Settings:
    """What a publisher needs, read from the environment by from_env."""

    #: The RabbitMQ nodes, tried in a random order on each connect.
    nodes: List[AmqpNode]
    #: Where intents are published.
    exchange: str = DEFAULT_EXCHANGE
    #: Seconds for each connect, and for a connection the broker blocks.
    timeout: float = DEFAULT_AMQP_TIMEOUT
    #: The worker's channel templates, for ordering keys.
    templates: ChannelTemplates = ChannelTemplates.private()
    #: The worker's PUSHER_MAX_EVENT_BYTES.
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        """Reads AMQP_URL, AMQP_EXCHANGE, AMQP_TIMEOUT, PUSHER_MAX_EVENT_BYTES,
        RELAY_CHANNEL_STYLE and RELAY_CHANNEL_*; unset or blank means the default."""
        env = os.environ if env is None else env

        def read(name: str) -> Optional[str]:
            value = (env.get(name) or "").strip()
            return value or None

        timeout = DEFAULT_AMQP_TIMEOUT
        text = read("AMQP_TIMEOUT")
        if text is not None:
            try:
                timeout = float(text)
            except ValueError:
                timeout = math.nan
            if not math.isfinite(timeout) or timeout <= 0:
                raise ConfigError("AMQP_TIMEOUT", f'AMQP_TIMEOUT must be a positive number of seconds, got "{text}"')
        max_bytes = DEFAULT_MAX_EVENT_BYTES
        text = read("PUSHER_MAX_EVENT_BYTES")
        if text is not None:
            if not text.isdigit() or int(text) <= 0:
                raise ConfigError(
                    "PUSHER_MAX_EVENT_BYTES",
                    f'PUSHER_MAX_EVENT_BYTES must be a positive whole number of bytes, got "{text}"',
                )
            max_bytes = int(text)
        return cls(
            nodes=parse_amqp_urls(read("AMQP_URL") or DEFAULT_AMQP_URL),
            exchange=read("AMQP_EXCHANGE") or DEFAULT_EXCHANGE,
            timeout=timeout,
            templates=ChannelTemplates.from_env(env),
            max_event_bytes=max_bytes,
        )
