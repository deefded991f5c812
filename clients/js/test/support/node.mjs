// Real Fedgrid Node processes for the tests: start one on a free loopback port, host a model
// from the conformance vectors, read checkpoints back with the admin token.

import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Plan, parseSafetensors } from '../../src/index.js';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const PYTHON = join(REPO, '.venv/bin/python');
export const VECTORS = join(REPO, 'plans/conformance');
export const ADMIN_TOKEN = 'js-test-admin-token';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Start `python -m fedgrid_node` and wait for GET /health. Call node.stop() when done.
 *  `extraArgs` may be a function of the port (e.g. for --address). node.kill() ends it with
 *  SIGKILL (a crash); node.restart() starts it again on the same port and data directory. */
export async function startNode({ env = {}, extraArgs = [], module = 'fedgrid_node' } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), `fedgrid-js-${module}-`));
  const port = await freePort();
  const logPath = join(dataDir, 'node.log');
  const extra = typeof extraArgs === 'function' ? extraArgs(port) : extraArgs;
  const url = `http://127.0.0.1:${port}`;
  const spawnNode = () => {
    const log = openSync(logPath, 'a');
    return spawn(PYTHON, ['-m', module, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--admin-token', ADMIN_TOKEN, ...extra], {
      stdio: ['ignore', log, log],
      env: { ...process.env, ...env },
    });
  };
  const end = async (child, signal) => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      await exited;
    }
  };
  const node = {
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    port,
    adminToken: ADMIN_TOKEN,
    dataDir,
    child: spawnNode(),
    log: () => readFileSync(logPath, 'utf8'),
    async stop() {
      await end(node.child, 'SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
    async kill() { await end(node.child, 'SIGKILL'); },
    async restart() {
      node.child = spawnNode();
      await waitHealthy(node, module);
      return node;
    },
  };
  await waitHealthy(node, module);
  return node;
}

async function waitHealthy(node, module) {
  for (let i = 0; i < 300; i += 1) {
    if (node.child.exitCode !== null) throw new Error(`${module} exited with ${node.child.exitCode}:\n${node.log()}`);
    try {
      const answer = await fetch(`${node.url}/health`);
      if (answer.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await node.stop();
  throw new Error(`${module} did not answer /health within 30 s`);
}

/** Host a conformance vector's plan and start parameters as model `name`. */
export async function hostModel(node, { name, version = '1.0', vector = 'digits_mlp', clientConfig = {}, serverConfig = {} }) {
  const form = new FormData();
  form.set('name', name);
  form.set('version', version);
  form.set('client_config', JSON.stringify(clientConfig));
  form.set('server_config', JSON.stringify(serverConfig));
  form.set('model', new Blob([readFileSync(join(VECTORS, vector, 'start.safetensors'))]), 'model.safetensors');
  form.set('plans[training_plan]', new Blob([readFileSync(join(VECTORS, vector, 'plan.fgplan'))]), 'plan.fgplan');
  const answer = await fetch(`${node.url}/model-centric/host-training`, { method: 'POST', body: form, headers: { Authorization: `Bearer ${node.adminToken}` } });
  const body = await answer.json();
  if (!answer.ok) throw new Error(`host-training failed: ${JSON.stringify(body)}`);
  return body;
}

/** A checkpoint's tensors, read back with the admin token. */
export async function retrieveModel(node, { name, version = '1.0', checkpoint = 'latest' }) {
  const answer = await fetch(`${node.url}/model-centric/retrieve-model?name=${encodeURIComponent(name)}&version=${encodeURIComponent(version)}&checkpoint=${checkpoint}`, { headers: { Authorization: `Bearer ${node.adminToken}` } });
  if (!answer.ok) throw new Error(`retrieve-model failed: ${await answer.text()}`);
  return { number: Number(answer.headers.get('x-fedgrid-checkpoint')), tensors: parseSafetensors(new Uint8Array(await answer.arrayBuffer())).tensors };
}

/** The model's cycles (admin `cycles` event): [{sequence, status, reason, accepted, reported, ...}]. */
export async function listCycles(node, { name, version = '1.0' }) {
  const answer = await fetch(`${node.url}/model-centric/cycles?name=${encodeURIComponent(name)}&version=${encodeURIComponent(version)}`, { headers: { Authorization: `Bearer ${node.adminToken}` } });
  if (!answer.ok) throw new Error(`cycles failed: ${await answer.text()}`);
  return (await answer.json()).cycles;
}

/** Poll until the model has checkpoint `number` (the cycle closed and was aggregated). */
export async function waitForCheckpoint(node, { name, version = '1.0', number }) {
  for (let i = 0; i < 300; i += 1) {
    const answer = await fetch(`${node.url}/model-centric/checkpoints?name=${encodeURIComponent(name)}&version=${encodeURIComponent(version)}`, { headers: { Authorization: `Bearer ${node.adminToken}` } });
    const body = await answer.json();
    if (body.latest >= number) return body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`checkpoint ${number} of ${name} did not appear within 30 s`);
}

/** A digits-like data set: the conformance vector's batches, concatenated. */
export function vectorData(vector = 'digits_mlp') {
  const { tensors } = parseSafetensors(readFileSync(join(VECTORS, vector, 'batches.safetensors')));
  const features = [];
  const labels = [];
  for (let i = 0; tensors[`features/${i}`]; i += 1) {
    features.push(...tensors[`features/${i}`].data);
    labels.push(...Array.from(tensors[`labels/${i}`].data, Number));
  }
  return { features: Float32Array.from(features), labels };
}

/** A conformance plan's training graph and manifest section, and `changed(change)`: a copy of
 *  the section with `change(copy)` applied (to see what a graph rewrite refuses). */
export function trainingGraphOf(vector) {
  const plan = Plan.fromBytes(readFileSync(join(VECTORS, vector, 'plan.fgplan')));
  const section = plan.manifest.train;
  const changed = (change) => {
    const copy = JSON.parse(JSON.stringify(section));
    change(copy);
    return copy;
  };
  return { graph: plan.graphs.train, section, changed };
}

/** A copy of a conformance plan's graph whose default operator set is `version`: the default
 *  domain's opset_import (field 8: domain '', version 18) ends these models. */
export function withDefaultOpset(graph, version) {
  const copy = Uint8Array.from(graph);
  if (Array.from(copy.subarray(-6)).join() !== [0x42, 4, 0x0a, 0, 0x10, 18].join()) throw new Error('the graph does not end with its default opset_import');
  copy[copy.length - 1] = version;
  return copy;
}
