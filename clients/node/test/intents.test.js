// checkIntent refuses what the worker would dead-letter, naming the field;
// the cases follow tests/offline/schema.rs's tables of invalid and valid intents.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChannelTemplates, IntentPublisher, InvalidIntent, checkIntent, intents } from '../src/index.js';

/** Asserts checkIntent refuses `intent`, blaming `field`, with a message matching `pattern`. */
function assertInvalid(intent, field, pattern) {
  assert.throws(
    () => checkIntent(intent),
    (error) => {
      assert.ok(error instanceof InvalidIntent, `${error} is an InvalidIntent`);
      assert.equal(error.field, field);
      assert.match(error.message, pattern);
      return true;
    },
    `${intent?.type}: ${field}`,
  );
}

const channels101 = Array.from({ length: 101 }, (_, n) => `c${n}`);

const INVALID = [
  ['not an object', ['type', 'announcement'], 'intent', /plain object/],
  ['no type', { message: 'm' }, 'type', /type must be one of notification, announcement/],
  ['unknown type', { type: 'chat.typing', room_id: 1 }, 'type', /got "chat.typing"/],
  ['missing field', { type: 'chat.message', user_id: 1, user_name: 'n', message: 'm' }, 'room_id', /chat.message intent is missing field "room_id"/],
  ['required field null', { type: 'announcement', message: null }, 'message', /missing field "message"/],
  ['event without data', { type: 'event', channels: ['a'], event: 'e' }, 'data', /missing field "data"/],
  ['bad channel name', { type: 'event', channels: ['a b'], event: 'e', data: 1 }, 'channels[0]', /"a b" is not a valid channel name/],
  ['channel of 165 characters', { type: 'event', channels: ['a'.repeat(165)], event: 'e', data: 1 }, 'channels[0]', /165 characters long; Pusher allows at most 164/],
  ['bare #server-to-user- channel', { type: 'event', channels: ['#server-to-user-'], event: 'e', data: 1 }, 'channels[0]', /not a valid channel name/],
  ['101 channels', { type: 'event', channels: channels101, event: 'e', data: 1 }, 'channels', /101 entries; Pusher allows at most 100/],
  ['no channels', { type: 'event', channels: [], event: 'e', data: 1 }, 'channels', /at least one channel/],
  ['channels not an array', { type: 'event', channels: 'a', event: 'e', data: 1 }, 'channels', /must be an array/],
  ['channel not a string', { type: 'event', channels: ['a', 1], event: 'e', data: 1 }, 'channels[1]', /must be a channel name \(a string\), got number/],
  ['encrypted channel among others', { type: 'event', channels: ['private-encrypted-a', 'b'], event: 'e', data: 1 }, 'channels', /only channel/],
  ['empty event name', { type: 'event', channels: ['a'], event: '', data: 1 }, 'event', /non-empty string/],
  ['event name of 201 characters', { type: 'event', channels: ['a'], event: 'e'.repeat(201), data: 1 }, 'event', /201 characters long/],
  ['info not a string', { type: 'event', channels: ['a'], event: 'e', data: 1, info: 1 }, 'info', /info must be a string/],
  ['message not a string', { type: 'announcement', message: 5 }, 'message', /message must be a string, got number/],
  ['metrics not an object', { type: 'dashboard.metrics', metrics: [1] }, 'metrics', /plain object .* got an array/],
  ['quantity not a number', { type: 'inventory.stock', product_id: 1, quantity: '3' }, 'quantity', /finite number, got string/],
  ['quantity not finite', { type: 'inventory.stock', product_id: 1, quantity: Number.NaN }, 'quantity', /finite number/],
  ['identifier a fraction', { type: 'notification', user_id: 1.5, message: 'm' }, 'user_id', /integer or a non-empty string, got the number 1.5/],
  ['identifier empty', { type: 'notification', user_id: '', message: 'm' }, 'user_id', /non-empty string, got string/],
  ['identifier a boolean', { type: 'notification', user_id: true, message: 'm' }, 'user_id', /got boolean/],
  ['identifier past 2^53', { type: 'notification', user_id: 2 ** 60, message: 'm' }, 'user_id', /pass it as a string/],
  ['optional identifier an object', { type: 'order.status', order_id: 1, status: 's', customer_id: { id: 1 } }, 'customer_id', /got an object/],
  ['level not a string', { type: 'notification', user_id: 1, message: 'm', level: 2 }, 'level', /level must be a string/],
  ['id an integer', { type: 'announcement', message: 'm', id: 5 }, 'id', /id must be a non-empty string, got number/],
  ['id empty', { type: 'announcement', message: 'm', id: '' }, 'id', /non-empty string/],
  ['created_at a string', { type: 'announcement', message: 'm', created_at: '2024' }, 'created_at', /unix milliseconds/],
  ['created_at a fraction', { type: 'announcement', message: 'm', created_at: 1.5 }, 'created_at', /unix milliseconds/],
  ['bad socket_id', { type: 'announcement', message: 'm', socket_id: '1.1:' }, 'socket_id', /must look like "123.456"/],
  ['socket_id without a dot', { type: 'announcement', message: 'm', socket_id: '123456' }, 'socket_id', /123.456/],
  ['socket_id with non-ASCII digits', { type: 'announcement', message: 'm', socket_id: '\u0661.\u0662' }, 'socket_id', /123.456/],
  ['socket_id a number', { type: 'announcement', message: 'm', socket_id: 1.5 }, 'socket_id', /123.456/],
  ['data not JSON (a BigInt)', { type: 'event', channels: ['a'], event: 'e', data: { n: 1n } }, 'data', /cannot be encoded as JSON/],
  ['data not JSON (a function)', { type: 'event', channels: ['a'], event: 'e', data: () => 1 }, 'data', /cannot be encoded as JSON/],
  ['event data over 10 240 bytes', { type: 'event', channels: ['a'], event: 'e', data: 'x'.repeat(10241) }, 'data', /10241 bytes as JSON; Pusher allows at most 10240/],
  ['typed intent over 10 240 bytes', { type: 'announcement', message: 'x'.repeat(10240) }, 'announcement intent', /bytes as JSON; Pusher allows at most 10240/],
];

