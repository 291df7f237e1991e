import { InputError, type ArchDag, type SearchSpace } from '@metad2a/core';

/** What the models need to know about a search space (a SearchSpace satisfies it). */
export type ModelSpace = Pick<SearchSpace, 'numVertexTypes' | 'maxNodes' | 'startType' | 'endType'>;

/**
 * A batch of graphs as flat arrays, padded to `n = maxNodes` vertices: the form every batched
 * vertex step reads. `adj[(b*n + p)*n + v] = 1` when graph b has the edge p -> v.
 */
export interface GraphBatch {
  B: number;
  n: number;
  /** Vertex types [B*n]; padding vertices hold 0 and have no edges. */
  types: Int32Array;
  /** Vertex count of each graph. */
  sizes: Int32Array;
  adj: Uint8Array;
}

/**
 * Pack graphs for the models, checking what they rely on: 1..maxNodes vertices, integer types in
 * 0..nvt-1, edges between existing vertices that point from a lower id to a higher one (ids are a
 * topological order). Errors name the graph (record) and the field.
 */
export function packGraphs(dags: readonly ArchDag[], space: ModelSpace): GraphBatch {
  const n = space.maxNodes;
  const nvt = space.numVertexTypes;
  const B = dags.length;
  const types = new Int32Array(B * n);
  const sizes = new Int32Array(B);
  const adj = new Uint8Array(B * n * n);
  dags.forEach((dag, b) => {
    const k = dag.types.length;
    if (k < 1 || k > n) throw new InputError({ record: b, field: 'types' }, `graph has ${k} vertices`, `the search space allows 1..${n}`);
    dag.types.forEach((t, v) => {
      if (!Number.isInteger(t) || t < 0 || t >= nvt) {
        throw new InputError({ record: b, field: `types[${v}]` }, `vertex type ${t} is not an integer in 0..${nvt - 1}`);
      }
      types[b * n + v] = t;
    });
    sizes[b] = k;
    dag.edges.forEach(([p, v], e) => {
      if (!Number.isInteger(p) || !Number.isInteger(v) || p < 0 || v >= k || p >= v) {
        throw new InputError(
          { record: b, field: `edges[${e}]` },
          `edge ${p}->${v} is not between vertices 0..${k - 1} from a lower id to a higher one`,
          'vertex ids must be a topological order',
        );
      }
      adj[(b * n + p) * n + v] = 1;
    });
  });
  return { B, n, types, sizes, adj };
}
