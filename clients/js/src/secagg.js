// Secure aggregation (SecAgg+), the device's side: instead of sending its diff in the clear, a
// device in a cycle with `secure_aggregation` runs four rounds with the Node, which learns only
// the sum of the cycle's updates. Byte for byte the Python protocol core's
// (protocol/fedgrid_protocol/secagg/); docs/secure-aggregation.md specifies every byte.
// WebCrypto does the cryptography: X25519 (Node.js 20+, Chromium 133+), HKDF-SHA256, AES-GCM and
// AES-CTR; Shamir sharing over GF(2^521 - 1) uses BigInt.

import { NetworkUnreachable } from './errors.js';

// Looked up when used: the SDK loads where WebCrypto is missing (a page that is not a secure
// context); only a secure cycle needs it.
const subtle = () => globalThis.crypto.subtle;
const encoder = new TextEncoder();
const MASK_INFO = encoder.encode('fedgrid/secagg/v1/mask');
const SHARE_KEY_INFO = encoder.encode('fedgrid/secagg/v1/share-key');
const SHARE_AAD = encoder.encode('fedgrid/secagg/v1/share');
const PRIME = (1n << 521n) - 1n;
const SHARE_BYTES = 66;
const NONCE_BYTES = 12;
const ROUND_WAIT_SECONDS = 20;
const RECONNECT_SECONDS = 1; // between attempts once the transport's own retries gave up

// ----------------------------------------------------------------------------- encodings

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function fromBase64Url(text) {
  return fromBase64(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
}

const ENTRY_HEADER_BYTES = 12; // an entry's index (8 bytes) and value length (4), big-endian

/** advertise-keys' binary field: the c public key then the s public key (32 + 32 bytes). */
export function encodeKeys(cPublic, sPublic) {
  if (cPublic.length !== 32 || sPublic.length !== 32) throw new Error('public keys are 32 bytes each');
  return concat(cPublic, sPublic);
}

/**
 * share-keys' and unmask's binary field: a Map of device index -> bytes as entries by increasing
 * index, each the index (8 bytes big-endian), the value's length (4 bytes big-endian) and the
 * value (fedgrid_protocol.secagg.wire, byte for byte: plans/conformance/secagg_wire/).
 */
export function encodeEntries(map) {
  const indices = [...map.keys()].sort((a, b) => a - b);
  const out = new Uint8Array(indices.reduce((n, i) => n + ENTRY_HEADER_BYTES + map.get(i).length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const index of indices) {
    if (!Number.isInteger(index) || index < 1 || index > 99999) throw new Error(`device index ${index} is out of range`);
    const value = map.get(index);
    view.setBigUint64(offset, BigInt(index));
    view.setUint32(offset + 8, value.length);
    out.set(value, offset + ENTRY_HEADER_BYTES);
    offset += ENTRY_HEADER_BYTES + value.length;
  }
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}

function uint32be(...values) {
  const out = new Uint8Array(4 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(4 * i, v));
  return out;
}

function bigFromBytes(bytes) {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function bytesFromBig(value, length) {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i -= 1) { out[i] = Number(value & 0xffn); value >>= 8n; }
  return out;
}

// ----------------------------------------------------------------------------- primitives

/** An X25519 key pair: `publicRaw` (32 bytes) and `privateRaw()` (the 32 bytes Shamir shares). */
async function keyPair() {
  const pair = await subtle().generateKey({ name: 'X25519' }, true, ['deriveBits']);
  return {
    pair,
    publicRaw: new Uint8Array(await subtle().exportKey('raw', pair.publicKey)),
    async privateRaw() { return fromBase64Url((await subtle().exportKey('jwk', pair.privateKey)).d); },
  };
}

/** HKDF-SHA256 (no salt, 32 bytes) over X25519(own, peer): the same key at both ends. */
async function agree(own, peerPublic, info) {
  const peer = await subtle().importKey('raw', peerPublic, { name: 'X25519' }, false, []);
  const shared = await subtle().deriveBits({ name: 'X25519', public: peer }, own.pair.privateKey, 256);
  const base = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle().deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, base, 256));
}

