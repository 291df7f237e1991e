import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, InputError, Rng, kendall, pearson, spearman, writeFileAtomic, type SearchSpace } from '@metad2a/core';
import { loadCheckpoint, saveCheckpoint, type StateDict } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { nb201Space } from '@metad2a/search-space-201';
import { mbv3Space } from '@metad2a/search-space-mbv3';
import { RESUMABLE_CHANGES, firstDifference, type MetaTrainConfig, type ModelKind } from './config.js';
import { FeatureSampler, assembleBatch, loadMetaData, type Example, type MetaData } from './data.js';
import { ReduceLROnPlateau, type PlateauState } from './plateau.js';
import { TorchAdam } from './adam.js';

/** One line of the JSONL log per finished epoch. */
export interface EpochLog {
  type: 'epoch';
  epoch: number;
  /** Learning rate used during this epoch. */
  lr: number;
  /** Epoch mean of the per-batch loss divided by the batch size (what the scheduler steps on). */
  trainLoss: number;
  /** Validation loss per task (summed loss / number of validation tasks), eval mode. */
  validLoss: number;
  trainRecon?: number;
  trainKld?: number;
  validRecon?: number;
  validKld?: number;
  pearson?: number;
  spearman?: number;
  kendall?: number;
  /** Predictor: this epoch set a new best validation correlation (ckpt_max_corr was written). */
  best?: boolean;
  seconds: number;
  time: string;
}

export interface StartInfo {
  config: MetaTrainConfig;
  resumedFrom: number | null;
  train: number;
  valid: number;
  records: number;
  parameters: number;
  stats: { mean: number; std: number } | null;
  extractor: string;
  featureDim: number;
  batchesPerEpoch: number;
}

export interface MetaTrainHooks {
  onStart?(info: StartInfo): void;
  onBatch?(p: { epoch: number; batch: number; batches: number; loss: number }): void;
  onEpoch?(log: EpochLog): void;
  onCheckpoint?(p: { kind: 'periodic' | 'last' | 'best'; file: string; epoch: number }): void;
  onWarning?(message: string): void;
}

export interface MetaTrainOptions {
  /** Continue the run in config.out from its last checkpoint (fresh start if it has none). */
  resume?: boolean;
  /** Search spaces records may use (default: NB201 and OFA MobileNetV3). */
  spaces?: readonly SearchSpace<any>[];
  hooks?: MetaTrainHooks;
  /** Stop cleanly after the epoch in progress (a checkpoint is written first). */
  signal?: AbortSignal;
}

export interface MetaTrainResult {
  config: MetaTrainConfig;
  runDir: string;
  logFile: string;
  /** Every epoch of the run so far, resumed parts included. */
  history: EpochLog[];
  lastCheckpoint: string | null;
  bestCheckpoint: string | null;
  checkpoints: string[];
  /** Epochs run by this call. */
  epochsRun: number;
  stopped: boolean;
}

export const RUN_FORMAT = 'metad2a-meta-train';
/** Search spaces a database may use (records name theirs; `searchSpace` picks one). */
export const DEFAULT_SPACES: readonly SearchSpace<any>[] = [nb201Space, mbv3Space];
export const LAST_CHECKPOINT = 'last.json';
export const BEST_CHECKPOINT = 'ckpt_max_corr.json';
export const LOG_FILE = 'log.jsonl';
export const RUN_CONFIG = 'config.json';
export const periodicCheckpoint = (epoch: number) => `ckpt_${epoch}.json`;

/** What a checkpoint's meta holds, enough to rebuild the model without the run's config file. */
export type ModelMeta = {
  kind: typeof RUN_FORMAT;
  model: ModelKind;
  config: { searchSpace: string; hs: number; nz: number; numSample: number; featureDim: number; numHeads: number; extractor: string };
  /** Predictor: train-split accuracy statistics, to turn predictions back into accuracies. */
  targetStats: { mean: number; std: number } | null;
  epoch: number;
};

type ResumeMeta = ModelMeta & {
  scheduler: PlateauState;
  best: { value: number; epoch: number } | null;
  fingerprint: string;
  runConfig: MetaTrainConfig;
  optimizerState: string[];
};