for (const [what, intent, field, pattern] of INVALID) {
  test(`refused: ${what}`, () => assertInvalid(intent, field, pattern));
}

const VALID = [
  ['null optional fields', { type: 'order.status', order_id: 1, status: 's', customer_id: null, id: null, socket_id: null, created_at: null }],
  ['unknown fields', { type: 'announcement', message: 'm', extra: { nested: true } }],
  ['every common field', { type: 'announcement', message: '', priority: 'high', id: 'a-1', socket_id: '123.456', created_at: 1700000000123 }],
  ['identifier outside the channel charset where no template uses it', { type: 'chat.left', room_id: 1, user_id: 'Ada Lovelace', user_name: 'n' }],
  ['fractional quantity', { type: 'inventory.stock', product_id: 'p', quantity: 1.5 }],
  ['empty metrics', { type: 'dashboard.metrics', metrics: {} }],
  ['null data and info', { type: 'event', channels: ['a'], event: 'e', data: null, info: null }],
  ['100 channels', { type: 'event', channels: channels101.slice(0, 100), event: 'e', data: {} }],
  ['channel of 164 characters and every allowed character', { type: 'event', channels: ['a'.repeat(164), '-_=@,.;AZaz09'], event: 'e', data: 'x' }],
  ['#server-to-user- channel', { type: 'event', channels: ['#server-to-user-42'], event: 'e', data: 1 }],
  ['encrypted channel alone', { type: 'event', channels: ['private-encrypted-a'], event: 'e', data: 1 }],
  ['event name of 200 characters', { type: 'event', channels: ['a'], event: 'é'.repeat(200), data: [1] }],
  ['data of exactly 10 240 bytes', { type: 'event', channels: ['a'], event: 'e', data: 'x'.repeat(10240) }],
];

for (const [what, intent] of VALID) {
  test(`accepted: ${what}`, () => checkIntent(intent));
}

test('a smaller PUSHER_MAX_EVENT_BYTES is the limit', () => {
  assert.throws(() => checkIntent({ type: 'event', channels: ['a'], event: 'e', data: 'x'.repeat(101) }, { maxEventBytes: 100 }), /at most 100/);
});

test('builders keep identifiers as given and leave out what was not given', () => {
  assert.deepEqual(intents.notification('u-1', 'hi'), { type: 'notification', user_id: 'u-1', message: 'hi', level: 'info' });
  assert.deepEqual(intents.announcement('m'), { type: 'announcement', message: 'm', priority: 'normal' });
  assert.deepEqual(intents.orderStatus(7, 'paid'), { type: 'order.status', order_id: 7, status: 'paid' });
  assert.deepEqual(intents.orderStatus(7, 'paid', { customerId: 0 }), { type: 'order.status', order_id: 7, status: 'paid', customer_id: 0 });
  assert.deepEqual(intents.chatMessage(5, 7, 'Ada', 'hi', { socketId: '1.2', id: 'msg-1' }), {
    type: 'chat.message',
    room_id: 5,
    user_id: 7,
    user_name: 'Ada',
    message: 'hi',
    socket_id: '1.2',
    id: 'msg-1',
  });
  assert.deepEqual(intents.event(['a'], 'e', { x: 1 }), { type: 'event', channels: ['a'], event: 'e', data: { x: 1 } });
});

/** A publisher whose only node refuses connections: a test that reaches the broker fails. */
function offlinePublisher() {
  return new IntentPublisher({
    nodes: [{ url: 'amqp://guest:guest@127.0.0.1:1/%2f', redacted: 'amqp://guest:***@127.0.0.1:1/%2f' }],
    exchange: 'unused',
    timeoutMs: 1000,
    templates: ChannelTemplates.private(),
    maxEventBytes: 10240,
  });
}

test('the publisher refuses an invalid intent before it connects', async () => {
  const publisher = offlinePublisher();
  await assert.rejects(publisher.notifyUser(true, 'hi'), (error) => error instanceof InvalidIntent && error.field === 'user_id');
  await assert.rejects(publisher.trigger('a b', 'e', {}), (error) => error instanceof InvalidIntent && error.field === 'channels[0]');
  await assert.rejects(
    publisher.postChatMessage('room 5', 7, 'Ada', 'hi'),
    (error) =>
      error instanceof InvalidIntent && /chat.message intent's identifiers render channel "chat-room-room 5"/.test(error.message),
  );
  await assert.rejects(
    publisher.updateOrderStatus('o 1', 'paid', { customerId: 9 }),
    /render channel "private-order-o 1"/,
    'the order channel is checked, not only the last one',
  );
  await publisher.close();
});

test('an unreachable broker is a PublishFailed that names the node without its password', async () => {
  const publisher = new IntentPublisher({ ...offlinePublisher().settings, nodes: [{ url: 'amqp://app:hunter2@127.0.0.1:1/%2f', redacted: 'amqp://app:***@127.0.0.1:1/%2f' }] });
  await assert.rejects(publisher.announce('hi'), (error) => {
    assert.equal(error.name, 'PublishFailed');
    assert.equal(error.reason, 'unreachable');
    assert.match(error.message, /could not connect to RabbitMQ at amqp:\/\/app:\*\*\*@127.0.0.1:1\/%2f/);
    assert.doesNotMatch(error.message, /hunter2/);
    return true;
  });
  await publisher.close();
});
