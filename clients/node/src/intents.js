/**
 * Wire contract v1 intents: one builder per type of the seed app's use
 * cases, and the check every intent passes before it is published.
 *
 * Builders return the intent's body without `id` and `created_at`, which
 * the publisher adds. Identifiers go into the body as given: a number stays
 * a number, a string a string, as the worker renders both into channels.
 */

import { InvalidIntent } from './errors.js';
import {
  checkChannel,
  checkChannels,
  checkEventName,
  checkIdentifier,
  checkSize,
  checkSocketId,
  checkString,
  describe,
  DEFAULT_MAX_EVENT_BYTES,
} from './rules.js';

/**
 * Each typed intent's fields, as the worker's decoder requires them:
 * identifiers (integer or non-empty string), strings, and the rest.
 */
const FIELDS = {
  notification: { identifiers: ['user_id'], strings: ['message'], optionalStrings: ['level'] },
  announcement: { strings: ['message'], optionalStrings: ['priority'] },
  'chat.message': { identifiers: ['room_id', 'user_id'], strings: ['user_name', 'message'] },
  'chat.joined': { identifiers: ['room_id', 'user_id'], strings: ['user_name'] },
  'chat.left': { identifiers: ['room_id', 'user_id'], strings: ['user_name'] },
  'order.status': { identifiers: ['order_id'], strings: ['status'], optionalIdentifiers: ['customer_id'] },
  'dashboard.metrics': { objects: ['metrics'] },
  'inventory.stock': { identifiers: ['product_id'], numbers: ['quantity'] },
  'presence.activity': { identifiers: ['user_id'], strings: ['activity'] },
};

/** Every type of wire contract v1, in the contract's order. */
export const INTENT_TYPES = [...Object.keys(FIELDS), 'event'];

/** @param {unknown} value */
function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Common optional fields a caller may set on any intent.
 *
 * @typedef {object} CommonOptions
 * @property {string} [socketId] exclude this connection ("123.456"), as Pusher's socket_id does
 * @property {string} [id] the intent id; default a random UUID. Reuse one to make a retry idempotent.
 */

/** Adds the common options that were given. */
function withCommon(body, options = {}) {
  if (options.socketId !== undefined) body.socket_id = options.socketId;
  if (options.id !== undefined) body.id = options.id;
  return body;
}

/** notification → private-user-{userId}, event "notification". */
export function notification(userId, message, { level = 'info', ...common } = {}) {
  return withCommon({ type: 'notification', user_id: userId, message, level }, common);
}

/** announcement → "system", event "announcement". */
export function announcement(message, { priority = 'normal', ...common } = {}) {
  return withCommon({ type: 'announcement', message, priority }, common);
}

/** chat.message → chat-room-{roomId}, event "new-message". */
export function chatMessage(roomId, userId, userName, message, common = {}) {
  return withCommon({ type: 'chat.message', room_id: roomId, user_id: userId, user_name: userName, message }, common);
}

/** chat.joined → chat-room-{roomId}, event "user-joined". */
export function chatJoined(roomId, userId, userName, common = {}) {
  return withCommon({ type: 'chat.joined', room_id: roomId, user_id: userId, user_name: userName }, common);
}

/** chat.left → chat-room-{roomId}, event "user-left". */
export function chatLeft(roomId, userId, userName, common = {}) {
  return withCommon({ type: 'chat.left', room_id: roomId, user_id: userId, user_name: userName }, common);
}

/**
 * order.status → private-order-{orderId} (+ private-customer-{customerId}),
 * event "order-status-changed". A customerId of null or undefined adds no
 * customer channel.
 */
export function orderStatus(orderId, status, { customerId, ...common } = {}) {
  const body = { type: 'order.status', order_id: orderId, status };
  if (customerId != null) body.customer_id = customerId;
  return withCommon(body, common);
}

/** dashboard.metrics → "dashboard", event "metrics-update"; metrics is a plain object. */
export function dashboardMetrics(metrics, common = {}) {
  return withCommon({ type: 'dashboard.metrics', metrics }, common);
}

/** inventory.stock → "inventory", event "stock-update"; quantity is a number. */
export function inventoryStock(productId, quantity, common = {}) {
  return withCommon({ type: 'inventory.stock', product_id: productId, quantity }, common);
}

/** presence.activity → "presence-activity", event "user-activity". */
export function presenceActivity(userId, activity, common = {}) {
  return withCommon({ type: 'presence.activity', user_id: userId, activity }, common);
}

/**
 * event: `data` on every channel of `channels` (1 to 100), as Pusher's
 * trigger does. `info` asks Pusher for channel attributes in its answer.
 */
