// The ops console in a real Chromium, against the real worker binary, the
// machine's RabbitMQ (127.0.0.1:5672, guest/guest) and a signature-checking
// fake Pusher (fake-pusher.mjs). Everything is set up here: the worker runs
// on its own exchanges and queue (a random suffix) and a temporary SQLite
// store (worker.mjs); intents are published with the binary's own
// `publish` command. At the end the worker is stopped and its queue and
// exchanges deleted with rabbitmqctl.
//
//   scripts/browser-deps && cargo build --release --bin pusher-relay
//   node --test tests/browser/fake-pusher.test.mjs tests/browser/console.test.mjs
//   PUSHER_RELAY_BIN=path/to/pusher-relay  # another binary
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launch, screenshot } from './chromium.mjs';
import { startFakePusher } from './fake-pusher.mjs';
import { startWorker, until as untilRaw } from './worker.mjs';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const TOKEN = `console-token-${randomBytes(12).toString('hex')}`;
const APP = { appId: '4242', key: 'browser-key', secret: `browser-secret-${randomBytes(8).toString('hex')}` };
/** Marks the events the fake Pusher rejects while `rejectEvent` says so. */
const REJECT = 'reject-me';
const MARKUP = `${REJECT} <script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">`;

let fake;
let worker;
let base;
let browser;
/** Every page's HTML seen, to check no secret was ever rendered. */
const seenHtml = [];
/** Console messages about blocked content (CSP) and page errors: none allowed. */
const blocked = [];

const until = (what, fn, timeoutMs, everyMs) => untilRaw(what, fn, timeoutMs, everyMs, () => worker?.log ?? '');

async function publish(intent) {
  const { stdout } = await worker.exec(['publish', JSON.stringify(intent)]);
  return stdout.trim();
}

async function publishMany(n, tag) {
  const file = path.join(worker.dir, `${tag}.jsonl`);
  const lines = [];
  for (let i = 0; i < n; i += 1) lines.push(JSON.stringify({ type: 'notification', user_id: (i % 20) + 1, message: `${tag} ${i}` }));
  writeFileSync(file, `${lines.join('\n')}\n`);
  await worker.exec(['publish', '--file', file]);
}

async function adminGet(p) {
  const r = await fetch(`${base}${p}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200, `${p}: ${r.status}`);
  return r.json();
}

async function newPage(width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (/Refused|Content Security Policy/i.test(m.text())) blocked.push(m.text()); });
  page.on('pageerror', (e) => blocked.push(`page error: ${e.message}`));
  page.on('response', async (r) => {
    if ((r.headers()['content-type'] ?? '').startsWith('text/html')) {
      try { seenHtml.push(await r.text()); } catch { /* a redirect has no body */ }
    }
  });
  return page;
}

async function signIn(page, token = TOKEN) {
  await page.goto(`${base}/ui`);
  assert.match(page.url(), /\/ui\/login$/, 'a browser without a session is sent to sign in');
  await page.getByLabel('Admin token (RELAY_ADMIN_TOKEN)').fill(token);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/ui/login') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await page.waitForLoadState();
  return resp;
}

async function axe(page, name) {
  // Evaluated over the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`), [], `accessibility of ${name}`);
}

async function text(page, key) {
  return (await page.locator(`[data-k="${key}"]`).textContent()).trim();
}

before(async () => {
  fake = await startFakePusher(APP);
  worker = await startWorker({ fake, app: APP, token: TOKEN });
  base = worker.base;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await fake?.close();
});

test('a wrong token is refused; the right one signs in; signing out ends the session', async () => {
  const page = await newPage();
  const wrong = await signIn(page, 'not-the-token');
  assert.equal(wrong.status(), 401);
  await page.getByText('Wrong token.').waitFor();
  assert.match(page.url(), /\/ui\/login$/);
  await axe(page, 'sign-in');
  await screenshot(page, 'console-login');

  const right = await signIn(page);
  assert.equal(right.status(), 303);
  assert.match(page.url(), /\/ui$/);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'relay_console');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/ui\/login$/);
  await page.goto(`${base}/ui`);
  assert.match(page.url(), /\/ui\/login$/, 'signed out');
  // The old cookie itself is dead on the server, not merely forgotten.
  const other = await newPage();
  await other.context().addCookies([session]);
  await other.goto(`${base}/ui`);
  assert.match(other.url(), /\/ui\/login$/, 'the ended session no longer signs in');
  await page.context().close();
  await other.context().close();
});

