// The real worker binary for browser tests, on its own RabbitMQ names (a
// random suffix), a temporary SQLite store and a free port, pointed at a
// fake Pusher. `stop()` ends it and deletes its queue and exchanges with
// rabbitmqctl (best effort: a leftover is named pusher-relay.browser.*).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.PUSHER_RELAY_BIN ?? path.join(root, 'target/release/pusher-relay');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns something truthy; fails naming `what`. */
export async function until(what, fn, timeoutMs = 30_000, everyMs = 250, log = () => '') {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nworker log tail:\n${log().slice(-3000)}`);
}

/** Starts `pusher-relay run` against `fake` with `token` as RELAY_ADMIN_TOKEN, ready. */
export async function startWorker({ fake, app, token }) {
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const names = {
    exchange: `pusher-relay.browser.${suffix}`,
    queue: `pusher-relay.browser.${suffix}`,
    webhooks: `pusher-relay.browser.${suffix}.webhooks`,
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'pusher-relay-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // From scratch, so no setting of the caller's shell leaks in.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? dir,
    PUSHER_APP_ID: app.appId,
    PUSHER_APP_KEY: app.key,
    PUSHER_APP_SECRET: app.secret,
    PUSHER_HOST: '127.0.0.1',
    PUSHER_PORT: String(fake.port),
    PUSHER_SCHEME: 'http',
    AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672/%2f',
    AMQP_EXCHANGE: names.exchange,
    AMQP_QUEUE: names.queue,
    AMQP_WEBHOOK_EXCHANGE: names.webhooks,
    DATABASE_URL: `sqlite://${path.join(dir, 'dead-letters.db')}`,
    HTTP_ADDR: `127.0.0.1:${port}`,
    RELAY_ADMIN_TOKEN: token,
    RELAY_LOG_FORMAT: 'json',
  };
  const child = spawn(BIN, ['run'], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const w = { child, env, dir, base, names, log: '' };
  child.stdout.on('data', (d) => { w.log += d; });
  child.stderr.on('data', (d) => { w.log += d; });
  w.exec = (args) => run(BIN, args, { env, cwd: dir });
  w.stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => { child.once('exit', r); setTimeout(r, 10_000); });
    }
    await run('rabbitmqctl', ['-q', 'delete_queue', names.queue]).catch((e) => console.error(`cleanup: ${e.message}`));
    for (const x of [names.exchange, names.webhooks]) {
      const expr = `rabbit_exchange:delete(rabbit_misc:r(<<"/">>, exchange, <<"${x}">>), false, <<"browser-test">>).`;
      await run('rabbitmqctl', ['-q', 'eval', expr]).catch((e) => console.error(`cleanup: ${e.message}`));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  await until('the worker to be ready', async () => {
    try { return (await fetch(`${base}/readyz`)).status === 200; } catch { return false; }
  }, 30_000, 250, () => w.log);
  return w;
}
