import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError, writeChunksAtomic, writeFileAtomic } from '@metad2a/core';
import { Module, type NamedArray, type StateDict } from './module.js';

/**
 * Our checkpoint format: `<name>.json` (manifest: format, version, tensor names, dtypes, shapes,
 * byte offsets, the blob's size and SHA-256, free-form metadata) plus one little-endian blob
 * `<name>.<sha256 prefix>.bin` next to it. The blob is content-addressed, so writing it never
 * touches the blob an existing manifest points at; the manifest is then replaced atomically. A crash
 * at any point leaves either the old or the new checkpoint, complete.
 */
export const CHECKPOINT_FORMAT = 'metad2a-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointTensor {
  name: string;
  dtype: 'float32';
  shape: number[];
  /** Byte offset in the blob. */
  offset: number;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  blob: string;
  blobBytes: number;
  sha256: string;
  tensors: CheckpointTensor[];
  /** Caller's JSON metadata: model config, epoch, optimizer state names, ... */
  meta: CheckpointMeta;
}

/** Metadata conventions (all optional, any other JSON is kept as is). */
export interface CheckpointMeta {
  /** The model's constructor options, enough to rebuild it before loading. */
  config?: unknown;
  epoch?: number;
  /** Names of the optimizer-state tensors stored beside the parameters (see optimizerStateDict). */
  optimizerState?: string[];
  [key: string]: unknown;
}

function toState(source: Module | StateDict): StateDict {
  return source instanceof Module ? source.stateDict() : source;
}

/**
 * Save a module's parameters (or any StateDict, e.g. parameters plus optimizer slots) with JSON
 * metadata. `file` is the manifest path (conventionally ending in .json). Returns the manifest.
 */
export function saveCheckpoint(file: string, source: Module | StateDict, meta: CheckpointMeta = {}): CheckpointManifest {
  const state = toState(source);
  const tensors: CheckpointTensor[] = [];
  const chunks: Uint8Array[] = [];
  const hash = crypto.createHash('sha256');
  let offset = 0;
  for (const [name, { shape, data }] of state) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`saveCheckpoint ${file}: tensor '${name}' has shape [${shape}] but ${data.length} values`);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    tensors.push({ name, dtype: 'float32', shape: [...shape], offset });
    chunks.push(bytes);
    hash.update(bytes);
    offset += bytes.byteLength;
  }
  const sha256 = hash.digest('hex');
  const metaJson = JSON.parse(JSON.stringify(meta ?? {})) as CheckpointMeta;
  const stem = path.basename(file).replace(/\.json$/i, '');
  const blob = `${stem}.${sha256.slice(0, 16)}.bin`;
  const dir = path.dirname(file);
  const previous = previousBlob(file);
  writeChunksAtomic(path.join(dir, blob), chunks);
  const manifest: CheckpointManifest = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, blob, blobBytes: offset, sha256, tensors, meta: metaJson };
  writeFileAtomic(file, `${JSON.stringify(manifest, null, 1)}\n`);
  // The old blob is garbage only once the new manifest is in place.
  if (previous && previous !== blob) fs.rmSync(path.join(dir, previous), { force: true });
  return manifest;
}

function previousBlob(file: string): string | null {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { format?: unknown; blob?: unknown };
    // Only ever delete a plain file name next to the manifest that our own format wrote.
    if (m.format === CHECKPOINT_FORMAT && typeof m.blob === 'string' && path.basename(m.blob) === m.blob && m.blob.endsWith('.bin')) return m.blob;
  } catch {
    /* no previous checkpoint, or unreadable: nothing to clean up */
  }
  return null;
}

