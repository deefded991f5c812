// Retries, backoff, Retry-After and error mapping, against small local HTTP servers.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';

import {
  ApiError, Client, FedgridError, HttpTransport, NetworkUnreachable, ReportRefused, RequestInvalid, Unavailable, apiErrorFrom,
} from '../src/index.js';
import { backoffDelay, parseRetryAfter } from '../src/retry.js';
import { freePort } from './support/node.mjs';

/** A server answering each request with the next of `answers` ({status, body, headers} or 'drop'). */
async function scriptedServer(answers) {
  const seen = [];
  const server = createServer((request, response) => {
    const chunks = [];
    request.on('data', (c) => chunks.push(c));
    request.on('end', () => {
      seen.push({ method: request.method, url: request.url, body: Buffer.concat(chunks) });
      const answer = answers.shift() ?? { status: 500, body: {} };
      if (answer === 'drop') { request.socket.destroy(); return; }
      response.writeHead(answer.status, { 'Content-Type': 'application/json', ...(answer.headers ?? {}) });
      response.end(JSON.stringify(answer.body));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

function recordingSleep() {
  const delays = [];
  const sleep = async (seconds) => { delays.push(seconds); };
  return { delays, sleep };
}

test('a 503 with Retry-After waits exactly that long, then succeeds', async () => {
  const server = await scriptedServer([
    { status: 503, body: { error: { code: 'cycle_unavailable', message: 'retry', status: 503 } }, headers: { 'Retry-After': '3' } },
    { status: 200, body: { status: 'success', worker_id: 'w1', version: '1' } },
  ]);
  const { delays, sleep } = recordingSleep();
  const transport = new HttpTransport(server.url, { sleep });
  const answer = await transport.call('authenticate', { model_name: 'm' });
  assert.equal(answer.worker_id, 'w1');
  assert.deepEqual(delays, [3]);
  assert.equal(server.seen.length, 2);
  await server.close();
});

test('transient statuses without Retry-After back off exponentially, then give up with the error', async () => {
  const unavailable = { status: 502, body: {} };
  const server = await scriptedServer([unavailable, unavailable, unavailable, unavailable]);
  const { delays, sleep } = recordingSleep();
  const transport = new HttpTransport(server.url, { sleep, retries: 3, backoff: 0.5 });
  await assert.rejects(transport.call('cycle-request', {}), (error) => error instanceof FedgridError && error.status === 502 && error.code === 'unexpected_answer');
  assert.equal(delays.length, 3);
  delays.forEach((delay, attempt) => {
    const base = 0.5 * 2 ** attempt;
    assert.ok(delay >= 0.75 * base && delay <= 1.25 * base, `attempt ${attempt}: ${delay}`);
  });
  await server.close();
});

test('an unreachable Node ends in NetworkUnreachable after every retry', async () => {
  const port = await freePort(); // nothing listens there
  const { delays, sleep } = recordingSleep();
  const transport = new HttpTransport(`http://127.0.0.1:${port}`, { sleep, retries: 2 });
  await assert.rejects(transport.call('authenticate', {}), (error) => error instanceof NetworkUnreachable && error.code === 'network_unreachable' && /cannot reach/.test(error.message) && /Node is running/.test(error.message));
  assert.equal(delays.length, 2);
});

test('a 4xx is not retried and keeps the Node code, message and details', async () => {
  const server = await scriptedServer([
    { status: 400, body: { error: { code: 'speed_test_required', message: 'this model needs a speed test', status: 400, details: { missing: ['ping'] } } } },
  ]);
  const { delays, sleep } = recordingSleep();
  const transport = new HttpTransport(server.url, { sleep });
  await assert.rejects(transport.call('cycle-request', {}), (error) => {
    assert.ok(error instanceof RequestInvalid && error instanceof ApiError);
    assert.equal(error.code, 'speed_test_required');
    assert.deepEqual(error.details, { missing: ['ping'] });
    assert.equal(error.message, 'this model needs a speed test');
    return true;
  });
  assert.deepEqual(delays, []);
  await server.close();
});

test('an answer without a Fedgrid error body is a FedgridError unexpected_answer with the status', () => {
  const html = apiErrorFrom(null, 502);
  assert.ok(html instanceof FedgridError && !(html instanceof ApiError));
  assert.equal(html.code, 'unexpected_answer');
  assert.equal(html.status, 502);
  assert.match(html.message, /502/);
  assert.equal(apiErrorFrom({}, 404).code, 'unexpected_answer');
  assert.equal(apiErrorFrom({ error: { message: 'no code' } }, 400).code, 'unexpected_answer');
});

test('a transient 503 whose retries ran out is Unavailable (cycle_unavailable)', async () => {
  const busy = { status: 503, body: { error: { code: 'cycle_unavailable', message: 'the next cycle is being opened', status: 503 } } };
  const server = await scriptedServer([busy, busy]);
  const { sleep } = recordingSleep();
  const transport = new HttpTransport(server.url, { sleep, retries: 1 });
  await assert.rejects(transport.call('cycle-request', {}), (error) => error instanceof Unavailable && error.code === 'cycle_unavailable' && error.status === 503);
  await server.close();
});

test('Retry-After parses seconds and HTTP dates; backoff is capped', () => {
  assert.equal(parseRetryAfter('7'), 7);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5);
  assert.equal(parseRetryAfter('99999'), 60);
  assert.equal(backoffDelay(30, 1, () => 0.5), 60);
});

test('a report retried after a dropped connection, answered report_duplicate, counts as stored', async () => {
  const server = await scriptedServer([
    'drop',
    { status: 409, body: { error: { code: 'report_duplicate', message: 'one report per assignment', status: 409 } } },
  ]);
  const { sleep } = recordingSleep();
  const job = new Client({ url: server.url, sleep }).newJob({ modelName: 'm' });
  job.assignment = { workerId: 'w', requestKey: 'k', cycle: 4 };
  const answer = await job.report({ diff: { w: Float32Array.from([1, 2]) }, numSamples: 3, metrics: { loss: 0.5, num_samples: 3 } });
  assert.deepEqual(answer, { status: 'success', cycle: 4, duplicate: true });
  assert.equal(server.seen.length, 2);
  const url = new URL(server.seen[1].url, server.url);
  assert.equal(url.pathname, '/model-centric/report');
  assert.equal(url.searchParams.get('num_samples'), '3');
  assert.deepEqual(JSON.parse(url.searchParams.get('metrics')), { loss: 0.5 });
  await server.close();
});

test('a first-time report_duplicate is an error (another report of this assignment stood)', async () => {
  const server = await scriptedServer([
    { status: 409, body: { error: { code: 'report_duplicate', message: 'one report per assignment', status: 409 } } },
  ]);
  const job = new Client({ url: server.url }).newJob({ modelName: 'm' });
  job.assignment = { workerId: 'w', requestKey: 'k', cycle: 4 };
  await assert.rejects(job.report({ diff: { w: Float32Array.from([1]) }, numSamples: 1 }), (error) => error instanceof ReportRefused && error.code === 'report_duplicate' && error.attempts === 1);
  await server.close();
});
