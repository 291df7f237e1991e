import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { Nb201Network, parseNb201 } from '@metad2a/search-space-201';
import { loadTfjsModel, loadTrainedNetwork, nb201ToLayersModel, saveTfjsModel } from '@metad2a/search';
import { openDataset, resizeRgb } from '@metad2a/data-pipeline';
import { normalizeImages } from '@metad2a/arch-training';
import { OfaSubnet } from '@metad2a/search-space-mbv3';
import { cli, metad2a, root } from './fixture.js';

const ARCH = '|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|';
const images = path.join(root, 'test-fixtures/images/tiny');
let dir: string;

beforeAll(async () => {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build the CLI first (nx run cli:build)`);
  await initBackend({ quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-cli-train-'));
});
afterAll(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

/** Random NHWC inputs, seeded. */
function inputs(n: number, size: number): tf.Tensor4D {
  const rng = new Rng(9);
  return tf.tensor4d(Float32Array.from({ length: n * size * size * 3 }, () => rng.next() * 4 - 2), [n, size, size, 3]);
}

describe('metad2a train-arch + export', () => {
  it('trains a tiny NB201 net (C=4, N=1, 16 px, 1 epoch) on 2 classes, saves a loadable model, exports it to TensorFlow.js', async () => {
    const out = path.join(dir, 'trained');
    const r = await metad2a(['train-arch', '--arch', ARCH, '-d', images, '--classes', 'airplane,ship', '--recipe', 'tiny-c4n1-16px-1ep', '--test-fraction', '0.25', '-o', out], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /test accuracy ([\d.]+)% on (\d+) held-out images \(train ([\d.]+)% on (\d+)\)/.exec(r.stdout);
    expect(m).not.toBeNull();
    // 4 images per class: 1 held out and 3 trained on, per class
    expect(Number(m![2])).toBe(2);
    expect(Number(m![4])).toBe(6);
    expect([0, 50, 100]).toContain(Number(m![1]));
    expect(r.stdout).toMatch(/^epoch 1: /m);

    const { net, info } = loadTrainedNetwork(out);
    expect(info.arch).toBe(ARCH);
    expect(info.classes).toEqual(['airplane', 'ship']);
    expect(info.config).toMatchObject({ C: 4, N: 1, inputSize: 16, numClasses: 2 });
    expect(info.testAccuracy).toBe(Number(m![1]));
    expect(info.recipe.epochs).toBe(1);
    const x = inputs(5, 16);
    const ref = net.forward(x, false);

    const e = await metad2a(['export', '--trained', out, '--arch', ARCH, '-o', path.join(dir, 'arch.json')], { cwd: dir });
    expect(e.code).toBe(0);
    const archJson = JSON.parse(fs.readFileSync(path.join(dir, 'arch.json'), 'utf8'));
    expect(archJson.arch).toBe(ARCH);
    expect(archJson.edges.map((x: { op: string }) => x.op)).toEqual(['nor_conv_3x3', 'nor_conv_3x3', 'skip_connect', 'avg_pool_3x3', 'nor_conv_1x1', 'none']);
    const tfjsDir = path.join(out, 'tfjs');
    const json = JSON.parse(fs.readFileSync(path.join(tfjsDir, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(json.userDefinedMetadata.normalization.mean).toHaveLength(3);
    const { model } = await loadTfjsModel(tfjsDir);
    const got = model.predict(x) as tf.Tensor;
    const a = ref.arraySync() as number[][];
    const b = got.arraySync() as number[][];
    // the trained network and its TensorFlow.js export give the same logits
    for (let i = 0; i < 5; i++) for (let j = 0; j < 2; j++) expect(b[i][j]).toBeCloseTo(a[i][j], 4);
    // and the logits depend on the input (a constant net would pass the comparison trivially)
    expect(Math.abs(a[0][0] - a[1][0]) + Math.abs(a[2][1] - a[3][1])).toBeGreaterThan(1e-4);
    tf.dispose([x, ref, got]);
    model.dispose();
    net.dispose();
  });

  it('export keeps the function of a network with zero nodes, unreachable edges and non-trivial BN statistics', async () => {
    // node 1 has only a 'none' input (zeros), node 2 too; node 3 = skip(x) + conv3x3(zeros)
    const arch = parseNb201('|none~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|');
    const net = new Nb201Network(arch, { C: 4, N: 2, inputSize: 8, numClasses: 3, rng: new Rng(3) });
    const rng = new Rng(4);
    for (const [name, v] of net.namedParameters()) {
      if (/running_var$/.test(name)) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => 0.5 + rng.next()), v.shape));
      else if (/running_mean$|bn|\.bias$|\.1\.weight$|\.2\.weight$/.test(name) && v.rank === 1) v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => rng.next() - 0.5), v.shape));
    }
    const model = nb201ToLayersModel(net);
    const saved = await saveTfjsModel(model, path.join(dir, 'zero'));
    expect(fs.statSync(saved.weights).size).toBe(saved.bytes);
    const { model: back } = await loadTfjsModel(path.join(dir, 'zero'));
    const x = inputs(3, 8);
    const ref = net.forward(x, false).arraySync() as number[][];
    const mem = (model.predict(x) as tf.Tensor).arraySync() as number[][];
    const loaded = (back.predict(x) as tf.Tensor).arraySync() as number[][];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        expect(mem[i][j]).toBeCloseTo(ref[i][j], 4);
        // the files restore exactly the model that was saved
        expect(loaded[i][j]).toBe(mem[i][j]);
      }
    }
    x.dispose();
    model.dispose();
    back.dispose();
    net.dispose();
  });

  it('refuses a features file as training data with a one-line message', async () => {
    const csv = path.join(dir, 'f.csv');
    fs.writeFileSync(csv, 'a,1,2\nb,3,4\n');
    const r = await metad2a(['train-arch', '--arch', ARCH, '-d', csv], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/training needs images, this is a features file/);
  });

  it('trains an OFA MobileNetV3 subnet (--space mbv3, 32 px) on 2 classes, exports its arch + OFA config JSON and a TensorFlow.js model', async () => {
    // a small subnet, 20 steps of 6 images: BN running statistics move far enough from their initial
    // values that the logits differ per image (after 1 step every image gives the same logits); they are
    // far off scale after so short a training, hence the relative comparison below
    const cfg = { ks: Array(20).fill(3), e: Array(20).fill(3), d: [2, 2, 2, 2, 2] };
    cfg.ks[4] = 7;
    cfg.e[9] = 6;
    const arch = JSON.stringify(cfg);
    const out = path.join(dir, 'mbv3');
    const r = await metad2a(
      ['train-arch', '--space', 'mbv3', '-a', arch, '-d', images, '--classes', 'airplane,ship', '--recipe', 'tiny-mbv3-w100-32px-1ep', '--epochs', '20', '--batch-size', '6', '--test-fraction', '0.25', '-o', out],
      { cwd: dir },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/, mbv3, recipe tiny-mbv3-w100-32px-1ep\+custom/);
    expect(r.stdout).toMatch(/^epoch 20: /m);
    const m = /test accuracy ([\d.]+)% on (\d+) held-out images \(train ([\d.]+)% on (\d+)\); ([\d.]+) M params/.exec(r.stdout);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBe(2);
    expect(Number(m![4])).toBe(6);
    const { net, info, inputSize } = loadTrainedNetwork(out);
    expect(net).toBeInstanceOf(OfaSubnet);
    expect(Number(m![5])).toBeCloseTo(net.numTrainableParameters() / 1e6, 3);
    expect(info).toMatchObject({ space: 'mbv3', arch, ofaConfig: cfg, classes: ['airplane', 'ship'] });
    expect(info.config).toEqual({ resolution: 32, numClasses: 2, widthMult: 1, dropout: 0.2 });
    expect(inputSize).toBe(32);

    const e = await metad2a(['export', '--trained', out, '-o', path.join(dir, 'mbv3-arch.json')], { cwd: dir });
    expect(e.stderr).toBe('');
    expect(e.code).toBe(0);
    expect(e.stdout.split('\n')[0]).toBe(arch);
    const archJson = JSON.parse(fs.readFileSync(path.join(dir, 'mbv3-arch.json'), 'utf8'));
    expect(archJson).toMatchObject({ space: 'mbv3', arch, ofaConfig: cfg });
    expect(archJson.dag.types).toHaveLength(22);
    // the smallest w1.0 subnet at 224 px is about 140 MFLOPs in once-for-all's count
    expect(archJson.cost.mflops).toBeGreaterThan(100);
    expect(archJson.cost.mflops).toBeLessThan(200);
    const tfjsDir = path.join(out, 'tfjs');
    const json = JSON.parse(fs.readFileSync(path.join(tfjsDir, 'model.json'), 'utf8'));
    expect(json.userDefinedMetadata).toMatchObject({ space: 'mbv3', arch, ofaConfig: cfg, inputSize: 32, classes: ['airplane', 'ship'] });
    // only standard layers
    for (const l of json.modelTopology.config.layers) {
      expect(['InputLayer', 'ZeroPadding2D', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'ReLU', 'Multiply', 'Add', 'GlobalAveragePooling2D', 'Reshape', 'Flatten', 'Dense']).toContain(l.class_name);
    }

    // real inputs: the fixture images, normalised as the network was trained
    const ds = await openDataset(images, { split: 'train' });
    if (ds.kind === 'features') throw new Error('expected images');
    const imgs = await ds.read(Array.from({ length: ds.labels.length }, (_, i) => i));
    ds.close();
    const u8 = new Uint8Array(imgs.length * 32 * 32 * 3);
    imgs.forEach((img, i) => u8.set(resizeRgb(img, 32, 32).data, i * 32 * 32 * 3));
    const x = tf.tensor4d(normalizeImages(u8, 3, info.normalization.mean, info.normalization.std), [imgs.length, 32, 32, 3]);
    const { model } = await loadTfjsModel(tfjsDir);
    const ref = net.forward(x, false).arraySync() as number[][];
    const got = (model.predict(x) as tf.Tensor).arraySync() as number[][];
    let maxDiff = 0;
    let maxRel = 0;
    for (let i = 0; i < ref.length; i++) {
      for (let j = 0; j < 2; j++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i][j] - ref[i][j]));
        maxRel = Math.max(maxRel, Math.abs(got[i][j] - ref[i][j]) / Math.max(1, Math.abs(ref[i][j])));
      }
    }
    // float32 rounding through ~60 layers: 1e-4, relative to the logit where logits exceed 1
    expect(maxRel).toBeLessThan(1e-4);
    const col = ref.map((row) => row[0]);
    expect(Math.max(...col) - Math.min(...col)).toBeGreaterThan(1e-3);
    console.log(`mbv3 e2e export: max |logit diff| ${maxDiff.toExponential(2)} (relative ${maxRel.toExponential(2)}) on ${ref.length} real images, logits up to ${Math.max(...ref.flat().map(Math.abs)).toFixed(2)}`);
    x.dispose();
    model.dispose();
    net.dispose();
  });

  it('refuses wrong space/architecture/recipe combinations with one line that names the fix, before reading images', async () => {
    const ofa = JSON.stringify({ ks: Array(20).fill(5), e: Array(20).fill(4), d: [3, 3, 3, 3, 3] });
    const fail = async (args: string[]) => {
      const r = await metad2a(args, { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      return r.stderr;
    };
    expect(await fail(['train-arch', '-a', ofa, '-d', images])).toMatch(/architecture is of space mbv3, not nb201 \(pass --space mbv3\)/);
    expect(await fail(['train-arch', '--space', 'mbv3', '-a', ARCH, '-d', images])).toMatch(/architecture is of space nb201, not mbv3 \(pass --space nb201\)/);
    expect(await fail(['train-arch', '--space', 'mbv3', '-a', ofa, '-d', images, '--recipe', 'tiny-c4n1-16px-1ep'])).toMatch(/'tiny-c4n1-16px-1ep' is a recipe for nb201 networks, not mbv3 \(mbv3 recipes: mbv3-w100-32px-5ep-200pc, .*tiny-mbv3-w100-32px-1ep\)/);
    expect(await fail(['train-arch', '-a', ARCH, '-d', images, '--recipe', 'tiny-mbv3-w100-32px-1ep'])).toMatch(/is a recipe for mbv3 networks, not nb201 \(nb201 recipes: .*tiny-c4n1-16px-1ep/);
    expect(await fail(['train-arch', '--space', 'mbv3', '-a', ofa, '-d', images, '--depth', '3'])).toMatch(/depth must be 1/);
    // an arch file (as export -o writes it) brings its space along
    const file = path.join(dir, 'ofa-arch.json');
    fs.writeFileSync(file, JSON.stringify({ space: 'mbv3', arch: ofa }));
    expect(await fail(['train-arch', '-a', file, '-d', images, '--recipe', 'tiny-c4n1-16px-1ep'])).toMatch(/is a recipe for nb201 networks, not mbv3/);
    expect(await fail(['train-arch', '-a', file, '--space', 'nb201', '-d', images])).toMatch(/--space nb201, but .*ofa-arch\.json is a mbv3 architecture \(drop --space or pass --space mbv3\)/);
    expect(await fail(['export', '--space', 'nb201', '-a', ofa])).toMatch(/architecture is of space mbv3, not nb201 \(pass --space mbv3\)/);
  });
});
