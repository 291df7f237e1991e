import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { InputError, kendall, spearman, writeFileAtomic } from '@metad2a/core';
import { paretoFront, paretoPlot, scatterPlot } from '@metad2a/plots';
import { benchmarkOptions, openBenchmark, readJson, type BenchmarkArgs } from '../common.js';
import type { CandidateJson, SearchJson } from './search.js';

interface PlotArgs extends BenchmarkArgs {
  from: string;
  outDir: string;
}

export const plotCommand: CommandModule<object, PlotArgs> = {
  command: 'plot',
  describe: 'SVG plots of a search result: accuracy-FLOPs Pareto front of the candidates, predicted vs true accuracy (with a table)',
  builder: (y: Argv) =>
    benchmarkOptions(y)
      .option('from', { type: 'string', default: 'metad2a-search.json', describe: 'search result .json' })
      .option('out-dir', { type: 'string', default: '.', describe: 'folder for the .svg files' })
      .example('$0 plot --from metad2a-search.json --benchmark', 'both plots, true accuracies from the default NB201 table') as unknown as Argv<PlotArgs>,
  handler: async (a) => {
    const res = readJson<SearchJson>(a.from, 'search result');
    if (res.command !== 'search' || !Array.isArray(res.candidates) || res.candidates.length === 0) throw new InputError({ file: a.from, field: 'candidates' }, 'not a search result with candidates', "run 'metad2a search' first");
    let cands: CandidateJson[] = res.candidates;
    let benchName = res.benchmark?.dataset;
    if (a.benchmark !== undefined) {
      const bench = await openBenchmark(a.benchmark || undefined, a.benchmarkDataset, res.model.space);
      cands = cands.map((c) => ({ ...c, trueAccuracy: bench.accuracy(c.arch) }));
      benchName = bench.dataset;
    }
    const hasTrue = cands.every((c) => typeof c.trueAccuracy === 'number');
    fs.mkdirSync(a.outDir, { recursive: true });
    const written: string[] = [];
    const withCost = cands.filter((c) => typeof c.mflops === 'number');
    if (withCost.length) {
      const acc = (c: CandidateJson) => (hasTrue ? c.trueAccuracy! : c.predictedAccuracy);
      const points = withCost.map((c) => ({ cost: c.mflops!, accuracy: acc(c), label: `#${c.rank} ${c.arch}` }));
      const front = paretoFront(points);
      const svg = paretoPlot({
        title: `${withCost.length} candidates: ${hasTrue ? `true ${benchName} accuracy` : 'predicted accuracy'} vs FLOPs (${front.length} on the Pareto front)`,
        xLabel: 'MFLOPs',
        yLabel: hasTrue ? `${benchName} test accuracy %` : 'predicted accuracy %',
        points,
      });
      const f = path.join(a.outDir, 'pareto.svg');
      writeFileAtomic(f, svg);
      written.push(`${f} (${front.length} Pareto-optimal of ${withCost.length})`);
    } else {
      process.stdout.write('no FLOPs in the result (this search space has no cost model here): no Pareto plot\n');
    }
    if (hasTrue) {
      const xs = cands.map((c) => c.predictedAccuracy);
      const ys = cands.map((c) => c.trueAccuracy!);
      const svg = scatterPlot({
        title: `predicted vs true ${benchName} accuracy`,
        xLabel: 'predicted accuracy %',
        yLabel: `${benchName} test accuracy %`,
        correlation: true,
        points: cands.map((c) => ({ x: c.predictedAccuracy, y: c.trueAccuracy!, label: `#${c.rank} ${c.arch}` })),
      });
      const f = path.join(a.outDir, 'predicted-vs-true.svg');
      writeFileAtomic(f, svg);
      written.push(`${f} (Spearman ${spearman(xs, ys).toFixed(3)}, Kendall ${kendall(xs, ys).toFixed(3)}, n ${cands.length})`);
    } else {
      process.stdout.write('no true accuracies: pass --benchmark [table] for the predicted-vs-true plot\n');
    }
    process.stdout.write(written.map((w) => `wrote ${w}`).join('\n') + (written.length ? '\n' : ''));
  },
};