export function event(channels, name, data, { info, ...common } = {}) {
  const body = { type: 'event', channels, event: name, data };
  if (info !== undefined) body.info = info;
  return withCommon(body, common);
}

/**
 * Checks an intent as the worker's decoder will, so an intent that would be
 * dead-lettered is refused here instead.
 *
 * @param {Record<string, unknown>} intent
 * @param {{ maxEventBytes?: number }} [limits]
 * @throws {InvalidIntent} naming the field at fault
 */
export function checkIntent(intent, { maxEventBytes = DEFAULT_MAX_EVENT_BYTES } = {}) {
  if (!isPlainObject(intent)) {
    throw new InvalidIntent('intent', `an intent must be a plain object with a "type", got ${describe(intent)}`);
  }
  const type = intent.type;
  if (typeof type !== 'string' || !INTENT_TYPES.includes(type)) {
    throw new InvalidIntent(
      'type',
      `type must be one of ${INTENT_TYPES.join(', ')}, got ${typeof type === 'string' ? `"${type}"` : describe(type)}`,
    );
  }
  // The worker reads a null optional field as absent.
  if (intent.id != null && (typeof intent.id !== 'string' || intent.id === '')) {
    throw new InvalidIntent('id', `id must be a non-empty string, got ${describe(intent.id)}`);
  }
  if (intent.socket_id != null) checkSocketId(intent.socket_id);
  if (intent.created_at != null && !Number.isSafeInteger(intent.created_at)) {
    throw new InvalidIntent('created_at', `created_at must be unix milliseconds (an integer), got ${describe(intent.created_at)}`);
  }

  if (type === 'event') {
    checkChannels(intent.channels);
    checkEventName(intent.event);
    if (!Object.hasOwn(intent, 'data') || intent.data === undefined) {
      throw new InvalidIntent('data', 'event intent is missing field "data" (any JSON value; null is sent as null)');
    }
    if (intent.info != null) checkString('info', intent.info);
    // A string is already the encoded payload, as Pusher SDKs treat it.
    const data = typeof intent.data === 'string' ? intent.data : encode('data', intent.data);
    checkSize('data', data, maxEventBytes);
    return;
  }

  const fields = FIELDS[type];
  const required = (name) => {
    if (intent[name] == null) throw new InvalidIntent(name, `${type} intent is missing field "${name}"`);
    return intent[name];
  };
  for (const name of fields.identifiers ?? []) checkIdentifier(name, required(name));
  for (const name of fields.strings ?? []) checkString(name, required(name));
  for (const name of fields.optionalStrings ?? []) if (intent[name] != null) checkString(name, intent[name]);
  for (const name of fields.optionalIdentifiers ?? []) if (intent[name] != null) checkIdentifier(name, intent[name]);
  for (const name of fields.objects ?? []) {
    if (!isPlainObject(required(name))) {
      throw new InvalidIntent(name, `${name} must be a plain object (a JSON object), got ${describe(intent[name])}`);
    }
  }
  for (const name of fields.numbers ?? []) {
    if (typeof required(name) !== 'number' || !Number.isFinite(intent[name])) {
      throw new InvalidIntent(name, `${name} must be a finite number, got ${describe(intent[name])}`);
    }
  }
  // The worker builds the event's data from these same fields, so the whole
  // body bounds it (slightly stricter than Pusher's limit).
  checkSize(`${type} intent`, encode(`${type} intent`, intent), maxEventBytes);
}

/** JSON text of `value`, or an InvalidIntent naming `field` (BigInt, cycles, functions). */
function encode(field, value) {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new InvalidIntent(field, `${field} cannot be encoded as JSON: ${error.message}`);
  }
  if (json === undefined) throw new InvalidIntent(field, `${field} cannot be encoded as JSON: got ${describe(value)}`);
  return json;
}

/**
 * Checks the channels a typed intent's identifiers render through the
 * templates: an identifier such as "a b" passes the type check but makes a
 * channel Pusher refuses, and the worker would dead-letter the intent.
 *
 * @param {Record<string, unknown>} intent a checked typed intent
 * @param {string[]} channels what ChannelTemplates.channels rendered for it
 */
export function checkRenderedChannels(intent, channels) {
  for (const channel of channels) {
    try {
      checkChannel('channel', channel);
    } catch {
      throw new InvalidIntent(
        'channel',
        `the ${intent.type} intent's identifiers render channel "${channel.slice(0, 40)}", which is not a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ; at most 164 characters)`,
      );
    }
  }
}
