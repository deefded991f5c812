// participate()'s long-poll, aborts and lapsed assignments, against stand-ins for the Node (a fake
// fetch, a bare WebSocket server).

import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';

import { WebSocketServer } from 'ws';

import { AssignmentExpired, Client, CycleClosedError, ReportRefused, apiErrorFrom } from '../src/index.js';
import { FINISHED_TIMEOUT } from '../src/job.js';
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
    assert.ok(node.sent('cycle-request').every((c) => !('notify' in c.body))); // pushes are WebSocket only
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

test('assignment_expired is an AssignmentExpired (alias CycleClosedError): participate drops the work and asks again', async () => {
  const expired = { error: { code: 'assignment_expired', message: 'the lease ran out; request a new place', status: 409 } };
  const error = apiErrorFrom(expired, 409);
  assert.ok(error instanceof AssignmentExpired && error.code === 'assignment_expired' && error.status === 409);
  assert.ok(error instanceof CycleClosedError); // the old name is the same class

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

/**
 * A stand-in Node on one port: /status over HTTP, events on /ws. `onFrame(envelope, socket)`
 * answers (or not); `answer(socket, envelope, data)` sends the answer of a frame.
 */
async function fakeSocketNode(onFrame) {
  const server = createServer((request, response) => { response.writeHead(200, { 'Content-Type': 'application/json' }); response.end('{"kind":"node"}'); });
  const sockets = new WebSocketServer({ server, path: '/ws' });
  sockets.on('connection', (socket) => socket.on('message', (raw) => onFrame(JSON.parse(raw.toString()), socket)));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    async close() {
      sockets.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
const answer = (socket, { type, request_id: id }, data) => socket.send(JSON.stringify({ type, request_id: id, data }));
const push = (socket, data, type = 'model-centric/place-available') => socket.send(JSON.stringify({ type, request_id: null, data }));
const authenticated = { status: 'success', worker_id: 'w1', model: 'm', version: '1.0', requires_speed_test: false };

test('unrequested WebSocket frames never answer a pending request, never break the socket, and reach push listeners', async (t) => {
  const node = await fakeSocketNode((envelope, socket) => {
    // Before the answer: pushes (request_id null, also of an unknown event), a frame with the
    // pending request's id but another event's type, and frames that are not the protocol at all.
    push(socket, { model: 'm', version: '1.0' });
    push(socket, { anything: 1 }, 'model-centric/something-new');
    socket.send(JSON.stringify({ type: 'model-centric/place-available', request_id: envelope.request_id, data: { model: 'm', version: '1.0' } }));
    socket.send('not json');
    socket.send(Buffer.from('not a safetensors frame'));
    socket.send('"a string"');
    setTimeout(() => answer(socket, envelope, authenticated), 50);
  });
  const client = new Client({ url: node.url, retries: 0 });
  t.after(() => { client.close(); return node.close(); }); // also when an assertion failed
  const transport = client.transport;
  const pushes = [];
  const onPlace = (data) => pushes.push(data);
  transport.on('place-available', onPlace);
  transport.on('place-available', () => { throw new Error('a failing listener'); }); // its own problem
  const job = client.newJob({ modelName: 'm' });
  assert.equal(await job.authenticate(), 'w1'); // the real answer, not the push before it
  assert.deepEqual(pushes, [{ model: 'm', version: '1.0' }]);
  // The socket is still in use, and no request is left waiting.
  assert.equal((await transport.call('authenticate', { model_name: 'm' })).worker_id, 'w1');
  assert.equal(transport.pending.size, 0);
  assert.equal(pushes.length, 2);
  transport.off('place-available', onPlace);
});

test('participate() over WebSocket asks with notify and ends the wait on a push for its model; one listener per round, none after', async (t) => {
  // Each rejection says to come back in 60 s; the Node pushes place-available 30 ms later. A push
  // for another model (or version) must not end the wait: the right one comes 300 ms after it.
  const events = [];
  const listening = [];
  const notify = [];
  let job;
  let rounds = 0;
  const node = await fakeSocketNode((envelope, socket) => {
    const { type, data } = envelope;
    if (type === 'model-centric/authenticate') { answer(socket, envelope, authenticated); return; }
    rounds += 1;
    events.push(`cycle-request ${rounds}`);
    listening.push(job.transport.listenerCount('place-available'));
    notify.push(data.notify);
    if (rounds === 4) { answer(socket, envelope, { status: 'rejected', reason: 'training_finished', model: 'm', version: '1.0' }); return; }
    answer(socket, envelope, { status: 'rejected', reason: 'cycle_full', timeout: 60, model: 'm', version: '1.0' });
    setTimeout(() => {
      push(socket, { model: 'other', version: '1.0' });
      push(socket, { model: 'm', version: '2.0' });
      events.push('push for others');
      setTimeout(() => { events.push('push'); push(socket, { model: 'm', version: '1.0' }); }, 300);
    }, 30);
  });
  const controller = new AbortController();
  const bound = setTimeout(() => controller.abort(), 10_000); // a missed push would sleep 60 s
  const client = new Client({ url: node.url });
  t.after(() => { clearTimeout(bound); controller.abort(); client.close(); return node.close(); });
  job = client.newJob({ modelName: 'm' });
  const rejections = [];
  job.on('rejected', ({ reason, timeout }) => rejections.push([reason, timeout]));
  const started = Date.now();
  const { features, labels } = vectorData();
  assert.deepEqual(await job.participate({ data: features, labels, wait: 0.2, signal: controller.signal }), []);
  clearTimeout(bound);
  assert.ok(!controller.signal.aborted, 'the pushes did not end the waits');
  assert.ok(Date.now() - started < 5_000);
  assert.deepEqual(rejections, [['cycle_full', 60], ['cycle_full', 60], ['cycle_full', 60], ['training_finished', FINISHED_TIMEOUT]]);
  assert.deepEqual(events, ['cycle-request 1', 'push for others', 'push', 'cycle-request 2', 'push for others', 'push', 'cycle-request 3', 'push for others', 'push', 'cycle-request 4']);
  assert.deepEqual(notify, [true, true, true, true]);
  assert.deepEqual(listening, [1, 1, 1, 1]); // one listener while asking and waiting, never piling up
  assert.equal(job.transport.listenerCount('place-available'), 0);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

test('a push that arrives right behind the rejection, before participate() waits, still ends the wait', async (t) => {
  let rounds = 0;
  const node = await fakeSocketNode((envelope, socket) => {
    if (envelope.type === 'model-centric/authenticate') { answer(socket, envelope, authenticated); return; }
    rounds += 1;
    if (rounds === 2) { answer(socket, envelope, { status: 'rejected', reason: 'training_finished' }); return; }
    // The push right behind the rejection: it arrives while the 'rejected' handler still runs.
    const rejected = JSON.stringify({ type: envelope.type, request_id: envelope.request_id, data: { status: 'rejected', reason: 'cycle_full', timeout: 60 } });
    socket.send(rejected);
    push(socket, { model: 'm', version: '1.0' });
  });
  const controller = new AbortController();
  const bound = setTimeout(() => controller.abort(), 10_000);
  const client = new Client({ url: node.url });
  t.after(() => { clearTimeout(bound); controller.abort(); client.close(); return node.close(); });
  const job = client.newJob({ modelName: 'm' });
  job.on('rejected', () => new Promise((resolve) => setTimeout(resolve, 50))); // slow handlers delay the wait
  const { features, labels } = vectorData();
  assert.deepEqual(await job.participate({ data: features, labels, signal: controller.signal }), []);
  clearTimeout(bound);
  assert.ok(!controller.signal.aborted, 'the push before the wait was lost');
  assert.equal(rounds, 2);
});

test('a WorkerUnknown cycle-request (worker_unknown, worker_process_mismatch) authenticates again, once', async () => {
  for (const code of ['worker_unknown', 'worker_process_mismatch']) {
    const refused = { error: { code, message: 'authenticate again', status: code === 'worker_unknown' ? 404 : 403 } };
    const node = fakeNode({ cycleRequests: [refused, finished] });
    const job = new Client({ url: 'http://node.test', fetch: node.fetch }).newJob({ modelName: 'm' });
    assert.deepEqual(await job.request(), { status: 'rejected', reason: 'training_finished', timeout: FINISHED_TIMEOUT });
    assert.deepEqual(node.calls.map((c) => c.event), ['status', 'authenticate', 'cycle-request', 'authenticate', 'cycle-request'], code);
  }
});

test('participate: an AssignmentExpired report (request_key_invalid) drops the work; a ReportRefused surfaces', async () => {
  const { features, labels } = vectorData();
  const lapsed = { error: { code: 'request_key_invalid', message: 'not this worker\'s request key', status: 403 } };
  const dropped = fakeNode({ cycleRequests: [accepted, finished], reports: [lapsed] });
  const job = new Client({ url: 'http://node.test', fetch: dropped.fetch }).newJob({ modelName: 'm' });
  assert.deepEqual(await job.participate({ data: features, labels }), []);
  assert.equal(dropped.sent('cycle-request').length, 2);

  const notFinite = { error: { code: 'diff_not_finite', message: 'the diff holds NaN', status: 400 } };
  const refused = fakeNode({ cycleRequests: [accepted, finished], reports: [notFinite] });
  const other = new Client({ url: 'http://node.test', fetch: refused.fetch }).newJob({ modelName: 'm' });
  await assert.rejects(other.participate({ data: features, labels }), (error) => error instanceof ReportRefused && error.code === 'diff_not_finite');
});
