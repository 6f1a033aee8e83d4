/**
 * Settings read once from the environment, with the names the worker and
 * the PHP client use, checked before anything connects. A bad value throws
 * a ConfigError naming the variable (never a password).
 */

import { ChannelTemplates } from './channels.js';
import { ConfigError } from './errors.js';
import { DEFAULT_MAX_EVENT_BYTES } from './rules.js';

export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f';
export const DEFAULT_EXCHANGE = 'pusher.intents';
/** Seconds to wait for the broker (each connect, each confirm): a request handler must not hang on it. */
export const DEFAULT_AMQP_TIMEOUT = 5;

const URL_SHAPE = 'must look like amqp://user:password@host:5672/vhost (or amqps://), several separated by commas';

/**
 * One RabbitMQ node of AMQP_URL.
 *
 * @typedef {object} AmqpNode
 * @property {string} url the URL as given, password included: pass it to the client, never to a log
 * @property {string} redacted the URL with its password replaced, for messages
 */

/**
 * Parses AMQP_URL: one URL, or several nodes' URLs separated by commas
 * (blanks around them and empty entries ignored, as the worker does). Every
 * entry must parse and all must share one scheme. Errors name the entry by
 * number, never by its text, which holds a password.
 *
 * @param {string} value
 * @param {string} [variable] the name to blame in errors
 * @returns {AmqpNode[]}
 */
export function parseAmqpUrls(value, variable = 'AMQP_URL') {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new ConfigError(variable, `${variable} ${URL_SHAPE}`);
  const nodes = entries.map((entry, i) => {
    const which = entries.length === 1 ? variable : `${variable} entry ${i + 1} of ${entries.length}`;
    let url;
    try {
      url = new URL(entry);
    } catch {
      throw new ConfigError(variable, `${which} ${URL_SHAPE}`);
    }
    if ((url.protocol !== 'amqp:' && url.protocol !== 'amqps:') || url.hostname === '') {
      throw new ConfigError(variable, `${which} ${URL_SHAPE}`);
    }
    const secure = url.protocol === 'amqps:';
    const user = url.username === '' ? 'guest' : url.username;
    const port = url.port === '' ? (secure ? 5671 : 5672) : Number(url.port);
    const vhost = url.pathname === '' || url.pathname === '/' ? '%2F' : url.pathname.slice(1);
    const tls = secure ? parseTls(url.searchParams, variable, which) : null;
    return { url: entry, secure, tls, redacted: `${secure ? 'amqps' : 'amqp'}://${user}:***@${url.hostname}:${port}/${vhost}` };
  });
  const mixed = nodes.findIndex((node) => node.secure !== nodes[0].secure);
  if (mixed !== -1) {
    throw new ConfigError(
      variable,
      `${variable} entry ${mixed + 1} uses ${nodes[mixed].secure ? 'amqps' : 'amqp'}:// but entry 1 uses ${nodes[0].secure ? 'amqps' : 'amqp'}://; every node must use the same scheme`,
    );
  }
  return nodes.map(({ url, redacted, tls }) => ({ url, redacted, tls }));
}

/**
 * @typedef {object} AmqpTls RabbitMQ's URI TLS parameters of an amqps:// URL
 * @property {string|null} cacertfile PEM CAs trusted besides Node's bundled roots
 * @property {string|null} certfile client certificate (PEM), with keyfile
 * @property {string|null} keyfile its key (PEM)
 * @property {boolean} verify false for verify=verify_none
 * @property {string|null} serverName server_name_indication: the name sent and checked instead of the host
 */

/**
 * The TLS query parameters of RabbitMQ's URI specification (cacertfile,
 * certfile, keyfile, verify, server_name_indication), as the worker reads
 * them. The files are read when connecting. Node sends SNI whenever it
 * connects to a host name, so server_name_indication=disable is refused.
 * @returns {AmqpTls}
 */
function parseTls(params, variable, which) {
  const verify = params.get('verify') ?? 'verify_peer';
  if (verify !== 'verify_peer' && verify !== 'verify_none') {
    throw new ConfigError(variable, `${which}: verify=${JSON.stringify(verify)} is not one of verify_peer, verify_none`);
  }
  const certfile = params.get('certfile');
  const keyfile = params.get('keyfile');
  if ((certfile === null) !== (keyfile === null)) {
    const [given, missing] = certfile === null ? ['keyfile', 'certfile'] : ['certfile', 'keyfile'];
    throw new ConfigError(variable, `${which}: ${given} is set without ${missing}; expected both (a client certificate and its key) or neither`);
  }
  const serverName = params.get('server_name_indication');
  if (serverName === 'disable') {
    throw new ConfigError(variable, `${which}: server_name_indication=disable is not supported by the Node client (Node always sends SNI to a host name); give the name to check instead`);
  }
  return { cacertfile: params.get('cacertfile'), certfile, keyfile, verify: verify === 'verify_peer', serverName };
}

/**
 * @typedef {object} PublisherSettings
 * @property {AmqpNode[]} nodes the RabbitMQ nodes, tried in a random order on each connect
 * @property {string} exchange where intents are published
 * @property {number} timeoutMs for each connect and each confirm
 * @property {ChannelTemplates} templates the worker's channel templates, for ordering keys
 * @property {number} maxEventBytes the worker's PUSHER_MAX_EVENT_BYTES
 */

/**
 * Reads AMQP_URL, AMQP_EXCHANGE, AMQP_TIMEOUT, PUSHER_MAX_EVENT_BYTES,
 * RELAY_CHANNEL_STYLE and RELAY_CHANNEL_*; unset or blank means the default.
 *
 * @param {Record<string, string | undefined>} [env]
 * @returns {PublisherSettings}
 * @throws {ConfigError}
 */
export function settingsFromEnv(env = process.env) {
  const read = (name) => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const positive = (name, fallback, what) => {
    const text = read(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(name, `${name} must be ${what}, got "${text}"`);
    return value;
  };
  const maxEventBytes = positive('PUSHER_MAX_EVENT_BYTES', DEFAULT_MAX_EVENT_BYTES, 'a positive number of bytes');
  if (!Number.isInteger(maxEventBytes)) {
    throw new ConfigError('PUSHER_MAX_EVENT_BYTES', `PUSHER_MAX_EVENT_BYTES must be a whole number of bytes, got "${read('PUSHER_MAX_EVENT_BYTES')}"`);
  }
  return {
    nodes: parseAmqpUrls(read('AMQP_URL') ?? DEFAULT_AMQP_URL),
    exchange: read('AMQP_EXCHANGE') ?? DEFAULT_EXCHANGE,
    timeoutMs: positive('AMQP_TIMEOUT', DEFAULT_AMQP_TIMEOUT, 'a positive number of seconds') * 1000,
    templates: ChannelTemplates.fromEnv(env),
    maxEventBytes,
  };
}