/** Read a checkpoint written by saveCheckpoint; every inconsistency is an InputError naming the file. */
export function loadCheckpoint(file: string): { state: StateDict; meta: CheckpointMeta; manifest: CheckpointManifest } {
  const fail = (problem: string, field?: string, hint?: string): never => {
    throw new InputError({ file, field }, problem, hint);
  };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return fail(`cannot read checkpoint manifest: ${(e as Error).message}`);
  }
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    return fail(`manifest is not valid JSON (${(e as Error).message})`, undefined, 'the file is truncated or corrupted');
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return fail('manifest is not a JSON object');
  if (m.format !== CHECKPOINT_FORMAT) return fail(`not a ${CHECKPOINT_FORMAT} manifest (format is ${JSON.stringify(m.format)})`, 'format');
  if (typeof m.version !== 'number' || !Number.isInteger(m.version)) return fail('missing or non-integer format version', 'version');
  if (m.version > CHECKPOINT_VERSION) return fail(`format version ${m.version} is newer than this reader (${CHECKPOINT_VERSION})`, 'version', 'upgrade metad2a');
  if (typeof m.blob !== 'string' || path.basename(m.blob) !== m.blob) return fail('blob must be a file name next to the manifest', 'blob');
  if (typeof m.blobBytes !== 'number' || typeof m.sha256 !== 'string') return fail('blobBytes and sha256 are required', 'blobBytes');
  if (!Array.isArray(m.tensors)) return fail('tensors must be a list', 'tensors');
  const meta = m.meta === undefined ? {} : m.meta;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return fail('meta must be an object', 'meta');
  const blobPath = path.join(path.dirname(file), m.blob);
  let raw: Buffer;
  try {
    raw = fs.readFileSync(blobPath);
  } catch (e) {
    throw new InputError({ file: blobPath }, `blob of checkpoint ${file} is missing or unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (raw.length !== m.blobBytes) {
    throw new InputError({ file: blobPath }, `blob has ${raw.length} bytes, manifest ${file} says ${m.blobBytes}`, raw.length < m.blobBytes ? 'the blob is truncated' : 'the blob does not belong to this manifest');
  }
  const sha = crypto.createHash('sha256').update(raw).digest('hex');
  if (sha !== m.sha256) throw new InputError({ file: blobPath }, `SHA-256 ${sha.slice(0, 16)}... does not match manifest ${file} (${String(m.sha256).slice(0, 16)}...)`, 'the blob is corrupted');
  const aligned = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length) as ArrayBuffer;
  const state: StateDict = new Map();
  m.tensors.forEach((t: unknown, i: number) => {
    const at = `tensors[${i}]`;
    if (t === null || typeof t !== 'object') return fail('tensor entry is not an object', at);
    const { name, dtype, shape, offset } = t as Record<string, unknown>;
    if (typeof name !== 'string' || !name) return fail('tensor entry without a name', at);
    const field = `${at} '${name}'`;
    if (state.has(name)) return fail('duplicate tensor name', field);
    if (dtype !== 'float32') return fail(`unsupported dtype ${JSON.stringify(dtype)}`, field, 'only float32 is written by this version');
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) return fail(`bad shape ${JSON.stringify(shape)}`, field);
    if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0 || offset % 4) return fail(`bad offset ${JSON.stringify(offset)}`, field);
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (offset + 4 * n > raw.length) return fail(`shape [${shape}] at byte ${offset} needs ${4 * n} bytes but the blob has ${raw.length}`, field, 'shape and blob disagree');
    state.set(name, { shape: [...(shape as number[])], data: new Float32Array(aligned, offset, n) });
  });
  return { state, meta: meta as CheckpointMeta, manifest: m as unknown as CheckpointManifest };
}

// ---------------------------------------------------------------------------------------------
// Optimizer state (Adam and other tfjs optimizers) as named tensors, so it can share a checkpoint.

const OPT_PREFIX = 'optimizer.';

/**
 * The optimizer's state as a StateDict named after the module's parameters:
 * `optimizer.iterations` and `optimizer.<slot>.<param>` with tfjs' slot names (Adam: m, v).
 * Assumes the optimizer was driven with varList = module.trainableParameters().
 */
export async function optimizerStateDict(optimizer: tf.Optimizer, module: Module): Promise<StateDict> {
  const byVarName = new Map(module.namedParameters().map(([n, v]) => [v.name, n]));
  const weights = await optimizer.getWeights();
  const out: StateDict = new Map();
  const [iter, ...slots] = weights;
  out.set(`${OPT_PREFIX}iterations`, { shape: [], data: Float32Array.from(await iter.tensor.data()) });
  iter.tensor.dispose();
  for (const w of slots) {
    // tfjs names slots '<variable name>/<slot>' (Adam: '/m', '/v').
    const cut = w.name.lastIndexOf('/');
    const param = byVarName.get(cut < 0 ? w.name : w.name.slice(0, cut));
    if (!param || cut < 0) throw new Error(`optimizerStateDict: optimizer holds state '${w.name}' for a variable that is not a parameter of the module`);
    out.set(`${OPT_PREFIX}${w.name.slice(cut + 1)}.${param}`, { shape: [...w.tensor.shape], data: Float32Array.from(await w.tensor.data()) });
  }
  return out;
}

/**
 * Restore state saved by optimizerStateDict into a fresh optimizer of the same kind, ordered like
 * module.trainableParameters() (the varList the training loop must pass to minimize).
 */
export async function loadOptimizerState(optimizer: tf.Optimizer, module: Module, state: StateDict, source = 'state'): Promise<void> {
  const iter = state.get(`${OPT_PREFIX}iterations`);
  if (!iter) throw new InputError({ file: source, field: `${OPT_PREFIX}iterations` }, 'no optimizer state in this checkpoint');
  const params = module.namedParameters().filter(([, v]) => v.trainable);
  const paramNames = new Set(params.map(([n]) => n));
  // Slot names in saved order (insertion order survives the checkpoint).
  const slotNames: string[] = [];
  for (const k of state.keys()) {
    if (!k.startsWith(OPT_PREFIX) || k === `${OPT_PREFIX}iterations`) continue;
    const rest = k.slice(OPT_PREFIX.length);
    const dot = rest.indexOf('.');
    const slot = rest.slice(0, dot);
    if (dot < 0 || !paramNames.has(rest.slice(dot + 1))) throw new InputError({ file: source, field: k }, 'optimizer state for a parameter this module does not have');
    if (!slotNames.includes(slot)) slotNames.push(slot);
  }
  const named: Parameters<tf.Optimizer['setWeights']>[0] = [{ name: 'iter', tensor: tf.scalar(iter.data[0], 'int32') }];
  for (const slot of slotNames) {
    for (const [n, v] of params) {
      const key = `${OPT_PREFIX}${slot}.${n}`;
      const s: NamedArray | undefined = state.get(key);
      if (!s) throw new InputError({ file: source, field: key }, 'optimizer slot missing for this parameter');
      if (s.shape.length !== v.shape.length || s.shape.some((d, i) => d !== v.shape[i])) {
        throw new InputError({ file: source, field: key }, `shape [${s.shape}] does not match parameter shape [${v.shape}]`);
      }
      named.push({ name: `${v.name}/${slot}`, tensor: tf.tensor(s.data, s.shape, 'float32') });
    }
  }
  await optimizer.setWeights(named);
  // setWeights wraps the tensors in new variables that share their data; our handles can go.
  for (const w of named) w.tensor.dispose();
}
