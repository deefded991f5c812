// Safetensors codec: checkpoints, diffs, plan files and binary WebSocket frames all use it.
//
// Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian header length, a
// UTF-8 JSON header mapping each tensor name to {dtype, shape, data_offsets} (offsets relative to
// the end of the header) plus an optional "__metadata__" string map, then raw little-endian bytes.
// Parsing is strict (offsets inside the buffer, tensors tiling the data section) like the Python
// codec in plans/fedgrid_plans/tensors.py, and returns typed-array views without copying when
// the buffer alignment allows it.

import { FormatError } from './errors.js';

/** Safetensors dtype name -> typed-array constructor. */
const ARRAY_TYPES = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array, // the binary16 bits: JavaScript has no float16 array before Float16Array
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/** Plan-manifest dtype names (ONNX Runtime's) <-> safetensors names. */
export const MANIFEST_DTYPES = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** The safetensors name of a typed array's element type. */
export function dtypeOf(array) {
  if (array instanceof Float32Array) return 'F32';
  if (array instanceof Float64Array) return 'F64';
  if (array instanceof BigInt64Array) return 'I64';
  if (array instanceof Int32Array) return 'I32';
  if (array instanceof Int16Array) return 'I16';
  if (array instanceof Int8Array) return 'I8';
  if (array instanceof Uint8Array) return 'U8';
  throw new FormatError(`cannot store a ${array?.constructor?.name ?? typeof array} in a tensor file; use a typed array`);
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new FormatError('tensor file must be an ArrayBuffer or a typed array');
}

/**
 * Parse safetensors bytes.
 * @returns {{tensors: Record<string, {dtype: string, shape: number[], data: ArrayBufferView}>, metadata: Record<string, string>}}
 */
export function parseSafetensors(input) {
  const bytes = toBytes(input);
  if (bytes.byteLength < 8) throw new FormatError('tensor file is shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.byteLength) {
    throw new FormatError('tensor file header length points past the end of the data');
  }
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new FormatError(`tensor file header is not JSON: ${error.message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new FormatError('tensor file header is not a JSON object');
  }
  const metadata = header.__metadata__ ?? {};
  delete header.__metadata__;
  if (typeof metadata !== 'object' || Object.values(metadata).some((v) => typeof v !== 'string')) {
    throw new FormatError('tensor file __metadata__ must map strings to strings');
  }
  const start = 8 + headerLength;
  const dataLength = bytes.byteLength - start;
  const spans = [];
  const tensors = {};
  for (const [name, entry] of Object.entries(header)) {
    const ArrayType = ARRAY_TYPES[entry?.dtype];
    if (!ArrayType) throw new FormatError(`tensor '${name}': unsupported dtype ${JSON.stringify(entry?.dtype)}`);
    const { shape, data_offsets: offsets } = entry;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new FormatError(`tensor '${name}': shape must be a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(Number.isInteger)
        || !(offsets[0] >= 0 && offsets[0] <= offsets[1] && offsets[1] <= dataLength)) {
      throw new FormatError(`tensor '${name}': data_offsets out of bounds`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * ArrayType.BYTES_PER_ELEMENT) {
      throw new FormatError(`tensor '${name}': byte length does not match dtype and shape`);
    }
    spans.push(offsets);
    const absolute = bytes.byteOffset + start + offsets[0];
    let data;
    if (absolute % ArrayType.BYTES_PER_ELEMENT === 0) {
      data = new ArrayType(bytes.buffer, absolute, count);
    } else {
      // Unaligned (the header length is not a multiple of 8): copy, since typed arrays need alignment.
      data = new ArrayType(bytes.slice(start + offsets[0], start + offsets[1]).buffer);
    }
    tensors[name] = { dtype: entry.dtype, shape: [...shape], data };
  }
  spans.sort((a, b) => a[0] - b[0]);
  let position = 0;
  for (const [begin, end] of spans) {
    if (begin !== position) throw new FormatError('tensor data sections overlap or leave gaps');
    position = end;
  }
  if (position !== dataLength) throw new FormatError('tensor file has trailing bytes after the last tensor');
  return { tensors, metadata };
}

/**
 * Write named tensors (in insertion order) and optional string metadata as safetensors bytes.
 * Each value is a typed array (1-D) or {data, shape[, dtype]}; an F16 tensor is
 * {dtype: 'F16', shape, data: Uint16Array of binary16 bits} (diff_encoding.js writes them).
 * @returns {Uint8Array}
 */
export function writeSafetensors(tensors, metadata = undefined) {
  const header = {};
  if (metadata && Object.keys(metadata).length) {
    header.__metadata__ = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, String(v)]));
  }
  const chunks = [];
  let offset = 0;
  for (const [name, value] of Object.entries(tensors)) {
    const data = ArrayBuffer.isView(value) ? value : value.data;
    const shape = ArrayBuffer.isView(value) ? [data.length] : value.shape ?? [data.length];
    const dtype = (!ArrayBuffer.isView(value) && value.dtype) || dtypeOf(data);
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new FormatError(`tensor '${name}': shape ${JSON.stringify(shape)} does not hold ${data.length} values`);
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + raw.byteLength] };
    chunks.push(raw);
    offset += raw.byteLength;
  }
  let headerText = JSON.stringify(header);
  let headerBytes = new TextEncoder().encode(headerText);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does;
  // that also lets parseSafetensors return views instead of copies.
  const padding = (8 - (headerBytes.byteLength % 8)) % 8;
  if (padding) headerBytes = new TextEncoder().encode(headerText + ' '.repeat(padding));
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.byteLength;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.byteLength;
  }
  return out;
}
