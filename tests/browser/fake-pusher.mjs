// A fake Pusher Channels HTTP API for the browser tests: it checks every
// request's signature exactly as docs/architecture.md ("Signing") describes
// (auth_key, auth_timestamp within 600 s, auth_version 1.0, body_md5 of the
// exact bytes, auth_signature = hex HMAC-SHA256 of the string to sign),
// answers 401 to a bad one and counts it, records the events it accepts,
// can be switched "down" (503 to everything, probes included) and can
// reject chosen events with 400, as Pusher rejects a bad event.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

/** `METHOD\npath\nk=v&...`: keys lowercased and sorted, nothing escaped. */
export function stringToSign(method, path, params) {
  const pairs = Object.entries(params)
    .filter(([k]) => k !== 'auth_signature')
    .map(([k, v]) => [k.toLowerCase(), String(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${method.toUpperCase()}\n${path}\n${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

export function bodyMd5(body) {
  return createHash('md5').update(body).digest('hex');
}

export function signature(secret, toSign) {
  return createHmac('sha256', secret).update(toSign).digest('hex');
}

/** Why Pusher would refuse this request, or null when it would accept it. */
export function signatureProblem({ method, path, params, body, key, secret, nowS }) {
  if (params.auth_key !== key) return `auth_key is ${JSON.stringify(params.auth_key)}`;
  if (params.auth_version !== '1.0') return 'auth_version is not 1.0';
  const ts = Number(params.auth_timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowS - ts) >= 600) return `auth_timestamp ${params.auth_timestamp} is not within 600 s`;
  if (body && body.length > 0) {
    const md5 = bodyMd5(body);
    if (params.body_md5 !== md5) return `body_md5 ${params.body_md5} is not ${md5}`;
  }
  const want = Buffer.from(signature(secret, stringToSign(method, path, params)));
  const got = Buffer.from(String(params.auth_signature ?? ''));
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'auth_signature does not match';
  return null;
}

/**
 * Starts the fake on 127.0.0.1 (a free port). `rejectEvent(event)` chooses
 * events to refuse with 400 (Pusher's answer for a bad event).
 */
export async function startFakePusher({ appId, key, secret }) {
  const fake = {
    accepted: [],
    badSignatures: 0,
    requests: 0,
    down: false,
    rejectEvent: () => false,
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      fake.requests += 1;
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, 'http://fake');
      const params = Object.fromEntries(url.searchParams);
      const send = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const problem = signatureProblem({
        method: req.method, path: url.pathname, params, body, key, secret, nowS: Math.floor(Date.now() / 1000),
      });
      if (problem) {
        fake.badSignatures += 1;
        send(401, { error: `bad signature: ${problem}` });
        return;
      }
      if (fake.down) {
        send(503, { error: 'fake Pusher is down' });
        return;
      }
      const base = `/apps/${appId}`;
      if (req.method === 'GET' && url.pathname === `${base}/channels`) {
        send(200, { channels: {} });
        return;
      }
      let parsed;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        send(400, { error: 'body is not JSON' });
        return;
      }
      let events;
      if (req.method === 'POST' && url.pathname === `${base}/events`) {
        events = parsed.channels.map((channel) => ({ name: parsed.name, channel, data: parsed.data }));
      } else if (req.method === 'POST' && url.pathname === `${base}/batch_events`) {
        events = parsed.batch;
      } else {
        send(404, { error: 'no such endpoint' });
        return;
      }
      const bad = events.find((e) => fake.rejectEvent(e));
      if (bad) {
        // Markup in Pusher's answer too: the console must show it as text.
        send(400, { error: `rejected <img src=x onerror="window.__pwned=1"> ${bad.channel}` });
        return;
      }
      fake.accepted.push(...events);
      send(200, url.pathname.endsWith('batch_events') ? { batch: events.map(() => ({})) } : {});
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = server.address().port;
  fake.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
  return fake;
}
