import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArchDag } from '@metad2a/core';
import { readF32Bundle, type F32Bundle } from '@metad2a/nn';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The parity fixture of the original code: ../shared/fixtures/metad2a-parity from the repo root. */
export const FIXTURE = path.resolve(here, '../../../../shared/fixtures/metad2a-parity/manifest.json');
export const ORIGINAL_CKPT = path.resolve(here, '../../../../shared/data/metad2a-original/generator_ckpt_400.pt');

let bundle: F32Bundle | null = null;
export function fixture(): F32Bundle {
  bundle ??= readF32Bundle(FIXTURE);
  return bundle;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const manifest = (): any => fixture().manifest;

/** NB201 space numbers, written out (START 0, END 1, 7 types, 8 vertices). */
export const NB201 = { numVertexTypes: 7, maxNodes: 8, startType: 0, endType: 1 };
export const OPS = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3'];
/** The stored 11-edge NB201 graph pattern (spec 2.1). */
export const NB201_EDGES: Array<[number, number]> = [
  [0, 1], [1, 2], [1, 3], [1, 5], [2, 3], [2, 6], [3, 4], [3, 6], [4, 5], [5, 6], [6, 7],
];

/** NB201 cell string -> graph in the original's encoding (types = op index + 2, 11-edge pattern). */
export function nb201Dag(arch: string): ArchDag {
  const ops = arch.split('+').flatMap((node) => node.split('|').filter(Boolean).map((e) => e.split('~')[0]));
  if (ops.length !== 6) throw new Error(`bad NB201 string ${arch}`);
  return { types: [0, ...ops.map((o) => OPS.indexOf(o) + 2), 1], edges: NB201_EDGES.map(([a, b]) => [a, b]) };
}

/** The original's is_valid_NAS201 + decode_igraph_to_NAS_BENCH_201_string, written from the spec. */
export function nb201String(dag: ArchDag): string | null {
  const n = dag.types.length;
  if (n !== 8) return null;
  if (dag.types.filter((t) => t === 0).length !== 1 || dag.types.filter((t) => t === 1).length !== 1) return null;
  const indeg = new Array(n).fill(0);
  const outdeg = new Array(n).fill(0);
  for (const [a, b] of dag.edges) {
    if (a >= b) return null; // ids are topological: a back edge would be a cycle candidate
    outdeg[a]++;
    indeg[b]++;
  }
  for (let v = 0; v < n; v++) {
    if (dag.types[v] !== 0 && indeg[v] === 0) return null;
    if (dag.types[v] !== 1 && outdeg[v] === 0) return null;
  }
  for (let v = 1; v <= 6; v++) if (dag.types[v] < 2) return null;
  const op = (v: number) => OPS[dag.types[v] - 2];
  return `|${op(1)}~0|+|${op(2)}~0|${op(3)}~1|+|${op(4)}~0|${op(5)}~1|${op(6)}~2|`;
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
