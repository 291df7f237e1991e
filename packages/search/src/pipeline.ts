import { MetaD2AError, Rng, type ArchDag, type SearchSpace } from '@metad2a/core';
import type { ArchMetrics, CandidateGenerator, CandidateScorer, Constraints, DatasetSample, DatasetSampler } from './types.js';

export interface SearchOptions<A> {
  space: SearchSpace<A>;
  generator: CandidateGenerator;
  scorer: CandidateScorer;
  sampleDataset: DatasetSampler;
  /** Unique valid candidates to collect (the original's --num-gen-arch: 500 on CIFAR). */
  numCandidates: number;
  /** How many ranked results to return. */
  topK: number;
  seed: number;
  /** Graphs decoded per generator call. */
  generateBatch?: number;
  /** Give up after this many decoded graphs (default 50 x numCandidates). */
  maxSampled?: number;
  /**
   * Predictions averaged over this many fresh dataset samples (the NB201 original uses 10; MBV3 1).
   */
  scoreRepeats?: number;
  /** Dedupe by the space's isomorphism-canonical key instead of the plain string (the original dedupes by string). */
  dedupeIsomorphic?: boolean;
  metrics?: (arch: A) => ArchMetrics;
  constraints?: Constraints;
  /** Called as candidates accumulate. */
  onProgress?: (p: { sampled: number; unique: number; target: number }) => void;
}

export interface RankedCandidate<A> {
  rank: number;
  arch: A;
  text: string;
  score: number;
  metrics: ArchMetrics;
  /** Position among the unique valid candidates in generation order (0-based): independent of the predictor. */
  generated: number;
}

export interface SearchResult<A> {
  ranked: RankedCandidate<A>[];
  /** All unique valid candidates in ranked order (before constraints and top-k). */
  all: RankedCandidate<A>[];
  counts: { sampled: number; invalid: number; duplicate: number; unique: number; satisfyingConstraints: number };
  timings: { generateSeconds: number; rankSeconds: number; totalSeconds: number };
}

/**
 * The MetaD2A meta-test search: generate until `numCandidates` unique valid architectures (only valid
 * and new ones count, as in the original), score each with the predictor averaged over fresh dataset
 * samples, sort, then apply constraints walking down the ranking (the original's --bound rule).
 */
export function runSearch<A>(opts: SearchOptions<A>): SearchResult<A> {
  const t0 = performance.now();
  const rng = new Rng(opts.seed);
  const genRng = rng.fork('generate');
  const dataRng = rng.fork('dataset');
  const batch = opts.generateBatch ?? Math.min(500, opts.numCandidates);
  const maxSampled = opts.maxSampled ?? 50 * opts.numCandidates;
  const seen = new Set<string>();
  const archs: A[] = [];
  const dags: ArchDag[] = [];
  let sampled = 0;
  let invalid = 0;
  let duplicate = 0;
  const dataset = opts.sampleDataset(dataRng);
  while (archs.length < opts.numCandidates) {
    if (sampled >= maxSampled) {
      throw new MetaD2AError(
        'E_GENERATE',
        `the generator produced only ${archs.length} unique valid architectures in ${sampled} samples (${invalid} invalid, ${duplicate} duplicates); ` +
          `ask for fewer candidates (--num-gen) or check that the checkpoint matches the search space '${opts.space.id}'`,
      );
    }
    for (const dag of opts.generator.generate(dataset, batch, genRng)) {
      sampled++;
      const arch = opts.space.fromDag(dag);
      if (arch === null) {
        invalid++;
        continue;
      }
      const key = opts.dedupeIsomorphic ? opts.space.canonicalKey(arch) : opts.space.format(arch);
      if (seen.has(key)) {
        duplicate++;
        continue;
      }
      seen.add(key);
      archs.push(arch);
      dags.push(dag);
      // Timing and counting stop when N is reached, like the original.
      if (archs.length === opts.numCandidates) break;
    }
    opts.onProgress?.({ sampled, unique: archs.length, target: opts.numCandidates });
  }
  const t1 = performance.now();

  const scores = scoreAveraged(opts.scorer, opts.sampleDataset, dataRng, dataset, archs.map((a) => opts.space.toDag(a)), opts.scoreRepeats ?? 1);
  const t2 = performance.now();

  const order = archs.map((_, i) => i).sort((i, j) => scores[j] - scores[i] || i - j);
  const all: RankedCandidate<A>[] = order.map((i, r) => ({
    rank: r + 1,
    arch: archs[i],
    text: opts.space.format(archs[i]),
    score: scores[i],
    metrics: opts.metrics ? opts.metrics(archs[i]) : {},
    generated: i,
  }));
  const satisfying = all.filter((c) => satisfies(c.metrics, opts.constraints));
  if (opts.constraints && satisfying.length === 0) {
    throw new MetaD2AError('E_CONSTRAINT', `no candidate satisfies the constraints ${describeConstraints(opts.constraints)}; ${describeRange(all)}`);
  }
  return {
    ranked: satisfying.slice(0, opts.topK),
    all,
    counts: { sampled, invalid, duplicate, unique: archs.length, satisfyingConstraints: satisfying.length },
    timings: { generateSeconds: (t1 - t0) / 1000, rankSeconds: (t2 - t1) / 1000, totalSeconds: (performance.now() - t0) / 1000 },
  };
}

