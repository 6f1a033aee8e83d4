// The whole chat stack for one browser test run, started for real and on
// names of its own: sockudo on a free port (its webhooks aimed at the
// worker), a recording proxy between the worker and sockudo, the worker
// binary on a unique exchange and queue with a temporary SQLite store,
// `pusher-relay webhooks tail`, and the PHP example app under `php -S`.
// stop() ends every process it started and deletes what it declared on
// RabbitMQ, so that a run leaves nothing behind.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');

/** The app's credentials, as .env.example and scripts/sockudo have them. */
export const APP = { id: '123456', key: 'app-key', secret: 'app-secret' };
const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2f';
/** A fixed test master key (32 bytes); a real app generates its own. */
const MASTER_KEY = Buffer.alloc(32, 7).toString('base64');

export function workerBinary() {
  // Relative to where the test was started; the processes run elsewhere.
  const bin = path.resolve(process.env.PUSHER_RELAY_BIN || path.join(ROOT, 'target/release/pusher-relay'));
  if (!existsSync(bin)) {
    throw new Error(`no worker binary at ${bin}: cargo build --release --bin pusher-relay, or set PUSHER_RELAY_BIN`);
  }
  return bin;
}

export function sockudoBinary() {
  const candidates = [process.env.SOCKUDO_BIN, path.join(os.homedir(), '.cargo/bin/sockudo')];
  try {
    candidates.push(execFileSync('sh', ['-c', 'command -v sockudo'], { encoding: 'utf8' }).trim());
  } catch {
    // not on PATH; the cargo location above may still have it
  }
  const bin = candidates.find((c) => c && existsSync(c));
  if (!bin) throw new Error('no sockudo binary: run scripts/sockudo install (or set SOCKUDO_BIN)');
  return bin;
}

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns true, or fails naming `what` after `ms`. */
export async function waitFor(what, probe, ms = 20000, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

async function httpOk(url) {
  const response = await fetch(url);
  return response.ok;
}

/**
 * A child process whose output is kept (the last 200 lines) for the error
 * message when it dies early.
 */
function start(name, command, args, options) {
  // Its own process group, stopped as a whole: php -S with
  // PHP_CLI_SERVER_WORKERS has worker processes that outlive their parent.
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (chunk) => {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
    // A command that cannot start never exits: count that as an exit.
    child.on('error', (e) => {
      child.failed = e;
      lines.push(`cannot start: ${e.message}`);
      resolve({ code: null, signal: null });
    });
  });
  child.gone = () => child.exitCode !== null || child.signalCode !== null || child.failed !== undefined;
  child.describe = () => `${name} (pid ${child.pid}); last output:\n${lines.slice(-30).join('\n')}`;
  child.label = name;
  return child;
}

/** The error for a process that ended while we waited for it; waitFor stops at once. */
function died(child) {
  return Object.assign(new Error(`exited early: ${child.describe()}`), { fatal: true });
}

/** SIGTERM, then SIGKILL after `ms` if it has not gone. */
async function stopProcess(child, ms = 10000) {
  if (!child || child.gone()) return;
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {
      // the group is already gone
    }
  };
  signal(child.stopSignal ?? 'SIGTERM');
  const gone = await Promise.race([child.exited.then(() => true), sleep(ms).then(() => false)]);
  if (!gone) {
    signal('SIGKILL');
    await child.exited;
  }
  // What is left of the group (php -S's workers) once the leader has gone.
  signal('SIGKILL');
}

/**
 * An HTTP proxy that forwards every request to `target` and keeps what
 * passed: the worker's requests to sockudo, to check what it really sent.
 */
function recordingProxy(targetPort) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const record = { method: req.method, url: req.url, body: body.toString('utf8'), status: null };
      requests.push(record);
      const upstream = http.request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          record.status = up.statusCode;
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', (e) => {
        record.status = 502;
        res.writeHead(502).end(`proxy: ${e.message}`);
      });
      upstream.end(body);
    });
  });
  return { server, requests };
}

/**
 * Starts everything; returns the stack. `stack.stop()` undoes it all, also
 * after a partial start.
 */
