// Compressed updates: the diff a device reports, encoded as its model's
// client_config.diff_encoding says (docs/protocol.md, "Compressed updates").
//
// - float32 (the default): every tensor as F32;
// - float16: every tensor as F16, each value rounded to nearest, ties to even (IEEE 754);
// - int8: every tensor NAME as I8 codes plus a float32 scalar NAME.__scale__:
//   s = fl32(max|x| / 127), q = clip(roundHalfEven(fl32(x / s)), -127, 127); s = 0 (or a
//   non-finite s) gives every q = 0. The Node decodes q * s.
//
// Each step is one float32 operation done in float64 and rounded with Math.fround: for a
// quotient of two float32 values that double rounding gives the correctly rounded float32
// result, so these bytes are the Python SDK's (fedgrid/diff_encoding.py) for the same diff.

import { writeSafetensors } from './safetensors.js';

export const DIFF_ENCODINGS = ['float32', 'float16', 'int8'];
export const SCALE_SUFFIX = '.__scale__';
const INT8_LEVELS = 127; // symmetric: -127..127, so 0 is exact and q and -q both exist

/** The binary16 bits of a float32 value's bits, rounded to nearest, ties to even. */
export function float32BitsToFloat16Bits(bits) {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0); // inf, NaN (quiet)
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // beyond 65520: infinity
  if (halfExponent >= 1) {
    let half = (halfExponent << 10) | (mantissa >>> 13);
    const dropped = mantissa & 0x1fff;
    // A carry out of the mantissa moves into the exponent, up to infinity: that is the right result.
    if (dropped > 0x1000 || (dropped === 0x1000 && (half & 1))) half += 1;
    return sign | half;
  }
  // A float16 subnormal (units of 2^-24), or zero. float32 subnormals are far below 2^-25.
  if (exponent === 0) return sign;
  const shift = 126 - exponent; // value = (1.mantissa << 23) >> shift, in units of 2^-24
  if (shift > 25) return sign; // below 2^-25: rounds to zero
  const significand = mantissa | 0x800000;
  let half = significand >>> shift;
  const dropped = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (dropped > halfway || (dropped === halfway && (half & 1))) half += 1;
  return sign | half;
}

/** A Float32Array as float16 bits (a Uint16Array, what a safetensors F16 tensor holds). */
export function toFloat16Bits(values) {
  const float32 = values instanceof Float32Array ? values : Float32Array.from(values);
  const bits = new Uint32Array(float32.buffer, float32.byteOffset, float32.length);
  const out = new Uint16Array(float32.length);
  for (let i = 0; i < bits.length; i += 1) out[i] = float32BitsToFloat16Bits(bits[i]);
  return out;
}

function roundHalfEven(value) {
  const floor = Math.floor(value);
  const fraction = value - floor; // exact: |value| is at most a few hundred
  if (fraction < 0.5) return floor;
  if (fraction > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** {codes: Int8Array, scale} of one tensor's values (see the rule at the top). */
export function int8Quantize(values) {
  const x = values instanceof Float32Array ? values : Float32Array.from(values);
  let largest = 0;
  let notANumber = false;
  for (let i = 0; i < x.length; i += 1) {
    const magnitude = Math.abs(x[i]);
    if (Number.isNaN(magnitude)) notANumber = true;
    else if (magnitude > largest) largest = magnitude;
  }
  const scale = notANumber ? NaN : Math.fround(largest / INT8_LEVELS);
  const codes = new Int8Array(x.length);
  // Nothing to scale (all zeros), or a non-finite diff: every code stays 0, the Node refuses the scale.
  if (scale === 0 || !Number.isFinite(scale)) return { codes, scale };
  for (let i = 0; i < x.length; i += 1) {
    const code = roundHalfEven(Math.fround(x[i] / scale));
    codes[i] = Math.max(-INT8_LEVELS, Math.min(INT8_LEVELS, code));
  }
  return { codes, scale };
}

function asTensor(value) {
  if (ArrayBuffer.isView(value)) return { shape: [value.length], data: value };
  return { shape: value.shape ?? [value.data.length], data: value.data };
}

/**
 * The safetensors bytes of a diff ({name: Float32Array | {data, shape}}) in `encoding`
 * ('float32' when undefined or null).
 * @returns {Uint8Array}
 */
export function encodeDiff(diff, encoding = 'float32') {
  const chosen = encoding ?? 'float32';
  if (!DIFF_ENCODINGS.includes(chosen)) {
    throw new TypeError(`the model asks for diff encoding ${JSON.stringify(chosen)}; this SDK writes ${DIFF_ENCODINGS.join(', ')}: update the fedgrid package`);
  }
  const out = {};
  for (const [name, value] of Object.entries(diff)) {
    const { shape, data } = asTensor(value);
    const float32 = data instanceof Float32Array ? data : Float32Array.from(data);
    if (chosen === 'float32') {
      out[name] = { dtype: 'F32', shape, data: float32 };
    } else if (chosen === 'float16') {
      out[name] = { dtype: 'F16', shape, data: toFloat16Bits(float32) };
    } else {
      const { codes, scale } = int8Quantize(float32);
      out[name] = { dtype: 'I8', shape, data: codes };
      out[`${name}${SCALE_SUFFIX}`] = { dtype: 'F32', shape: [], data: Float32Array.of(scale) };
    }
  }
  return writeSafetensors(out);
}
