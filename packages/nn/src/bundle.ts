import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '@metad2a/core';
import type { NamedArray, StateDict } from './module.js';

/** A tensor entry of an f32 bundle manifest: offset and length are counted in floats. */
interface BundleEntry {
  shape: number[];
  offset: number;
  length: number;
}

export interface F32Bundle {
  /** The parsed manifest.json, with its scalars and discrete expectations. */
  manifest: Record<string, unknown>;
  /** Every tensor name, as a '/'-joined path through the manifest ('generator_state/fc1.weight'). */
  names(): string[];
  has(name: string): boolean;
  /** A tensor by path; InputError naming the manifest and the path when it is not there. */
  get(name: string): NamedArray;
  /** Every tensor under a group ('generator_state') as a StateDict named relative to it. */
  group(prefix: string): StateDict;
}

/**
 * Reader for the parity-fixture layout (../shared/fixtures/metad2a-parity): `manifest.json` whose
 * nested objects with `shape`, `offset`, `length` describe tensors in a little-endian float32 blob
 * (`tensors.f32` next to it unless `blob` is given). Offsets and sizes are checked on open.
 */
export function readF32Bundle(manifestPath: string, options: { blob?: string } = {}): F32Bundle {
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new InputError({ file: manifestPath }, `cannot read bundle manifest: ${(e as Error).message}`);
  }
  const blobPath = options.blob ?? path.join(path.dirname(manifestPath), 'tensors.f32');
  let raw: Buffer;
  try {
    raw = fs.readFileSync(blobPath);
  } catch (e) {
    throw new InputError({ file: blobPath }, `cannot read tensor blob of ${manifestPath}: ${(e as Error).message}`);
  }
  if (raw.length % 4) throw new InputError({ file: blobPath }, `size ${raw.length} bytes is not a multiple of 4`, 'the blob is truncated');
  const floats = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length) as ArrayBuffer);
  const entries = new Map<string, BundleEntry>();
  const visit = (node: unknown, at: string[]) => {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
    const o = node as Record<string, unknown>;
    if (Array.isArray(o.shape) && typeof o.offset === 'number' && typeof o.length === 'number') {
      const name = at.join('/');
      const shape = o.shape as number[];
      const size = shape.reduce((a, b) => a * b, 1);
      if (!shape.every((d) => Number.isInteger(d) && d >= 0) || size !== o.length) {
        throw new InputError({ file: manifestPath, field: name }, `shape [${shape}] does not match length ${o.length}`);
      }
      if (!Number.isInteger(o.offset) || o.offset < 0 || o.offset + o.length > floats.length) {
        throw new InputError({ file: manifestPath, field: name }, `floats ${o.offset}..${o.offset + o.length} lie outside ${blobPath} (${floats.length} floats)`, 'the blob is truncated or does not belong to this manifest');
      }
      entries.set(name, { shape, offset: o.offset, length: o.length });
      return;
    }
    for (const [k, v] of Object.entries(o)) visit(v, [...at, k]);
  };
  visit(manifest, []);
  const get = (name: string): NamedArray => {
    const e = entries.get(name);
    if (!e) throw new InputError({ file: manifestPath, field: name }, 'no such tensor in the bundle');
    return { shape: [...e.shape], data: floats.slice(e.offset, e.offset + e.length) };
  };
  return {
    manifest,
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    get,
    group(prefix) {
      const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
      const out: StateDict = new Map();
      for (const n of entries.keys()) if (n.startsWith(p)) out.set(n.slice(p.length), get(n));
      if (out.size === 0) throw new InputError({ file: manifestPath, field: prefix }, 'no tensors under this group');
      return out;
    },
  };
}