test("the overview's rates move while intents flow; the circuit opens while Pusher is down, then closes", async () => {
  const page = await newPage();
  await signIn(page);
  const before = fake.accepted.length;
  let flowing = true;
  const flow = (async () => {
    for (let i = 0; flowing; i += 1) await publishMany(200, `flow-${i}`);
  })();
  try {
    await until('rates above zero on the page', async () => {
      const consumed = Number(await text(page, 'rates.consumed_per_s'));
      const delivered = Number(await text(page, 'rates.delivered_per_s'));
      const requests = Number(await text(page, 'rates.requests_per_s'));
      return consumed > 0 && delivered > 0 && requests > 0;
    }, 45_000, 500);
  } finally {
    flowing = false;
    await flow;
  }
  assert.ok(fake.accepted.length > before, 'the fake Pusher accepted events');
  assert.notEqual(await text(page, 'rates.latency_p50_ms'), '–', 'a p50 latency is shown');
  assert.equal(await text(page, 'readiness.broker'), 'up');
  assert.equal(await text(page, 'readiness.store'), 'up');
  assert.equal(await text(page, 'circuit.state'), 'closed');
  await until('charts drawn', async () => (await page.locator('.chart canvas').count()) === 5);
  await axe(page, 'overview');
  await screenshot(page, 'console-overview');

  fake.down = true;
  const marker = `during-outage-${randomBytes(3).toString('hex')}`;
  try {
    await publish({ type: 'notification', user_id: 7, message: marker });
    await until('the circuit to show open', async () => (await text(page, 'circuit.state')) === 'open', 60_000, 500);
    assert.match(await text(page, 'circuit.detail'), /unreachable or failing/);
    assert.notEqual(await text(page, 'circuit.since'), '–');
    await until('the next probe shown', async () => (await text(page, 'circuit.next_probe')) !== '–', 10_000, 300);
    await screenshot(page, 'console-overview-circuit-open');
  } finally {
    fake.down = false;
  }
  await until('the circuit to show closed', async () => (await text(page, 'circuit.state')) === 'closed', 30_000, 500);
  await until('the intent held during the outage to be delivered', () => fake.accepted.some((e) => e.data.includes(marker)));

  const narrow = await newPage(390);
  await signIn(narrow);
  await until('charts drawn at 390 px', async () => (await narrow.locator('.chart canvas').count()) === 5);
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 390 px (${overflow} px too wide)`);
  await screenshot(narrow, 'console-overview-390');
  await narrow.context().close();
  await page.context().close();
});

let markupId;

test('a dead letter whose body holds markup renders as text and runs nothing', async () => {
  fake.rejectEvent = (e) => String(e.data).includes(REJECT);
  await publish({ type: 'notification', user_id: 9, message: MARKUP });
  const row = await until('the dead letter in the store', async () => {
    const pageJson = await adminGet('/api/dead-letters?reason=rejected');
    return pageJson.items[0];
  });
  markupId = row.id;
  fake.rejectEvent = () => false;

  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/ui/dead-letters`);
  await page.locator(`tr[data-id="${markupId}"]`).waitFor();
  await page.goto(`${base}/ui/dead-letters/${markupId}`);
  const raw = await page.locator('#body-raw').textContent();
  assert.ok(raw.includes('<script>window.__pwned=1</script>'), 'the raw body shows the markup as text');
  const pretty = await page.locator('#body-pretty').textContent();
  assert.ok(pretty.includes('<img src=x onerror='), 'so does the pretty-printed body');
  const answer = await page.locator('pre.body').first().textContent();
  assert.ok(answer.includes('<img src=x onerror='), "Pusher's answer shows its markup as text");
  assert.equal(await page.locator('main img, main script').count(), 0, 'no element was made from the markup');
  const headers = await page.locator('pre.body').last().textContent();
  assert.ok(headers.includes('"ordering-key": "private-user-9"'), `headers read as their values: ${headers}`);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
  await page.getByText('Raw body').click();
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran when opened');
  await axe(page, 'dead letter');
  await screenshot(page, 'console-dead-letter');
  const narrow = await newPage(390);
  await signIn(narrow);
  await narrow.goto(`${base}/ui/dead-letters/${markupId}`);
  await screenshot(narrow, 'console-dead-letter-390');
  await narrow.context().close();
  await page.context().close();
});

