// Client: a connection to a Fedgrid Node, or to a Fedgrid Network that routes each model to a
// Node (GET /route), over HTTP or WebSocket; jobs are made from it.

import { FedgridError, ProcessUnknown, RequestInvalid } from './errors.js';
import { Job } from './job.js';
import { createTransport, httpBase, wsEndpoint } from './transport.js';

export class Client {
  /**
   * @param {object} options
   * @param {string} options.url         the Node (or a Network): http(s)://host:port (HTTP) or ws(s)://host:port/ws (WebSocket)
   * @param {string} [options.authToken] the device token, for models hosted with device authentication
   * @param {'http'|'websocket'} [options.transport] overrides what the URL's scheme picks
   * @param {number} [options.retries]   extra attempts on network failures and 429/502/503/504 (default 5)
   * @param {number} [options.backoff]   seconds before the first retry, doubling (default 0.5); Retry-After wins
   * @param {number} [options.timeout]   seconds one request may take (default 60)
   * @param {string[]} [options.executionProviders] onnxruntime-web providers (default ['wasm'];
   *   ['webgpu', 'wasm'] with the WebGPU bundle in a browser that has WebGPU)
   */
  constructor({ url, authToken, transport, retries, backoff, timeout, executionProviders, fetch, sleep } = {}) {
    if (!url) throw new TypeError("new Client({url}) needs the Node's URL, e.g. http://localhost:5000");
    this.url = url;
    this.authToken = authToken;
    this.executionProviders = executionProviders; // undefined: defaultExecutionProviders()
    this.transportOptions = { transport, retries, backoff, timeout, fetch, sleep };
    /** The transport to `url` (the Node, or the Network when `url` is one). */
    this.transport = createTransport(url, this.transportOptions);
    this.kind = null; // 'node' | 'network', from GET /status on first use
    this.nodeTransports = new Map(); // Node address -> transport, for Networks
  }

  /** The transport to the Node serving a model: this client's own, or the Network's route. */
  async transportFor(modelName, modelVersion) {
    if (this.kind === null) {
      let status = {};
      try {
        status = await this.transport.getJson('/status');
      } catch (error) {
        // A Node without /status is still a Node (its 404 may predate the JSON error answers).
        const missing = error instanceof RequestInvalid || (error.code === 'unexpected_answer' && error.status < 500);
        if (!missing) throw error;
      }
      this.kind = status.kind === 'network' ? 'network' : 'node';
    }
    if (this.kind === 'node') return this.transport;
    const query = new URLSearchParams({ model: modelName, ...(modelVersion ? { version: modelVersion } : {}) });
    let route;
    try {
      route = await this.transport.getJson(`/route?${query}`);
    } catch (error) {
      if (error.status === 404) {
        throw new ProcessUnknown({ code: 'process_unknown', status: 404, message: `no Node on the Network ${httpBase(this.url)} hosts ${modelName}${modelVersion ? ` version ${modelVersion}` : ''}: ${error.message}`, details: error.details });
      }
      throw error;
    }
    if (typeof route?.address !== 'string' || !route.address) {
      throw new FedgridError(`the Network at ${this.url} answered a route without an address`, { code: 'unexpected_answer' });
    }
    // Keep talking the way the caller chose: a WebSocket client reaches the Node by WebSocket.
    const nodeUrl = this.transport.kind === 'websocket' ? wsEndpoint(route.address) : httpBase(route.address);
    if (!this.nodeTransports.has(nodeUrl)) this.nodeTransports.set(nodeUrl, createTransport(nodeUrl, { ...this.transportOptions, transport: this.transport.kind }));
    return this.nodeTransports.get(nodeUrl);
  }

  /** A job for one hosted model; call job.request() to ask for a place in its current cycle. */
  newJob({ modelName, modelVersion } = {}) {
    if (!modelName) throw new TypeError('client.newJob({modelName}) needs the hosted model name');
    return new Job(this, { modelName, modelVersion });
  }

  /** Measure the link: {ping (ms), download (Mbit/s), upload (Mbit/s)}. */
  speedTest({ bytes } = {}) {
    return this.transport.speedTest({ bytes });
  }

  /** Close the WebSockets, if any (HTTP holds nothing open). */
  close() {
    this.transport.close();
    for (const transport of this.nodeTransports.values()) transport.close();
  }
}