async function seal(key, sender, recipient, plaintext) {
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const aes = await subtle().importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const sealed = await subtle().encrypt({ name: 'AES-GCM', iv: nonce, additionalData: concat(SHARE_AAD, uint32be(sender, recipient)) }, aes, plaintext);
  return concat(nonce, new Uint8Array(sealed));
}

async function openBox(key, sender, recipient, box) {
  const aes = await subtle().importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  try {
    return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: box.subarray(0, NONCE_BYTES), additionalData: concat(SHARE_AAD, uint32be(sender, recipient)) }, aes, box.subarray(NONCE_BYTES)));
  } catch {
    throw new Error(`the share box from ${sender} to ${recipient} does not open`);
  }
}

/** The mask PRG: AES-256-CTR keyed by `seed` from a zero counter block, as little-endian uint32 words. */
export async function mask(seed, length, modulus) {
  const aes = await subtle().importKey('raw', seed, 'AES-CTR', false, ['encrypt']);
  const stream = await subtle().encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 128 }, aes, new Uint8Array(4 * length));
  const view = new DataView(stream);
  const words = new Uint32Array(length);
  const low = modulus === 2 ** 32 ? 0xffffffff : modulus - 1;
  for (let i = 0; i < length; i += 1) words[i] = view.getUint32(4 * i, true) & low;
  return words;
}

function randomFieldElement() {
  for (;;) {
    const bytes = globalThis.crypto.getRandomValues(new Uint8Array(SHARE_BYTES));
    bytes[0] &= 0x01; // 521 bits
    const value = bigFromBytes(bytes);
    if (value < PRIME) return value;
  }
}

/** Shamir shares of a 32-byte secret for the holders' indices (>= 1); any `threshold` rebuild it. */
export function split(secret, holders, threshold) {
  const coefficients = [bigFromBytes(secret)];
  for (let i = 1; i < threshold; i += 1) coefficients.push(randomFieldElement());
  const shares = new Map();
  for (const holder of holders) {
    const x = BigInt(holder);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i -= 1) y = (y * x + coefficients[i]) % PRIME;
    shares.set(holder, bytesFromBig(y, SHARE_BYTES));
  }
  return shares;
}

/** Clip to [-c, c], scale to [0, q - 1], round stochastically (unbiased). */
export function quantize(values, { clipping_range: c, quantization_range: q }) {
  const step = (2 * c) / (q - 1);
  const out = new Uint32Array(values.length);
  const random = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i += 16384) globalThis.crypto.getRandomValues(random.subarray(i, i + 16384));
  for (let i = 0; i < values.length; i += 1) {
    const scaled = (Math.min(c, Math.max(-c, values[i])) + c) / step;
    const floor = Math.floor(scaled);
    out[i] = Math.min(q - 1, floor + (random[i] / 4294967296 < scaled - floor ? 1 : 0));
  }
  return out;
}

/** The cohort-dependent counts (k neighbours, t threshold), as the Python core derives them. */
export function degreeAndThreshold(params, cohort) {
  const others = cohort - 1;
  const shares = params.num_shares;
  let wanted;
  if (shares === null || shares === undefined) wanted = 2 * Math.ceil(Math.log2(cohort));
  else if (shares <= 1) wanted = Math.ceil(shares * others);
  else wanted = Math.trunc(shares);
  let k = Math.max(1, Math.min(others, wanted));
  if (k < others && k % 2) k += 1;
  const fraction = params.reconstruction_threshold;
  const t = Math.min(k, Math.max(Math.floor(k / 2) + 1, fraction <= 1 ? Math.ceil(fraction * k) : Math.trunc(fraction)));
  return { k, t };
}

// ----------------------------------------------------------------------------- the device

/** One device's side of the rounds, in order (the Python core's SecAggDevice). */
export class SecAggDevice {
  constructor(params) {
    this.params = params;
    this.held = new Map(); // sender -> [its b share, its s-key share]
  }

  async advertiseKeys() {
    this.c = await keyPair();
    this.s = await keyPair();
    this.b = globalThis.crypto.getRandomValues(new Uint8Array(32));
    return [this.c.publicRaw, this.s.publicRaw];
  }