export async function startStack() {
  const run = `chat-test-${process.pid}-${Date.now().toString(36)}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pusher-relay-chat-'));
  const stack = {
    run,
    dir,
    processes: [],
    names: { exchange: `${run}.intents`, queue: `${run}.intents`, webhookExchange: `${run}.webhooks` },
    webhooks: [],
    proxy: null,
  };
  stack.stop = () => stopStack(stack);
  // The processes run in process groups of their own, so an interrupted run
  // (Ctrl-C, a CI timeout) must end them itself, synchronously: the test
  // runner does not wait for anything asynchronous once it signalled us.
  const interrupted = (signal) => {
    killAll(stack);
    cleanBroker(stack);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  process.once('exit', () => killAll(stack));
  try {
    await startAll(stack);
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

async function startAll(stack) {
  const [sockudoPort, proxyPort, workerPort, appPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  Object.assign(stack, { sockudoPort, proxyPort, workerPort, appPort });
  const bin = workerBinary();

  // sockudo, from a config file: an app defined by environment variables
  // cannot have webhooks. Pusher's limits (10 per batch, 10 KB, 100
  // channels), user authentication on, no rate limit on backend events (the
  // burst test is about the relay, not sockudo's limiter).
  const config = {
    app_manager: {
      driver: 'memory',
      array: {
        apps: [
          {
            id: APP.id,
            key: APP.key,
            secret: APP.secret,
            enabled: true,
            policy: {
              limits: {
                max_connections: 1000,
                max_backend_events_per_second: 1000000,
                max_client_events_per_second: 100,
                max_read_requests_per_second: 100000,
                max_presence_members_per_channel: 100,
                max_presence_member_size_in_kb: 2,
                max_channel_name_length: 164,
                max_event_channels_at_once: 100,
                max_event_name_length: 200,
                max_event_payload_in_kb: 10,
                max_event_batch_size: 10,
              },
              features: { enable_client_messages: false, enable_user_authentication: true },
              webhooks: [
                {
                  url: `http://127.0.0.1:${workerPort}/webhooks/pusher`,
                  event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'],
                },
              ],
            },
          },
        ],
      },
    },
  };
  const configFile = path.join(stack.dir, 'sockudo.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const sockudo = start('sockudo', sockudoBinary(), ['--config', configFile], {
    // Its working directory holds no config/config.toml that could change the app.
    cwd: stack.dir,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(sockudoPort),
      ADAPTER_DRIVER: 'local',
      APP_MANAGER_DRIVER: 'memory',
      CACHE_DRIVER: 'memory',
      QUEUE_DRIVER: 'memory',
      RATE_LIMITER_DRIVER: 'memory',
      RATE_LIMITER_ENABLED: 'false',
      METRICS_ENABLED: 'false',
    },
  });
  // It keeps nothing worth a graceful stop, and takes many seconds over one.
  sockudo.stopSignal = 'SIGKILL';
  stack.processes.push(sockudo);
  await waitFor(`sockudo on port ${sockudoPort}`, async () => {
    if (sockudo.gone()) throw died(sockudo);
    return httpOk(`http://127.0.0.1:${sockudoPort}/up/${APP.id}`);
  });

  const proxy = recordingProxy(sockudoPort);
  await new Promise((resolve) => proxy.server.listen(proxyPort, '127.0.0.1', resolve));
  stack.proxy = proxy;

  // The worker, as an operator runs it, but on this run's names and talking
  // to sockudo through the proxy. Its working directory is the temp dir, so
  // the repository's .env does not apply.
  const relayEnv = {
    ...process.env,
    PUSHER_APP_ID: APP.id,
    PUSHER_APP_KEY: APP.key,
    PUSHER_APP_SECRET: APP.secret,
    PUSHER_HOST: '127.0.0.1',
    PUSHER_PORT: String(proxyPort),
    PUSHER_SCHEME: 'http',
    PUSHER_USE_TLS: 'false',
    PUSHER_ENCRYPTION_MASTER_KEY_BASE64: MASTER_KEY,
    AMQP_URL,
    AMQP_EXCHANGE: stack.names.exchange,
    AMQP_QUEUE: stack.names.queue,
    AMQP_WEBHOOK_EXCHANGE: stack.names.webhookExchange,
    DATABASE_URL: `sqlite://${path.join(stack.dir, 'dead-letters.db')}`,
    HTTP_ADDR: `127.0.0.1:${workerPort}`,
    RUST_LOG: process.env.RUST_LOG || 'info',
  };
  stack.relayEnv = relayEnv;
  const worker = start('pusher-relay run', bin, ['run'], { cwd: stack.dir, env: relayEnv });
  stack.processes.push(worker);
  await waitFor(`the worker's /readyz on port ${workerPort}`, async () => {
    if (worker.gone()) throw died(worker);
    return httpOk(`http://127.0.0.1:${workerPort}/readyz`);
  }, 60000);

  // Webhook events as an app would read them: from RabbitMQ, through the
  // worker's own tail command (one JSON object per line).
  // RUST_LOG=info: its "waiting for webhook events" line says it is bound.
  const tail = start('pusher-relay webhooks tail', bin, ['webhooks', 'tail', '--json'], {
    cwd: stack.dir,
    env: { ...relayEnv, RUST_LOG: 'info' },
  });
  stack.processes.push(tail);
  let buffered = '';
  tail.stdout.on('data', (chunk) => {
    buffered += chunk.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) stack.webhooks.push(JSON.parse(line));
    }
  });
  let tailReady = false;
  tail.stderr.on('data', (chunk) => {
    if (chunk.toString().includes('waiting for webhook events')) tailReady = true;
  });
  await waitFor('`webhooks tail` to bind its queue', async () => {
    if (tail.gone()) throw died(tail);
    return tailReady;
  });

  // pusher-js options exactly as the operator gets them: `config --client`,
  // pointing browsers at sockudo itself (the proxy is for the worker only).
  stack.clientConfigFile = writeClientConfig(stack, sockudoPort, 'pusher-client.json');

  stack.app = await startApp(stack, appPort, stack.clientConfigFile);
  stack.baseUrl = `http://127.0.0.1:${appPort}`;
}

