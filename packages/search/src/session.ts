import { ConfigError, type SearchSpace } from '@metad2a/core';
import { nb201Cost, type Nb201Arch } from '@metad2a/search-space-201';
import { I7LatencyTable, Note10LatencyTable, ofaCost, type OfaConfig } from '@metad2a/search-space-mbv3';
import { GeneratorCandidates, modelScorer, type SearchModel, type SearchModelManifest } from './model.js';
import { runSearch, type SearchResult } from './pipeline.js';
import type { ArchMetrics, Constraints, DatasetSampler } from './types.js';

/** Shape of the network the cost figures refer to; NB201 counts FLOPs of its C=16, N=5 network at 32 px. */
export interface MetricsContext {
  numClasses: number;
  /** Input size in pixels (NB201 default 32). */
  inputSize?: number;
  /** Latency device (MBV3 latency tables); unknown devices are an error. */
  device?: string;
}

/**
 * Cost figures of an architecture of `space` for constraints and reports. NB201: FLOPs and
 * parameters of the benchmark network with the dataset's class count. MBV3: OFA's MFLOPs/params
 * (224 px, 1000 classes) and, with a device, table latency (note10, i7). Spaces without a cost model in
 * this build report nothing (a constraint on them is then unsatisfiable, and says so).
 */
export function spaceMetrics(space: SearchSpace<any>, ctx: MetricsContext): (arch: any) => ArchMetrics {
  if (ctx.device !== undefined && space.id === 'nb201') {
    throw new ConfigError('device', `no latency tables for the '${space.id}' search space`, 'latency constraints exist for mbv3 only; use --max-flops for nb201');
  }
  if (space.id === 'nb201') {
    return (arch: Nb201Arch) => {
      const c = nb201Cost(arch, { numClasses: ctx.numClasses, ...(ctx.inputSize ? { inputSize: ctx.inputSize } : {}) });
      return { mflops: c.flops, mparams: c.params };
    };
  }
  if (space.id === 'mbv3') {
    // MetaD2A's --bound counts MFLOPs of the ImageNet-shaped subnet (224 px unless the config says, 1000 classes).
    let latency: ((cfg: OfaConfig) => number) | null = null;
    if (ctx.device !== undefined) {
      const d = ctx.device.toLowerCase();
      if (d === 'note10') {
        const t = Note10LatencyTable.load();
        latency = (cfg) => t.predict(cfg);
      } else if (d === 'i7' || d === 'i7-8700k') {
        const t = I7LatencyTable.load();
        latency = (cfg) => t.predict(cfg);
      } else throw new ConfigError('device', `no latency table for '${ctx.device}'`, 'use note10 or i7');
    }
    return (cfg: OfaConfig) => {
      const c = ofaCost(cfg);
      return { mflops: c.mflops, mparams: c.mparams, ...(latency ? { latencyMs: latency(cfg) } : {}) };
    };
  }
  return () => ({});
}

/** Predictor score (normalised target scale ((acc - mean) / std) / 100) back to accuracy in percent. */
export function scoreToAccuracy(manifest: Pick<SearchModelManifest, 'predictor'>, score: number): number {
  return score * 100 * manifest.predictor.targetStd + manifest.predictor.targetMean;
}

export interface ModelSearchOptions {
  model: SearchModel;
  sampleDataset: DatasetSampler;
  numClasses: number;
  numCandidates: number;
  topK: number;
  seed: number;
  constraints?: Constraints;
  device?: string;
  /** Override the manifest's scoreRepeats. */
  scoreRepeats?: number;
  /** Count isomorphic architectures (same network, other string) as duplicates; the original dedupes by string. */
  dedupeIsomorphic?: boolean;
  onProgress?: (p: { sampled: number; unique: number; target: number }) => void;
}

/** The meta-test search with a loaded model: its generator proposes, its predictor ranks. */
export function searchWithModel(o: ModelSearchOptions): SearchResult<any> {
  if (o.constraints?.maxLatencyMs !== undefined && o.device === undefined) throw new ConfigError('device', 'a latency bound needs a device', 'pass --device');
  return runSearch({
    space: o.model.space,
    generator: new GeneratorCandidates(o.model.generator),
    scorer: modelScorer(o.model),
    sampleDataset: o.sampleDataset,
    numCandidates: o.numCandidates,
    topK: o.topK,
    seed: o.seed,
    scoreRepeats: o.scoreRepeats ?? o.model.manifest.scoreRepeats,
    dedupeIsomorphic: o.dedupeIsomorphic,
    metrics: spaceMetrics(o.model.space, { numClasses: o.numClasses, device: o.device }),
    constraints: o.constraints,
    onProgress: o.onProgress,
  });
}
