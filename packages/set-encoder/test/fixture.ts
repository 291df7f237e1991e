import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StateDict } from '@metad2a/nn';

/** The parity fixture of the original code (../shared/fixtures/metad2a-parity from the repo root). */
const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE_DIR = path.resolve(here, '../../../../shared/fixtures/metad2a-parity');

export interface TensorRef {
  shape: number[];
  offset: number;
  length: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Manifest = Record<string, any>;

let cache: { manifest: Manifest; data: Float32Array } | null = null;

export function loadFixture(): { manifest: Manifest; data: Float32Array } {
  if (cache) return cache;
  const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURE_DIR, 'manifest.json'), 'utf8')) as Manifest;
  const buf = fs.readFileSync(path.join(FIXTURE_DIR, 'tensors.f32'));
  // copy into an aligned, little-endian Float32Array
  const data = new Float32Array(buf.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(i * 4);
  cache = { manifest, data };
  return cache;
}

export function tensorOf(ref: TensorRef): { shape: number[]; data: Float32Array } {
  const { data } = loadFixture();
  return { shape: ref.shape, data: data.slice(ref.offset, ref.offset + ref.length) };
}

export function stateDictOf(key: 'generator_state' | 'predictor_state'): StateDict {
  const { manifest } = loadFixture();
  const out: StateDict = new Map();
  for (const [name, ref] of Object.entries(manifest[key] as Record<string, TensorRef>)) out.set(name, tensorOf(ref));
  return out;
}

/** Largest |a-b| relative to the largest |b| of the tensor. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
