import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, DEFAULT_MAX_EVENT_BYTES, parseAmqpUrls, settingsFromEnv } from '../src/index.js';

/** Asserts `fn` throws a ConfigError blaming `variable` whose message matches `pattern`. */
function assertConfigError(fn, variable, pattern) {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof ConfigError, `${error} is a ConfigError`);
    assert.equal(error.variable, variable);
    assert.match(error.message, pattern);
    return true;
  });
}

test('an empty environment gives the worker\'s defaults', () => {
  const settings = settingsFromEnv({});
  assert.deepEqual(settings.nodes, [
    { url: 'amqp://guest:guest@127.0.0.1:5672/%2f', redacted: 'amqp://guest:***@127.0.0.1:5672/%2f', tls: null },
  ]);
  assert.equal(settings.exchange, 'pusher.intents');
  assert.equal(settings.timeoutMs, 5000);
  assert.equal(settings.maxEventBytes, DEFAULT_MAX_EVENT_BYTES);
  assert.equal(settings.templates.templates.notification, 'private-user-{user_id}');
});

test('AMQP_URL lists several nodes, blanks and empty entries ignored, passwords redacted', () => {
  const nodes = parseAmqpUrls(' amqp://relay:s3cret@10.0.0.1:5672/%2f , amqp://relay:s3cret@10.0.0.2/prod,, ');
  assert.deepEqual(
    nodes.map((n) => n.redacted),
    ['amqp://relay:***@10.0.0.1:5672/%2f', 'amqp://relay:***@10.0.0.2:5672/prod'],
  );
  assert.equal(nodes[1].url, 'amqp://relay:s3cret@10.0.0.2/prod');
});

test('a bad AMQP_URL entry is named by its number, never by its text', () => {
  assert.throws(
    () => parseAmqpUrls('amqp://u:pw1@a:5672/%2f,http://u:pw2@b/,amqp://u:pw3@c'),
    (error) => {
      assert.equal(error.variable, 'AMQP_URL');
      assert.match(error.message, /^AMQP_URL entry 2 of 3 must look like amqp:\/\/user:password@host:5672\/vhost/);
      assert.doesNotMatch(error.message, /pw/);
      return true;
    },
  );
  assertConfigError(() => parseAmqpUrls('not a url'), 'AMQP_URL', /^AMQP_URL must look like/);
  assertConfigError(() => parseAmqpUrls(' , '), 'AMQP_URL', /^AMQP_URL must look like/);
  assertConfigError(
    () => parseAmqpUrls('amqp://a,amqps://b'),
    'AMQP_URL',
    /entry 2 uses amqps:\/\/ but entry 1 uses amqp:\/\/; every node must use the same scheme/,
  );
});

test('bad numbers and templates name their variable', () => {
  assertConfigError(() => settingsFromEnv({ AMQP_TIMEOUT: '0' }), 'AMQP_TIMEOUT', /positive number of seconds, got "0"/);
  assertConfigError(() => settingsFromEnv({ AMQP_TIMEOUT: 'soon' }), 'AMQP_TIMEOUT', /got "soon"/);
  assertConfigError(
    () => settingsFromEnv({ PUSHER_MAX_EVENT_BYTES: '10.5' }),
    'PUSHER_MAX_EVENT_BYTES',
    /whole number of bytes/,
  );
  assertConfigError(() => settingsFromEnv({ RELAY_CHANNEL_STYLE: 'public' }), 'RELAY_CHANNEL_STYLE', /got "public"/);
  assertConfigError(
    () => settingsFromEnv({ RELAY_CHANNEL_ORDER: 'order-{user_id}' }),
    'RELAY_CHANNEL_ORDER',
    /unknown placeholder \{user_id\} \(allowed: \{order_id\}\)/,
  );
  assertConfigError(() => settingsFromEnv({ RELAY_CHANNEL_CHAT: 'room-{room_id' }), 'RELAY_CHANNEL_CHAT', /without its pair/);
  assertConfigError(
    () => settingsFromEnv({ RELAY_CHANNEL_DASHBOARD: 'dash board' }),
    'RELAY_CHANNEL_DASHBOARD',
    /does not render a valid channel name/,
  );
});

test('AMQP_TIMEOUT is seconds; AMQP_EXCHANGE and templates are taken as given', () => {
  const settings = settingsFromEnv({
    AMQP_TIMEOUT: '0.5',
    AMQP_EXCHANGE: 'app.intents',
    RELAY_CHANNEL_NOTIFICATION: 'u-{user_id}',
  });
  assert.equal(settings.timeoutMs, 500);
  assert.equal(settings.exchange, 'app.intents');
  assert.equal(settings.templates.orderingKey({ type: 'notification', user_id: 3 }), 'u-3');
});

test('amqps:// URLs take RabbitMQ\'s TLS parameters, and a bad one is named', () => {
  const [node] = parseAmqpUrls(
    'amqps://u:s3cret@mq.example:5671/%2f?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&server_name_indication=rabbit.internal',
  );
  assert.deepEqual(node.tls, {
    cacertfile: '/ca.pem',
    certfile: '/c.pem',
    keyfile: '/k.pem',
    verify: true,
    serverName: 'rabbit.internal',
  });
  assert.equal(parseAmqpUrls('amqps://u:p@mq/%2f?verify=verify_none')[0].tls.verify, false);
  assertConfigError(() => parseAmqpUrls('amqps://u:s3cret@mq/%2f?verify=yes'), 'AMQP_URL', /verify="yes" is not one of verify_peer, verify_none/);
  assertConfigError(() => parseAmqpUrls('amqps://u:p@mq/%2f?certfile=/c.pem'), 'AMQP_URL', /certfile is set without keyfile/);
});
