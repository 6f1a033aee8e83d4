// The README's helper examples publish exactly the intents it shows beside
// them; tests/offline/schema.rs checks those intents against the schema and the
// worker's decoder, so a call in the README cannot drift from a valid intent.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { ChannelTemplates, IntentPublisher } from '../src/index.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const MARKER = '<!-- checked by test/readme.test.js';

/** The lines of the first fenced block of `lang` after `from`, and where it ends. */
function block(text, lang, from) {
  const open = text.indexOf(`\n\`\`\`${lang}\n`, from);
  assert.notEqual(open, -1, `no \`\`\`${lang} block after offset ${from} of README.md`);
  const start = open + lang.length + 5;
  const end = text.indexOf('\n```', start);
  return { lines: text.slice(start, end).split('\n').filter((l) => l.trim() !== ''), end };
}

/** A publisher that records what it would send instead of sending it. */
class RecordingPublisher extends IntentPublisher {
  constructor() {
    super({ nodes: [{ url: 'amqp://unused', redacted: 'amqp://unused' }], exchange: 'unused', timeoutMs: 1, templates: ChannelTemplates.private(), maxEventBytes: 10240 });
    this.sent = [];
  }

  async send(body, orderingKey) {
    this.sent.push({ body, orderingKey });
  }
}

test('each README helper call publishes the intent shown on the same line of the JSON block', async () => {
  const at = README.indexOf(MARKER);
  assert.notEqual(at, -1, 'README.md has the checked example');
  const calls = block(README, 'js', at);
  const bodies = block(README, 'json', calls.end);
  assert.equal(calls.lines.length, bodies.lines.length, 'one intent per call');
  assert.ok(calls.lines.length >= 11, 'every helper is shown');

  for (const [i, call] of calls.lines.entries()) {
    const publisher = new RecordingPublisher();
    const run = new Function('publisher', `return (async () => { ${call} })();`);
    await run(publisher);
    assert.equal(publisher.sent.length, 1, call);
    const { id, created_at, ...body } = publisher.sent[0].body;
    assert.match(id, /^[0-9a-f-]{36}$/, 'a UUID');
    assert.ok(Number.isSafeInteger(created_at));
    assert.deepEqual(body, JSON.parse(bodies.lines[i]), call);
  }
});

test('the README\'s wire example is the first call\'s intent with its id and created_at', () => {
  const at = README.indexOf('## On the wire');
  assert.notEqual(at, -1);
  const [line] = block(README, 'json', at).lines;
  const { id, created_at, ...body } = JSON.parse(line);
  const first = JSON.parse(block(README, 'json', block(README, 'js', README.indexOf(MARKER)).end).lines[0]);
  assert.deepEqual(body, first);
  assert.equal(typeof id, 'string');
  assert.ok(Number.isSafeInteger(created_at));
});
