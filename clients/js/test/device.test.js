// The SDK against a real Fedgrid Node process, in Node.js, over HTTP and WebSocket.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { AdminAuthError, AssignmentExpired, AuthenticationError, Client, ProcessUnknown, ReportRefused, TrainingStoppedError } from '../src/index.js';
import { hostModel, listCycles, retrieveModel, startNode, vectorData, waitForCheckpoint } from './support/node.mjs';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

function expectedNext(start, diff) {
  // FedAvg of a single report: new = old - diff (float32).
  return Object.fromEntries(Object.entries(start).map(([name, t]) => [name, Float32Array.from(t.data, (v, i) => v - diff[name].data[i])]));
}

function assertClose(actual, expected, tolerance = 1e-6) {
  for (const [name, values] of Object.entries(expected)) {
    const got = actual[name].data;
    assert.equal(got.length, values.length, name);
    for (let i = 0; i < values.length; i += 1) {
      if (Math.abs(got[i] - values[i]) > tolerance) assert.fail(`${name}[${i}]: ${got[i]} vs ${values[i]}`);
    }
  }
}

for (const transport of ['http', 'websocket']) {
  test(`a device trains and reports over ${transport}; the Node's next checkpoint is old - diff`, async () => {
    const name = `js-device-${transport}`;
    await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 2 }, serverConfig: { max_diffs: 1, min_diffs: 1, max_workers: 1 } });
    const client = new Client({ url: transport === 'http' ? node.url : node.wsUrl });
    assert.equal(client.transport.kind, transport);
    const job = client.newJob({ modelName: name });
    const seen = [];
    job.on('accepted', (assignment) => seen.push(['accepted', assignment.cycle]));
    job.on('rejected', (rejection) => seen.push(['rejected', rejection.reason]));
    const assignment = await job.request();
    assert.equal(assignment.status, 'accepted');
    assert.deepEqual(seen, [['accepted', assignment.cycle]]);
    assert.equal(assignment.checkpoint, 1);
    assert.ok(assignment.timeout > 0 && Date.parse(assignment.reportBy) <= Date.parse(assignment.deadline), JSON.stringify(assignment));
    assert.equal(assignment.clientConfig.batch_size, 4);
    assert.equal(assignment.clientConfig.epochs, 2);

    const { features, labels } = vectorData();
    const batches = [];
    const result = await job.train({ data: features, labels, onBatch: (b) => { batches.push(b); } });
    const count = labels.length; // 29 examples: 8 updates per epoch at batch size 4
    assert.equal(result.numSamples, count);
    assert.equal(result.updates, 2 * Math.ceil(count / 4));
    assert.equal(batches.length, result.updates);
    assert.ok(batches.every((b) => Number.isFinite(b.loss) && b.batchSize <= 4));
    assert.ok(Number.isFinite(result.metrics.loss) && 'accuracy' in result.metrics);
    assert.deepEqual(Object.keys(result.diff), assignment.plan.parameters.map((p) => p.name));

    // A second device arriving now is rejected with a numeric timeout (max_workers 1).
    const other = client.newJob({ modelName: name });
    const rejections = [];
    other.on('rejected', (r) => rejections.push(r));
    const rejected = await other.request();
    assert.equal(rejected.status, 'rejected');
    assert.equal(typeof rejected.timeout, 'number');
    assert.deepEqual(rejections, [rejected]);

    const answer = await job.report(result);
    assert.equal(answer.status, 'success');
    assert.equal(answer.cycle, assignment.cycle);
    await waitForCheckpoint(node, { name, number: 2 });
    const next = await retrieveModel(node, { name, checkpoint: 2 });
    assertClose(next.tensors, expectedNext(assignment.parameters, result.diff));
    client.close();
  });
}

test('errors carry the Node code: unknown model, duplicate report, closed cycle', async () => {
  const client = new Client({ url: node.url, retries: 0 });
  const missing = client.newJob({ modelName: 'no-such-model' });
  await assert.rejects(missing.request(), (error) => error instanceof ProcessUnknown && error.code === 'process_unknown' && error.status === 404 && /no hosted model/.test(error.message));
  // With an 'error' handler the error is emitted instead of thrown.
  const errors = [];
  missing.on('error', (error) => errors.push(error.code));
  assert.equal((await missing.request()).status, 'error');
  assert.deepEqual(errors, ['process_unknown']);

  const name = 'js-errors';
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 1 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const job = client.newJob({ modelName: name });
  await job.request();
  const { features, labels } = vectorData();
  const result = await job.train({ data: features, labels });
  assert.equal(result.updates, 1);
  const saved = job.assignment;
  await job.report(result);
  job.assignment = saved; // report the same assignment twice: the cycle has closed
  await assert.rejects(job.report(result), (error) => (error instanceof ReportRefused && error.code === 'report_duplicate')
    || (error instanceof AssignmentExpired && ['cycle_closed', 'request_key_invalid'].includes(error.code)));
  const answer = await fetch(`${node.url}/model-centric/retrieve-model?name=${name}`);
  assert.equal(answer.status, 401);
  await assert.rejects(client.transport.download('retrieve-model', { name }, { adminToken: 'wrong' }), AdminAuthError);
});

