// Getting events to a Node and answers back, over HTTP (fetch) or one WebSocket. Both expose
// call(event, fields, {blobs}) -> JSON answer and download(event, fields) -> {bytes, headers}, so
// nothing above this module knows which one it uses. Error answers become the
// classes the protocol's error table names (errors.js).

import { FedgridError, NetworkUnreachable, Unavailable, apiErrorFrom } from './errors.js';
import { Emitter } from './events.js';
import { RETRY_STATUSES, backoffDelay, parseRetryAfter, sleep as realSleep } from './retry.js';
import { parseSafetensors, writeSafetensors } from './safetensors.js';

const EVENT_PREFIX = 'model-centric/';

/** How each event travels over HTTP: [method, how its fields are sent]. */
const HTTP_EVENTS = {
  authenticate: ['POST', 'json'],
  'cycle-request': ['POST', 'json'],
  report: ['POST', 'octet-stream'],
  'get-model': ['GET', 'query'],
  'get-plan': ['GET', 'query'],
  'retrieve-model': ['GET', 'query'],
  checkpoints: ['GET', 'query'],
  processes: ['GET', 'query'],
  cycles: ['GET', 'query'],
  'secagg-advertise-keys': ['POST', 'octet-stream'],
  'secagg-share-keys': ['POST', 'octet-stream'],
  'secagg-masked-input': ['POST', 'octet-stream'],
  'secagg-unmask': ['POST', 'octet-stream'],
};

/** http(s)://host[:port][/prefix] for any http(s) or ws(s) URL (a trailing /ws is dropped). */
export function httpBase(url) {
  const parsed = new URL(url);
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:';
  if (parsed.protocol === 'wss:') parsed.protocol = 'https:';
  let path = parsed.pathname.replace(/\/+$/, '');
  if (/^wss?:/.test(url) && path.endsWith('/ws')) path = path.slice(0, -3);
  return `${parsed.protocol}//${parsed.host}${path}`;
}

/** The Node's WebSocket endpoint for an http(s) or ws(s) URL. */
export function wsEndpoint(url) {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  let path = parsed.pathname.replace(/\/+$/, '');
  if (!path.endsWith('/ws')) path += '/ws';
  return `${parsed.protocol}//${parsed.host}${path}`;
}

