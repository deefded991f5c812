// A Client given a Fedgrid Network's URL finds the model's Node through GET /route (real Network
// and Node processes; the Node joins the Network and heartbeats its hosted models).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client, ProcessUnknown } from '../src/index.js';
import { hostModel, startNode, vectorData } from './support/node.mjs';

const SECRET = 'js-network-secret';
let network;
let node;

before(async () => {
  network = await startNode({ module: 'fedgrid_network', extraArgs: ['--network-secret', SECRET, '--heartbeat-interval', '0.5'] });
  node = await startNode({ extraArgs: (port) => ['--id', 'js-routed-node', '--network', network.url, '--network-secret', SECRET, '--address', `http://127.0.0.1:${port}`] });
});
after(async () => {
  await node?.stop();
  await network?.stop();
});

async function waitForRoute(name) {
  for (let i = 0; i < 300; i += 1) {
    const answer = await fetch(`${network.url}/route?model=${name}`);
    if (answer.ok) return answer.json();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the Network never routed ${name}:\n${network.log()}\n${node.log()}`);
}

for (const transport of ['http', 'websocket']) {
  test(`a ${transport} client with the Network's URL trains and reports on the routed Node`, async () => {
    const name = `js-routed-${transport}`;
    await hostModel(node, { name, clientConfig: { batch_size: 8, max_updates: 2 }, serverConfig: { max_diffs: 1 } });
    await waitForRoute(name);
    const url = transport === 'http' ? network.url : network.url.replace('http://', 'ws://');
    const client = new Client({ url });
    const job = client.newJob({ modelName: name, modelVersion: '1.0' });
    const assignment = await job.request();
    assert.equal(assignment.status, 'accepted');
    assert.equal(client.kind, 'network');
    assert.equal(job.transport.kind, transport);
    assert.equal(job.transport.url, transport === 'http' ? node.url : node.wsUrl);
    const { features, labels } = vectorData();
    const result = await job.train({ data: features, labels });
    assert.equal(result.updates, 2);
    assert.equal((await job.report(result)).status, 'success');
    client.close();
  });
}

test('a model no Node on the Network hosts is process_unknown', async () => {
  const job = new Client({ url: network.url, retries: 0 }).newJob({ modelName: 'hosted-nowhere' });
  await assert.rejects(job.request(), (error) => error instanceof ProcessUnknown && error.code === 'process_unknown' && /no Node on the Network/.test(error.message));
});