test('speed test reports Mbit/s and ms', async () => {
  const client = new Client({ url: node.url });
  const speeds = await client.speedTest({ bytes: 256 * 1024 });
  for (const key of ['ping', 'download', 'upload']) assert.ok(speeds[key] > 0 && Number.isFinite(speeds[key]), `${key}: ${speeds[key]}`);
});

test('stopped training resumes from a JSON checkpoint in a new client and reports the same diff', async () => {
  const name = 'js-resume';
  await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 2 }, serverConfig: { max_diffs: 1, min_diffs: 1 } });
  const { features, labels } = vectorData();
  // The same run without interruption, for reference (plain executor, same seed).
  const client = new Client({ url: node.url });
  const job = client.newJob({ modelName: name });
  const assignment = await job.request();
  const uninterrupted = await job.train({ data: features, labels, seed: 7 });

  const controller = new AbortController();
  let stopped;
  try {
    await job.train({ data: features, labels, seed: 7, signal: controller.signal, onBatch: (b) => { if (b.update === 5) controller.abort(); } });
    assert.fail('training should have stopped');
  } catch (error) {
    assert.ok(error instanceof TrainingStoppedError);
    stopped = JSON.parse(JSON.stringify(error.checkpoint)); // survives JSON
  }
  assert.equal(stopped.updates, 5);
  const resumedJob = new Client({ url: node.url }).newJob({ modelName: name });
  const resumed = await resumedJob.train({ data: features, labels, resumeFrom: stopped });
  assert.equal(resumed.updates, uninterrupted.updates);
  assert.deepEqual(resumed.losses, uninterrupted.losses);
  assert.equal(resumed.numSamples, uninterrupted.numSamples);
  for (const [key, tensor] of Object.entries(uninterrupted.diff)) assert.deepEqual(Array.from(resumed.diff[key].data), Array.from(tensor.data), key);
  const answer = await resumedJob.report(resumed);
  assert.equal(answer.cycle, assignment.cycle);
});

function hs256(payload, secret) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('device tokens: a valid JWT is accepted, a missing or expired one is an AuthenticationError with the Node code', async () => {
  const name = 'js-auth';
  const secret = 'js-device-secret';
  await hostModel(node, { name, serverConfig: { max_diffs: 1, authentication: { type: 'jwt', secret, algorithms: ['HS256'] } } });
  const now = Math.floor(Date.now() / 1000);
  const good = new Client({ url: node.url, authToken: hs256({ sub: 'phone-1', exp: now + 600 }, secret) }).newJob({ modelName: name });
  assert.equal((await good.request()).status, 'accepted');
  const anonymous = new Client({ url: node.url }).newJob({ modelName: name });
  await assert.rejects(anonymous.request(), (error) => error instanceof AuthenticationError && error.code === 'auth_token_required' && error.status === 401);
  const expired = new Client({ url: node.wsUrl, authToken: hs256({ sub: 'phone-2', exp: now - 600 }, secret) }).newJob({ modelName: name });
  await assert.rejects(expired.request(), (error) => error instanceof AuthenticationError && error.code === 'auth_token_expired');
  expired.client.close();
});

test('a model with speed gates gets a measured speed test with its first cycle request', async () => {
  const name = 'js-speed-gates';
  await hostModel(node, { name, serverConfig: { max_diffs: 1, minimum_download_speed: 0.01, minimum_upload_speed: 0.01, maximum_ping: 60_000 } });
  const job = new Client({ url: node.url }).newJob({ modelName: name });
  const assignment = await job.request();
  assert.equal(assignment.status, 'accepted');
  assert.ok(job.requiresSpeedTest);
  assert.ok(job.speeds.download > 0.01 && job.speeds.upload > 0.01 && job.speeds.ping < 60_000, JSON.stringify(job.speeds));
  // Too-high demands are rejected with the reason and a numeric timeout, not an error.
  const slow = 'js-speed-gates-strict';
  await hostModel(node, { name: slow, serverConfig: { max_diffs: 1, minimum_download_speed: 1e9 } });
  const rejected = await new Client({ url: node.url }).newJob({ modelName: slow }).request();
  assert.equal(rejected.status, 'rejected');
  assert.equal(rejected.reason, 'download_too_slow');
  assert.equal(typeof rejected.timeout, 'number');
});

