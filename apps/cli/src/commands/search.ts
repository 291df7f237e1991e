import type { Argv, CommandModule } from 'yargs';
import { ConfigError, kendall, spearman } from '@metad2a/core';
import { formatTable, ProgressBar } from '@metad2a/cli-kit';
import { scoreToAccuracy, searchWithModel, type Constraints, type RankedCandidate } from '@metad2a/search';
import { benchmarkOptions, loadModelAndFeatures, modelOptions, openBenchmark, r2, writeJson, type BenchmarkArgs, type ModelArgs } from '../common.js';
import { VERSION } from '../version.js';

interface SearchArgs extends ModelArgs, BenchmarkArgs {
  numGen: number;
  topK: number;
  maxFlops?: number;
  maxParams?: number;
  maxLatency?: number;
  device?: string;
  scoreRepeats?: number;
  dedupe: 'string' | 'isomorphic';
  out: string;
  quiet: boolean;
}

export interface CandidateJson {
  rank: number;
  arch: string;
  score: number;
  predictedAccuracy: number;
  mflops?: number;
  mparams?: number;
  latencyMs?: number;
  trueAccuracy?: number;
}

export interface SearchJson {
  command: 'search';
  version: string;
  model: { dir: string; name: string; space: string; extractor: string };
  dataset: { spec: string; kind: string; store: string; encoded: boolean; classes: string[]; counts: number[] };
  options: { numGen: number; topK: number; seed: number; scoreRepeats: number; dedupe: 'string' | 'isomorphic'; constraints: Constraints; device?: string };
  counts: { sampled: number; invalid: number; duplicate: number; unique: number; satisfyingConstraints: number };
  timings: { backendSeconds: number; loadModelSeconds: number; featuresSeconds: number; generateSeconds: number; rankSeconds: number; searchSeconds: number; totalSeconds: number };
  benchmark?: { file: string; dataset: string; spearman: number; kendall: number; bestInCandidates: number };
  top: CandidateJson[];
  candidates: CandidateJson[];
}

const fixed = (v: number | undefined, digits: number) => (v === undefined ? '-' : v.toFixed(digits));

