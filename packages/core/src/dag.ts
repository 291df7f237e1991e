import { DirectedGraph } from 'graphology';
import { hasCycle } from 'graphology-dag';

/**
 * An architecture graph in the models' encoding: vertex ids are a topological order
 * (0 = START ... last = END), `types[v]` is the vertex type id and every edge points from a
 * lower id to a higher one. This plain form is what the batched models consume; `toGraphology`
 * gives the graph-library view for analysis.
 */
export interface ArchDag {
  types: number[];
  edges: Array<[number, number]>;
}

export type ArchGraph = DirectedGraph<{ type: number }>;

export function toGraphology(dag: ArchDag): ArchGraph {
  const g: ArchGraph = new DirectedGraph<{ type: number }>({ allowSelfLoops: true });
  dag.types.forEach((t, v) => g.addNode(String(v), { type: t }));
  for (const [a, b] of dag.edges) {
    if (a < 0 || b < 0 || a >= dag.types.length || b >= dag.types.length) {
      throw new RangeError(`edge ${a}->${b} names a vertex outside 0..${dag.types.length - 1}`);
    }
    g.mergeEdge(String(a), String(b));
  }
  return g;
}

export function fromGraphology(g: ArchGraph): ArchDag {
  const n = g.order;
  const types: number[] = new Array(n);
  g.forEachNode((key, attrs) => {
    const v = Number(key);
    if (!Number.isInteger(v) || v < 0 || v >= n) throw new RangeError(`node key '${key}' is not a vertex id in 0..${n - 1}`);
    types[v] = attrs.type;
  });
  const edges: Array<[number, number]> = [];
  g.forEachEdge((_e, _a, src, dst) => {
    edges.push([Number(src), Number(dst)]);
  });
  edges.sort((p, q) => p[1] - q[1] || p[0] - q[0]);
  return { types, edges };
}

/** Predecessor lists (sorted ascending) of every vertex. */
export function predecessors(dag: ArchDag): number[][] {
  const preds: number[][] = dag.types.map(() => []);
  for (const [a, b] of dag.edges) preds[b].push(a);
  for (const p of preds) p.sort((x, y) => x - y);
  return preds;
}

/** Successor lists (sorted ascending) of every vertex. */
export function successors(dag: ArchDag): number[][] {
  const succ: number[][] = dag.types.map(() => []);
  for (const [a, b] of dag.edges) succ[a].push(b);
  for (const s of succ) s.sort((x, y) => x - y);
  return succ;
}

/**
 * The generic validity rules shared by both search spaces (is_valid_NAS201 / is_valid_ofa_mbv3
 * before their space-specific parts): a DAG with exactly one START and one END, every
 * non-START vertex with an incoming edge and every non-END vertex with an outgoing one.
 * Returns the reason it is invalid, or null when valid.
 */
export function genericInvalidReason(dag: ArchDag, startType: number, endType: number): string | null {
  const n = dag.types.length;
  if (n === 0) return 'empty graph';
  let g: ArchGraph;
  try {
    g = toGraphology(dag);
  } catch (e) {
    return (e as Error).message;
  }
  if (hasCycle(g)) return 'graph has a cycle';
  const starts = dag.types.filter((t) => t === startType).length;
  const ends = dag.types.filter((t) => t === endType).length;
  if (starts !== 1) return `expected exactly one START vertex, found ${starts}`;
  if (ends !== 1) return `expected exactly one END vertex, found ${ends}`;
  for (let v = 0; v < n; v++) {
    const key = String(v);
    if (dag.types[v] !== startType && g.inDegree(key) === 0) return `vertex ${v} has no incoming edge`;
    if (dag.types[v] !== endType && g.outDegree(key) === 0) return `vertex ${v} has no outgoing edge`;
  }
  return null;
}

/** Stable text form of a DAG (types and sorted edges), used as a dedupe key when the space has no better one. */
export function dagKey(dag: ArchDag): string {
  const edges = [...dag.edges].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  return `${dag.types.join(',')}|${edges.map(([a, b]) => `${a}>${b}`).join(',')}`;
}
