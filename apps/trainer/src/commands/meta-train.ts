import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, writeFileAtomic } from '@metad2a/core';
import { ProgressBar, formatTable, runCli } from '@metad2a/cli-kit';
import { initBackend } from '@metad2a/nn';
import { buildConfig, metaTrain, type EpochLog, type MetaTrainResult } from '@metad2a/meta-training';
import { linePlot, stackPlots } from '@metad2a/plots';

interface MetaTrainArgs {
  config?: string;
  set?: string[];
  model?: string;
  database?: string;
  features?: string[];
  extractor?: string;
  searchSpace?: string;
  out?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  numSample?: number;
  beta?: number;
  hs?: number;
  nz?: number;
  checkpointEvery?: number;
  valid?: number;
  resume?: boolean;
  backend?: string;
}

/** `--features cifar10=stores/c10.json` (repeatable) -> { cifar10: 'stores/c10.json' }. */
function parseFeatures(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new ConfigError('features', `'${item}' is not <dataset>=<feature store>`, 'e.g. --features cifar10=stores/cifar10.json');
    out[item.slice(0, eq)] = path.resolve(item.slice(eq + 1));
  }
  return out;
}

const fmtNum = (x: number | undefined) => (x === undefined ? '' : Number.isFinite(x) ? (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4)) : String(x));

function epochLine(e: EpochLog, total: number): string {
  const parts = [`epoch ${e.epoch}/${total}`, `lr ${e.lr.toExponential(1)}`, `train ${fmtNum(e.trainLoss)}`, `valid ${fmtNum(e.validLoss)}`];
  if (e.pearson !== undefined) parts.push(`pearson ${fmtNum(e.pearson)}`, `spearman ${fmtNum(e.spearman)}`, `kendall ${fmtNum(e.kendall)}`);
  if (e.best) parts.push('(best)');
  parts.push(`${e.seconds.toFixed(1)}s`);
  return parts.join('  ');
}

/** Loss curves (log scale when positive) and, for the predictor, validation correlations, as one SVG. */
export function runPlot(history: readonly EpochLog[], model: string): string {
  const x = history.map((e) => e.epoch);
  const losses = history.flatMap((e) => [e.trainLoss, e.validLoss]).filter(Number.isFinite);
  const loss = linePlot({
    title: `${model} meta-training: loss per task`,
    xLabel: 'epoch',
    yLabel: 'loss',
    logY: losses.length > 0 && losses.every((v) => v > 0),
    series: [
      { name: 'train', x, y: history.map((e) => e.trainLoss) },
      { name: 'validation', x, y: history.map((e) => e.validLoss), dashed: true },
    ],
  });
  if (model !== 'predictor') return loss;
  const corr = linePlot({
    title: 'validation correlation (predicted vs true accuracy)',
    xLabel: 'epoch',
    yLabel: 'correlation',
    series: (['pearson', 'spearman', 'kendall'] as const).map((k) => ({ name: k, x, y: history.map((e) => e[k] ?? NaN) })),
  });
  return stackPlots([loss, corr]);
}

export const metaTrainCommand: CommandModule<object, MetaTrainArgs> = {
  command: 'meta-train',
  describe: 'meta-train the generator or the predictor on a meta-training database and feature stores',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'YAML or JSON config file (command-line options override it)' })
      .option('set', { type: 'string', array: true, describe: 'any config key: --set scheduler.patience=5 --set selection.rule=top-k (repeatable)' })
      .option('model', { type: 'string', choices: ['generator', 'predictor'], describe: 'which model to train' })
      .option('database', { type: 'string', describe: 'meta-training database (CSV or JSONL)' })
      .option('features', { type: 'string', array: true, describe: 'feature store of a source dataset: <dataset>=<store manifest> (repeatable)' })
      .option('extractor', { type: 'string', describe: "extractor id the feature stores must carry ('*': any)" })
      .option('search-space', { type: 'string', describe: 'search space of the records to train on: nb201 (default) or mbv3' })
      .option('out', { type: 'string', describe: 'run directory (checkpoints, log.jsonl, curves.svg), e.g. runs/<name>' })
      .option('epochs', { type: 'number', describe: 'epochs (default 400)' })
      .option('batch-size', { type: 'number', describe: 'tasks per batch (default 32)' })
      .option('lr', { type: 'number', describe: 'Adam learning rate (default 1e-4)' })
      .option('seed', { type: 'number', describe: 'seed of initialisation, shuffling and sampling (default 333)' })
      .option('num-sample', { type: 'number', describe: 'feature vectors per class (default 20)' })
      .option('beta', { type: 'number', describe: 'KL weight of the generator loss (default 0.005)' })
      .option('hs', { type: 'number', describe: 'hidden size (default 56 generator, 512 predictor)' })
      .option('nz', { type: 'number', describe: 'latent / embedding size (default 56)' })
      .option('checkpoint-every', { type: 'number', describe: 'keep ckpt_<epoch> every N epochs (default 20)' })
      .option('valid', { type: 'number', describe: 'validation records: a count (default 400) or a fraction' })
      .option('resume', { type: 'boolean', describe: 'continue the run in --out from its last checkpoint' })
      .option('backend', { type: 'string', describe: 'tensor backend: auto, tensorflow-gpu, tensorflow, wasm, cpu' })
      .example('$0 meta-train --config meta-train.yaml --model predictor --out runs/pred1', '')
      .example('$0 meta-train --config meta-train.yaml --out runs/pred1 --resume', 'continue after a kill'),
  // yargs would print the usage and exit 1 on a rejected handler; runCli prints our errors as one line, exit 2.
  handler: (argv) => runCli(() => metaTrainMain(argv)),
};