/** Right-align the given columns (formatTable left-aligns strings). */
export function alignColumns(headers: string[], rows: string[][], right: number[]): string[][] {
  const widths = right.map((c) => Math.max((headers[c] ?? '').length, ...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((v, c) => (right.includes(c) ? v.padStart(widths[right.indexOf(c)]) : v)));
}

export const searchCommand: CommandModule<object, SearchArgs> = {
  command: ['search', '$0'],
  describe: 'generate architectures for a dataset, rank them with the predictor, print the top-k (the default command)',
  builder: (y: Argv) =>
    benchmarkOptions(modelOptions(y))
      .option('num-gen', { alias: 'n', type: 'number', default: 500, describe: 'unique valid candidates to generate' })
      .option('top-k', { alias: 'k', type: 'number', default: 5, describe: 'how many ranked architectures to print' })
      .option('max-flops', { type: 'number', describe: 'keep only candidates with at most this many MFLOPs' })
      .option('max-params', { type: 'number', describe: 'keep only candidates with at most this many million parameters' })
      .option('max-latency', { type: 'number', describe: 'keep only candidates with at most this latency in ms on --device (mbv3)' })
      .option('device', { type: 'string', describe: 'latency table for --max-latency (mbv3): note10 or i7' })
      .option('score-repeats', { type: 'number', describe: "dataset samples averaged per prediction (default: the model's, 10 for NB201)" })
      .option('dedupe', {
        type: 'string',
        choices: ['string', 'isomorphic'],
        default: 'string',
        describe: "which candidates count as duplicates: same string (the original's rule) or same network up to isomorphism",
      })
      .option('out', { alias: 'o', type: 'string', default: 'metad2a-search.json', describe: 'JSON result file' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress output' })
      .example('$0 search', 'search on the default dataset with the shipped model')
      .example('$0 search -d ./my-images --num-gen 100 --max-flops 100', 'search for an image folder under a FLOPs bound') as unknown as Argv<SearchArgs>,
  handler: async (a) => {
    for (const [k, v] of [['num-gen', a.numGen], ['top-k', a.topK]] as const) if (!Number.isInteger(v) || v < 1) throw new ConfigError(k, `${v}`, 'a positive integer');
    const t0 = performance.now();
    const loaded = await loadModelAndFeatures(a);
    const { model, features } = loaded;
    try {
      const bench = a.benchmark !== undefined ? await openBenchmark(a.benchmark || undefined, a.benchmarkDataset, model.manifest.space) : null;
      const constraints: Constraints = {};
      if (a.maxFlops !== undefined) constraints.maxMflops = a.maxFlops;
      if (a.maxParams !== undefined) constraints.maxMparams = a.maxParams;
      if (a.maxLatency !== undefined) constraints.maxLatencyMs = a.maxLatency;
      const hasConstraints = Object.keys(constraints).length > 0;
      const bar = a.quiet ? null : new ProgressBar('generating', a.numGen);
      const res = searchWithModel({
        model,
        sampleDataset: loaded.sampler,
        numClasses: features.store.classes.length,
        numCandidates: a.numGen,
        topK: a.topK,
        seed: a.seed,
        constraints: hasConstraints ? constraints : undefined,
        device: a.device,
        scoreRepeats: a.scoreRepeats,
        dedupeIsomorphic: a.dedupe === 'isomorphic',
        onProgress: (p) => bar?.update(p.unique),
      });
      const toJson = (c: RankedCandidate<unknown>): CandidateJson => ({
        rank: c.rank,
        arch: c.text,
        score: c.score,
        predictedAccuracy: r2(scoreToAccuracy(model.manifest, c.score)),
        ...c.metrics,
        ...(bench ? { trueAccuracy: bench.accuracy(c.text) } : {}),
      });
      const candidates = res.all.map(toJson);
      const top = res.ranked.map(toJson);
      const t1 = performance.now();
      const out: SearchJson = {
        command: 'search',
        version: VERSION,
        model: { dir: model.dir, name: model.manifest.name, space: model.manifest.space, extractor: model.manifest.extractor },
        dataset: { spec: loaded.datasetSpec, kind: features.kind, store: features.storePath, encoded: features.encoded, classes: features.store.classes, counts: features.store.counts },
        options: { numGen: a.numGen, topK: a.topK, seed: a.seed, scoreRepeats: a.scoreRepeats ?? model.manifest.scoreRepeats, dedupe: a.dedupe, constraints, ...(a.device ? { device: a.device } : {}) },
        counts: res.counts,
        timings: {
          ...loaded.timings,
          generateSeconds: res.timings.generateSeconds,
          rankSeconds: res.timings.rankSeconds,
          searchSeconds: res.timings.totalSeconds,
          totalSeconds: (t1 - t0) / 1000,
        },
        ...(bench
          ? {
              benchmark: {
                file: bench.file,
                dataset: bench.dataset,
                spearman: spearman(res.all.map((c) => c.score), candidates.map((c) => c.trueAccuracy!)),
                kendall: kendall(res.all.map((c) => c.score), candidates.map((c) => c.trueAccuracy!)),
                bestInCandidates: Math.max(...candidates.map((c) => c.trueAccuracy!)),
              },
            }
          : {}),
        top,
        candidates,
      };
      const file = writeJson(a.out, out);
      const c = res.counts;
      const showLatency = top.some((t) => t.latencyMs !== undefined);
      const headers = ['rank', 'architecture', 'predicted acc %', 'MFLOPs', 'Mparams', ...(showLatency ? [`latency ms (${a.device})`] : []), ...(bench ? [`true acc % (${bench.dataset})`] : [])];
      const lines = [
        `model ${model.manifest.name} (${model.manifest.space}, features ${model.manifest.extractor}); dataset ${loaded.datasetSpec}: ${features.store.classes.length} classes, ${features.encoded ? 'features computed into' : 'features from'} ${features.storePath}`,
        `generated ${c.sampled} graphs: ${c.invalid} invalid, ${c.duplicate} duplicate, ${c.unique} unique valid` + (hasConstraints ? `; ${c.satisfyingConstraints} satisfy the constraints` : ''),
        '',
        formatTable(
          headers,
          alignColumns(
            headers,
            top.map((t) => [String(t.rank), t.arch, fixed(t.predictedAccuracy, 2), fixed(t.mflops, 2), fixed(t.mparams, 4), ...(showLatency ? [fixed(t.latencyMs, 2)] : []), ...(bench ? [fixed(t.trueAccuracy, 2)] : [])]),
            [0, 2, 3, 4, 5, 6],
          ),
        ),
        '',
        ...(out.benchmark ? [`predictor vs ${bench!.dataset} benchmark over the ${c.unique} candidates: Spearman ${out.benchmark.spearman.toFixed(3)}, Kendall ${out.benchmark.kendall.toFixed(3)}; best candidate ${out.benchmark.bestInCandidates.toFixed(2)}%`] : []),
        `time: features ${out.timings.featuresSeconds.toFixed(2)} s, generate ${out.timings.generateSeconds.toFixed(2)} s, rank ${out.timings.rankSeconds.toFixed(2)} s, total ${out.timings.totalSeconds.toFixed(2)} s`,
        `result: ${file}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      features.store.close();
      model.dispose();
    }
  },
};
