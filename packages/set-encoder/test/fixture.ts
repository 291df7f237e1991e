import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readF32Bundle, type F32Bundle, type StateDict } from '@metad2a/nn';

/** The parity fixture of the original code (../shared/fixtures/metad2a-parity from the repo root). */
const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE = path.resolve(here, '../../../../shared/fixtures/metad2a-parity/manifest.json');

let bundle: F32Bundle | null = null;
export function fixture(): F32Bundle {
  bundle ??= readF32Bundle(FIXTURE);
  return bundle;
}

export function stateDictOf(key: 'generator_state' | 'predictor_state'): StateDict {
  return fixture().group(key);
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
