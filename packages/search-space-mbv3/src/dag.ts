import { genericInvalidReason, type ArchDag } from '@metad2a/core';
import { OFA_DEPTHS, OFA_EXPAND_RATIOS, OFA_KERNEL_SIZES, OFA_NUM_SLOTS, OFA_SLOTS_PER_STAGE, OFA_NUM_STAGES, assertOfaConfig, type OfaConfig } from './config.js';

/** START = 0, END = 1, block types 2..28: nvt = 29, max_n = 22 (spec 2.2). */
export const MBV3_START_TYPE = 0;
export const MBV3_END_TYPE = 1;
export const MBV3_NUM_BLOCK_TYPES = 27;
export const MBV3_NUM_VERTEX_TYPES = MBV3_NUM_BLOCK_TYPES + 2;
export const MBV3_MAX_NODES = OFA_NUM_SLOTS + 2;

/** Node type of a slot: 2 + 9(d-2) + 3 idx(ks) + idx(e), key order d-ks-e as the original's type_dict. */
export function mbv3NodeType(d: number, ks: number, e: number): number {
  const di = (OFA_DEPTHS as readonly number[]).indexOf(d);
  const ki = (OFA_KERNEL_SIZES as readonly number[]).indexOf(ks);
  const ei = (OFA_EXPAND_RATIOS as readonly number[]).indexOf(e);
  if (di < 0 || ki < 0 || ei < 0) throw new RangeError(`no MBV3 node type for d=${d}, ks=${ks}, e=${e}`);
  return 2 + 9 * di + 3 * ki + ei;
}

/** (d, ks, e) of a block type 2..28 (the original's edge_dict). */
export function decodeMbv3NodeType(type: number): { d: number; ks: number; e: number } {
  if (!Number.isInteger(type) || type < 2 || type >= MBV3_NUM_VERTEX_TYPES) throw new RangeError(`${type} is not an MBV3 block type (2..28)`);
  const t = type - 2;
  return { d: OFA_DEPTHS[Math.floor(t / 9)], ks: OFA_KERNEL_SIZES[Math.floor(t / 3) % 3], e: OFA_EXPAND_RATIOS[t % 3] };
}

export function mbv3VertexTypeName(type: number): string {
  if (type === MBV3_START_TYPE) return 'START';
  if (type === MBV3_END_TYPE) return 'END';
  const { d, ks, e } = decodeMbv3NodeType(type);
  return `d${d}-k${ks}-e${e}`;
}

/**
 * Config -> graph (decode_ofa_mbv3_to_igraph): START, the 20 slots in order (each stage's depth
 * repeated in its 4 nodes, inactive slots included), END, chained 0->1->...->21. r is not encoded.
 */
export function mbv3ToDag(cfg: OfaConfig): ArchDag {
  assertOfaConfig(cfg);
  const types = [MBV3_START_TYPE];
  for (let i = 0; i < OFA_NUM_SLOTS; i++) types.push(mbv3NodeType(cfg.d[Math.floor(i / OFA_SLOTS_PER_STAGE)], cfg.ks[i], cfg.e[i]));
  types.push(MBV3_END_TYPE);
  const edges: Array<[number, number]> = [];
  for (let v = 0; v + 1 < types.length; v++) edges.push([v, v + 1]);
  return { types, edges };
}

/**
 * Why a graph is not an OFA subnet under is_valid_ofa_mbv3, or null: the generic DAG rules,
 * exactly 22 vertices, and in each stage the 4 slot nodes (vertices 1..20, ignoring the first
 * and last vertex as the original does) of one depth group (type-2) div 9. Edges are not
 * otherwise checked. Where the original raises (a stage's first slot holding START/END) or
 * would fail to decode (a type outside 0..28), this returns a reason instead.
 */
export function mbv3InvalidReason(dag: ArchDag): string | null {
  const generic = genericInvalidReason(dag, MBV3_START_TYPE, MBV3_END_TYPE);
  if (generic) return generic;
  if (dag.types.length !== MBV3_MAX_NODES) return `expected ${MBV3_MAX_NODES} vertices, found ${dag.types.length}`;
  for (let s = 0; s < OFA_NUM_STAGES; s++) {
    let group = -1;
    for (let j = 0; j < OFA_SLOTS_PER_STAGE; j++) {
      const v = 1 + s * OFA_SLOTS_PER_STAGE + j;
      const t = dag.types[v];
      if (!Number.isInteger(t) || t < 2 || t >= MBV3_NUM_VERTEX_TYPES) {
        return `vertex ${v} (stage ${s + 1} slot ${j + 1}) has type ${t}, not a block type 2..${MBV3_NUM_VERTEX_TYPES - 1}`;
      }
      const g = Math.floor((t - 2) / 9);
      if (j === 0) group = g;
      else if (g !== group) {
        return `stage ${s + 1} mixes depths: vertex ${1 + s * OFA_SLOTS_PER_STAGE} says d=${OFA_DEPTHS[group]}, vertex ${v} says d=${OFA_DEPTHS[g]}`;
      }
    }
  }
  return null;
}

/** Graph -> config (decode_igraph_to_ofa_mbv3), null when invalid. */
export function mbv3FromDag(dag: ArchDag): OfaConfig | null {
  if (mbv3InvalidReason(dag) !== null) return null;
  const ks: number[] = [];
  const e: number[] = [];
  const d = [4, 4, 4, 4, 4];
  for (let i = 0; i < OFA_NUM_SLOTS; i++) {
    const x = decodeMbv3NodeType(dag.types[i + 1]);
    ks.push(x.ks);
    e.push(x.e);
    d[Math.floor(i / OFA_SLOTS_PER_STAGE)] = x.d;
  }
  return { ks, e, d };
}
