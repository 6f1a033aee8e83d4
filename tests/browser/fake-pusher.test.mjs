// The fake Pusher's signature check against the shared vectors: it must
// accept every vector as signed and refuse each one altered, or the browser
// test's "the fake Pusher saw it" would prove nothing about signing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { bodyMd5, signature, signatureProblem, stringToSign } from './fake-pusher.mjs';

const vectorsPath = process.env.PUSHER_VECTORS
  ?? new URL('../data/pusher-vectors.json', import.meta.url).pathname;
const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8')).filter((v) => v.kind === 'rest_signature');

function signedRequest(v) {
  const { inputs } = v;
  const params = { ...inputs.params, auth_key: inputs.key, auth_timestamp: String(inputs.auth_timestamp), auth_version: '1.0' };
  const body = inputs.body === null ? Buffer.alloc(0) : Buffer.from(inputs.body);
  if (body.length > 0) params.body_md5 = v.expected.body_md5 ?? bodyMd5(body);
  params.auth_signature = v.expected.auth_signature;
  return { method: inputs.method, path: inputs.path, params, body, key: inputs.key, secret: inputs.secret, nowS: inputs.auth_timestamp };
}

test('there are REST signature vectors to check', () => {
  assert.ok(vectors.length >= 5, `only ${vectors.length} vectors`);
});

for (const [i, v] of vectors.entries()) {
  test(`vector ${i} (${v.inputs.method} ${v.inputs.path}) is accepted, and refused when altered`, () => {
    const req = signedRequest(v);
    if (v.expected.string_to_sign && (req.body.length === 0 || v.expected.body_md5)) {
      const { auth_signature: _, ...rest } = req.params;
      assert.equal(stringToSign(req.method, req.path, rest), v.expected.string_to_sign);
    }
    if (v.expected.body_md5) assert.equal(bodyMd5(req.body), v.expected.body_md5);
    assert.equal(signatureProblem(req), null);
    assert.match(signatureProblem({ ...req, secret: `${req.secret}x` }), /auth_signature/);
    assert.match(signatureProblem({ ...req, path: `${req.path}/x` }), /auth_signature/);
    assert.match(signatureProblem({ ...req, nowS: req.nowS + 600 }), /auth_timestamp/);
    assert.equal(signatureProblem({ ...req, nowS: req.nowS + 599 }), null);
    if (req.body.length > 0) {
      assert.match(signatureProblem({ ...req, body: Buffer.concat([req.body, Buffer.from(' ')]) }), /body_md5/);
    }
  });
}

test('the signer signs what the checker accepts', () => {
  const params = { auth_key: 'k', auth_timestamp: '1000', auth_version: '1.0', info: 'a,b' };
  params.auth_signature = signature('s', stringToSign('GET', '/apps/1/channels', params));
  assert.equal(signatureProblem({ method: 'GET', path: '/apps/1/channels', params, body: Buffer.alloc(0), key: 'k', secret: 's', nowS: 1000 }), null);
});
