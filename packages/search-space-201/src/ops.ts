import { InputError, type InputLocation } from '@metad2a/core';

/** The five NB201 edge operations, in the original's op-index order (node type = op index + 2). */
export const NB201_OPS = ['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3'] as const;
export type Nb201Op = (typeof NB201_OPS)[number];

/** Number of cell edges (= middle vertices of the DAG). */
export const NB201_NUM_EDGES = 6;
/** Number of cells in the space: 5^6. */
export const NB201_NUM_ARCHS = 15625;

/**
 * Cell edges in string / DAG-vertex order: edge k goes from cell node `from` into cell node `to`.
 * `|A~0|+|B~0|C~1|+|D~0|E~1|F~2|` lists (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2).
 */
export const NB201_EDGES: ReadonlyArray<{ readonly from: number; readonly to: number }> = [
  { from: 0, to: 1 },
  { from: 0, to: 2 },
  { from: 1, to: 2 },
  { from: 0, to: 3 },
  { from: 1, to: 3 },
  { from: 2, to: 3 },
];

/** A cell: the op of each of the 6 edges, in NB201_EDGES order. */
export type Nb201Arch = readonly Nb201Op[];

const OP_INDEX = new Map<string, number>(NB201_OPS.map((op, i) => [op, i]));

export function isNb201Op(name: string): name is Nb201Op {
  return OP_INDEX.has(name);
}

export function opIndex(op: Nb201Op): number {
  const i = OP_INDEX.get(op);
  if (i === undefined) throw new RangeError(`unknown NB201 op '${op}'`);
  return i;
}

/** Op indices (0..4) of the 6 edges. */
export function opIndices(arch: Nb201Arch): number[] {
  return arch.map(opIndex);
}

/** Build an arch from 6 op indices (0..4); throws a RangeError on anything else. */
export function archFromOpIndices(indices: readonly number[]): Nb201Arch {
  if (indices.length !== NB201_NUM_EDGES) throw new RangeError(`an NB201 cell has ${NB201_NUM_EDGES} edges, got ${indices.length} op indices`);
  return indices.map((i) => {
    if (!Number.isInteger(i) || i < 0 || i >= NB201_OPS.length) throw new RangeError(`op index ${i} is outside 0..${NB201_OPS.length - 1}`);
    return NB201_OPS[i];
  });
}

/** Checks an arch value coming from outside (JSON, other code): 6 known op names. */
export function assertNb201Arch(arch: readonly string[]): asserts arch is Nb201Arch {
  if (!Array.isArray(arch) || arch.length !== NB201_NUM_EDGES) {
    throw new RangeError(`an NB201 cell has ${NB201_NUM_EDGES} edge ops, got ${Array.isArray(arch) ? arch.length : typeof arch}`);
  }
  for (const op of arch) if (!isNb201Op(op)) throw new RangeError(`unknown NB201 op '${op}' (known: ${NB201_OPS.join(', ')})`);
}

/** The NB201 string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`. */
export function formatNb201(arch: Nb201Arch): string {
  assertNb201Arch(arch);
  return `|${arch[0]}~0|+|${arch[1]}~0|${arch[2]}~1|+|${arch[3]}~0|${arch[4]}~1|${arch[5]}~2|`;
}

/**
 * Parse an NB201 string. Strict: exactly 3 nodes with 1, 2, 3 inputs, inputs numbered 0..j-1 in
 * order, known op names. Errors are InputErrors carrying `loc` (file/line/column of the caller's
 * record) plus what was wrong.
 */
export function parseNb201(text: string, loc: InputLocation = {}): Nb201Arch {
  const where = { ...loc, field: loc.field ?? 'architecture string' };
  const fail = (problem: string): never => {
    throw new InputError(where, problem, 'expected the form |op~0|+|op~0|op~1|+|op~0|op~1|op~2|');
  };
  if (typeof text !== 'string') fail(`expected a string, got ${typeof text}`);
  const s = text.trim();
  const nodes = s.split('+');
  if (nodes.length !== 3) fail(`'${s}' has ${nodes.length} node groups separated by '+', expected 3`);
  const ops: Nb201Op[] = [];
  nodes.forEach((node, j) => {
    if (!node.startsWith('|') || !node.endsWith('|') || node.length < 2) fail(`node group ${j + 1} '${node}' must start and end with '|'`);
    const tokens = node.slice(1, -1).split('|');
    if (tokens.length !== j + 1) fail(`node ${j + 1} '${node}' has ${tokens.length} inputs, expected ${j + 1}`);
    tokens.forEach((tok, i) => {
      const parts = tok.split('~');
      if (parts.length !== 2) fail(`token '${tok}' in node ${j + 1} is not 'op~input'`);
      const [op, input] = parts;
      if (input !== String(i)) fail(`token '${tok}' in node ${j + 1} names input '${input}', expected ${i}`);
      if (!isNb201Op(op)) fail(`unknown op '${op}' in token '${tok}' (known: ${NB201_OPS.join(', ')})`);
      ops.push(op as Nb201Op);
    });
  });
  return ops;
}

/**
 * Position of a cell in `enumerateNb201()` order: the op indices read as a base-5 number, edge 0
 * most significant. This is NOT the official benchmark index (which has no formula; see
 * Nb201Table.indexOf).
 */
export function enumerationIndex(arch: Nb201Arch): number {
  let k = 0;
  for (const op of arch) k = k * NB201_OPS.length + opIndex(op);
  return k;
}

export function archAtEnumerationIndex(k: number): Nb201Arch {
  if (!Number.isInteger(k) || k < 0 || k >= NB201_NUM_ARCHS) throw new RangeError(`enumeration index ${k} is outside 0..${NB201_NUM_ARCHS - 1}`);
  const idx = new Array<number>(NB201_NUM_EDGES);
  for (let e = NB201_NUM_EDGES - 1; e >= 0; e--) {
    idx[e] = k % NB201_OPS.length;
    k = Math.floor(k / NB201_OPS.length);
  }
  return archFromOpIndices(idx);
}

/** All 15,625 cells in base-5 order of their op indices. */
export function* enumerateNb201(): Generator<Nb201Arch> {
  for (let k = 0; k < NB201_NUM_ARCHS; k++) yield archAtEnumerationIndex(k);
}