  /**
   * `roster`: Map index -> [c public, s public], of every device that advertised keys, or only of
   * this device and its neighbours (the keys it uses) with `advertised`, how many advertised (k
   * and t follow from that count).
   */
  async shareKeys(index, roster, neighbours, advertised = roster.size) {
    if (advertised < roster.size) throw new Error('the roster holds more devices than advertised keys');
    const cohort = advertised;
    const { k, t } = degreeAndThreshold(this.params, cohort);
    const own = roster.get(index);
    const sameKeys = own && own[0].every((v, i) => v === this.c.publicRaw[i]) && own[1].every((v, i) => v === this.s.publicRaw[i]);
    if (!sameKeys) throw new Error('the roster does not carry this device\'s keys at its index');
    if (neighbours.length !== k || new Set(neighbours).size !== k || neighbours.includes(index) || !neighbours.every((v) => roster.has(v))) {
      throw new Error('the neighbour list does not fit the roster and parameters');
    }
    this.index = index;
    this.roster = roster;
    this.neighbours = [...neighbours].sort((a, b) => a - b);
    this.threshold = t;
    const bShares = split(this.b, this.neighbours, t);
    const sShares = split(await this.s.privateRaw(), this.neighbours, t);
    const boxes = new Map();
    for (const v of this.neighbours) {
      const key = await agree(this.c, roster.get(v)[0], SHARE_KEY_INFO);
      boxes.set(v, await seal(key, index, v, concat(uint32be(index, v), bShares.get(v), sShares.get(v))));
    }
    return boxes;
  }

  async maskedInput(update, boxes) {
    for (const [v, box] of boxes) {
      if (!this.neighbours.includes(v)) throw new Error('a share box comes from a device that is not a neighbour');
      const plaintext = await openBox(await agree(this.c, this.roster.get(v)[0], SHARE_KEY_INFO), v, this.index, box);
      const header = new DataView(plaintext.buffer, plaintext.byteOffset, 8);
      if (plaintext.length !== 8 + 2 * SHARE_BYTES || header.getUint32(0) !== v || header.getUint32(4) !== this.index) {
        throw new Error(`the share box from ${v} is malformed`);
      }
      this.held.set(v, [plaintext.slice(8, 8 + SHARE_BYTES), plaintext.slice(8 + SHARE_BYTES)]);
    }
    if (this.held.size < this.threshold) throw new Error('too few neighbours shared keys for a secure sum');
    const { modulus } = this.params;
    const masked = quantize(update, this.params);
    const own = await mask(this.b, update.length, modulus);
    for (let i = 0; i < masked.length; i += 1) masked[i] += own[i]; // Uint32Array wraps mod 2^32
    for (const v of this.held.keys()) {
      const pairwise = await mask(await agree(this.s, this.roster.get(v)[1], MASK_INFO), update.length, modulus);
      if (this.index < v) for (let i = 0; i < masked.length; i += 1) masked[i] += pairwise[i];
      else for (let i = 0; i < masked.length; i += 1) masked[i] -= pairwise[i];
    }
    if (modulus !== 2 ** 32) for (let i = 0; i < masked.length; i += 1) masked[i] &= modulus - 1;
    const out = new Uint8Array(4 * masked.length);
    const view = new DataView(out.buffer);
    for (let i = 0; i < masked.length; i += 1) view.setUint32(4 * i, masked[i], true);
    return out;
  }

  unmask(survivors, dropped) {
    const alive = new Set(survivors);
    const gone = new Set(dropped);
    if ([...alive].some((v) => gone.has(v)) || !alive.has(this.index)) throw new Error('a device cannot have both survived and dropped');
    if (alive.size < this.threshold) throw new Error('too few survivors: their sum would say too much about each one');
    const shares = new Map();
    for (const [v, [bShare, sShare]] of this.held) {
      if (!alive.has(v) && !gone.has(v)) throw new Error('a neighbour that shared keys is neither a survivor nor dropped');
      shares.set(v, alive.has(v) ? bShare : sShare); // never both
    }
    return shares;
  }
}

/** The update as one vector: the diff's tensors by name, each row-major (the wire order). */
export function flatten(diff) {
  const names = Object.keys(diff).sort();
  const total = names.reduce((n, name) => n + diff[name].data.length, 0);
  const out = new Float64Array(total);
  let offset = 0;
  for (const name of names) { out.set(diff[name].data, offset); offset += diff[name].data.length; }
  return out;
}