test('a replay from the page is delivered by the worker and the row shows replayed; a POST without the CSRF token gets 403', async () => {
  assert.ok(markupId, 'the previous test stored a dead letter');
  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/ui/dead-letters?status=pending`);

  // Without the token, and with a wrong one: refused. With it: accepted,
  // so the refusal is the token's doing.
  const noToken = await page.request.post(`${base}/ui/dead-letters/replay`, { form: { scope: 'selected', id: String(markupId) }, maxRedirects: 0 });
  assert.equal(noToken.status(), 403);
  const wrongToken = await page.request.post(`${base}/ui/dead-letters/replay`, { form: { csrf: 'f'.repeat(64), scope: 'selected', id: String(markupId) }, maxRedirects: 0 });
  assert.equal(wrongToken.status(), 403);
  const csrf = await page.locator('#selection input[name="csrf"]').inputValue();
  const withToken = await page.request.post(`${base}/ui/dead-letters/replay`, { form: { csrf, scope: 'selected', id: String(markupId) }, maxRedirects: 0 });
  assert.equal(withToken.status(), 200, 'the same POST with the token shows the confirmation');
  const noSessionLogout = await fetch(`${base}/ui/logout`, { method: 'POST', redirect: 'manual' });
  assert.equal(noSessionLogout.status, 401, 'no session, no POST');

  await axe(page, 'dead letters');
  await screenshot(page, 'console-dead-letters');
  await page.getByLabel(`Select dead letter ${markupId}`).check();
  await page.getByRole('button', { name: 'Replay selected' }).click();
  await page.getByText('Replay 1 dead letters (dead letter').waitFor();
  await axe(page, 'replay confirmation');
  await screenshot(page, 'console-replay-confirm');
  await page.getByRole('button', { name: 'Replay 1' }).click();
  await page.waitForURL(/\/ui\/replays\/\d+$/);
  await until('the replay to finish on the page', async () => (await page.locator('[data-j="state"]').textContent()).trim() === 'done', 30_000, 300);
  assert.equal((await page.locator('[data-j="replayed"]').textContent()).trim(), '1');
  await axe(page, 'replay progress');
  await screenshot(page, 'console-replay');

  await until('the fake Pusher to receive the replayed event', () => fake.accepted.some((e) => String(e.data).includes('<script>window.__pwned=1</script>')));
  await page.goto(`${base}/ui/dead-letters`);
  assert.equal((await page.locator(`tr[data-id="${markupId}"] td.status`).textContent()).trim(), 'replayed');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /pusher_relay_replays_total\{outcome="replayed"\} 1\b/);
  await screenshot(page, 'console-dead-letters-after-replay');

  // A replay by the CLI, in another process, shows too: the counts are the
  // store's.
  fake.rejectEvent = (e) => String(e.data).includes(REJECT);
  await publish({ type: 'notification', user_id: 11, message: `${REJECT} for the CLI` });
  const cliRow = await until('a second dead letter', async () => (await adminGet('/api/dead-letters?status=pending')).items[0]);
  fake.rejectEvent = () => false;
  await worker.exec(['dlq', 'replay', String(cliRow.id), '--yes']);
  await page.goto(`${base}/ui/dead-letters`);
  assert.equal((await page.locator(`tr[data-id="${cliRow.id}"] td.status`).textContent()).trim(), 'replayed');
  await page.getByText('2 matching; 0 pending, 2 replayed').waitFor();
  await until('the fake Pusher to receive the CLI\'s replay', () => fake.accepted.some((e) => String(e.data).includes('for the CLI')));

  // The overview once the run has left some history, for docs/operations.md.
  await page.goto(`${base}/ui`);
  await until('charts drawn', async () => (await page.locator('.chart canvas').count()) === 5);
  await screenshot(page, 'console-overview-history');
  await page.context().close();
});

test('delete and purge state the count, then do it', async () => {
  fake.rejectEvent = (e) => String(e.data).includes(REJECT);
  await publish({ type: 'notification', user_id: 12, message: `${REJECT} to delete` });
  const row = await until('a dead letter to delete', async () => (await adminGet('/api/dead-letters?status=pending')).items[0]);
  fake.rejectEvent = () => false;
  const before = (await adminGet('/api/dead-letters/stats')).total;

  const page = await newPage();
  await signIn(page);
  await page.goto(`${base}/ui/dead-letters`);
  await page.getByLabel('Delete every dead letter older than (days)').fill('1');
  await page.getByRole('button', { name: 'Purge…' }).click();
  await page.getByText('Purge every dead letter older than 1 days? 0 dead letters.').waitFor();
  assert.equal(await page.getByRole('button', { name: /^Purge \d/ }).count(), 0, 'nothing to purge, no button');

  await page.goto(`${base}/ui/dead-letters/${row.id}`);
  await page.getByRole('button', { name: 'Delete…' }).click();
  await page.getByText(`Delete dead letter ${row.id}? 1 dead letters.`).waitFor();
  await axe(page, 'delete confirmation');
  await page.getByRole('button', { name: 'Delete 1' }).click();
  await page.getByText('Deleted 1 dead letters.').waitFor();
  const after = (await adminGet('/api/dead-letters/stats')).total;
  assert.equal(after, before - 1);
  const gone = await fetch(`${base}/api/dead-letters/${row.id}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(gone.status, 404);
  await page.context().close();
});

test('no page ever held the admin token or the Pusher secret, and nothing was blocked', () => {
  assert.ok(seenHtml.length > 5, `pages were recorded (${seenHtml.length})`);
  for (const h of seenHtml) {
    assert.ok(!h.includes(TOKEN), 'the admin token is not in a page');
    assert.ok(!h.includes(APP.secret), 'the Pusher secret is not in a page');
  }
  assert.deepEqual(blocked, [], 'no script or style was blocked and no page error');
  assert.equal(fake.badSignatures, 0, 'every request the worker sent was correctly signed');
});
