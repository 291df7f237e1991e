import type { ArchDag, Rng, SearchSpace } from '@metad2a/core';
import { nb201UniqueString } from './canonical.js';
import {
  NB201_END_TYPE,
  NB201_MAX_NODES,
  NB201_NUM_VERTEX_TYPES,
  NB201_START_TYPE,
  nb201FromDag,
  nb201InvalidReason,
  nb201ToDag,
  vertexTypeName,
} from './dag.js';
import { NB201_NUM_EDGES, NB201_OPS, enumerateNb201, formatNb201, parseNb201, type Nb201Arch } from './ops.js';

/** NAS-Bench-201 behind the generic SearchSpace interface the generator and predictor use. */
export const nb201Space: SearchSpace<Nb201Arch> = {
  id: 'nb201',
  numVertexTypes: NB201_NUM_VERTEX_TYPES,
  maxNodes: NB201_MAX_NODES,
  startType: NB201_START_TYPE,
  endType: NB201_END_TYPE,
  vertexTypeName,
  toDag: (arch: Nb201Arch): ArchDag => nb201ToDag(arch),
  fromDag: (dag: ArchDag): Nb201Arch | null => nb201FromDag(dag),
  invalidReason: (dag: ArchDag): string | null => nb201InvalidReason(dag),
  format: (arch: Nb201Arch): string => formatNb201(arch),
  parse: (text: string): Nb201Arch => parseNb201(text),
  canonicalKey: (arch: Nb201Arch): string => nb201UniqueString(arch),
  sample: (rng: Rng): Nb201Arch => Array.from({ length: NB201_NUM_EDGES }, () => NB201_OPS[rng.int(NB201_OPS.length)]),
  enumerate: (): Iterable<Nb201Arch> => enumerateNb201(),
};