/** Mean score over `repeats` dataset samples; the first sample is the one generation used. */
export function scoreAveraged(scorer: CandidateScorer, sampleDataset: DatasetSampler, rng: Rng, first: DatasetSample, dags: ArchDag[], repeats: number): Float32Array {
  if (scorer.scoreMean) {
    const samples = [first];
    for (let r = 1; r < repeats; r++) samples.push(sampleDataset(rng));
    return scorer.scoreMean(samples, dags);
  }
  const total = new Float32Array(dags.length);
  for (let r = 0; r < repeats; r++) {
    const ds = r === 0 ? first : sampleDataset(rng);
    const s = scorer.score(ds, dags);
    for (let i = 0; i < s.length; i++) total[i] += s[i] / repeats;
  }
  return total;
}

export function satisfies(m: ArchMetrics, c: Constraints | undefined): boolean {
  if (!c) return true;
  if (c.maxMflops !== undefined && !(m.mflops !== undefined && m.mflops <= c.maxMflops)) return false;
  if (c.maxMparams !== undefined && !(m.mparams !== undefined && m.mparams <= c.maxMparams)) return false;
  if (c.maxLatencyMs !== undefined && !(m.latencyMs !== undefined && m.latencyMs <= c.maxLatencyMs)) return false;
  return true;
}

function describeConstraints(c: Constraints): string {
  const parts: string[] = [];
  if (c.maxMflops !== undefined) parts.push(`FLOPs <= ${c.maxMflops} M`);
  if (c.maxMparams !== undefined) parts.push(`params <= ${c.maxMparams} M`);
  if (c.maxLatencyMs !== undefined) parts.push(`latency <= ${c.maxLatencyMs} ms`);
  return parts.join(', ');
}

function describeRange(all: RankedCandidate<unknown>[]): string {
  const pick = (f: (m: ArchMetrics) => number | undefined) => all.map((c) => f(c.metrics)).filter((v): v is number => v !== undefined);
  const fl = pick((m) => m.mflops);
  const pa = pick((m) => m.mparams);
  const la = pick((m) => m.latencyMs);
  const parts: string[] = [];
  if (fl.length) parts.push(`candidates' FLOPs range ${Math.min(...fl).toFixed(1)}-${Math.max(...fl).toFixed(1)} M`);
  if (pa.length) parts.push(`params ${Math.min(...pa).toFixed(3)}-${Math.max(...pa).toFixed(3)} M`);
  if (la.length) parts.push(`latency ${Math.min(...la).toFixed(2)}-${Math.max(...la).toFixed(2)} ms`);
  return parts.length ? `${parts.join(', ')}: relax the bound` : 'no candidate reports these metrics';
}
