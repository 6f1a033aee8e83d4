/**
 * The worker's channel name templates, known here so each intent can carry
 * its ordering key (the `ordering-key` header) and so an identifier that
 * would render an invalid channel is refused before it is published.
 *
 * The worker renders a typed intent's channels from templates
 * (src/config/channels.rs, ChannelTemplates): a style, RELAY_CHANNEL_STYLE
 * (`private`, the default, or `legacy`, the seed app's public names), with
 * any slot replaced by its RELAY_CHANNEL_* variable. The ordering key is the
 * LAST channel an intent is delivered to (Intent::ordering_key); the
 * worker's shards route on it. Give the producer the same RELAY_CHANNEL_*
 * values as the worker, or keys and channels disagree and cross-worker
 * order is lost (the intents are still delivered).
 */

import { ConfigError } from './errors.js';
import { CHANNEL_PATTERN, MAX_CHANNEL_LENGTH } from './rules.js';

/**
 * Each slot: its variable, private and legacy templates, and the
 * placeholders it may use, exactly as the worker's Slot::placeholders.
 */
const SLOTS = {
  notification: ['RELAY_CHANNEL_NOTIFICATION', 'private-user-{user_id}', 'user-{user_id}', ['user_id']],
  announcement: ['RELAY_CHANNEL_ANNOUNCEMENT', 'system', 'system', []],
  chat: ['RELAY_CHANNEL_CHAT', 'chat-room-{room_id}', 'chat-room-{room_id}', ['room_id', 'user_id']],
  order: ['RELAY_CHANNEL_ORDER', 'private-order-{order_id}', 'order-{order_id}', ['order_id']],
  customer: [
    'RELAY_CHANNEL_CUSTOMER',
    'private-customer-{customer_id}',
    'customer-{customer_id}',
    ['customer_id', 'order_id'],
  ],
  dashboard: ['RELAY_CHANNEL_DASHBOARD', 'dashboard', 'dashboard', []],
  inventory: ['RELAY_CHANNEL_INVENTORY', 'inventory', 'inventory', ['product_id']],
  presence_activity: ['RELAY_CHANNEL_PRESENCE_ACTIVITY', 'presence-activity', 'presence-activity', ['user_id']],
};

/** Intent type => the slot whose template names its (last) channel. */
const TYPE_SLOTS = {
  notification: 'notification',
  announcement: 'announcement',
  'chat.message': 'chat',
  'chat.joined': 'chat',
  'chat.left': 'chat',
  'order.status': 'order',
  'dashboard.metrics': 'dashboard',
  'inventory.stock': 'inventory',
  'presence.activity': 'presence_activity',
};

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** An identifier as the worker writes it into a channel name (Ident::text), or null. */
function identifierText(value) {
  if (Number.isSafeInteger(value)) return String(value);
  return typeof value === 'string' && value !== '' ? value : null;
}

function render(template, values) {
  return template.replace(PLACEHOLDER, (_, name) => values[name]);
}

/** Why a template cannot be used, as the worker's ChannelTemplates::validate decides; null when fine. */
function templateError(slot, template) {
  const allowed = SLOTS[slot][3];
  const stripped = template.replace(PLACEHOLDER, '');
  if (stripped.includes('{') || stripped.includes('}')) {
    return `"${template}" has a "{" or "}" without its pair`;
  }
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!allowed.includes(name)) {
      const known = allowed.length === 0 ? 'none' : allowed.map((p) => `{${p}}`).join(', ');
      return `"${template}" uses unknown placeholder {${name}} (allowed: ${known})`;
    }
  }
  const sample = render(template, Object.fromEntries(allowed.map((p) => [p, '0'])));
  if (sample.length > MAX_CHANNEL_LENGTH || !CHANNEL_PATTERN.test(sample)) {
    return `"${template}" does not render a valid channel name (allowed: a-z A-Z 0-9 _ - = @ , . ; at most ${MAX_CHANNEL_LENGTH} characters)`;
  }
  return null;
}

export class ChannelTemplates {
  /** @param {Record<string, string>} templates slot => template, every slot present and valid */
  constructor(templates) {
    /** Slot => template; frozen so a shared instance cannot drift from the worker's. */
    this.templates = Object.freeze({ ...templates });
  }

  /** The worker's default (RELAY_CHANNEL_STYLE=private). */
  static private() {
    return new ChannelTemplates(Object.fromEntries(Object.entries(SLOTS).map(([slot, s]) => [slot, s[1]])));
  }

  /** RELAY_CHANNEL_STYLE=legacy: the seed app's public user-{id}, order-{id}, customer-{id}. */
  static legacy() {
    return new ChannelTemplates(Object.fromEntries(Object.entries(SLOTS).map(([slot, s]) => [slot, s[2]])));
  }

  /**
   * Reads RELAY_CHANNEL_STYLE and the RELAY_CHANNEL_* overrides as the worker does.
   *
   * @param {Record<string, string | undefined>} env
   * @throws {ConfigError} naming the variable when a value cannot be used
   */
  static fromEnv(env) {
    const read = (name) => {
      const value = env[name]?.trim();
      return value ? value : undefined;
    };
    const style = read('RELAY_CHANNEL_STYLE') ?? 'private';
    if (style !== 'private' && style !== 'legacy') {
      throw new ConfigError(
        'RELAY_CHANNEL_STYLE',
        `RELAY_CHANNEL_STYLE must be private (private-user-{id}, ...) or legacy (the seed app's public user-{id}, order-{id}, customer-{id}), got "${style}"`,
      );
    }
    const templates = { ...(style === 'legacy' ? ChannelTemplates.legacy() : ChannelTemplates.private()).templates };
    for (const [slot, [variable]] of Object.entries(SLOTS)) {
      const template = read(variable);
      if (template === undefined) continue;
      const error = templateError(slot, template);
      if (error !== null) throw new ConfigError(variable, `${variable} ${error}`);
      templates[slot] = template;
    }
    return new ChannelTemplates(templates);
  }

  /**
   * The channels the worker will deliver a typed intent to, in its order:
   * one per intent, two for an `order.status` with a customer_id (the
   * order's, then the customer's). For `event`, its channels as given. Null
   * when the intent cannot have them (unknown type, missing or malformed
   * identifier).
   *
   * @param {Record<string, unknown>} intent the body as published
   * @returns {string[] | null}
   */
  channels(intent) {
    if (intent.type === 'event') {
      const channels = intent.channels;
      return Array.isArray(channels) && channels.length > 0 && channels.every((c) => typeof c === 'string')
        ? [...channels]
        : null;
    }
    const slot = TYPE_SLOTS[/** @type {string} */ (intent.type)];
    if (slot === undefined) return null;
    const slots = [slot];
    // Like the worker, a null customer_id counts as absent.
    if (intent.type === 'order.status' && intent.customer_id != null) slots.push('customer');
    const channels = [];
    for (const name of slots) {
      const template = this.templates[name];
      const values = {};
      for (const [, field] of template.matchAll(PLACEHOLDER)) {
        const text = identifierText(intent[field]);
        if (text === null) return null;
        values[field] = text;
      }
      channels.push(render(template, values));
    }
    return channels;
  }

  /**
   * The intent's ordering key: the last channel the worker will deliver it
   * to (for an `order.status` with a customer_id, the customer's channel,
   * which also keeps the order's channel in order). Null when the intent
   * cannot have one; it is then published without the header, which the
   * worker also accepts.
   *
   * @param {Record<string, unknown>} intent the body as published
   * @returns {string | null}
   */
  orderingKey(intent) {
    const channels = this.channels(intent);
    return channels === null ? null : channels[channels.length - 1];
  }
}
