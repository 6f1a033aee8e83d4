"""Publishes intents to RabbitMQ with publisher confirms (pika).

"Published" means the broker confirmed it took responsibility: the message
was routed to a queue (it is published ``mandatory``, so an exchange with
no queue bound is a failure, not a silent drop) and acked. Anything less
raises PublishFailed.

One connection and one confirm channel, opened on first use and kept for the
life of the publisher; each publish waits for its own confirm. pika's
BlockingConnection is not thread-safe: use one publisher per thread. With
several RabbitMQ nodes, each connect tries them in a fresh random order, so
producers spread over the cluster and a lost connection is replaced on
whichever node is still up.
"""

from __future__ import annotations

import random
import ssl
import time
import uuid
from typing import Any, Dict, Mapping, Optional, Sequence, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions

from . import intents
from .config import TLS_PARAMETERS, AmqpNode, Settings
from .errors import ConfigError, PublishFailed
from .intents import Id
from .rules import to_json

#: The header the worker's shards route on (src/amqp/mod.rs, ORDERING_KEY_HEADER).
ORDERING_KEY_HEADER = "ordering-key"

# Errors that mean the connection (or the channel with it) is gone, so a
# publish on a kept connection is worth one more try on a new one.
_CONNECTION_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


class IntentPublisher:
    """Publishes wire contract v1 intents; each method returns the intent id
    once the broker confirmed it."""

    def __init__(self, settings: Optional[Settings] = None, *, app_id: Optional[str] = None) -> None:
        """``settings`` default to Settings.from_env(); ``app_id``, when given,
        is the AMQP app_id property, which dead letters keep (who sent it)."""
        settings = Settings.from_env() if settings is None else settings
        if not settings.nodes:
            raise ConfigError("nodes", "IntentPublisher needs at least one RabbitMQ node (AMQP_URL)")
        #: Settings, fixed for the life of the publisher.
        self.settings = settings
        #: The AMQP app_id property, or None.
        self.app_id = app_id
        # The open connection and its confirm channel; None before first use and after a loss.
        self._connection: Optional[pika.BlockingConnection] = None
        self._channel: Optional[Any] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, *, app_id: Optional[str] = None) -> "IntentPublisher":
        """A publisher configured from the environment: AMQP_URL (one URL or a
        comma-separated list of nodes), AMQP_EXCHANGE, AMQP_TIMEOUT,
        PUSHER_MAX_EVENT_BYTES, RELAY_CHANNEL_STYLE and RELAY_CHANNEL_*."""
        return cls(Settings.from_env(env), app_id=app_id)

    def __enter__(self) -> "IntentPublisher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish(self, intent: Mapping[str, Any]) -> str:
        """Checks an intent as the worker will, adds ``id`` (a random UUID
        unless given) and ``created_at`` (now, unix ms), and publishes it with
        the wire contract's properties and its ordering key. Returns the
        intent id once the broker confirmed it.

        Raises InvalidIntent before anything is sent, PublishFailed when the
        broker did not confirm it."""
        intents.check_intent(intent, self.settings.max_event_bytes)
        channels = self.settings.templates.channels(intent)
        if intent["type"] != "event" and channels is not None:
            intents.check_rendered_channels(intent, channels)

        body: Dict[str, Any] = dict(intent)
        # A fresh id per intent lets the worker tell a redelivery from a new intent.
        body["id"] = intent.get("id") or str(uuid.uuid4())
        if body.get("created_at") is None:
            body["created_at"] = time.time_ns() // 1_000_000
        ordering_key = channels[-1] if channels else None
        self._send(body, ordering_key)
        return str(body["id"])

    def notify_user(
        self, user_id: Id, message: str, level: str = "info", *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """notification → private-user-{user_id}, event "notification"."""
        return self.publish(intents.notification(user_id, message, level, socket_id=socket_id, intent_id=intent_id))

    def announce(
        self, message: str, priority: str = "normal", *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """announcement → "system", event "announcement"."""
        return self.publish(intents.announcement(message, priority, socket_id=socket_id, intent_id=intent_id))

    def post_chat_message(
        self, room_id: Id, user_id: Id, user_name: str, message: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """chat.message → chat-room-{room_id}, event "new-message"."""
        return self.publish(
            intents.chat_message(room_id, user_id, user_name, message, socket_id=socket_id, intent_id=intent_id)
        )

    def user_joined_room(
        self, room_id: Id, user_id: Id, user_name: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """chat.joined → chat-room-{room_id}, event "user-joined"."""
        return self.publish(intents.chat_joined(room_id, user_id, user_name, socket_id=socket_id, intent_id=intent_id))

    def user_left_room(
        self, room_id: Id, user_id: Id, user_name: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """chat.left → chat-room-{room_id}, event "user-left"."""
        return self.publish(intents.chat_left(room_id, user_id, user_name, socket_id=socket_id, intent_id=intent_id))

    def update_order_status(
        self,
        order_id: Id,
        status: str,
        customer_id: Optional[Id] = None,
        *,
        socket_id: Optional[str] = None,
        intent_id: Optional[str] = None,
    ) -> str:
        """order.status → private-order-{order_id} (+ private-customer-{customer_id})."""
        return self.publish(
            intents.order_status(order_id, status, customer_id, socket_id=socket_id, intent_id=intent_id)
        )

    def update_dashboard_metrics(
        self, metrics: Mapping[str, Any], *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """dashboard.metrics → "dashboard", event "metrics-update"."""
        return self.publish(intents.dashboard_metrics(metrics, socket_id=socket_id, intent_id=intent_id))

    def update_inventory(
        self, product_id: Id, quantity: Union[int, float], *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """inventory.stock → "inventory", event "stock-update"."""
        return self.publish(intents.inventory_stock(product_id, quantity, socket_id=socket_id, intent_id=intent_id))

    def broadcast_user_activity(
        self, user_id: Id, activity: str, *, socket_id: Optional[str] = None, intent_id: Optional[str] = None
    ) -> str:
        """presence.activity → "presence-activity", event "user-activity"."""
        return self.publish(intents.presence_activity(user_id, activity, socket_id=socket_id, intent_id=intent_id))

    def trigger(
        self,
        channel: str,
        event: str,
        data: Any,
        *,
        info: Optional[str] = None,
        socket_id: Optional[str] = None,
        intent_id: Optional[str] = None,
    ) -> str:
        """event on one channel, as Pusher's trigger."""
        return self.publish(intents.event([channel], event, data, info=info, socket_id=socket_id, intent_id=intent_id))

    def trigger_batch(
        self,
        channels: Sequence[str],
        event: str,
        data: Any,
        *,
        info: Optional[str] = None,
        socket_id: Optional[str] = None,
        intent_id: Optional[str] = None,
    ) -> str:
        """event on 1 to 100 channels, as the seed's triggerBatch."""
        return self.publish(intents.event(channels, event, data, info=info, socket_id=socket_id, intent_id=intent_id))

    def close(self) -> None:
        """Closes the connection politely; safe to call twice."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - best effort: the broker drops it anyway
                pass

    def _send(self, body: Dict[str, Any], ordering_key: Optional[str]) -> None:
        """Publishes one body; on a kept connection that turns out to be lost
        (broker restart, node down, closed while idle), tries once more on a
        new connection to any node. The id stays the same, so the worker drops
        a duplicate. A refusal on a live connection (no such exchange,
        returned, nacked) is not retried: it would fail again."""
        reused = self._channel is not None
        try:
            self._send_once(body, ordering_key)
        except _CONNECTION_LOST as error:
            self._forget()
            if not reused:
                raise self._failed(body, error) from error
            try:
                self._send_once(body, ordering_key)
            except _CONNECTION_LOST as retry_error:
                self._forget()
                raise self._failed(body, retry_error) from retry_error

    def _send_once(self, body: Dict[str, Any], ordering_key: Optional[str]) -> None:
        channel = self._open_channel(body["id"])
        exchange = self.settings.exchange
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=body["id"],
            timestamp=body["created_at"] // 1000,
            app_id=self.app_id,
            # pika writes a str header as a long string ('S'), the type the
            # worker's publisher uses, so the consistent-hash exchange hashes both alike.
            headers={ORDERING_KEY_HEADER: ordering_key} if ordering_key is not None else None,
        )
        try:
            channel.basic_publish(
                exchange, body["type"], to_json(body).encode("utf-8"), properties, mandatory=True
            )
        except pika.exceptions.UnroutableError as error:
            raise PublishFailed(
                "returned",
                f'RabbitMQ could not route intent {body["id"]}: exchange "{exchange}" has no queue bound for routing '
                f'key "{body["type"]}" ({self._returned_reason(error)}); has the worker declared its queue?',
                body["id"],
            ) from error
        except pika.exceptions.NackError as error:
            raise PublishFailed(
                "nacked", f'RabbitMQ refused intent {body["id"]} (nack) on exchange "{exchange}"', body["id"]
            ) from error
        except pika.exceptions.ChannelClosedByBroker as error:
            # The broker closed the channel (e.g. 404 no such exchange); the
            # connection stays usable, the next publish opens a new channel.
            self._channel = None
            raise PublishFailed(
                "refused",
                f'could not publish intent {body["id"]} to exchange "{exchange}": RabbitMQ answered '
                f"{error.reply_code} {error.reply_text}",
                body["id"],
            ) from error

    @staticmethod
    def _returned_reason(error: pika.exceptions.UnroutableError) -> str:
        for returned in error.messages:
            method = returned.method
            return f"{method.reply_code} {method.reply_text}"
        return "returned"

    def _open_channel(self, intent_id: str) -> Any:
        """The confirm channel, connecting first when there is none."""
        if self._channel is not None and self._channel.is_open:
            return self._channel
        if self._connection is None or not self._connection.is_open:
            self._connection = self._connect(intent_id)
        channel = self._connection.channel()
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def _connect(self, intent_id: str) -> pika.BlockingConnection:
        """Opens a connection to the first node that accepts one, in a random
        order. Each unreachable node costs up to the timeout; one that is down
        refuses at once."""
        nodes = list(self.settings.nodes)
        random.shuffle(nodes)
        try:
            return pika.BlockingConnection([self._parameters(node) for node in nodes])
        except pika.exceptions.AMQPError as error:
            tried = ", ".join(node.redacted for node in nodes)
            where = f"at {tried}" if len(nodes) == 1 else f"(no node of AMQP_URL accepted one; tried {tried})"
            raise PublishFailed(
                "unreachable",
                f"could not connect to RabbitMQ {where}: {self._scrub(self._describe(error))}",
                intent_id,
            ) from error

    def _parameters(self, node: AmqpNode) -> pika.URLParameters:
        timeout = self.settings.timeout
        parameters = pika.URLParameters(_without_tls_parameters(node.url))
        parameters.connection_attempts = 1
        parameters.socket_timeout = timeout
        parameters.stack_timeout = timeout
        # A broker under a memory or disk alarm blocks publishers; give up
        # after the timeout instead of hanging the caller.
        parameters.blocked_connection_timeout = timeout
        # Names the app in the management UI and in rabbitmqctl list_connections.
        name = "pusher-relay-producer (python)" + (f" {self.app_id}" if self.app_id else "")
        parameters.client_properties = {"connection_name": name}
        if node.secure:
            parameters.ssl_options = _ssl_options(node)
        return parameters

    def _forget(self) -> None:
        """Drops a connection that can no longer publish, without a close
        handshake that would only wait on a dead socket."""
        self._channel = None
        self._connection = None

    def _failed(self, body: Mapping[str, Any], error: BaseException) -> PublishFailed:
        return PublishFailed(
            "unreachable",
            f'could not publish intent {body["id"]} to RabbitMQ: {self._scrub(self._describe(error))}',
            str(body["id"]),
        )

    @staticmethod
    def _describe(error: BaseException) -> str:
        # Some pika errors print empty; their repr holds the cause.
        text = str(error).strip()
        return f"{type(error).__name__}: {text}" if text else repr(error)

    def _scrub(self, text: str) -> str:
        """The text without any node's password, which pika's errors may echo."""
        for node in self.settings.nodes:
            password = urlsplit(node.url).password
            if password:
                text = text.replace(password, "***")
        return text


def _without_tls_parameters(url: str) -> str:
    """The URL without RabbitMQ's TLS query parameters, which pika refuses
    as unknown; they are applied by _ssl_options."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in TLS_PARAMETERS]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def _ssl_options(node: AmqpNode) -> pika.SSLOptions:
    """TLS with the system's CAs plus cacertfile, checking the node's
    certificate and name (or the server_name_indication name), presenting
    certfile/keyfile when given; verify=verify_none checks nothing."""
    tls = node.tls
    context = ssl.create_default_context()
    if tls is not None:
        if tls.cacertfile:
            context.load_verify_locations(cafile=tls.cacertfile)
        if tls.certfile:
            context.load_cert_chain(tls.certfile, tls.keyfile)
        if not tls.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    name = tls.server_name if tls is not None and tls.server_name else node.host
    return pika.SSLOptions(context, server_hostname=name)
