"""pusher-relay producer for Python: publishes wire contract v1 intents to
RabbitMQ for the pusher-relay worker to deliver to Pusher.

- publisher: IntentPublisher, the connection, confirms, the ordering-key
  header and one method per intent type of the seed app;
- intents: a builder per type and check_intent, the worker's rules;
- channels: the worker's channel templates, for ordering keys;
- config: settings from the environment (AMQP_URL, ...);
- rules: Pusher's limits on channels, events, socket ids and data;
- errors: InvalidIntent, ConfigError, PublishFailed.
"""

from . import intents
from .channels import ChannelTemplates
from .config import DEFAULT_AMQP_TIMEOUT, DEFAULT_AMQP_URL, DEFAULT_EXCHANGE, AmqpNode, Settings, parse_amqp_urls
from .errors import ConfigError, InvalidIntent, PublishFailed
from .intents import INTENT_TYPES, check_intent
from .publisher import ORDERING_KEY_HEADER, IntentPublisher
from .rules import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "AmqpNode",
    "ChannelTemplates",
    "ConfigError",
    "DEFAULT_AMQP_TIMEOUT",
    "DEFAULT_AMQP_URL",
    "DEFAULT_EXCHANGE",
    "DEFAULT_MAX_EVENT_BYTES",
    "INTENT_TYPES",
    "IntentPublisher",
    "InvalidIntent",
    "ORDERING_KEY_HEADER",
    "PublishFailed",
    "Settings",
    "check_intent",
    "intents",
    "parse_amqp_urls",
]
