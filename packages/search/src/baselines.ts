import type { ArchDag, Rng, SearchSpace } from '@metad2a/core';
import type { ArchMetrics, CandidateGenerator, CandidateScorer } from './types.js';

/** Uniform random architectures of the space (the random-search baseline); every graph is valid. */
export class RandomArchGenerator<A> implements CandidateGenerator {
  constructor(private readonly space: SearchSpace<A>) {}
  generate(_dataset: unknown, count: number, rng: Rng): ArchDag[] {
    return Array.from({ length: count }, () => this.space.toDag(this.space.sample(rng)));
  }
}

/**
 * Random graphs with the space's vertex count: START first, END last, random middle types and edges
 * (each forward edge with probability `edgeProb`). Mostly invalid; it measures what validity filtering does.
 */
export class RandomGraphGenerator implements CandidateGenerator {
  constructor(
    private readonly space: SearchSpace<unknown>,
    private readonly edgeProb = 0.5,
  ) {}
  generate(_dataset: unknown, count: number, rng: Rng): ArchDag[] {
    const n = this.space.maxNodes;
    const middle = Array.from({ length: this.space.numVertexTypes }, (_, t) => t).filter((t) => t !== this.space.startType && t !== this.space.endType);
    return Array.from({ length: count }, () => {
      const types = [this.space.startType, ...Array.from({ length: n - 2 }, () => rng.choice(middle)), this.space.endType];
      const edges: Array<[number, number]> = [];
      for (let b = 1; b < n; b++) for (let a = 0; a < b; a++) if (rng.next() < this.edgeProb) edges.push([a, b]);
      return { types, edges };
    });
  }
}

/** Scores an architecture by a cost metric (more FLOPs = better): the FLOPs heuristic baseline. */
export class MetricScorer<A> implements CandidateScorer {
  constructor(
    private readonly space: SearchSpace<A>,
    private readonly metrics: (arch: A) => ArchMetrics,
    private readonly key: keyof ArchMetrics = 'mflops',
  ) {}
  score(_dataset: unknown, dags: ArchDag[]): Float32Array {
    return Float32Array.from(dags.map((d) => {
      const a = this.space.fromDag(d);
      return a === null ? -Infinity : (this.metrics(a)[this.key] ?? 0);
    }));
  }
}
