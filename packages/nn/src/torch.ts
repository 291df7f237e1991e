import fs from 'node:fs';
import { InputError } from '@metad2a/core';
import type { NamedArray } from './module.js';
import { PyGlobal, PyObject, typeName, unpickle } from './pickle.js';
import { ZipReader } from './zip.js';

/**
 * Import of PyTorch checkpoints in the zip format torch.save has written since 1.6:
 * `<prefix>/data.pkl` (a protocol-2 pickle whose tensors point at storages through persistent ids),
 * `<prefix>/data/<key>` (raw little-endian storage bytes) and `<prefix>/version`.
 */

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

const STORAGE_TYPES: Record<string, { dtype: TorchDtype; bytes: number }> = {
  FloatStorage: { dtype: 'float32', bytes: 4 },
  DoubleStorage: { dtype: 'float64', bytes: 8 },
  HalfStorage: { dtype: 'float16', bytes: 2 },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2 },
  LongStorage: { dtype: 'int64', bytes: 8 },
  IntStorage: { dtype: 'int32', bytes: 4 },
  ShortStorage: { dtype: 'int16', bytes: 2 },
  CharStorage: { dtype: 'int8', bytes: 1 },
  ByteStorage: { dtype: 'uint8', bytes: 1 },
  BoolStorage: { dtype: 'bool', bytes: 1 },
  // torch >= 2 may reference raw byte storages.
  UntypedStorage: { dtype: 'uint8', bytes: 1 },
};

/** A storage referenced by the pickle; its bytes are read from the archive on first use. */
export class TorchStorage {
  private values: ArrayLike<number> | null = null;
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly elementBytes: number,
    readonly numel: number,
    readonly location: string,
    private readonly load: () => Buffer,
  ) {}

  /** Element values decoded to JS numbers (int64 through Number; exact below 2^53). */
  data(): ArrayLike<number> {
    if (!this.values) this.values = decode(this.load(), this.dtype);
    return this.values;
  }
}

