// Federated evaluation with the JS SDK against a real Fedgrid Node: a device turned away from a
// full cycle is given an evaluation assignment, scores the cycle's checkpoint with the plan's
// forward graph and reports metrics only. The same examples are the Node's held-out set, so the
// device's score must be the Node's own score of that checkpoint.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client, writeSafetensors } from '../src/index.js';
import { hostModel, listCycles, startNode, vectorData } from './support/node.mjs';

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

async function admin(event, { query = {}, body } = {}) {
  const search = new URLSearchParams({ version: '1.0', ...query });
  const answer = await fetch(`${node.url}/model-centric/${event}?${search}`, {
    method: body ? 'POST' : 'GET',
    headers: { Authorization: `Bearer ${node.adminToken}`, ...(body ? { 'Content-Type': 'application/octet-stream' } : {}) },
    body,
  });
  const json = await answer.json();
  if (!answer.ok) throw new Error(`${event}: ${JSON.stringify(json)}`);
  return json;
}

/** Poll the admin `cycles` answer until `ready(answer)` holds. */
async function until(name, ready, what) {
  for (let i = 0; i < 300; i += 1) {
    const answer = await admin('cycles', { query: { name } });
    if (ready(answer)) return answer;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function assertNear(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) <= 1e-4 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

for (const transport of ['http', 'websocket']) {
  test(`an evaluation assignment over ${transport}: scored locally, reported without a diff, not counted`, async () => {
    const name = `js-evaluation-${transport}`;
    await hostModel(node, { name, serverConfig: { max_diffs: 1, max_workers: 1, cycle_length: 600, evaluation_every: 1, evaluation_devices: 1 } });
    const { features, labels } = vectorData();
    const examples = writeSafetensors({
      features: { dtype: 'F32', shape: [labels.length, 64], data: features },
      labels: { dtype: 'I64', shape: [labels.length], data: BigInt64Array.from(labels, BigInt) },
    });
    await admin('evaluation-set', { query: { name }, body: examples });

    const client = new Client({ url: transport === 'http' ? node.url : node.wsUrl });
    const trainer = client.newJob({ modelName: name });
    const training = await trainer.request();
    assert.equal(training.status, 'accepted');
    assert.equal(training.task, 'train');
    const evaluator = client.newJob({ modelName: name });
    const evaluation = await evaluator.request();
    assert.equal(evaluation.status, 'accepted', JSON.stringify(evaluation));
    assert.equal(evaluation.task, 'evaluate');
    assert.equal(evaluation.checkpoint, 1);
    assert.ok(evaluator.executors.size === 1 && [...evaluator.executors.values()][0].hasForwardGraph);

    const scored = await evaluator.evaluate({ data: features, labels });
    assert.equal(scored.numSamples, labels.length);
    assert.deepEqual(Object.keys(scored.metrics).sort(), ['accuracy', 'loss']);
    // A diff is refused locally: an evaluation reports metrics only.
    await assert.rejects(evaluator.report({ diff: training.parameters, numSamples: 3 }), TypeError);
    assert.equal((await evaluator.report(scored)).status, 'success');

    // The device's score is the Node's held-out score of checkpoint 1 (same plan, same examples).
    const held = await until(name, (a) => a.checkpoints.find((c) => c.number === 1)?.test_metrics, 'checkpoint 1 to be scored');
    const first = held.checkpoints.find((c) => c.number === 1);
    assertNear(scored.metrics.accuracy, first.test_metrics.accuracy, 'accuracy');
    assertNear(scored.metrics.loss, first.test_metrics.loss, 'loss');
    assert.deepEqual(first.federated_metrics, { metrics: scored.metrics, num_samples: labels.length, reports: 1 });
    // Not toward the goal: the cycle is still open with no training report.
    const [open] = await listCycles(node, { name });
    assert.equal(open.status, 'open');
    assert.equal(open.reported, 0);

    const result = await trainer.train({ data: features, labels });
    assert.equal((await trainer.report(result)).status, 'success');
    const closed = await until(name, (a) => a.cycles[0].status === 'completed', 'cycle 1 to close');
    assert.equal(closed.cycles[0].reported, 1);
    assert.equal(closed.cycles[0].new_checkpoint, 2);
    client.close();
  });
}

test('participate() evaluates when told to and trains otherwise', async () => {
  const name = 'js-evaluation-participate';
  await hostModel(node, { name, clientConfig: { batch_size: 8 }, serverConfig: { max_diffs: 1, max_workers: 1, cycle_length: 600, num_cycles: 2, evaluation_every: 1, evaluation_devices: 1 } });
  const { features, labels } = vectorData();
  const client = new Client({ url: node.url });
  const jobs = [0, 1, 2].map(() => client.newJob({ modelName: name }));
  const reports = await Promise.all(jobs.map((job) => job.participate({ data: features, labels, wait: 5 })));
  const all = reports.flat();
  const trained = all.filter((r) => r.task === 'train');
  const evaluated = all.filter((r) => r.task === 'evaluate');
  assert.equal(trained.length, 2, JSON.stringify(all));
  assert.ok(evaluated.length >= 1, JSON.stringify(all));
  assert.ok(evaluated.every((r) => r.numSamples === labels.length && Number.isFinite(r.metrics.accuracy)));
  const answer = await admin('cycles', { query: { name } });
  assert.deepEqual(answer.cycles.map((c) => [c.status, c.reported]), [['completed', 1], ['completed', 1]]);
  const federated = answer.checkpoints.filter((c) => c.federated_metrics).reduce((n, c) => n + c.federated_metrics.reports, 0);
  assert.equal(federated, evaluated.length);
  client.close();
});

// evaluateLocally's arithmetic for the losses a digits plan does not have, against hand sums.
function fakeExecutor(loss, labelDtype, outputs, width) {
  return {
    plan: { manifest: { training: { loss } } },
    labelsInput: { dtype: labelDtype },
    featureSize: 1,
    featureShape: [1],
    async predict(parameters, features) {
      const rows = features.length;
      const start = features[0];
      return { data: outputs.subarray(start * width, (start + rows) * width), dims: [rows, width] };
    },
  };
}

test('evaluateLocally: BCE with logits over all elements, MSE without accuracy', async () => {
  const { evaluateLocally } = await import('../src/index.js');
  const outputs = Float32Array.from([2, -1, 0.5, -3]); // 2 examples x 2 outputs
  const targets = Float32Array.from([1, 0, 0, 0]);
  const features = Float32Array.from([0, 1]); // the fake serves rows by their first feature
  const bce = await evaluateLocally(fakeExecutor('bce_with_logits', 'float32', outputs, 2), {}, { features, labels: targets });
  const expected = [...outputs].reduce((sum, z, i) => sum + Math.max(z, 0) - z * targets[i] + Math.log1p(Math.exp(-Math.abs(z))), 0) / 4;
  assertNear(bce.metrics.loss, expected, 'bce loss');
  assert.equal(bce.metrics.accuracy, 3 / 4); // 0.5 > 0 but its target is 0
  assert.equal(bce.numSamples, 2);
  const mse = await evaluateLocally(fakeExecutor('mse', 'float32', outputs, 2), {}, { features, labels: targets });
  assertNear(mse.metrics.loss, (1 + 1 + 0.25 + 9) / 4, 'mse loss');
  assert.equal('accuracy' in mse.metrics, false);
  const nll = await evaluateLocally(fakeExecutor('nll', 'int64', outputs, 2), {}, { features, labels: [0, 1] });
  assertNear(nll.metrics.loss, (-2 + 3) / 2, 'nll loss');
  assert.equal(nll.metrics.accuracy, 1 / 2);
  await assert.rejects(evaluateLocally(fakeExecutor('nll', 'int64', outputs, 2), {}, { features, labels: [0, 2] }), /not one of the model's 2 classes/);
});
