/**
 * Publishes intents to RabbitMQ with publisher confirms.
 *
 * "Published" means the broker confirmed it took responsibility: the
 * message was routed to a queue (it is published `mandatory`, so an
 * exchange with no queue bound is a failure, not a silent drop) and acked.
 * Anything less rejects with a PublishFailed.
 *
 * One connection and one confirm channel, opened on first use and shared by
 * every publish: many publishes may be in flight at once, and their confirms
 * arrive together (await them with Promise.all to publish a burst quickly).
 * With several RabbitMQ nodes, each connect tries them in a fresh random
 * order, so producers spread over the cluster and a lost connection is
 * replaced on whichever node is still up.
 */

import { randomUUID } from 'node:crypto';

import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

import amqp from 'amqplib';

import { settingsFromEnv } from './config.js';
import { ConfigError, PublishFailed } from './errors.js';
import * as intents from './intents.js';

/** The header the worker's shards route on (src/amqp/mod.rs, ORDERING_KEY_HEADER). */
export const ORDERING_KEY_HEADER = 'ordering-key';

/** Fisher-Yates: a fresh order per connect, so producers spread over the nodes. */
function shuffled(items) {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** An error's message without a URL's password, which amqplib may echo. */
function describe(error) {
  const message = error instanceof Error ? error.message || error.name : String(error);
  return message.replace(/(amqps?:\/\/[^:/@\s]*:)[^@\s]*@/g, '$1***@');
}

export class IntentPublisher {
  /**
   * @param {Partial<import('./config.js').PublisherSettings> & { appId?: string }} [options]
   *        settings; each one missing is read from the environment as settingsFromEnv does
   */
  constructor(options = {}) {
    const needsEnv = ['nodes', 'exchange', 'timeoutMs', 'templates', 'maxEventBytes'].some((k) => options[k] === undefined);
    const settings = { ...(needsEnv ? settingsFromEnv() : {}), ...options };
    if (!Array.isArray(settings.nodes) || settings.nodes.length === 0) {
      throw new ConfigError('nodes', 'IntentPublisher needs at least one RabbitMQ node (AMQP_URL)');
    }
    /** Settings, fixed for the life of the publisher. */
    this.settings = Object.freeze(settings);
    /** The open connection and its confirm channel, or null before first use and after a loss. */
    this.link = null;
    /** The connect in progress, shared by the publishes that wait for it. */
    this.connecting = null;
    /** Set by close(): a closed publisher refuses to reconnect. */
    this.closed = false;
  }

  /**
   * A publisher configured from the environment: AMQP_URL (one URL or a
   * comma-separated list of nodes), AMQP_EXCHANGE, AMQP_TIMEOUT,
   * PUSHER_MAX_EVENT_BYTES, RELAY_CHANNEL_STYLE and RELAY_CHANNEL_*.
   *
   * @param {Record<string, string | undefined>} [env]
   * @param {{ appId?: string }} [options]
   */
  static fromEnv(env = process.env, options = {}) {
    return new IntentPublisher({ ...settingsFromEnv(env), ...options });
  }

  /**
   * Checks an intent as the worker will, adds `id` (a random UUID unless
   * given) and `created_at` (now, unix ms), and publishes it with the wire
   * contract's properties and its ordering key. Resolves with the intent id
   * once the broker confirmed it.
   *
   * @param {Record<string, unknown>} intent a body from one of the builders, or one written by hand
   * @returns {Promise<string>} the intent id
   * @throws {import('./errors.js').InvalidIntent} before anything is sent
   * @throws {PublishFailed} when the broker did not confirm it
   */
  async publish(intent) {
    const { templates, maxEventBytes } = this.settings;
    intents.checkIntent(intent, { maxEventBytes });
    const channels = templates.channels(intent);
    if (intent.type !== 'event' && channels !== null) intents.checkRenderedChannels(intent, channels);

    // A fresh id per intent lets the worker tell a redelivery from a new intent.
    const body = { ...intent, id: intent.id ?? randomUUID(), created_at: intent.created_at ?? Date.now() };
    const orderingKey = channels === null ? null : channels[channels.length - 1];
    await this.send(body, orderingKey);
    return body.id;
  }

  /** notification → private-user-{userId}; options: level ("info"), socketId, id. */
  notifyUser(userId, message, options) {
    return this.publish(intents.notification(userId, message, options));
  }

  /** announcement → "system"; options: priority ("normal"), socketId, id. */
  announce(message, options) {
    return this.publish(intents.announcement(message, options));
  }

  /** chat.message → chat-room-{roomId}, event "new-message". */
  postChatMessage(roomId, userId, userName, message, options) {
    return this.publish(intents.chatMessage(roomId, userId, userName, message, options));
  }

  /** chat.joined → chat-room-{roomId}, event "user-joined". */
  userJoinedRoom(roomId, userId, userName, options) {
    return this.publish(intents.chatJoined(roomId, userId, userName, options));
  }

  /** chat.left → chat-room-{roomId}, event "user-left". */
  userLeftRoom(roomId, userId, userName, options) {
    return this.publish(intents.chatLeft(roomId, userId, userName, options));
  }

  /** order.status → private-order-{orderId} (+ private-customer-{customerId}); options: customerId. */
  updateOrderStatus(orderId, status, options) {
    return this.publish(intents.orderStatus(orderId, status, options));
  }

  /** dashboard.metrics → "dashboard", event "metrics-update". */
  updateDashboardMetrics(metrics, options) {
    return this.publish(intents.dashboardMetrics(metrics, options));
  }

  /** inventory.stock → "inventory", event "stock-update". */
  updateInventory(productId, quantity, options) {
    return this.publish(intents.inventoryStock(productId, quantity, options));
  }

  /** presence.activity → "presence-activity", event "user-activity". */
  broadcastUserActivity(userId, activity, options) {
    return this.publish(intents.presenceActivity(userId, activity, options));
  }

  /** event on one channel, as Pusher's trigger; options: socketId, info, id. */
  trigger(channel, event, data, options) {
    return this.publish(intents.event([channel], event, data, options));
  }

  /** event on 1 to 100 channels, as the seed's triggerBatch; options: socketId, info, id. */
  triggerBatch(channels, event, data, options) {
    return this.publish(intents.event(channels, event, data, options));
  }

  /** Closes the connection once the publishes in flight are confirmed (or failed); safe to call twice. */
  async close() {
    this.closed = true;
    const link = this.link ?? (await this.connecting?.catch(() => null));
    this.link = null;
    if (link) {
      try {
        // Each publish learns its own outcome; this only waits for them.
        await link.channel.waitForConfirms().catch(() => {});
        await link.connection.close();
      } catch {
        // Best effort: the broker drops the connection anyway.
      }
    }
  }

  /**
   * Publishes one body; on a kept connection that turns out to be lost
   * (broker restart, node down), tries once more on a new connection to any
   * node. The id stays the same, so the worker drops a duplicate. A refusal
   * on a live connection (no such exchange, returned, nacked) is not retried:
   * it would fail again.
   */
  async send(body, orderingKey) {
    const reused = this.link !== null;
    try {
      await this.sendOnce(body, orderingKey);
    } catch (error) {
      const lost = error instanceof PublishFailed && error.connectionLost;
      if (!(reused && lost)) throw error;
      await this.sendOnce(body, orderingKey);
    }
  }

  async sendOnce(body, orderingKey) {
    const link = await this.connect(body.id);
    const { exchange, timeoutMs, appId } = this.settings;
    /** @type {import('amqplib').Options.Publish} */
    const properties = {
      contentType: 'application/json',
      deliveryMode: 2,
      messageId: body.id,
      timestamp: Math.floor(body.created_at / 1000),
      mandatory: true,
    };
    if (appId !== undefined) properties.appId = appId;
    // amqplib writes a string header as a long string ('S'), the type the
    // worker's publisher uses, so the consistent-hash exchange hashes both alike.
    if (orderingKey !== null) properties.headers = { [ORDERING_KEY_HEADER]: orderingKey };

    const content = Buffer.from(JSON.stringify(body), 'utf8');
    await new Promise((resolve, reject) => {
      const fail = (reason, message, cause, connectionLost = false) => {
        clearTimeout(timer);
        const error = new PublishFailed(reason, message, { intentId: body.id, cause });
        error.connectionLost = connectionLost;
        reject(error);
      };
      const timer = setTimeout(() => {
        // The channel's state is unknown now; a later publish starts afresh.
        this.forget(link);
        link.connection.close().catch(() => {});
        fail('timeout', `RabbitMQ did not confirm intent ${body.id} within ${timeoutMs} ms (exchange "${exchange}")`);
      }, timeoutMs);
      try {
        link.channel.publish(exchange, body.type, content, properties, (err) => {
          if (!err) {
            // RabbitMQ sends basic.return before the ack of the same message.
            const returned = link.returned.get(body.id);
            link.returned.delete(body.id);
            if (returned === undefined) {
              clearTimeout(timer);
              resolve();
              return;
            }
            fail(
              'returned',
              `RabbitMQ could not route intent ${body.id}: exchange "${exchange}" has no queue bound for routing key "${body.type}" (${returned}); has the worker declared its queue?`,
            );
            return;
          }
          if (err.message === 'message nacked') {
            fail('nacked', `RabbitMQ refused intent ${body.id} (nack) on exchange "${exchange}"`, err);
            return;
          }
          // The channel closed with the message unconfirmed: the broker
          // refused something (its reason came as a channel error), or the
          // connection went (its error may not have arrived yet).
          const failure = link.failure ?? { error: err, connection: true };
          fail(
            failure.connection ? 'unreachable' : 'refused',
            `could not publish intent ${body.id} to exchange "${exchange}": ${describe(failure.error)}`,
            failure.error,
            failure.connection,
          );
        });
      } catch (error) {
        // A channel already closed throws at once; the connection may be gone.
        this.forget(link);
        fail('unreachable', `could not publish intent ${body.id} to RabbitMQ: ${describe(error)}`, error, true);
      }
    });
  }

  /** The open link, connecting first when there is none. */
  async connect(intentId) {
    if (this.closed) throw new PublishFailed('unreachable', 'the publisher is closed', { intentId });
    if (this.link !== null) return this.link;
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    try {
      return await this.connecting;
    } catch (error) {
      if (error instanceof PublishFailed) throw new PublishFailed(error.reason, error.message, { intentId, cause: error.cause });
      throw error;
    }
  }

  /**
   * Opens a connection to the first node that accepts one, in a random
   * order, and a confirm channel on it. Each unreachable node costs up to
   * the timeout; one that is down refuses at once.
   */
  async open() {
    const { nodes, timeoutMs } = this.settings;
    const order = shuffled(nodes);
    let connection = null;
    let lastError = null;
    for (const node of order) {
      try {
        connection = await amqp.connect(node.url, {
          ...tlsOptions(node.tls),
          timeout: timeoutMs,
          // Names the app in the management UI and in rabbitmqctl list_connections.
          clientProperties: { connection_name: `pusher-relay-producer (node)${this.settings.appId ? ` ${this.settings.appId}` : ''}` },
        });
        break;
      } catch (error) {
        lastError = error;
      }
    }
    if (connection === null) {
      const message =
        order.length === 1
          ? `could not connect to RabbitMQ at ${order[0].redacted}: ${describe(lastError)}`
          : `no RabbitMQ node of AMQP_URL accepted a connection (tried ${order.map((n) => n.redacted).join(', ')}); the last said: ${describe(lastError)}`;
      throw new PublishFailed('unreachable', message, { cause: lastError });
    }

    const link = {
      connection,
      channel: null,
      /** message_id => "312 NO_ROUTE", for messages the broker returned. */
      returned: new Map(),
      /** What closed the channel or connection, read by the confirms it failed. */
      failure: null,
    };
    // Without a listener an 'error' event would crash the process; the
    // failure is reported through the publishes it fails instead.
    connection.on('error', (error) => {
      link.failure ??= { error, connection: true };
    });
    connection.on('close', (error) => {
      link.failure ??= { error: error ?? new Error('the connection was closed'), connection: true };
      this.forget(link);
    });
    try {
      link.channel = await connection.createConfirmChannel();
    } catch (error) {
      connection.close().catch(() => {});
      throw new PublishFailed('unreachable', `could not open a channel on RabbitMQ: ${describe(error)}`, { cause: error });
    }
    link.channel.on('return', (message) => {
      const { replyCode, replyText } = message.fields;
      link.returned.set(message.properties.messageId, `${replyCode} ${replyText}`);
    });
    link.channel.on('error', (error) => {
      link.failure ??= { error, connection: false };
    });
    link.channel.on('close', () => {
      // The broker closes a channel on a refusal (e.g. 404 no such exchange);
      // the connection stays usable, so the next publish opens a new link.
      this.forget(link);
      if (link.failure?.connection === false) connection.close().catch(() => {});
    });
    if (this.closed) {
      await connection.close().catch(() => {});
      throw new PublishFailed('unreachable', 'the publisher is closed');
    }
    this.link = link;
    return link;
  }

  /** Drops a link that can no longer publish, so the next publish opens a new one. */
  forget(link) {
    if (this.link === link) this.link = null;
  }
}

/**
 * Node's tls.connect options for an amqps:// node's parameters (none for
 * amqp://): the CA file is added to Node's roots rather than replacing them,
 * as the worker adds it to the system's.
 */
function tlsOptions(tls) {
  if (!tls) return {};
  const options = { rejectUnauthorized: tls.verify };
  if (tls.cacertfile !== null) options.ca = [...rootCertificates, readFileSync(tls.cacertfile)];
  if (tls.certfile !== null) {
    options.cert = readFileSync(tls.certfile);
    options.key = readFileSync(tls.keyfile);
  }
  if (tls.serverName !== null) options.servername = tls.serverName;
  return options;
}