/** A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view into a storage. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}

  get dtype(): TorchDtype {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The values in row-major order as float32, gathering through the strides (views need not be contiguous). */
  toFloat32(where: { file: string; name: string }): Float32Array {
    const n = this.numel;
    const src = this.storage.data();
    const out = new Float32Array(n);
    if (n === 0) return out;
    // The furthest element the view touches must lie inside the storage.
    let last = this.storageOffset;
    for (let d = 0; d < this.shape.length; d++) last += (this.shape[d] - 1) * this.stride[d];
    if (this.storageOffset < 0 || last >= src.length || this.stride.some((s) => s < 0)) {
      throw new InputError(
        { file: where.file, field: where.name },
        `tensor view (offset ${this.storageOffset}, shape [${this.shape}], stride [${this.stride}]) reads outside its storage '${this.storage.key}' of ${src.length} elements`,
        'the checkpoint is corrupted',
      );
    }
    const contiguous = this.stride.every((s, d) => this.shape[d] === 1 || s === this.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    if (contiguous) {
      for (let i = 0; i < n; i++) out[i] = src[this.storageOffset + i];
      return out;
    }
    const rank = this.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let off = this.storageOffset;
    for (let i = 0; i < n; i++) {
      out[i] = src[off];
      // odometer increment over the multi-index, updating the storage offset incrementally
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        off += this.stride[d];
        if (idx[d] < this.shape[d]) break;
        off -= idx[d] * this.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }
}

function decode(b: Buffer, dtype: TorchDtype): ArrayLike<number> {
  // Copy into a fresh ArrayBuffer so typed views are aligned whatever the member's offset in the file.
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(ab);
    case 'float64':
      return new Float64Array(ab);
    case 'int32':
      return new Int32Array(ab);
    case 'int16':
      return new Int16Array(ab);
    case 'int8':
      return new Int8Array(ab);
    case 'uint8':
    case 'bool':
      return new Uint8Array(ab);
    case 'int64':
      return Float64Array.from(new BigInt64Array(ab), (v) => Number(v));
    case 'bfloat16': {
      const u16 = new Uint16Array(ab);
      const u32 = new Uint32Array(u16.length);
      for (let i = 0; i < u16.length; i++) u32[i] = u16[i] << 16;
      return new Float32Array(u32.buffer);
    }
    case 'float16': {
      const u16 = new Uint16Array(ab);
      const out = new Float32Array(u16.length);
      for (let i = 0; i < u16.length; i++) out[i] = halfToFloat(u16[i]);
      return out;
    }
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** The unpickled content of a `.pt` file, with tensors as TorchTensor. */
export interface TorchFile {
  file: string;
  /** The archive's top folder (`archive` for torch.save, the file stem for older versions). */
  prefix: string;
  /** Content of `<prefix>/version`, if present. */
  version: number | null;
  root: unknown;
}

/** Read a PyTorch zip checkpoint and unpickle it (no code runs: only known torch globals are rebuilt). */
export function readTorchFile(file: string): TorchFile {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new InputError({ file }, `cannot read PyTorch checkpoint: ${(e as Error).message}`);
  }
  const zip = new ZipReader(buf, file);
  const pkls = zip.names().filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (pkls.length === 0) throw new InputError({ file }, 'no data.pkl member in the zip archive', 'not a torch.save checkpoint');
  pkls.sort((a, b) => a.length - b.length);
  const pklName = pkls[0];
  const prefix = pklName.slice(0, -'data.pkl'.length).replace(/\/$/, '');
  const at = (m: string) => (prefix ? `${prefix}/${m}` : m);
  let version: number | null = null;
  if (zip.has(at('version'))) {
    const text = zip.read(at('version')).toString('utf8').trim();
    version = Number(text);
    if (!Number.isInteger(version)) throw new InputError({ file, field: at('version') }, `bad format version '${text.slice(0, 40)}'`);
  }
  if (zip.has(at('byteorder'))) {
    const order = zip.read(at('byteorder')).toString('utf8').trim();
    if (order !== 'little') throw new InputError({ file, field: at('byteorder') }, `storages are ${order}-endian; only little-endian is supported`);
  }
  const storages = new Map<string, TorchStorage>();
  const persistentLoad = (pid: unknown): TorchStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new Error(`unexpected persistent id ${describe(pid)}`);
    const [, type, rawKey, location, numel] = pid as [string, unknown, unknown, unknown, unknown];
    const key = String(rawKey);
    const cached = storages.get(key);
    if (cached) return cached;
    const typeName = type instanceof PyGlobal ? type.name : String(type);
    const info = STORAGE_TYPES[typeName];
    if (!info) throw new Error(`unsupported storage type ${type instanceof PyGlobal ? type.fullName : typeName}`);
    if (typeof numel !== 'number' || numel < 0) throw new Error(`storage '${key}' has a bad element count ${describe(numel)}`);
    const member = at(`data/${key}`);
    const st = new TorchStorage(key, info.dtype, info.bytes, numel, String(location), () => {
      if (!zip.has(member)) throw new InputError({ file, field: member }, `storage '${key}' referenced by ${pklName} is missing from the archive`, 'the checkpoint is incomplete');
      const bytes = zip.read(member);
      if (bytes.length < numel * info.bytes) {
        throw new InputError({ file, field: member }, `storage '${key}' has ${bytes.length} bytes, expected ${numel} x ${info.bytes} = ${numel * info.bytes}`, 'the checkpoint is truncated or corrupted');
      }
      return bytes.length === numel * info.bytes ? bytes : bytes.subarray(0, numel * info.bytes);
    });
    storages.set(key, st);
    return st;
  };
  const rebuildTensor = (args: unknown[]): TorchTensor => {
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof TorchStorage)) throw new Error(`_rebuild_tensor_v2: first argument is a ${typeName(storage)}, not a storage`);
    if (typeof offset !== 'number' || !isIntArray(size) || !isIntArray(stride) || size.length !== stride.length) {
      throw new Error(`_rebuild_tensor_v2: bad offset/size/stride ${describe(offset)} ${describe(size)} ${describe(stride)}`);
    }
    return new TorchTensor(storage, offset, size as number[], stride as number[], requiresGrad === true);
  };
  const root = unpickle(zip.read(pklName), {
    file: `${file} (${pklName})`,
    persistentLoad,
    globals: {
      'torch._utils._rebuild_tensor_v2': rebuildTensor,
      'torch._utils._rebuild_tensor': rebuildTensor,
      // nn.Parameter(data, requires_grad, backward_hooks): the tensor itself.
      'torch._utils._rebuild_parameter': (args) => args[0],
      'torch._utils._rebuild_parameter_with_state': (args) => args[0],
      // _rebuild_from_type_v2(func, new_type, args, state): a Tensor subclass; rebuild the plain tensor.
      'torch._tensor._rebuild_from_type_v2': (args) => {
        const fn = args[0];
        const inner = Array.isArray(args[2]) ? args[2] : [];
        return fn instanceof PyGlobal && (fn.name === '_rebuild_tensor_v2' || fn.name === '_rebuild_parameter') ? (fn.name === '_rebuild_parameter' ? inner[0] : rebuildTensor(inner)) : new PyObject(String(fn), inner);
      },
    },
  });
  return { file, prefix, version, root };
}

