import type { ArchDag } from './dag.js';
import type { Rng } from './rng.js';

/**
 * What the generator and predictor need to know about a search space, and what the
 * search pipeline needs to turn graphs into architectures. Implemented by
 * `@metad2a/search-space-201` and `@metad2a/search-space-mbv3`; a third space is a new package.
 */
export interface SearchSpace<Arch = unknown> {
  /** Short id used in files and on the command line: 'nb201', 'mbv3'. */
  readonly id: string;
  /** Number of vertex types including START and END (the models' `nvt`). */
  readonly numVertexTypes: number;
  /** Number of vertices of every valid graph (the models' `max_n`). */
  readonly maxNodes: number;
  readonly startType: number;
  readonly endType: number;
  /** Human-readable name of a vertex type. */
  vertexTypeName(type: number): string;

  /** Architecture -> graph in the original's encoding (the checkpoints depend on it). */
  toDag(arch: Arch): ArchDag;
  /** Graph -> architecture under the original's validity rules; null when the graph is not a valid architecture. */
  fromDag(dag: ArchDag): Arch | null;
  /** Why a graph is not a valid architecture, or null. */
  invalidReason(dag: ArchDag): string | null;

  /** The architecture's canonical text form (NB201 string, or the OFA config as compact JSON). */
  format(arch: Arch): string;
  /** Parse the text form; throws an InputError naming the problem. */
  parse(text: string): Arch;
  /** A key equal for architectures that compute the same function (dedupe); defaults to `format`. */
  canonicalKey(arch: Arch): string;

  /** A uniformly random architecture. */
  sample(rng: Rng): Arch;
  /** Every architecture, where the space is finite and small enough to list. */
  enumerate?(): Iterable<Arch>;
}
