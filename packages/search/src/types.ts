import type { ArchDag, Rng } from '@metad2a/core';

/** One dataset as the set encoder sees it: `numClasses` sets of `numSample` feature vectors, class-major. */
export interface DatasetSample {
  x: Float32Array;
  numClasses: number;
  numSample: number;
  dim: number;
}

/** Draws a fresh dataset sample (features are re-drawn per use, as in the original). */
export type DatasetSampler = (rng: Rng) => DatasetSample;

/** Something that proposes graphs for a dataset: the meta-trained generator, or a baseline. */
export interface CandidateGenerator {
  /** `count` graphs (valid or not) conditioned on the dataset; stochastic under `rng`. */
  generate(dataset: DatasetSample, count: number, rng: Rng): ArchDag[];
}

/** Something that scores graphs for a dataset, higher is better: the meta-trained predictor, or a heuristic. */
export interface CandidateScorer {
  score(dataset: DatasetSample, dags: ArchDag[]): Float32Array;
  /** Mean score over several samples of one dataset, where the scorer can share work across them. */
  scoreMean?(datasets: DatasetSample[], dags: ArchDag[]): Float32Array;
}

/** Cost figures of an architecture used for constraints and reports. */
export interface ArchMetrics {
  /** Multiply-accumulates in millions (FLOPs as NB201/OFA report them). */
  mflops?: number;
  /** Parameters in millions. */
  mparams?: number;
  /** Latency in milliseconds on the device named in the search options. */
  latencyMs?: number;
}

export interface Constraints {
  maxMflops?: number;
  maxMparams?: number;
  maxLatencyMs?: number;
}