function buildModel(config: MetaTrainConfig, data: MetaData): Generator | Predictor {
  const options = { hs: config.hs, nz: config.nz, numSample: config.numSample, featureDim: data.featureDim, numHeads: config.numHeads, rng: new Rng(`${config.seed}:init`) };
  return config.model === 'generator' ? new Generator(data.space, options) : new Predictor(data.space, options);
}

/** Summed training loss of a batch (the gradient's objective) plus the parts worth logging. */
function batchLoss(model: Generator | Predictor, b: ReturnType<typeof assembleBatch>, config: MetaTrainConfig, rng: Rng, train: boolean): { loss: tf.Scalar; recon?: tf.Scalar; kld?: tf.Scalar } {
  if (model instanceof Generator) {
    const l = model.loss(b.X, b.dags, { beta: config.beta, train, rng, classCounts: b.classCounts });
    return { loss: l.loss, recon: l.recon, kld: l.kld };
  }
  return { loss: model.loss(b.X, b.dags, b.targets, b.classCounts) };
}

function readLog(logFile: string, upTo: number): { history: EpochLog[]; keep: string[] } {
  if (!fs.existsSync(logFile)) return { history: [], keep: [] };
  const lines = fs.readFileSync(logFile, 'utf8').split('\n');
  const history: EpochLog[] = [];
  const keep: string[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let o: { type?: string; epoch?: number };
    try {
      o = JSON.parse(line);
    } catch {
      // Only a torn last line (a kill mid-write) is expected; the checkpoint decides where we continue.
      if (lines.slice(i + 1).some((l) => l.trim())) throw new InputError({ file: logFile, line: i + 1 }, 'not valid JSON');
      return;
    }
    if (o.type === 'epoch') {
      if (typeof o.epoch !== 'number' || o.epoch > upTo) return;
      history.push(o as EpochLog);
    }
    keep.push(line);
  });
  return { history, keep };
}

export const RUN_LOCK = 'run.lock';

/**
 * One trainer per run directory: `run.lock` holds the owner's pid and host. A lock whose process is
 * gone (killed) is taken over; a live one is an error, so a --resume cannot race a run still going.
 * Returns the release function (which also removes a run directory this call created and left empty).
 */
function acquireRunLock(runDir: string): () => void {
  const created = !fs.existsSync(runDir);
  fs.mkdirSync(runDir, { recursive: true });
  const file = path.join(runDir, RUN_LOCK);
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), time: new Date().toISOString() });
  const release = () => {
    fs.rmSync(file, { force: true });
    if (created && fs.readdirSync(runDir).length === 0) fs.rmdirSync(runDir);
  };
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    let owner: { pid?: number; host?: string } = {};
    try {
      owner = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      /* torn or empty lock: stale */
    }
    if (typeof owner.pid === 'number' && owner.host !== os.hostname()) {
      throw new ConfigError('out', `${runDir} is locked by process ${owner.pid} on ${owner.host}`, `if that run is gone, delete ${file}`);
    }
    let alive = false;
    if (typeof owner.pid === 'number') {
      try {
        process.kill(owner.pid, 0);
        alive = true;
      } catch (e) {
        alive = (e as NodeJS.ErrnoException).code === 'EPERM';
      }
    }
    if (alive) throw new ConfigError('out', `${runDir} is in use by process ${owner.pid}`, 'wait for it to finish, or stop it (Ctrl-C) before resuming');
    fs.rmSync(file, { force: true });
  }
}

