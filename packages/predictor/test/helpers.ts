import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { ArchDag } from '@metad2a/core';
import { readF32Bundle, type F32Bundle } from '@metad2a/nn';
import { Predictor } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE = path.resolve(here, '../../../../shared/fixtures/metad2a-parity/manifest.json');

let bundle: F32Bundle | null = null;
export function fixture(): F32Bundle {
  bundle ??= readF32Bundle(FIXTURE);
  return bundle;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const manifest = (): any => fixture().manifest;

export const NB201 = { numVertexTypes: 7, maxNodes: 8, startType: 0, endType: 1 };
const OPS = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3'];
const EDGES: Array<[number, number]> = [[0, 1], [1, 2], [1, 3], [1, 5], [2, 3], [2, 6], [3, 4], [3, 6], [4, 5], [5, 6], [6, 7]];

/** NB201 cell string -> graph in the original's encoding (types = op index + 2, stored 11-edge pattern). */
export function nb201Dag(arch: string): ArchDag {
  const ops = arch.split('+').flatMap((node) => node.split('|').filter(Boolean).map((e) => e.split('~')[0]));
  return { types: [0, ...ops.map((o) => OPS.indexOf(o) + 2), 1], edges: EDGES.map(([a, b]) => [a, b]) };
}

export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

/** The predictor with the parity fixture's weights, and the fixture's input datasets X [B, N, F]. */
export function originalPredictorCase(): { pred: Predictor; X: tf.Tensor3D } {
  const pred = new Predictor(NB201);
  pred.loadOriginal(fixture().group('predictor_state'), 'parity fixture');
  const x = fixture().get('predictor_case/input_X');
  return { pred, X: tf.tensor3d(x.data, x.shape as [number, number, number]) };
}
