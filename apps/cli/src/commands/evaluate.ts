import type { Argv, CommandModule } from 'yargs';
import { ConfigError } from '@metad2a/core';
import { formatTable, ProgressBar } from '@metad2a/cli-kit';
import { evaluateProtocol, GeneratorCandidates, modelScorer, spaceMetrics, type Summary } from '@metad2a/search';
import { benchmarkOptions, loadModelAndFeatures, modelOptions, openBenchmark, parseNumberList, writeJson, type BenchmarkArgs, type ModelArgs } from '../common.js';
import { VERSION } from '../version.js';

interface EvaluateArgs extends ModelArgs, BenchmarkArgs {
  runs: number;
  numGen: number;
  lookups: string;
  scoreRepeats?: number;
  out: string;
  quiet: boolean;
}

const fmt = (s: Summary) => `${s.mean.toFixed(2)} ± ${s.ci95.toFixed(2)} (std ${s.std.toFixed(2)})`;

export const evaluateCommand: CommandModule<object, EvaluateArgs> = {
  command: 'evaluate',
  describe: 'the original protocols against a benchmark table: top-1 and best-of-top-k over R runs, vs random search and a FLOPs heuristic',
  builder: (y: Argv) =>
    benchmarkOptions(modelOptions(y))
      .option('runs', { alias: 'r', type: 'number', default: 10, describe: 'independent searches (seeds seed, seed+1, ...)' })
      .option('num-gen', { alias: 'n', type: 'number', default: 500, describe: 'unique valid candidates per run' })
      .option('lookups', { type: 'string', default: '1,30', describe: 'benchmark look-ups k for best-of-top-k (the original CIFAR protocol: 30 of 500)' })
      .option('score-repeats', { type: 'number', describe: "dataset samples averaged per prediction (default: the model's)" })
      .option('out', { alias: 'o', type: 'string', default: 'metad2a-evaluate.json', describe: 'JSON report file' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false })
      .example('$0 evaluate --benchmark --runs 10 --num-gen 500 --lookups 1,30', 'the CIFAR-10 protocol of the paper on the default dataset') as unknown as Argv<EvaluateArgs>,
  handler: async (a) => {
    if (!Number.isInteger(a.runs) || a.runs < 1) throw new ConfigError('runs', `${a.runs}`, 'a positive integer');
    if (!Number.isInteger(a.numGen) || a.numGen < 1) throw new ConfigError('num-gen', `${a.numGen}`, 'a positive integer');
    const lookups = parseNumberList(a.lookups, 'lookups');
    const t0 = performance.now();
    const loaded = await loadModelAndFeatures(a);
    const { model, features } = loaded;
    try {
      const bench = await openBenchmark(a.benchmark || undefined, a.benchmarkDataset, model.manifest.space);
      const numClasses = features.store.classes.length;
      const bar = a.quiet ? null : new ProgressBar('runs', a.runs);
      let done = 0;
      const rep = evaluateProtocol({
        space: model.space,
        generator: new GeneratorCandidates(model.generator),
        scorer: modelScorer(model),
        sampleDataset: loaded.sampler,
        numCandidates: a.numGen,
        scoreRepeats: a.scoreRepeats ?? model.manifest.scoreRepeats,
        runs: a.runs,
        seed: a.seed,
        lookups,
        trueAccuracy: (arch) => bench.accuracy(model.space.format(arch)),
        metrics: spaceMetrics(model.space, { numClasses }),
        onProgress: (p) => {
          if (p.unique === p.target) bar?.update(++done);
        },
      });
      const out = {
        command: 'evaluate',
        version: VERSION,
        model: { dir: model.dir, name: model.manifest.name, space: model.manifest.space },
        dataset: { spec: loaded.datasetSpec, store: features.storePath, classes: features.store.classes.length },
        benchmark: { file: bench.file, dataset: bench.dataset, query: 'test accuracy after 200 epochs' },
        protocol: { runs: a.runs, numGen: a.numGen, lookups, seed: a.seed, scoreRepeats: a.scoreRepeats ?? model.manifest.scoreRepeats },
        timings: { ...loaded.timings, totalSeconds: (performance.now() - t0) / 1000, searchSecondsMean: rep.runs.reduce((s, r) => s + r.searchSeconds, 0) / rep.runs.length },
        report: rep,
      };
      const file = writeJson(a.out, out);
      const rows: Array<Array<string | number>> = [['predictor top-1', 1, fmt(rep.top1)]];
      for (const k of lookups) {
        rows.push([`best of predictor top-${k}`, k, fmt(rep.bestOfTop[k])]);
        rows.push([`random search, ${k} archs`, k, fmt(rep.random[k])]);
        rows.push([`FLOPs heuristic top-${k}`, k, fmt(rep.flops[k])]);
      }
      const lines = [
        `${a.runs} runs x ${a.numGen} candidates on ${loaded.datasetSpec}; true accuracy: ${bench.dataset} test, 200 epochs (${bench.file})`,
        '',
        formatTable(['protocol', 'lookups', `accuracy % (mean ± 95% CI over ${a.runs} runs)`], rows),
        '',
        `rank correlation over each run's candidates: Spearman ${fmt(rep.spearman)}, Kendall ${fmt(rep.kendall)}`,
        ...(rep.optimum !== undefined ? [`best in the whole space: ${rep.optimum.toFixed(2)}%`] : []),
        `mean search time per run ${out.timings.searchSecondsMean.toFixed(2)} s; total ${out.timings.totalSeconds.toFixed(1)} s`,
        `report: ${file}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      features.store.close();
      model.dispose();
    }
  },
};