function query(fields) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    params.set(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

function withoutEmpty(fields) {
  return Object.fromEntries(Object.entries(fields ?? {}).filter(([, v]) => v !== undefined && v !== null));
}

export class HttpTransport {
  /**
   * @param {string} url  the Node's http(s) URL
   * @param {{retries?: number, backoff?: number, timeout?: number, fetch?: typeof fetch, sleep?: (s: number) => Promise<void>}} [options]
   *   retries: extra attempts after a network failure or a 429/502/503/504 (default 5);
   *   backoff: seconds before the first retry, doubling each time (default 0.5);
   *   timeout: seconds one attempt may take (default 60).
   */
  constructor(url, { retries = 5, backoff = 0.5, timeout = 60, fetch: fetchImpl, sleep } = {}) {
    this.kind = 'http';
    this.url = httpBase(url);
    this.retries = retries;
    this.backoff = backoff;
    this.timeout = timeout;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.sleep = sleep ?? realSleep;
  }

  /**
   * fetch with retries. Network failures and transient statuses are retried with backoff, waiting
   * exactly Retry-After when the answer has one. Reports are retried like the rest: the Node keeps
   * one report per assignment, and Job.report recognises the report_duplicate of a retry whose
   * first attempt had been stored. `init.signal` aborting rejects with its reason, unretried.
   * @returns {Promise<{response: Response, attempts: number}>}
   */
  async request(path, init = {}, what = path) {
    for (let attempt = 0; ; attempt += 1) {
      let response;
      const timeout = AbortSignal.timeout(this.timeout * 1000);
      const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
      try {
        response = await this.fetch(this.url + path, { ...init, signal });
      } catch (error) {
        if (init.signal?.aborted) throw init.signal.reason; // the caller's abort: nothing to retry
        if (attempt >= this.retries) {
          throw new NetworkUnreachable(`${what}: cannot reach ${this.url} (${error?.cause?.code ?? error?.name ?? error}); check the URL and that the Node is running, then try again`, { cause: error });
        }
        await this.sleep(backoffDelay(attempt, this.backoff));
        continue;
      }
      if (RETRY_STATUSES.has(response.status) && attempt < this.retries) {
        const asked = parseRetryAfter(response.headers.get('Retry-After'));
        await response.arrayBuffer().catch(() => undefined); // free the connection
        await this.sleep(asked ?? backoffDelay(attempt, this.backoff));
        continue;
      }
      return { response, attempts: attempt + 1 };
    }
  }

  static async errorOf(response) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON: a proxy page */ }
    return apiErrorFrom(body, response.status);
  }

  async call(event, fields = {}, { blobs = {}, adminToken, signal } = {}) {
    const [method, style] = HTTP_EVENTS[event] ?? ['POST', 'json'];
    const data = withoutEmpty(fields);
    const headers = adminToken ? { Authorization: `Bearer ${adminToken}` } : {};
    const path = `/model-centric/${event}`;
    let answer;
    if (style === 'json') {
      answer = await this.request(path, { method, signal, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(data) }, event);
    } else if (style === 'octet-stream') {
      answer = await this.request(path + query(data), { method, signal, headers: { ...headers, 'Content-Type': 'application/octet-stream' }, body: Object.values(blobs)[0] }, event); // the one body
    } else {
      answer = await this.request(path + query(data), { method, signal, headers }, event);
    }
    const { response, attempts } = answer;
    if (!response.ok) {
      const error = await HttpTransport.errorOf(response);
      error.attempts = attempts;
      throw error;
    }
    const body = await response.json();
    return attempts > 1 ? Object.defineProperty(body, 'attempts', { value: attempts, enumerable: false }) : body;
  }

  async download(event, fields = {}, { adminToken } = {}) {
    const headers = adminToken ? { Authorization: `Bearer ${adminToken}` } : {};
    const { response } = await this.request(`/model-centric/${event}${query(withoutEmpty(fields))}`, { headers }, event);
    if (!response.ok) throw await HttpTransport.errorOf(response);
    return { bytes: new Uint8Array(await response.arrayBuffer()), headers: Object.fromEntries(response.headers) };
  }

  async getJson(path) {
    const { response } = await this.request(path, {}, path);
    if (!response.ok) throw await HttpTransport.errorOf(response);
    return response.json();
  }

  /**
   * Measure the link to the Node: ping (ms, one round trip to /health), download and upload
   * (Mbit/s, timing `bytes` each way through /model-centric/speed-test).
   */
  async speedTest({ bytes = 1 << 20 } = {}) {
    const now = () => globalThis.performance.now();
    let started = now();
    await this.getJson('/health');
    const ping = now() - started;
    started = now();
    const { response } = await this.request(`/model-centric/speed-test?size=${bytes}`, {}, 'speed-test');
    if (!response.ok) throw await HttpTransport.errorOf(response);
    const received = (await response.arrayBuffer()).byteLength;
    const downloadSeconds = Math.max((now() - started) / 1000, 1e-6);
    const payload = new Uint8Array(bytes);
    globalThis.crypto.getRandomValues(payload.subarray(0, Math.min(bytes, 65536))); // incompressible head
    started = now();
    const upload = await this.request('/model-centric/speed-test', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: payload }, 'speed-test');
    if (!upload.response.ok) throw await HttpTransport.errorOf(upload.response);
    await upload.response.json();
    const uploadSeconds = Math.max((now() - started) / 1000, 1e-6);
    const round = (x) => Math.round(x * 1000) / 1000;
    return { ping: round(ping), download: round((received * 8) / downloadSeconds / 1e6), upload: round((bytes * 8) / uploadSeconds / 1e6) };
  }

  close() {}
}

