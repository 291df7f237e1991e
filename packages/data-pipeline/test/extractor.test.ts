import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, test } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import {
  extractorId,
  loadMobileNetExtractor,
  openCifarBinary,
  parseExtractorId,
  pruneTopology,
  resizeRgb,
  type FeatureExtractor,
  type RgbImage,
} from '../src/index.js';
import { CIFAR_SUBSET, MOBILENET, tmpDir } from './paths.js';

/** Cosine nearest-centroid accuracy: centroids of L2-normalised support rows. */
function nearestCentroid(x: Float32Array, d: number, labels: number[], support: number[], query: number[]): number {
  const unit = (i: number) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += x[i * d + k] ** 2;
    return Array.from(x.subarray(i * d, (i + 1) * d), (v) => v / Math.sqrt(s));
  };
  const classes = [...new Set(labels)];
  const cents = classes.map((c) => {
    const v = new Array<number>(d).fill(0);
    for (const i of support.filter((j) => labels[j] === c)) unit(i).forEach((u, k) => (v[k] += u));
    const n = Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    return v.map((u) => u / n);
  });
  let ok = 0;
  for (const i of query) {
    const u = unit(i);
    const scores = cents.map((c) => c.reduce((a, b, k) => a + b * u[k], 0));
    if (classes[scores.indexOf(Math.max(...scores))] === labels[i]) ok++;
  }
  return ok / query.length;
}

let fx: FeatureExtractor;
let images: RgbImage[];
let labels: number[];

beforeAll(async () => {
  await initBackend({ quiet: true });
  fx = await loadMobileNetExtractor({ source: MOBILENET, inputSize: 96 });
  // CIFAR-10 airplane (0) and ship (8): 20 each, from the subset (records are grouped by class).
  const ds = openCifarBinary([path.join(CIFAR_SUBSET, 'train_100per_class.bin')], { variant: 'cifar10' });
  const idx = [...Array.from({ length: 20 }, (_, i) => i), ...Array.from({ length: 20 }, (_, i) => 800 + i)];
  images = await ds.read(idx);
  labels = idx.map((i) => ds.labels[i]);
  ds.close();
});

