// participate()'s long-poll, aborts and lapsed assignments, against stand-ins for the Node (a fake
// fetch, a bare WebSocket server).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';

import { WebSocketServer } from 'ws';

import { Client, CycleClosedError, apiErrorFrom } from '../src/index.js';
import { VECTORS, vectorData } from './support/node.mjs';

const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
const bytes = (file) => new Response(readFileSync(join(VECTORS, 'digits_mlp', file)));
const finished = { status: 'rejected', reason: 'training_finished' };
const accepted = {
  status: 'accepted', request_key: 'k1', model: 'm', version: '1.0', model_id: 1, plans: { training_plan: 1 },
  client_config: { batch_size: 8, max_updates: 1 }, cycle: 7, checkpoint: 3, deadline: '2030-01-01T00:00:00Z', timeout: 30,
};

/**
 * A fetch answering like a Node: cycle-request and report take the next of their scripted answers
 * (a body, sent with its error's status if it is one; or 'hold': no answer until the request's
 * signal aborts, as a Node holding a long-poll). `calls` records each request's event and JSON body; `held` resolves on the first hold.
 */
function fakeNode({ cycleRequests = [], reports = [] } = {}) {
  const calls = [];
  let onHold;
  const held = new Promise((resolve) => { onHold = resolve; });
  const next = (script, init) => {
    const answer = script.shift();
    if (answer !== 'hold') return json(answer.error?.status ?? 200, answer);
    onHold();
    return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason), { once: true }));
  };
  const fetch = async (url, init = {}) => {
    const { pathname } = new URL(url);
    const event = pathname.split('/').pop();
    calls.push({ event, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
    switch (event) {
      case 'status': return json(200, { kind: 'node' });
      case 'authenticate': return json(200, { status: 'success', worker_id: 'w1', model: 'm', version: '1.0', requires_speed_test: false });
      case 'cycle-request': return next(cycleRequests, init);
      case 'get-model': return bytes('start.safetensors');
      case 'get-plan': return bytes('plan.fgplan');
      case 'report': return next(reports, init);
      default: return json(404, { error: { code: 'not_found', message: event, status: 404 } });
    }
  };
  return { fetch, calls, held, sent: (event) => calls.filter((c) => c.event === event) };
}

test('participate() long-polls: every cycle-request sends wait, 25 s by default, never over half the timeout', async () => {
  const { features, labels } = vectorData();
  const cases = [
    { options: {}, clientTimeout: undefined, expected: 25 },
    { options: {}, clientTimeout: 20, expected: 10 },
    { options: { wait: 100 }, clientTimeout: 600, expected: 30 }, // the Node's most
    { options: { wait: 5 }, clientTimeout: 60, expected: 5 },
  ];
  for (const { options, clientTimeout, expected } of cases) {
    const node = fakeNode({
      cycleRequests: [
        { status: 'rejected', reason: 'cycle_full', timeout: 0 },
        { status: 'rejected', reason: 'worker_cooling_down', timeout: 0 },
        finished,
      ],
    });
    const job = new Client({ url: 'http://node.test', fetch: node.fetch, timeout: clientTimeout }).newJob({ modelName: 'm' });
    assert.deepEqual(await job.participate({ data: features, labels, ...options }), []);
    const waits = node.sent('cycle-request').map((c) => c.body.wait);
    assert.deepEqual(waits, [expected, expected, expected], JSON.stringify({ options, clientTimeout }));
    assert.ok(waits.every((w) => w <= job.transport.timeout / 2));
  }
});

test('request({wait}) long-polls on demand; a plain request() sends no wait', async () => {
  const node = fakeNode({ cycleRequests: [{ status: 'rejected', reason: 'cycle_full', timeout: 4 }, { status: 'rejected', reason: 'cycle_full', timeout: 4 }] });
  const job = new Client({ url: 'http://node.test', fetch: node.fetch, timeout: 8 }).newJob({ modelName: 'm' });
  assert.deepEqual(await job.request(), { status: 'rejected', reason: 'cycle_full', timeout: 4 });
  await job.request({ wait: 25 });
  assert.deepEqual(node.sent('cycle-request').map((c) => c.body.wait), [undefined, 4]);
});

test('assignment_expired is a CycleClosedError: participate drops the work and asks again', async () => {
  const expired = { error: { code: 'assignment_expired', message: 'the lease ran out; request a new place', status: 409 } };
  const error = apiErrorFrom(expired, 409);
  assert.ok(error instanceof CycleClosedError && error.code === 'assignment_expired' && error.status === 409);

  const node = fakeNode({ cycleRequests: [accepted, finished], reports: [expired] });
  const job = new Client({ url: 'http://node.test', fetch: node.fetch }).newJob({ modelName: 'm' });
  const { features, labels } = vectorData();
  assert.deepEqual(await job.participate({ data: features, labels }), []);
  const asked = node.calls.map((c) => c.event).filter((e) => ['cycle-request', 'report'].includes(e));
  assert.deepEqual(asked, ['cycle-request', 'report', 'cycle-request']);
  assert.equal(job.assignment, null); // the lapsed assignment was dropped with the rejection
});

test('aborting participate() during a held cycle-request resolves with the reports so far', async () => {
  const node = fakeNode({ cycleRequests: ['hold'] });
  const job = new Client({ url: 'http://node.test', fetch: node.fetch }).newJob({ modelName: 'm' });
  const errors = [];
  job.on('error', (error) => errors.push(error));
  const controller = new AbortController();
  const { features, labels } = vectorData();
  const participating = job.participate({ data: features, labels, signal: controller.signal });
  await node.held;
  controller.abort();
  assert.deepEqual(await participating, []);
  assert.deepEqual(errors, []); // the caller's abort is no error of the Node's
  assert.equal(node.sent('cycle-request').length, 1); // not retried as a network failure
});

test('aborting a held cycle-request over WebSocket stops waiting for it; the socket still answers', async () => {
  // A stand-in Node on one port: /status over HTTP, events on /ws; it never answers cycle-request.
  const server = createServer((request, response) => { response.writeHead(200, { 'Content-Type': 'application/json' }); response.end('{"kind":"node"}'); });
  const sockets = new WebSocketServer({ server, path: '/ws' });
  let onHold;
  const held = new Promise((resolve) => { onHold = resolve; });
  sockets.on('connection', (socket) => socket.on('message', (raw) => {
    const { type, request_id: id } = JSON.parse(raw.toString());
    if (type === 'model-centric/cycle-request') { onHold(); return; }
    socket.send(JSON.stringify({ type, request_id: id, data: { status: 'success', worker_id: 'w1', version: '1.0', requires_speed_test: false } }));
  }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new Client({ url: `ws://127.0.0.1:${server.address().port}/ws` });
  const job = client.newJob({ modelName: 'm' });
  const controller = new AbortController();
  const asking = job.request({ wait: 25, signal: controller.signal });
  await held;
  controller.abort();
  await assert.rejects(asking, (error) => error.name === 'AbortError');
  assert.equal(await job.authenticate(), 'w1'); // the same socket, still in use
  client.close();
  sockets.close();
  await new Promise((resolve) => server.close(resolve));
});
