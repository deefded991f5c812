// Client: one connection to a Fedgrid Node (HTTP or WebSocket) from which jobs are made.

import { Job } from './job.js';
import { createTransport } from './transport.js';

export class Client {
  /**
   * @param {object} options
   * @param {string} options.url         the Node: http(s)://host:port (HTTP) or ws(s)://host:port/ws (WebSocket)
   * @param {string} [options.authToken] the device token, for models hosted with device authentication
   * @param {'http'|'websocket'} [options.transport] overrides what the URL's scheme picks
   * @param {number} [options.retries]   extra attempts on network failures and 429/502/503/504 (default 5)
   * @param {number} [options.backoff]   seconds before the first retry, doubling (default 0.5); Retry-After wins
   * @param {number} [options.timeout]   seconds one request may take (default 60)
   * @param {string[]} [options.executionProviders] onnxruntime-web providers (default ['wasm'])
   */
  constructor({ url, authToken, transport, retries, backoff, timeout, executionProviders, fetch, sleep } = {}) {
    if (!url) throw new TypeError("new Client({url}) needs the Node's URL, e.g. http://localhost:5000");
    this.url = url;
    this.authToken = authToken;
    this.executionProviders = executionProviders ?? ['wasm'];
    this.transport = createTransport(url, { transport, retries, backoff, timeout, fetch, sleep });
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

  /** Close the WebSocket, if any (HTTP holds nothing open). */
  close() {
    this.transport.close();
  }
}
