// The ordering keys this client puts in the `ordering-key` header are the
// worker's: tests/data/ordering-keys.json (repository root) is shared with
// tests/offline/ordering_keys.rs (the worker's side) and the PHP client's tests. A key
// that disagrees would send one channel's intents to different shards and
// lose their order across workers.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { ChannelTemplates, INTENT_TYPES, checkIntent, intents } from '../src/index.js';

const FIXTURE = new URL('../../../tests/data/ordering-keys.json', import.meta.url);
const entries = JSON.parse(readFileSync(FIXTURE, 'utf8'));

/** The builder call that makes `intent`, as an app would write it. */
function build(intent) {
  const common = intent.socket_id === undefined ? {} : { socketId: intent.socket_id };
  switch (intent.type) {
    case 'notification':
      return intents.notification(intent.user_id, intent.message, { level: intent.level, ...common });
    case 'announcement':
      return intents.announcement(intent.message, { priority: intent.priority, ...common });
    case 'chat.message':
      return intents.chatMessage(intent.room_id, intent.user_id, intent.user_name, intent.message, common);
    case 'chat.joined':
      return intents.chatJoined(intent.room_id, intent.user_id, intent.user_name, common);
    case 'chat.left':
      return intents.chatLeft(intent.room_id, intent.user_id, intent.user_name, common);
    case 'order.status':
      return intents.orderStatus(intent.order_id, intent.status, { customerId: intent.customer_id, ...common });
    case 'dashboard.metrics':
      return intents.dashboardMetrics(intent.metrics, common);
    case 'inventory.stock':
      return intents.inventoryStock(intent.product_id, intent.quantity, common);
    case 'presence.activity':
      return intents.presenceActivity(intent.user_id, intent.activity, common);
    case 'event':
      return intents.event(intent.channels, intent.event, intent.data, { info: intent.info, ...common });
    default:
      throw new Error(`no builder for ${intent.type}`);
  }
}

/** The body without the fields the publisher adds, and without undefined options. */
function withoutGenerated(intent) {
  const { id, created_at, ...rest } = intent;
  return JSON.parse(JSON.stringify(rest));
}

test('the fixture covers every intent type', () => {
  assert.equal(entries.length, 19);
  for (const type of INTENT_TYPES) {
    assert.ok(
      entries.some((e) => e.intent.type === type),
      `no ${type} intent in tests/data/ordering-keys.json`,
    );
  }
});

for (const [i, { intent, key }] of entries.entries()) {
  const name = `#${String(i).padStart(2, '0')} ${intent.type} -> ${key}`;

  test(`${name}: the client computes the worker's key`, () => {
    assert.equal(ChannelTemplates.private().orderingKey(intent), key);
    assert.equal(ChannelTemplates.fromEnv({}).orderingKey(intent), key, 'an empty environment is the private style');
  });

  test(`${name}: the builder makes the fixture intent, which passes the worker's rules`, () => {
    const built = build(intent);
    assert.deepEqual(withoutGenerated(built), withoutGenerated(intent));
    assert.equal(ChannelTemplates.private().orderingKey(built), key);
    checkIntent(intent);
  });
}

test('legacy style keys are the seed app\'s public channels', () => {
  const channels = ChannelTemplates.fromEnv({ RELAY_CHANNEL_STYLE: 'legacy' });
  assert.equal(channels.orderingKey({ type: 'notification', user_id: 42 }), 'user-42');
  assert.equal(channels.orderingKey({ type: 'order.status', order_id: 1001 }), 'order-1001');
  assert.equal(channels.orderingKey({ type: 'order.status', order_id: 1001, customer_id: 'c7' }), 'customer-c7');
  assert.equal(channels.orderingKey({ type: 'order.status', order_id: 1001, customer_id: null }), 'order-1001');
  assert.equal(channels.orderingKey({ type: 'chat.left', room_id: 5, user_id: 1 }), 'chat-room-5');
  assert.equal(channels.orderingKey({ type: 'announcement', message: 'm' }), 'system');
});

test('template overrides change the keys as they change the worker\'s channels', () => {
  const channels = ChannelTemplates.fromEnv({
    RELAY_CHANNEL_STYLE: 'legacy',
    RELAY_CHANNEL_CUSTOMER: 'shop-{customer_id}-order-{order_id}',
    RELAY_CHANNEL_INVENTORY: 'stock-{product_id}',
    RELAY_CHANNEL_CHAT: 'room-{room_id}-{user_id}',
  });
  assert.deepEqual(channels.channels({ type: 'order.status', order_id: 7, customer_id: 9 }), ['order-7', 'shop-9-order-7']);
  assert.equal(channels.orderingKey({ type: 'order.status', order_id: 7, customer_id: 9 }), 'shop-9-order-7');
  assert.equal(channels.orderingKey({ type: 'inventory.stock', product_id: 'sku-1', quantity: 1 }), 'stock-sku-1');
  assert.equal(channels.orderingKey({ type: 'chat.joined', room_id: 5, user_id: 'u1' }), 'room-5-u1');
  assert.equal(channels.orderingKey({ type: 'presence.activity', user_id: 3 }), 'presence-activity');
});

test('an intent without a usable identifier has no key', () => {
  const channels = ChannelTemplates.private();
  assert.equal(channels.orderingKey({ type: 'notification', user_id: '' }), null);
  assert.equal(channels.orderingKey({ type: 'notification', user_id: 1.5 }), null);
  assert.equal(channels.orderingKey({ type: 'chat.typing', room_id: 1 }), null);
  assert.equal(channels.orderingKey({ type: 'event', channels: [] }), null);
});
