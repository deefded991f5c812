// A minimal event emitter that behaves the same in browsers and Node.js (no dependency).

export class Emitter {
  constructor() { this.listeners = new Map(); }

  /** Call `handler` on every `event`; returns this, so calls chain. */
  on(event, handler) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(handler);
    return this;
  }

  off(event, handler) {
    this.listeners.get(event)?.delete(handler);
    return this;
  }

  /** Call `handler` on the next `event` only. */
  once(event, handler) {
    const wrapper = (...args) => { this.off(event, wrapper); return handler(...args); };
    return this.on(event, wrapper);
  }

  listenerCount(event) { return this.listeners.get(event)?.size ?? 0; }

  /** Call the handlers in order and wait for the async ones. */
  async emit(event, payload) {
    for (const handler of [...(this.listeners.get(event) ?? [])]) await handler(payload);
  }
}