describe('MobileNet v1 feature extractor', () => {
  test('loads the shared copy (its conv_pw_13 shard is missing) cut at conv_pw_12_relu: 1024-d, id mobilenet_v1_1.0@96', () => {
    expect(fs.existsSync(path.join(MOBILENET, 'group37-shard1of1'))).toBe(false);
    expect(fx.id).toBe('mobilenet_v1_1.0@96');
    expect(fx.dims).toBe(1024);
    expect(parseExtractorId(fx.id)).toEqual({ model: 'mobilenet_v1_1.0', cut: null, inputSize: 96 });
    expect(extractorId('mobilenet_v1_1.0', 64, 'conv_pw_5_relu')).toBe('mobilenet_v1_1.0:conv_pw_5_relu@64');
  });

  test('the pruned topology keeps exactly the layers up to the cut', () => {
    const model = JSON.parse(fs.readFileSync(path.join(MOBILENET, 'model.json'), 'utf8'));
    const { keep, topology } = pruneTopology(model, 'conv_pw_12_relu', 'model.json');
    expect(keep.has('conv_pw_12_relu')).toBe(true);
    expect(keep.has('conv_pw_13')).toBe(false);
    expect(keep.has('conv_preds')).toBe(false);
    expect(keep.has('input_1')).toBe(true);
    // all 88 layers minus the 13 after the cut (conv_dw_13.. reshape_2)
    const all = model.modelTopology.model_config.config.layers.map((l: { name: string }) => l.name);
    expect(all.slice(all.indexOf('conv_pw_12_relu') + 1).some((n: string) => keep.has(n))).toBe(false);
    expect(topology.model_config.config.layers).toHaveLength(all.indexOf('conv_pw_12_relu') + 1);
  });

  test('few-shot: features separate airplane from ship far better than raw pixels (10 shots, 10 queries per class)', async () => {
    let calls = 0;
    const f = await fx.embed(images, { batchSize: 16, onProgress: (done, total) => (calls++, expect(total).toBe(40), expect(done).toBeLessThanOrEqual(40)) });
    expect(calls).toBe(3); // batches of 16, 16, 8
    expect(f.length).toBe(40 * 1024);
    expect(f.every((v) => Number.isFinite(v) && v >= 0)).toBe(true); // mean of ReLU outputs
    const raw = new Float32Array(40 * 3072);
    images.forEach((im, k) => raw.set(Array.from(im.data, (v) => v / 255), k * 3072));
    const support = [...Array.from({ length: 10 }, (_, i) => i), ...Array.from({ length: 10 }, (_, i) => 20 + i)];
    const query = [...Array.from({ length: 10 }, (_, i) => 10 + i), ...Array.from({ length: 10 }, (_, i) => 30 + i)];
    const accRaw = nearestCentroid(raw, 3072, labels, support, query);
    const accFeat = nearestCentroid(f, 1024, labels, support, query);
    expect(accFeat).toBeGreaterThanOrEqual(0.65);
    expect(accFeat - accRaw).toBeGreaterThanOrEqual(0.2);
    // batching does not change a row, and embedding leaves no tensors behind
    const before = tf.memory().numTensors;
    const one = await fx.embed([images[25]]);
    expect(tf.memory().numTensors).toBe(before);
    let diff = 0;
    for (let k = 0; k < 1024; k++) diff = Math.max(diff, Math.abs(one[k] - f[25 * 1024 + k]));
    expect(diff).toBeLessThan(1e-4);
  });

  test('same features as the whole model loaded the README way (zeros for the missing shard, then cut)', async () => {
    // Independent loading path, as in ../shared/data/mobilenet-v1-imagenet/README.md.
    const mj = JSON.parse(fs.readFileSync(path.join(MOBILENET, 'model.json'), 'utf8'));
    mj.modelTopology.model_config.config.layers[0].config.batch_input_shape = [null, null, null, 3];
    const specs: tf.io.WeightsManifestEntry[] = [];
    const parts: Buffer[] = [];
    for (const g of mj.weightsManifest) {
      const bytes = g.weights.reduce((s: number, w: { shape: number[] }) => s + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
      const p = path.join(MOBILENET, g.paths[0]);
      parts.push(fs.existsSync(p) ? fs.readFileSync(p) : Buffer.alloc(bytes));
      specs.push(...g.weights);
    }
    const all = Buffer.concat(parts);
    const m = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: mj.modelTopology, weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) }));
    const cut = tf.model({ inputs: m.inputs, outputs: m.getLayer('conv_pw_12_relu').output as tf.SymbolicTensor });
    const imgs = [images[3], images[30]].map((im) => resizeRgb(im, 96));
    const x = tf.tensor4d(Float32Array.from(imgs.flatMap((im) => Array.from(im.data))), [2, 96, 96, 3]).div(127.5).sub(1);
    const ref = await ((cut.predict(x) as tf.Tensor4D).mean([1, 2]) as tf.Tensor).data();
    const ours = await fx.embed(imgs);
    let diff = 0;
    for (let i = 0; i < ours.length; i++) diff = Math.max(diff, Math.abs(ours[i] - ref[i]));
    expect(diff).toBeLessThan(1e-4);
    m.dispose();
  });

  test('a missing shard that the cut network needs is an error naming the file and weights', async () => {
    const dir = tmpDir('mnet');
    for (const n of fs.readdirSync(MOBILENET)) if (n !== 'group1-shard1of1') fs.symlinkSync(path.join(MOBILENET, n), path.join(dir, n));
    await expect(loadMobileNetExtractor({ source: dir })).rejects.toThrow(/group1-shard1of1: weight shard missing; it holds conv1\/kernel/);
  });

  test('another cut layer gives another width and id', async () => {
    const small = await loadMobileNetExtractor({ source: path.join(MOBILENET, 'model.json'), inputSize: 64, cutLayer: 'conv_pw_5_relu' });
    expect([small.dims, small.id]).toEqual([256, 'mobilenet_v1_1.0:conv_pw_5_relu@64']);
    expect((await small.embed(images.slice(0, 2))).length).toBe(512);
    small.dispose();
    await expect(loadMobileNetExtractor({ source: MOBILENET, cutLayer: 'nope' })).rejects.toThrow(/layer 'nope' not in/);
  });

  test('from a URL: fetches model.json and only the needed shards into the cache, then works offline', async () => {
    const requested: string[] = [];
    const server = http.createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '').replace(/^\/models\/mnet\//, ''));
      requested.push(name);
      const file = path.join(MOBILENET, name);
      if (!fs.existsSync(file)) {
        res.statusCode = 404;
        res.end('not found');
        return;
      }
      res.end(fs.readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/mnet/model.json`;
    const cacheDir = tmpDir('cache');
    const downloads: string[] = [];
    try {
      const a = await loadMobileNetExtractor({ source: url, cacheDir, onDownload: (f) => downloads.push(f) });
      expect(requested[0]).toBe('model.json');
      // 55 groups; after the cut: conv_dw_13 (10), its bn (11), conv_preds (29), conv_pw_13 (37, absent), its bn (38)
      const shards = requested.filter((n) => n.startsWith('group'));
      expect(shards).toHaveLength(50);
      for (const g of [10, 11, 29, 37, 38]) expect(shards).not.toContain(`group${g}-shard1of1`);
      expect(downloads[downloads.length - 1]).toBe('model.json');
      expect(a.modelDir.startsWith(path.join(cacheDir, 'models'))).toBe(true);
      expect(fs.existsSync(path.join(a.modelDir, 'model.json'))).toBe(true);
      const fa = await a.embed(images.slice(0, 2));
      const local = await fx.embed(images.slice(0, 2));
      expect(Array.from(fa)).toEqual(Array.from(local));
      a.dispose();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    // server gone: the cache serves
    const n = requested.length;
    const b = await loadMobileNetExtractor({ source: url, cacheDir });
    expect(requested.length).toBe(n);
    expect(b.dims).toBe(1024);
    b.dispose();
    // an unreachable URL without cache fails with the URL in the message
    await expect(loadMobileNetExtractor({ source: url, cacheDir: tmpDir('cache2') })).rejects.toThrow(/127\.0\.0\.1.*model\.json: download failed/);
  });
});