test('participate() trains and reports cycle after cycle until the model has finished', async () => {
  const name = 'js-participate';
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 2 }, serverConfig: { max_diffs: 1, num_cycles: 3 } });
  const job = new Client({ url: node.url }).newJob({ modelName: name });
  const { features, labels } = vectorData();
  const seen = [];
  const reports = await job.participate({ data: features, labels, onReport: (report) => { seen.push(report.cycle); } });
  assert.deepEqual(reports.map((r) => r.checkpoint), [1, 2, 3]);
  assert.deepEqual(seen, reports.map((r) => r.cycle));
  assert.ok(reports.every((r) => r.numSamples === 16 && Number.isFinite(r.metrics.loss)));
  const finished = await job.request();
  assert.deepEqual([finished.status, finished.reason], ['rejected', 'training_finished']);
});

test('a fleet of 6 long-polling devices (HTTP and one shared WebSocket) fills 6 cycles of 3 to their goal', { timeout: 120_000 }, async () => {
  // The cycles last 600 s: only long-polling (held requests accepted as places free and cycles
  // open) lets the fleet finish on goals; a device waiting out rejections would meet deadlines.
  const name = 'js-fleet';
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 1 }, serverConfig: { max_diffs: 3, cycle_length: 600, num_cycles: 6 } });
  const { features, labels } = vectorData();
  const clients = [new Client({ url: node.url }), new Client({ url: node.wsUrl })];
  const jobs = Array.from({ length: 6 }, (_, i) => clients[i % 2].newJob({ modelName: name }));
  const rejections = [];
  for (const job of jobs) job.on('rejected', ({ reason }) => rejections.push(reason));
  const controller = new AbortController(); // a failing device stops the others, not the deadlines
  let reports;
  try {
    reports = (await Promise.all(jobs.map((job) => job.participate({ data: features, labels, signal: controller.signal })))).flat();
  } finally {
    controller.abort();
  }

  // A held request ends accepted; the only rejection each device sees is the model's end.
  assert.deepEqual(rejections, Array(6).fill('training_finished'));
  const cycles = await listCycles(node, { name });
  assert.deepEqual(cycles.map((c) => [c.sequence, c.status, c.reason, c.reported]), [1, 2, 3, 4, 5, 6].map((n) => [n, 'completed', 'goal', 3]));
  assert.equal(reports.length, 18);
  for (const checkpoint of [1, 2, 3, 4, 5, 6]) assert.equal(reports.filter((r) => r.checkpoint === checkpoint).length, 3, `checkpoint ${checkpoint}`);
  assert.equal((await retrieveModel(node, { name })).number, 7);
  for (const client of clients) client.close();
});

test('participate() over WebSocket: a device turned away is woken by the Node\'s place-available push, not its timeout', { timeout: 45_000 }, async (t) => {
  // One place per cycle and 600 s cycles: the second device is rejected (cycle_full) and told to
  // come back in about a minute. Only the push sent when the first device's report closes cycle 1
  // and cycle 2 opens lets it into cycle 2 within the test's bound.
  const name = 'js-push';
  await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 1 }, serverConfig: { max_diffs: 1, max_workers: 1, cycle_length: 600 } });
  const { features, labels } = vectorData();
  const first = new Client({ url: node.url }).newJob({ modelName: name });
  const holding = await first.request();
  assert.equal(holding.status, 'accepted');
  const result = await first.train({ data: features, labels });

  const client = new Client({ url: node.wsUrl });
  const controller = new AbortController();
  const bound = setTimeout(() => controller.abort(), 25_000); // well below the rejection's timeout
  t.after(() => { clearTimeout(bound); controller.abort(); client.close(); });
  const second = client.newJob({ modelName: name });
  let onRejected;
  const rejected = new Promise((resolve) => { onRejected = resolve; });
  second.on('rejected', onRejected);
  const seen = [];
  const participating = second.participate({ data: features, labels, wait: 0.2, cycles: 1, signal: controller.signal, onReport: (report) => { seen.push(report.cycle); } });
  const rejection = await rejected;
  assert.equal(rejection.reason, 'cycle_full');
  assert.ok(rejection.timeout > 30, `the timeout the device would sleep: ${rejection.timeout} s`);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the Node subscribes the socket just after answering
  const started = Date.now();
  assert.equal((await first.report(result)).cycle, holding.cycle);
  const reports = await participating;
  clearTimeout(bound);
  assert.ok(!controller.signal.aborted, 'no push: the device slept its timeout');
  assert.ok(Date.now() - started < 20_000);
  assert.deepEqual(reports.map((r) => [r.cycle, r.checkpoint]), [[2, 2]]);
  assert.deepEqual(seen, [2]);
  const cycles = await listCycles(node, { name });
  assert.deepEqual(cycles.slice(0, 2).map((c) => [c.sequence, c.status, c.reason, c.accepted, c.reported]), [[1, 'completed', 'goal', 1, 1], [2, 'completed', 'goal', 1, 1]]);
  assert.equal(second.transport.listenerCount('place-available'), 0);
});
