// What the ops console costs the worker: its resident memory and CPU time
// over a quiet minute with no browser, then a minute with the overview
// open (polling every 3 s): VmRSS from /proc/<pid>/status, CPU time from
// /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat counts in
// 10 ms ticks, too coarse for this).
// Not a test (its figures depend on the machine); docs/operations.md quotes a run.
//
//   node tests/browser/console-cost.mjs [seconds]   # default 60
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { launch } from './chromium.mjs';
import { startFakePusher } from './fake-pusher.mjs';
import { startWorker } from './worker.mjs';

const SECONDS = Number(process.argv[2] ?? 60);
/** CPU time (s, every thread, from schedstat's nanoseconds) and resident memory (KiB). */
function sample(pid) {
  let cpuNs = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      cpuNs += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between listing and reading.
    }
  }
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return { cpuS: cpuNs / 1e9, rssKiB, at: Date.now() };
}

function over(a, b) {
  const wall = (b.at - a.at) / 1000;
  return `CPU ${((b.cpuS - a.cpuS) * 1000).toFixed(1)} ms in ${wall.toFixed(0)} s (${(((b.cpuS - a.cpuS) / wall) * 100).toFixed(3)} % of a core), RSS ${(a.rssKiB / 1024).toFixed(1)} -> ${(b.rssKiB / 1024).toFixed(1)} MiB`;
}

const token = randomBytes(16).toString('hex');
const app = { appId: '1', key: 'cost-key', secret: randomBytes(8).toString('hex') };
const fake = await startFakePusher(app);
const worker = await startWorker({ fake, app, token });
const pid = worker.child.pid;
const wait = (s) => new Promise((r) => setTimeout(r, s * 1000));
try {
  await wait(5);
  const idle0 = sample(pid);
  await wait(SECONDS);
  const idle1 = sample(pid);
  console.log(`idle, no browser:      ${over(idle0, idle1)}`);

  const browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${worker.base}/ui/login`);
  await page.getByLabel('Admin token (RELAY_ADMIN_TOKEN)').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/ui$/);
  const open0 = sample(pid);
  await wait(SECONDS);
  const open1 = sample(pid);
  console.log(`overview open:         ${over(open0, open1)}`);
  await browser.close();
} finally {
  await worker.stop();
  await fake.close();
}