async function webSocketClass() {
  if (globalThis.WebSocket) return globalThis.WebSocket;
  // Node.js 20 has no global WebSocket; the `ws` package fills in (never bundled for browsers).
  const module = await import('ws');
  return module.default ?? module.WebSocket;
}

/**
 * Events as envelopes {type, request_id, data} on one WebSocket; bytes in binary frames laid out as
 * safetensors with the envelope in __metadata__.envelope (docs/api.md). Speed tests use HTTP (a
 * socket shared by events is no measure of bulk throughput). A dropped socket is reopened with
 * backoff and the event re-sent (a report too: see HttpTransport.request). Call close() when done:
 * an open socket keeps a Node.js process alive.
 * Frames the Node sends unasked (`request_id: null`, e.g. `model-centric/place-available` after a
 * cycle-request with `notify: true`) answer no request: they are emitted by their event name,
 * `transport.on('place-available', ({model, version}) => ...)`.
 */
export class WebSocketTransport extends Emitter {
  constructor(url, options = {}) {
    super();
    this.kind = 'websocket';
    this.url = wsEndpoint(url);
    this.http = new HttpTransport(url, options);
    this.retries = options.retries ?? 5;
    this.backoff = options.backoff ?? 0.5;
    this.timeout = options.timeout ?? 60;
    this.sleep = options.sleep ?? realSleep;
    this.socket = null;
    this.opening = null;
    this.pending = new Map();
    this.nextId = 1;
  }

  async open() {
    if (this.socket && this.socket.readyState === 1) return this.socket;
    if (this.opening) return this.opening;
    this.opening = (async () => {
      const WebSocketImpl = await webSocketClass();
      for (let attempt = 0; ; attempt += 1) {
        try {
          const socket = await new Promise((resolve, reject) => {
            const ws = new WebSocketImpl(this.url);
            ws.binaryType = 'arraybuffer';
            ws.addEventListener('open', () => resolve(ws), { once: true });
            ws.addEventListener('error', (event) => reject(new Error(event?.message ?? 'WebSocket error')), { once: true });
          });
          socket.addEventListener('message', (event) => this.receive(event.data));
          socket.addEventListener('close', () => this.dropped(socket));
          this.socket = socket;
          return socket;
        } catch (error) {
          if (attempt >= this.retries) {
            throw new NetworkUnreachable(`cannot open a WebSocket to ${this.url} (${error.message}); check the URL and that the Node is running`, { cause: error });
          }
          await this.sleep(backoffDelay(attempt, this.backoff));
        }
      }
    })();
    try {
      return await this.opening;
    } finally {
      this.opening = null;
    }
  }

  dropped(socket) {
    if (this.socket === socket) this.socket = null;
    for (const [id, waiter] of this.pending) {
      this.pending.delete(id);
      clearTimeout(waiter.timer);
      waiter.reject(new NetworkUnreachable('the WebSocket to the Node closed before the answer came'));
    }
  }

  receive(raw) {
    let envelope;
    let payload;
    try {
      if (typeof raw === 'string') {
        envelope = JSON.parse(raw);
      } else {
        const bytes = raw instanceof ArrayBuffer ? new Uint8Array(raw) : new Uint8Array(raw.buffer ?? raw, raw.byteOffset ?? 0, raw.byteLength);
        const { tensors, metadata } = parseSafetensors(bytes);
        envelope = JSON.parse(metadata.envelope);
        payload = tensors[envelope.data?.blob ?? 'payload']?.data;
      }
    } catch {
      return; // not a frame of the protocol: it answers nothing (a request it was meant for times out and is retried)
    }
    if (!envelope || typeof envelope !== 'object') return;
    if (envelope.request_id === null || envelope.request_id === undefined) {
      this.pushed(envelope);
      return;
    }
    const waiter = this.pending.get(envelope.request_id);
    if (!waiter || (typeof envelope.type === 'string' && envelope.type !== waiter.type)) return; // late (abandoned), or not its answer
    this.pending.delete(envelope.request_id);
    clearTimeout(waiter.timer);
    waiter.resolve({ data: envelope.data, payload });
  }

