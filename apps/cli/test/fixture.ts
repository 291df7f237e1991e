import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { importTorchStateDict, initBackend, readF32Bundle } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { nb201Space } from '@metad2a/search-space-201';
import { encodeNpyF32, writeFeatureStore } from '@metad2a/data-pipeline';
import { saveSearchModel } from '@metad2a/search';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const cli = path.join(root, 'apps/cli/dist/index.js');
export const shared = path.resolve(root, '../shared');
export const EXTRACTOR = 'resnet18-original@32';
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export interface Fixture {
  dir: string;
  model: string;
  /** .npy [200, 512] + .labels.txt: the parity fixture's real ResNet-18 features of dataset 0 (10 classes x 20). */
  npy: string;
  /** The same features of dataset 1 as CSV with a '# extractor:' line. */
  csv: string;
  /** A feature store of dataset 2's features, marked as made by another extractor. */
  otherStore: string;
  /** Features with only 5 rows per class. */
  fewCsv: string;
  cacheDir: string;
  /** The same model declared to use MobileNet v1 features cut at conv_pw_11_relu (512-d) at 32 px, for image datasets. */
  imageModel: string;
}

export const IMAGE_EXTRACTOR = 'mobilenet_v1_1.0:conv_pw_11_relu@32';
export const MOBILENET_DIR = path.join(shared, 'data/mobilenet-v1-imagenet');

function featuresOf(i: number): Float32Array {
  const fx = readF32Bundle(path.join(shared, 'fixtures/metad2a-parity/manifest.json'));
  const x = fx.get('generator_case/input_X').data;
  return x.slice(i * 200 * 512, (i + 1) * 200 * 512);
}

function csvText(x: Float32Array, rowsPerClass: number, extractor: string): string {
  const lines = [`# extractor: ${extractor}`];
  for (let c = 0; c < 10; c++) for (let r = 0; r < rowsPerClass; r++) lines.push([CLASSES[c], ...x.subarray((c * 20 + r) * 512, (c * 20 + r + 1) * 512)].join(','));
  return `${lines.join('\n')}\n`;
}

/**
 * A search model folder made with saveSearchModel from the original generator checkpoint and the
 * parity fixture's predictor weights (NB201, 512-d features), the default dataset as a feature store
 * beside it, and datasets of the fixture's real features in the formats users bring.
 */
export async function buildFixture(): Promise<Fixture> {
  await initBackend({ quiet: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-cli-'));
  const model = path.join(dir, 'model');
  const gen = new Generator(nb201Space, { hs: 56, nz: 56, featureDim: 512, numSample: 20 });
  gen.loadOriginal(importTorchStateDict(path.join(shared, 'data/metad2a-original/generator_ckpt_400.pt')));
  const pred = new Predictor(nb201Space, { hs: 512, nz: 56, featureDim: 512, numSample: 20 });
  pred.loadOriginal(readF32Bundle(path.join(shared, 'fixtures/metad2a-parity/manifest.json')).group('predictor_state'));
  // Target statistics are arbitrary here (the fixture predictor has random weights): they only scale scores to "accuracy".
  saveSearchModel(model, {
    generator: gen,
    predictor: pred,
    manifest: { name: 'test-original-generator', space: 'nb201', extractor: EXTRACTOR, featureDim: 512, numSample: 20, scoreRepeats: 2, targetMean: 70, targetStd: 15 },
  });
  gen.dispose();
  pred.dispose();

  const d0 = featuresOf(0);
  const npy = path.join(dir, 'feats0.npy');
  fs.writeFileSync(npy, encodeNpyF32(d0, 200, 512));
  fs.writeFileSync(path.join(dir, 'feats0.labels.txt'), `${Array.from({ length: 200 }, (_, i) => CLASSES[Math.floor(i / 20)]).join('\n')}\n`);
  const csv = path.join(dir, 'feats1.csv');
  fs.writeFileSync(csv, csvText(featuresOf(1), 20, EXTRACTOR));
  const fewCsv = path.join(dir, 'few.csv');
  fs.writeFileSync(fewCsv, csvText(featuresOf(1), 5, EXTRACTOR));

  const store = (file: string, x: Float32Array, extractor: string) =>
    writeFeatureStore(file, {
      extractor,
      inputSize: 32,
      dims: 512,
      classes: CLASSES,
      rows: Array.from({ length: 10 }, (_, c) => new Uint8Array(x.buffer, x.byteOffset + c * 20 * 512 * 4, 20 * 512 * 4)),
      counts: new Array(10).fill(20),
      indices: Array.from({ length: 10 }, (_, c) => Array.from({ length: 20 }, (_, r) => c * 20 + r)),
      source: { kind: 'features', name: 'parity-fixture', files: [], records: 200, selection: { perClass: null, seed: 0 } },
    });
  store(path.join(model, 'default-dataset.json'), featuresOf(2), EXTRACTOR);
  const otherStore = path.join(dir, 'other-extractor.json');
  store(otherStore, featuresOf(2), 'mobilenet_v1_1.0@96');
  const cacheDir = path.join(dir, 'cache');
  fs.mkdirSync(cacheDir);
  const imageModel = path.join(dir, 'image-model');
  fs.mkdirSync(imageModel);
  for (const f of fs.readdirSync(model)) if (!f.startsWith('default-dataset')) fs.copyFileSync(path.join(model, f), path.join(imageModel, f));
  const manifest = JSON.parse(fs.readFileSync(path.join(imageModel, 'model.json'), 'utf8'));
  fs.writeFileSync(path.join(imageModel, 'model.json'), JSON.stringify({ ...manifest, extractor: IMAGE_EXTRACTOR }));
  return { dir, model, npy, csv, otherStore, fewCsv, cacheDir, imageModel };
}

const run = promisify(execFile);

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI as a subprocess (as `metad2a` would run), in `cwd`, with the fixture's cache. */
export async function metad2a(args: string[], o: { cwd: string; env?: Record<string, string> }): Promise<CliRun> {
  try {
    const r = await run(process.execPath, [cli, ...args], { cwd: o.cwd, env: { ...process.env, CI: '1', ...o.env }, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
