/**
 * pusher-relay producer for Node: publishes wire contract v1 intents to
 * RabbitMQ for the pusher-relay worker to deliver to Pusher.
 *
 * - publisher.js: IntentPublisher, the connection, confirms, the ordering-key
 *   header and one method per intent type of the seed app;
 * - intents.js: a builder per type and checkIntent, the worker's rules;
 * - channels.js: the worker's channel templates, for ordering keys;
 * - config.js: settings from the environment (AMQP_URL, ...);
 * - rules.js: Pusher's limits on channels, events, socket ids and data;
 * - errors.js: InvalidIntent, ConfigError, PublishFailed.
 */

export { ChannelTemplates } from './channels.js';
export { DEFAULT_AMQP_TIMEOUT, DEFAULT_AMQP_URL, DEFAULT_EXCHANGE, parseAmqpUrls, settingsFromEnv } from './config.js';
export { ConfigError, InvalidIntent, PublishFailed } from './errors.js';
export * as intents from './intents.js';
export { INTENT_TYPES, checkIntent } from './intents.js';
export { IntentPublisher, ORDERING_KEY_HEADER } from './publisher.js';
export { DEFAULT_MAX_EVENT_BYTES } from './rules.js';