  /** A frame the Node sent unasked: emitted as its event name ('place-available'), never an answer. */
  pushed(envelope) {
    if (typeof envelope.type !== 'string' || !envelope.type.startsWith(EVENT_PREFIX)) return;
    const data = envelope.data && typeof envelope.data === 'object' ? envelope.data : {};
    // A listener's failure is its own: it must not break the socket's other answers.
    this.emit(envelope.type.slice(EVENT_PREFIX.length), data).catch(() => undefined);
  }

  async exchange(event, fields, blobs, adminToken, signal) {
    signal?.throwIfAborted();
    const socket = await this.open();
    const requestId = this.nextId++;
    const envelope = { type: EVENT_PREFIX + event, request_id: requestId, data: withoutEmpty(fields) };
    if (adminToken) envelope.authorization = `Bearer ${adminToken}`;
    const answer = new Promise((resolve, reject) => {
      // The Node cannot be told to stop (a held cycle-request ends by itself): stop waiting for it.
      const abandon = () => {
        this.pending.delete(requestId);
        clearTimeout(timer);
        reject(signal.reason);
      };
      const unlisten = () => signal?.removeEventListener('abort', abandon);
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        unlisten();
        reject(new NetworkUnreachable(`${event}: no answer over the WebSocket within ${this.timeout} s`));
      }, this.timeout * 1000);
      this.pending.set(requestId, {
        type: envelope.type,
        resolve: (value) => { unlisten(); resolve(value); },
        reject: (error) => { unlisten(); reject(error); },
        timer,
      });
      signal?.addEventListener('abort', abandon, { once: true });
    });
    if (blobs && Object.keys(blobs).length) {
      socket.send(writeSafetensors(Object.fromEntries(Object.entries(blobs).map(([k, v]) => [k, v])), { envelope: JSON.stringify(envelope) }));
    } else {
      socket.send(JSON.stringify(envelope));
    }
    return answer;
  }

  async exchangeWithRetries(event, fields, blobs, adminToken, signal) {
    for (let attempt = 0; ; attempt += 1) {
      let answer;
      try {
        answer = await this.exchange(event, fields, blobs, adminToken, signal);
      } catch (error) {
        if (!(error instanceof NetworkUnreachable) || attempt >= this.retries) throw error;
        await this.sleep(backoffDelay(attempt, this.backoff));
        continue;
      }
      const { data } = answer;
      if (data && typeof data === 'object' && data.error) {
        const error = apiErrorFrom(data, data.error.status);
        if (error instanceof Unavailable && attempt < this.retries) {
          await this.sleep(backoffDelay(attempt, this.backoff));
          continue;
        }
        error.attempts = attempt + 1;
        throw error;
      }
      if (attempt > 0) Object.defineProperty(data, 'attempts', { value: attempt + 1, enumerable: false });
      return answer;
    }
  }

  async call(event, fields = {}, { blobs, adminToken, signal } = {}) {
    return (await this.exchangeWithRetries(event, fields, blobs, adminToken, signal)).data;
  }

  async download(event, fields = {}, { adminToken } = {}) {
    const { data, payload } = await this.exchangeWithRetries(event, fields, undefined, adminToken);
    if (!payload) throw new FedgridError(`${event}: the answer carried no bytes`, { code: 'unexpected_answer' });
    const headers = Object.fromEntries(Object.entries(data).filter(([k]) => k !== 'blob').map(([k, v]) => [k.toLowerCase(), String(v)]));
    return { bytes: payload, headers };
  }

  getJson(path) { return this.http.getJson(path); }

  speedTest(options) { return this.http.speedTest(options); }

  close() {
    this.socket?.close();
    this.socket = null;
  }
}

/** The transport a URL asks for: ws(s):// -> WebSocket, http(s):// -> HTTP, unless `transport` says. */
export function createTransport(url, { transport, ...options } = {}) {
  const kind = transport ?? (/^wss?:/i.test(url) ? 'websocket' : 'http');
  return kind === 'websocket' ? new WebSocketTransport(url, options) : new HttpTransport(url, options);
}
