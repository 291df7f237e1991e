import { genericInvalidReason, type ArchDag } from '@metad2a/core';
import { NB201_NUM_EDGES, NB201_OPS, opIndex, type Nb201Arch } from './ops.js';

export const NB201_START_TYPE = 0;
export const NB201_END_TYPE = 1;
/** Vertex types: START, END and one per op (type = op index + 2). */
export const NB201_NUM_VERTEX_TYPES = 2 + NB201_OPS.length;
/** input, 6 edge-ops, output. */
export const NB201_MAX_NODES = 2 + NB201_NUM_EDGES;

/**
 * The edge pattern of every graph the original stores (spec §2.1): not the textbook line graph
 * but what its ENAS-style decoding produces. The checkpoints were trained on these edges, so we
 * emit exactly them.
 */
export const NB201_DAG_EDGES: ReadonlyArray<readonly [number, number]> = [
  [0, 1],
  [1, 2],
  [1, 3],
  [1, 5],
  [2, 3],
  [2, 6],
  [3, 4],
  [3, 6],
  [4, 5],
  [5, 6],
  [6, 7],
];

export function vertexTypeName(type: number): string {
  if (type === NB201_START_TYPE) return 'START';
  if (type === NB201_END_TYPE) return 'END';
  const op = NB201_OPS[type - 2];
  if (op === undefined) throw new RangeError(`vertex type ${type} is outside 0..${NB201_NUM_VERTEX_TYPES - 1}`);
  return op;
}

export function nb201ToDag(arch: Nb201Arch): ArchDag {
  if (arch.length !== NB201_NUM_EDGES) throw new RangeError(`an NB201 cell has ${NB201_NUM_EDGES} edge ops, got ${arch.length}`);
  return {
    types: [NB201_START_TYPE, ...arch.map((op) => opIndex(op) + 2), NB201_END_TYPE],
    edges: NB201_DAG_EDGES.map(([a, b]) => [a, b] as [number, number]),
  };
}

/**
 * is_valid_NAS201 of the original: a DAG with one START and one END, every non-START vertex fed
 * and every non-END vertex used, exactly 8 vertices, no START/END among vertices 1..6. The edge
 * pattern itself is not checked (the original does not either). We add one rule the original
 * leaves to a crash: every type must be a known vertex type.
 */
export function nb201InvalidReason(dag: ArchDag): string | null {
  if (!dag || !Array.isArray(dag.types) || !Array.isArray(dag.edges)) return 'not a graph: expected {types, edges}';
  for (let v = 0; v < dag.types.length; v++) {
    const t = dag.types[v];
    if (!Number.isInteger(t) || t < 0 || t >= NB201_NUM_VERTEX_TYPES) return `vertex ${v} has type ${t}, outside 0..${NB201_NUM_VERTEX_TYPES - 1}`;
  }
  const generic = genericInvalidReason(dag, NB201_START_TYPE, NB201_END_TYPE);
  if (generic) return generic;
  if (dag.types.length !== NB201_MAX_NODES) return `expected ${NB201_MAX_NODES} vertices, found ${dag.types.length}`;
  for (let v = 1; v < NB201_MAX_NODES - 1; v++) {
    const t = dag.types[v];
    if (t === NB201_START_TYPE || t === NB201_END_TYPE) return `vertex ${v} is ${vertexTypeName(t)}, but vertices 1..6 must be operations`;
  }
  return null;
}

/** decode_igraph_to_NAS_BENCH_201_string: null when invalid, else the ops of vertices 1..6. */
export function nb201FromDag(dag: ArchDag): Nb201Arch | null {
  if (nb201InvalidReason(dag) !== null) return null;
  return dag.types.slice(1, NB201_MAX_NODES - 1).map((t) => NB201_OPS[t - 2]);
}
