import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Argv, CommandModule } from 'yargs';
import { MetaD2AError } from '@metad2a/core';
import { defaultCacheDir, parseExtractorId, MOBILENET_V1_URL } from '@metad2a/data-pipeline';
import { initBackend } from '@metad2a/nn';
import { defaultModelDir, MODEL_ENV, modelDefaultDataset, openSearchModel, SPACES } from '@metad2a/search';
import { packageVersion, VERSION } from '../version.js';

interface InfoArgs {
  checkpoint?: string;
  backend?: string;
  json: boolean;
}

export const infoCommand: CommandModule<object, InfoArgs> = {
  command: 'info',
  describe: 'backend, checkpoint, feature extractor and versions',
  builder: (y: Argv) =>
    y
      .option('checkpoint', { alias: 'c', type: 'string', describe: 'search model folder (default: the shipped model)' })
      .option('backend', { type: 'string', describe: 'tfjs backend to try: auto, tensorflow-gpu, tensorflow, wasm, cpu' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as unknown as Argv<InfoArgs>,
  handler: async (a) => {
    const b = await initBackend({ force: a.backend, quiet: true });
    let checkpoint: Record<string, unknown>;
    let predictors = 1;
    try {
      const m = openSearchModel(a.checkpoint);
      let defaultDataset: string | null = null;
      try {
        defaultDataset = modelDefaultDataset(m);
      } catch (e) {
        defaultDataset = `none (${(e as Error).message})`;
      }
      const { generator, predictor, extraPredictors, format: _f, version: _v, ...rest } = m.manifest;
      predictors = 1 + (extraPredictors?.length ?? 0);
      checkpoint = { dir: m.dir, ...rest, generator: { hs: generator.hs, nz: generator.nz }, predictor: { hs: predictor.hs, nz: predictor.nz, ...(predictors > 1 ? { ensembleOf: predictors } : {}) }, defaultDataset };
      m.dispose();
    } catch (e) {
      if (!(e instanceof MetaD2AError)) throw e;
      checkpoint = { dir: a.checkpoint ?? defaultModelDir(), error: e.message };
    }
    const extractorId = typeof checkpoint.extractor === 'string' ? checkpoint.extractor : null;
    const parsed = extractorId ? parseExtractorId(extractorId) : null;
    const cache = defaultCacheDir();
    const cachedModels = fs.existsSync(path.join(cache, 'models')) ? fs.readdirSync(path.join(cache, 'models')) : [];
    const info = {
      metad2a: VERSION,
      node: process.versions.node,
      platform: `${process.platform}-${process.arch}`,
      backend: {
        name: b.name,
        tfName: b.tfName,
        requested: b.requested,
        skipped: b.skipped,
        openblas: b.blas ? (b.blas.active ? { active: true, threads: b.blas.threads, config: b.blas.config } : { active: false, reason: b.blas.reason }) : null,
      },
      checkpoint,
      modelEnv: MODEL_ENV,
      extractor: {
        id: extractorId,
        images: parsed ? (parsed.model === 'mobilenet_v1_1.0' ? `embedded with MobileNet v1 1.0 at ${parsed.inputSize}px${parsed.cut ? `, cut ${parsed.cut}` : ''} (source ${MOBILENET_V1_URL}, cached in ${cache}/models)` : `not computable here: give features files made with ${extractorId}`) : null,
        cacheDir: cache,
        cachedModels,
      },
      searchSpaces: Object.keys(SPACES).filter((k) => SPACES[k] !== undefined),
      versions: {
        '@tensorflow/tfjs': tf.version.tfjs,
        '@tensorflow/tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
        yargs: packageVersion('yargs'),
      },
    };
    if (a.json) {
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      return;
    }
    const ck = checkpoint;
    const lines = [
      `metad2a ${info.metad2a} (node ${info.node}, ${info.platform})`,
      `backend: ${b.name}${b.blas ? (b.blas.active ? `, OpenBLAS kernels on (${b.blas.threads} threads)` : `, OpenBLAS kernels off: ${b.blas.reason}`) : ''}${b.skipped.length ? `; skipped ${b.skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}` : ''}`,
      ck.error
        ? `checkpoint: ${ck.error}`
        : `checkpoint: ${ck.dir}: '${ck.name}', space ${ck.space}, features ${ck.extractor} (${ck.featureDim}-d, ${ck.numSample} per class), predictions averaged over ${ck.scoreRepeats} samples${predictors > 1 ? ` and ${predictors} predictors` : ''}; default dataset ${ck.defaultDataset}`,
      `extractor: ${info.extractor.images ?? 'unknown until a model is loaded'}`,
      `search spaces: ${info.searchSpaces.join(', ')}`,
      `versions: ${Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