/**
 * DP-FedAvg with `clip_at: device`: `values` (the flat update) scaled by min(1, clipNorm / its L2
 * norm) before quantisation and masking, as the Python core's clip_to_norm (the norm in float64;
 * only the summation order differs). `clipNorm` null or undefined: no clipping.
 */
export function clipToNorm(values, clipNorm) {
  if (clipNorm === null || clipNorm === undefined) return values;
  let squares = 0;
  for (let i = 0; i < values.length; i += 1) squares += values[i] * values[i];
  const norm = Math.sqrt(squares);
  if (!Number.isFinite(norm)) throw new Error('the update is not finite: it cannot be clipped for secure aggregation');
  if (norm <= clipNorm) return values;
  const scale = clipNorm / norm;
  return Float64Array.from(values, (v) => v * scale);
}

/** [event, fields, options] of this device's message for the round `view` describes: its bytes
 *  are the event's one binary field. */
async function roundMessage(device, view, ids, update) {
  if (view.round === 'advertise-keys') {
    const [c, s] = await device.advertiseKeys();
    return ['secagg-advertise-keys', ids, { blobs: { public_keys: encodeKeys(c, s) } }];
  }
  if (view.round === 'share-keys') {
    const roster = new Map(Object.entries(view.roster).map(([i, [c, s]]) => [Number(i), [fromBase64(c), fromBase64(s)]]));
    const boxes = await device.shareKeys(view.index, roster, view.neighbours, view.advertised ?? roster.size);
    return ['secagg-share-keys', ids, { blobs: { boxes: encodeEntries(boxes) } }];
  }
  if (view.round === 'masked-input') {
    const boxes = new Map(Object.entries(view.boxes).map(([v, box]) => [Number(v), fromBase64(box)]));
    return ['secagg-masked-input', ids, { blobs: { masked_input: await device.maskedInput(update, boxes) } }];
  }
  if (view.round === 'unmask') {
    return ['secagg-unmask', ids, { blobs: { shares: encodeEntries(device.unmask(view.survivors, view.dropped)) } }];
  }
  throw new Error(`the Node named an unknown secure aggregation round: ${view.round}`);
}

/**
 * Run the rounds for `assignment` until this device has sent its unmask shares (its part is then
 * done). Rejects with AssignmentExpired when the device missed a round or the rounds aborted.
 * The Node keeps the rounds across a restart: until the assignment's deadline, a Node that cannot
 * be reached is asked again, with the very message the device had made (its secrets allow one
 * message per round; the Node answers a repeated one as it did the first time).
 */
export async function reportSecurely(transport, assignment, diff) {
  const ids = { worker_id: assignment.workerId, request_key: assignment.requestKey };
  const device = new SecAggDevice(assignment.secureAggregation);
  // The Node only noises the sum: the clip that bounds this device's influence happens here.
  const update = clipToNorm(flatten(diff), assignment.secureAggregation.clip_norm);
  const wait = Math.min(ROUND_WAIT_SECONDS, (transport.timeout ?? 60) / 2);
  const giveUp = Date.now() + (assignment.timeout ?? 0) * 1000;
  const call = async (event, fields, options) => {
    for (;;) {
      try {
        return await transport.call(event, fields, options);
      } catch (error) {
        if (!(error instanceof NetworkUnreachable) || Date.now() + RECONNECT_SECONDS * 1000 >= giveUp) throw error;
        await new Promise((resolve) => { setTimeout(resolve, RECONNECT_SECONDS * 1000); });
      }
    }
  };
  const messages = new Map(); // round -> its message, made once
  for (;;) {
    // Of the roster, only the keys this device uses: its neighbours' (and its own).
    const view = await call('secagg-round', { ...ids, wait, roster: 'neighbours' });
    if (view.round === 'cohort' || view.round === 'done' || view.sent) continue;
    if (!messages.has(view.round)) messages.set(view.round, await roundMessage(device, view, ids, update));
    await call(...messages.get(view.round));
    if (view.round === 'unmask') return { status: 'success', cycle: assignment.cycle, secure: true };
  }
}