function appendLine(file: string, obj: unknown): void {
  const fd = fs.openSync(file, 'a');
  try {
    fs.writeSync(fd, `${JSON.stringify(obj)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function modelMeta(config: MetaTrainConfig, data: MetaData, epoch: number): ModelMeta {
  return {
    kind: RUN_FORMAT,
    model: config.model,
    config: { searchSpace: data.space.id, hs: config.hs, nz: config.nz, numSample: config.numSample, featureDim: data.featureDim, numHeads: config.numHeads, extractor: data.extractor },
    targetStats: data.stats ? { mean: data.stats.mean, std: data.stats.std } : null,
    epoch,
  };
}

const correlationFns = { pearson, spearman, kendall };

/**
 * Meta-train the generator or the predictor as the original does (spec section 4): Adam, a
 * ReduceLROnPlateau stepped on the epoch-mean training loss, validation every epoch, ckpt_<epoch>
 * every checkpointEvery epochs, the best-correlation predictor in ckpt_max_corr, and a resumable
 * `last` checkpoint (model, Adam moments, scheduler, epoch). Randomness is derived from (seed,
 * epoch), so a resumed run continues exactly like an uninterrupted one.
 */
export async function metaTrain(config: MetaTrainConfig, options: MetaTrainOptions = {}): Promise<MetaTrainResult> {
  const release = acquireRunLock(path.resolve(config.out));
  try {
    return await trainLocked(config, options);
  } finally {
    release();
  }
}

async function trainLocked(config: MetaTrainConfig, options: MetaTrainOptions): Promise<MetaTrainResult> {
  const hooks = options.hooks ?? {};
  const runDir = path.resolve(config.out);
  const logFile = path.join(runDir, LOG_FILE);
  const lastFile = path.join(runDir, LAST_CHECKPOINT);
  const configFile = path.join(runDir, RUN_CONFIG);
  let resumeFrom: { state: StateDict; meta: ResumeMeta } | null = null;
  if (options.resume && fs.existsSync(lastFile)) {
    const { state, meta } = loadCheckpoint(lastFile);
    const m = meta as unknown as ResumeMeta;
    if (m.kind !== RUN_FORMAT || !m.runConfig || !m.scheduler) throw new InputError({ file: lastFile, field: 'meta' }, 'not a meta-training resume checkpoint');
    if (m.model !== config.model) throw new ConfigError('model', `the run in ${runDir} trains the ${m.model}, not the ${config.model}`);
    const diff = firstDifference(m.runConfig, config, RESUMABLE_CHANGES as string[]);
    if (diff) throw new ConfigError(diff, `differs from the run being resumed (${configFile})`, `only ${RESUMABLE_CHANGES.join(', ')} may change when resuming; start a new --out otherwise`);
    if (m.epoch >= config.epochs) throw new ConfigError('epochs', `the run already finished epoch ${m.epoch} of ${config.epochs}`, 'raise --epochs to train longer');
    resumeFrom = { state, meta: m };
  } else if (!options.resume && (fs.existsSync(configFile) || fs.existsSync(lastFile))) {
    throw new ConfigError('out', `${runDir} already holds a run`, 'pass --resume to continue it, or choose another --out');
  }

  const data = await loadMetaData(config, options.spaces ?? DEFAULT_SPACES, hooks.onWarning);
  const model = buildModel(config, data);
  // PyTorch's Adam: betas 0.9/0.999, eps 1e-8 (tfjs' default is 1e-7), no weight decay
  const optimizer = new TorchAdam(config.lr, 0.9, 0.999, 1e-8);
  const scheduler = new ReduceLROnPlateau(config.lr, { mode: 'min', ...config.scheduler });
  const sampler = new FeatureSampler(data.stores, config.featureCacheMB * 2 ** 20);
  try {
    const params = new Map(model.namedParameters().filter(([, v]) => v.trainable));
    const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
    let startEpoch = 0;
    let best: { value: number; epoch: number } | null = null;
    let history: EpochLog[] = [];
    fs.mkdirSync(runDir, { recursive: true });
    if (resumeFrom) {
      const m = resumeFrom.meta;
      if (m.fingerprint !== data.fingerprint) {
        throw new InputError({ file: config.database }, `the database or feature stores changed since the run in ${runDir} started`, 'resume needs the same data; start a new run');
      }
      model.loadStateDict(new Map([...resumeFrom.state].filter(([n]) => !n.startsWith('optimizer.'))), { strict: true, source: lastFile });
      optimizer.loadState(resumeFrom.state, params, lastFile);
      scheduler.loadState(m.scheduler);
      best = m.best;
      startEpoch = m.epoch;
      // Epochs logged after the checkpoint are redone: rewrite the log without them.
      const log = readLog(logFile, startEpoch);
      history = log.history;
      writeFileAtomic(logFile, log.keep.map((l) => `${l}\n`).join(''));
      appendLine(logFile, { type: 'resume', epoch: startEpoch, time: new Date().toISOString() });
    } else {
      writeFileAtomic(configFile, `${JSON.stringify({ format: RUN_FORMAT, config, data: { records: data.records, train: data.train.length, valid: data.valid.length, stats: data.stats, extractor: data.extractor, featureDim: data.featureDim, fingerprint: data.fingerprint } }, null, 2)}\n`);
      writeFileAtomic(logFile, '');
    }
    optimizer.lr = scheduler.lr;
    const batches = Math.ceil(data.train.length / config.batchSize);
    hooks.onStart?.({
      config,
      resumedFrom: resumeFrom ? startEpoch : null,
      train: data.train.length,
      valid: data.valid.length,
      records: data.records,
      parameters: model.numParameters(),
      stats: data.stats ? { mean: data.stats.mean, std: data.stats.std } : null,
      extractor: data.extractor,
      featureDim: data.featureDim,
      batchesPerEpoch: batches,
    });
    if (!resumeFrom) appendLine(logFile, { type: 'start', time: new Date().toISOString(), model: config.model, train: data.train.length, valid: data.valid.length });

    const checkpoints: string[] = [];
    let lastCheckpoint: string | null = resumeFrom ? lastFile : null;
    let bestCheckpoint: string | null = best && fs.existsSync(path.join(runDir, BEST_CHECKPOINT)) ? path.join(runDir, BEST_CHECKPOINT) : null;
    let epochsRun = 0;
    let stopped = false;

    for (let epoch = startEpoch + 1; epoch <= config.epochs; epoch++) {
      const t0 = Date.now();
      const lr = scheduler.lr;
      const rng = new Rng(`${config.seed}:epoch:${epoch}`);
      const order = rng.permutation(data.train.length);
      let lossSum = 0;
      let reconSum = 0;
      let kldSum = 0;
      for (let b = 0; b < batches; b++) {
        const items = order.slice(b * config.batchSize, (b + 1) * config.batchSize).map((i) => data.train[i]);
        const batch = assembleBatch(items, sampler, rng, config.numSample, data.featureDim);
        let parts: { recon?: tf.Scalar; kld?: tf.Scalar } = {};
        // Parameters the loss does not reach (modules the original defines but never calls) get no
        // gradient and are skipped by the optimizer, as PyTorch skips a None .grad.
        const { value, grads } = tf.variableGrads(() => {
          const l = batchLoss(model, batch, config, rng, true);
          parts = { recon: l.recon && tf.keep(l.recon), kld: l.kld && tf.keep(l.kld) };
          return l.loss;
        }, [...params.values()]);
        optimizer.step(params, new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v)!, g])));
        const loss = (await value.data())[0] / items.length;
        lossSum += loss;
        if (parts.recon) reconSum += (await parts.recon.data())[0] / items.length;
        if (parts.kld) kldSum += (await parts.kld.data())[0] / items.length;
        tf.dispose([value, ...Object.values(grads), batch.X, parts.recon, parts.kld].filter((t): t is tf.Tensor => Boolean(t)));
        hooks.onBatch?.({ epoch, batch: b + 1, batches, loss });
        // The step is synchronous work: yield once per batch so signals (Ctrl-C -> options.signal) and I/O get through.
        await new Promise((resolve) => setImmediate(resolve));
      }
      const trainLoss = lossSum / batches;
      const log: EpochLog = { type: 'epoch', epoch, lr, trainLoss, validLoss: NaN, seconds: 0, time: '' };
      if (config.model === 'generator') {
        log.trainRecon = reconSum / batches;
        log.trainKld = kldSum / batches;
      }
      Object.assign(log, await validate(model, data, config, sampler));
      scheduler.step(trainLoss);
      optimizer.lr = scheduler.lr;

      if (config.model === 'predictor') {
        const value = log[config.selectBy] as number;
        if (Number.isFinite(value) && (best === null || value > best.value)) {
          best = { value, epoch };
          log.best = true;
          const file = path.join(runDir, BEST_CHECKPOINT);
          saveCheckpoint(file, model, { ...modelMeta(config, data, epoch), selectBy: config.selectBy, [config.selectBy]: value });
          bestCheckpoint = file;
          hooks.onCheckpoint?.({ kind: 'best', file, epoch });
        }
      }
      log.seconds = (Date.now() - t0) / 1000;
      log.time = new Date().toISOString();
      appendLine(logFile, log);
      history.push(log);
      hooks.onEpoch?.(log);
      epochsRun++;

      if (epoch % config.checkpointEvery === 0) {
        const file = path.join(runDir, periodicCheckpoint(epoch));
        saveCheckpoint(file, model, modelMeta(config, data, epoch));
        checkpoints.push(file);
        hooks.onCheckpoint?.({ kind: 'periodic', file, epoch });
      }
      stopped = Boolean(options.signal?.aborted) && epoch < config.epochs;
      if (epoch % config.lastEvery === 0 || epoch === config.epochs || stopped) {
        const opt = await optimizer.stateDict();
        const meta: ResumeMeta = { ...modelMeta(config, data, epoch), scheduler: scheduler.state(), best, fingerprint: data.fingerprint, runConfig: config, optimizerState: [...opt.keys()] };
        saveCheckpoint(lastFile, new Map([...model.stateDict(), ...opt]), meta as unknown as Record<string, unknown>);
        lastCheckpoint = lastFile;
        hooks.onCheckpoint?.({ kind: 'last', file: lastFile, epoch });
      }
      if (stopped) break;
    }
    if (!stopped) appendLine(logFile, { type: 'end', epoch: config.epochs, time: new Date().toISOString(), best });
    return { config, runDir, logFile, history, lastCheckpoint, bestCheckpoint, checkpoints, epochsRun, stopped };
  } finally {
    model.dispose();
    optimizer.dispose();
    for (const s of data.stores.values()) s.close();
  }
}

/** Eval-mode loss (z = mu for the generator) over the validation split; the predictor adds correlations. */
async function validate(model: Generator | Predictor, data: MetaData, config: MetaTrainConfig, sampler: FeatureSampler): Promise<Partial<EpochLog>> {
  // The same feature draw every epoch, so validation curves compare epochs, not samples.
  const rng = new Rng(`${config.seed}:valid`);
  let loss = 0;
  let recon = 0;
  let kld = 0;
  const preds: number[] = [];
  for (let i = 0; i < data.valid.length; i += config.batchSize) {
    const items: Example[] = data.valid.slice(i, i + config.batchSize);
    const batch = assembleBatch(items, sampler, rng, config.numSample, data.featureDim);
    try {
      if (model instanceof Generator) {
        const l = model.loss(batch.X, batch.dags, { beta: config.beta, train: false, classCounts: batch.classCounts });
        loss += (await l.loss.data())[0];
        recon += (await l.recon.data())[0];
        kld += (await l.kld.data())[0];
        tf.dispose([l.loss, l.recon, l.kld]);
      } else {
        const y = model.predict(batch.X, batch.dags, batch.classCounts);
        const p = await y.data();
        y.dispose();
        items.forEach((e, k) => {
          preds.push(p[k]);
          loss += (p[k] - e.target) ** 2;
        });
      }
    } finally {
      batch.X.dispose();
    }
  }
  const n = data.valid.length;
  if (model instanceof Generator) return { validLoss: loss / n, validRecon: recon / n, validKld: kld / n };
  // Against the targets: an affine map of the accuracies with global normalisation (same correlations
  // as against accuracies), task-relative accuracies with targetNorm 'task'.
  const targets = data.valid.map((e) => e.target);
  const corr = (f: (a: number[], b: number[]) => number) => (n >= 2 ? f(preds, targets) : NaN);
  return { validLoss: loss / n, pearson: corr(correlationFns.pearson), spearman: corr(correlationFns.spearman), kendall: corr(correlationFns.kendall) };
}