/** A state dict imported from PyTorch: a StateDict (Map) plus what was next to the tensors. */
export class TorchStateDict extends Map<string, NamedArray & { dtype: TorchDtype }> {
  /** Entries that are not tensors (epoch numbers, optimizer state, config), with dotted names. */
  nonTensors: Array<{ name: string; type: string; value: unknown }> = [];
  /** The key path under which the state dict was found in the checkpoint ([] = top level). */
  path: string[] = [];
  file = '';
}

const PREFERRED_KEYS = ['state_dict', 'model_state_dict', 'model', 'generator', 'net', 'network', 'module', 'params', 'weights'];

/**
 * Read a `.pt` file and return its tensors by PyTorch name as float32 arrays (row-major, views
 * gathered). The state dict may be the top level or nested (`{'model': ..., 'epoch': ...}`): it is
 * found under `options.key` (dotted path), else under a usual key (state_dict, model, ...), else as
 * the only dict that holds tensors.
 */
export function importTorchStateDict(file: string, options: { key?: string } = {}): TorchStateDict {
  const tf = readTorchFile(file);
  const out = new TorchStateDict();
  out.file = file;
  let node = tf.root;
  const path: string[] = [];
  if (node instanceof PyObject) {
    throw new InputError({ file }, `the checkpoint holds a pickled ${node.cls} object, not a state dict`, 'save model.state_dict() instead of the module');
  }
  if (!(node instanceof Map)) throw new InputError({ file }, `the checkpoint holds a ${typeName(node)}, not a dict of tensors`);
  const siblings: Array<[string, unknown]> = [];
  const descend = (key: string) => {
    const m = node as Map<unknown, unknown>;
    for (const [k, v] of m) if (k !== key) siblings.push([[...path, String(k)].join('.'), v]);
    node = m.get(key);
    path.push(key);
  };
  if (options.key !== undefined) {
    for (const part of options.key.split('.').filter(Boolean)) {
      if (!(node instanceof Map) || !node.has(part)) {
        const have = node instanceof Map ? [...node.keys()].map(String).join(', ') : typeName(node);
        throw new InputError({ file, field: [...path, part].join('.') }, `no such entry in the checkpoint (available: ${have})`);
      }
      descend(part);
    }
    if (!(node instanceof Map)) throw new InputError({ file, field: options.key }, `entry is a ${typeName(node)}, not a dict of tensors`);
  } else {
    // Walk down through wrappers like {'model': {...}, 'epoch': 400} until a dict with tensors at its top level.
    while (node instanceof Map && ![...node.values()].some((v) => v instanceof TorchTensor)) {
      const m: Map<unknown, unknown> = node;
      const candidates = [...m.entries()].filter(([, v]) => v instanceof Map && containsTensor(v)).map(([k]) => String(k));
      if (candidates.length === 0) throw new InputError({ file, field: path.join('.') || undefined }, `no tensors found (keys: ${[...m.keys()].map(String).slice(0, 20).join(', ')})`);
      const pick = PREFERRED_KEYS.find((k) => candidates.includes(k)) ?? (candidates.length === 1 ? candidates[0] : null);
      if (pick === null) {
        throw new InputError({ file, field: path.join('.') || undefined }, `several entries hold tensors: ${candidates.join(', ')}`, 'choose one with the key option');
      }
      descend(pick);
    }
  }
  out.path = path;
  for (const [name, v] of siblings) out.nonTensors.push({ name, type: typeName(v), value: v });
  const walk = (m: Map<unknown, unknown>, prefix: string) => {
    for (const [k, v] of m) {
      const name = prefix + String(k);
      if (v instanceof TorchTensor) out.set(name, { shape: [...v.shape], data: v.toFloat32({ file, name }), dtype: v.dtype });
      else if (v instanceof Map && containsTensor(v)) walk(v, `${name}.`);
      else out.nonTensors.push({ name, type: typeName(v), value: v });
    }
  };
  walk(node as Map<unknown, unknown>, '');
  return out;
}

function containsTensor(v: unknown, depth = 0): boolean {
  if (v instanceof TorchTensor) return true;
  if (depth > 4 || !(v instanceof Map)) return false;
  for (const x of v.values()) if (containsTensor(x, depth + 1)) return true;
  return false;
}

function isIntArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

function describe(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x instanceof PyGlobal ? x.fullName : x))?.slice(0, 80) ?? String(v);
  } catch {
    return typeName(v);
  }
}