/** Runs `pusher-relay config --client` for a server on `port`; returns the file it wrote. */
export function writeClientConfig(stack, port, name) {
  const json = execFileSync(workerBinary(), ['config', '--client'], {
    cwd: stack.dir,
    encoding: 'utf8',
    env: {
      ...stack.relayEnv,
      PUSHER_PORT: String(port),
      PUSHER_AUTH_ENDPOINT: '/api/pusher/auth',
      PUSHER_USER_AUTH_ENDPOINT: '/api/pusher/user-auth',
    },
  });
  const client = JSON.parse(json);
  if (JSON.stringify(client).includes(APP.secret)) throw new Error('config --client printed the app secret');
  const file = path.join(stack.dir, name);
  writeFileSync(file, json);
  return file;
}

/** The example app under PHP's built-in server, configured like the worker. */
export async function startApp(stack, port, clientConfigFile) {
  const app = start(`php -S (chat app on ${port})`, 'php', ['-S', `127.0.0.1:${port}`, '-t', 'examples/chat/public', 'examples/chat/public/index.php'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PUSHER_APP_ID: APP.id,
      PUSHER_APP_KEY: APP.key,
      PUSHER_APP_SECRET: APP.secret,
      PUSHER_HOST: '127.0.0.1',
      PUSHER_PORT: String(stack.sockudoPort),
      PUSHER_SCHEME: 'http',
      PUSHER_USE_TLS: 'false',
      PUSHER_ENCRYPTION_MASTER_KEY_BASE64: MASTER_KEY,
      AMQP_URL,
      AMQP_EXCHANGE: stack.names.exchange,
      PUSHER_CLIENT_CONFIG_FILE: clientConfigFile,
      // Several requests at once, as behind a real web server.
      PHP_CLI_SERVER_WORKERS: '4',
    },
  });
  stack.processes.push(app);
  await waitFor(`the chat app on port ${port}`, async () => {
    if (app.gone()) throw died(app);
    return httpOk(`http://127.0.0.1:${port}/`);
  });
  return app;
}

/** Stops every process, one by one (the worker drains), then cleans the broker. */
async function stopStack(stack) {
  // Reverse order: the app and the tail first, the worker drains, then sockudo.
  for (const child of [...stack.processes].reverse()) {
    await stopProcess(child);
  }
  if (stack.proxy) await new Promise((resolve) => stack.proxy.server.close(resolve));
  cleanBroker(stack);
}

/**
 * Publishes intents (one JSON object per line) to this run's exchange with
 * confirms awaited once for the lot (chat-amqp.php): `pusher-relay publish
 * --file` awaits each confirm in turn, which would make the producer the
 * limit of what the browsers can be shown to receive.
 */
export function publishIntents(stack, jsonLines) {
  return new Promise((resolve, reject) => {
    const child = spawn('php', [path.join(here, 'chat-amqp.php'), 'publish', AMQP_URL, stack.names.exchange]);
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(Number(output.trim())) : reject(new Error(`chat-amqp.php publish exited ${code}: ${output.slice(-2000)}`))));
    child.stdin.end(jsonLines);
  });
}

/** SIGKILL to every process group of the stack, at once (interrupted runs, exit). */
function killAll(stack) {
  for (const child of stack.processes) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Deletes this run's queue and exchanges (chat-amqp.php) and its temp dir; once. */
function cleanBroker(stack) {
  if (stack.cleaned) return;
  stack.cleaned = true;
  const { exchange, queue, webhookExchange } = stack.names;
  try {
    execFileSync('php', [
      path.join(here, 'chat-amqp.php'),
      'delete',
      AMQP_URL,
      `queue:${queue}`,
      `queue:${queue}.workers`,
      `exchange:${exchange}`,
      `exchange:${webhookExchange}`,
    ], { stdio: ['ignore', 'inherit', 'inherit'] });
  } finally {
    rmSync(stack.dir, { recursive: true, force: true });
  }
}