async function metaTrainMain(argv: MetaTrainArgs): Promise<void> {
  const config = buildConfig({
    file: argv.config,
    set: argv.set,
    overrides: {
      model: argv.model,
      database: argv.database === undefined ? undefined : path.resolve(argv.database),
      features: parseFeatures(argv.features),
      extractor: argv.extractor,
      searchSpace: argv.searchSpace,
      out: argv.out === undefined ? undefined : path.resolve(argv.out),
      epochs: argv.epochs,
      batchSize: argv.batchSize,
      lr: argv.lr,
      seed: argv.seed,
      numSample: argv.numSample,
      beta: argv.beta,
      hs: argv.hs,
      nz: argv.nz,
      checkpointEvery: argv.checkpointEvery,
      valid: argv.valid,
    },
  });
  const backend = await initBackend({ force: argv.backend, quiet: true });
  const err = process.stderr;
  const out = process.stdout;
  // First Ctrl-C: finish the epoch, write the resume checkpoint, stop. Second: exit at once.
  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) process.exit(130);
    err.write('\nstopping after this epoch (Ctrl-C again to quit now; --resume continues)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  let bar: ProgressBar | null = null;
  let result: MetaTrainResult;
  try {
    result = await metaTrain(config, {
      resume: argv.resume,
      signal: stop.signal,
      hooks: {
        onStart: (s) => {
          out.write(
            `${formatTable(
              ['meta-train', ''],
              [
                ['model', `${config.model} (hs ${config.hs}, nz ${config.nz}, ${s.parameters} parameters)`],
                ['data', `${s.records} records -> ${s.train} train / ${s.valid} validation ${config.model === 'generator' ? `pairs (selection: ${config.selection.rule})` : 'records'}`],
                ['features', `${s.extractor}, ${s.featureDim} dims, ${config.numSample} per class`],
                ...(s.stats ? [['targets', `((acc - ${s.stats.mean.toFixed(4)}) / ${s.stats.std.toFixed(4)}) / 100`]] : []),
                ['schedule', `${config.epochs} epochs x ${s.batchesPerEpoch} batches of ${config.batchSize}, Adam lr ${config.lr}, plateau factor ${config.scheduler.factor} patience ${config.scheduler.patience}`],
                ['backend', backend.name + (backend.blas ? ' + OpenBLAS' : '')],
                ['run', `${config.out}${s.resumedFrom !== null ? ` (resuming after epoch ${s.resumedFrom})` : ''}`],
              ],
            )}\n`,
          );
          const remaining = config.epochs - (s.resumedFrom ?? 0);
          bar = new ProgressBar('meta-train', remaining * s.batchesPerEpoch, err);
        },
        onBatch: (p) => bar?.tick(1, `epoch ${p.epoch} loss ${fmtNum(p.loss)}`),
        onEpoch: (e) => {
          if (err.isTTY) err.write('\r\x1b[K');
          out.write(`${epochLine(e, config.epochs)}\n`);
        },
        onWarning: (m) => err.write(`warning: ${m}\n`),
      },
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
  const plot = path.join(result.runDir, 'curves.svg');
  if (result.history.length > 0) writeFileAtomic(plot, runPlot(result.history, config.model));
  out.write(`${result.stopped ? 'stopped' : 'done'}: ${result.history.length} epochs in ${result.runDir}\n`);
  out.write(`  log          ${result.logFile}\n`);
  if (result.history.length > 0) out.write(`  plot         ${plot}\n`);
  if (result.lastCheckpoint) out.write(`  last         ${result.lastCheckpoint}${result.stopped ? '  (continue with --resume)' : ''}\n`);
  if (result.bestCheckpoint) out.write(`  best         ${result.bestCheckpoint}\n`);
  for (const c of result.checkpoints) out.write(`  checkpoint   ${c}\n`);
}
