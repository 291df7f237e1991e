import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, MetaD2AError, Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { openDataset, type ImageDataset } from '@metad2a/data-pipeline';
import { loadTaskSets } from '@metad2a/db-build';
import { OfaSubnet, type OfaConfig } from '@metad2a/search-space-mbv3';
import { defaultRecipeFor, loadTfjsModel, loadTrainedNetwork, mbv3ToLayersModel, saveTfjsModel, saveTrainedNetwork, trainArchOnDataset, trainedToLayersModel } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cifar = path.resolve(here, '../../../../shared/data/cifar10-subset');
const TINY_MBV3 = 'tiny-mbv3-w100-32px-1ep';
// Every kind of block: k 3/5/7, e 3/4/6, SE stages, stride-2 stage starts, residual blocks (d >= 2).
const CFG: OfaConfig = {
  ks: Array.from({ length: 20 }, (_, i) => [3, 5, 7][i % 3]),
  e: Array.from({ length: 20 }, (_, i) => [3, 4, 6][(i + 1) % 3]),
  d: [2, 3, 2, 3, 2],
};
const ARCH = JSON.stringify(CFG);

let ds: ImageDataset;
let dir: string;
beforeAll(async () => {
  await initBackend({ quiet: true });
  const opened = await openDataset(cifar, { split: 'train' });
  if (opened.kind === 'features') throw new Error(`${cifar} should hold images`);
  ds = opened;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-mbv3-train-'));
});
afterAll(() => {
  ds?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Real CIFAR-10 images (classes 3 and 5, records not used for training above), normalised, at `size` px. */
async function realImages(size: number, perClass = 4): Promise<tf.Tensor4D> {
  const byClass = [3, 5].map((c) => Array.from(ds.labels).flatMap((l, i) => (l === c ? [i] : [])).slice(-perClass));
  const { test } = await loadTaskSets(ds, byClass, byClass, size);
  return tf.tensor4d(test.x, [test.n, size, size, 3]);
}

/**
 * Set every BN's running statistics to those of one batch (momentum 1 for one training-mode pass), as
 * once-for-all's BN recalibration does. A network trained for 2 steps still has near-initial running
 * statistics, under which its activations vanish layer by layer and every input gives the same logits:
 * a comparison of logits would then prove little.
 */
function calibrateBatchNorm(net: OfaSubnet, x: tf.Tensor4D): void {
  const bns = [net.firstConv.bn, ...net.blocks.flatMap((b) => [b.conv.invertedBottleneck?.bn, b.conv.depthConv.bn, b.conv.pointLinear.bn]), net.finalExpand.bn];
  for (const bn of bns) if (bn) Object.assign(bn, { momentum: 1 });
  tf.tidy(() => {
    net.forward(x, true);
  });
  for (const bn of bns) if (bn) Object.assign(bn, { momentum: 0.1 });
}

function maxAbs(t: tf.Tensor): number {
  return tf.tidy(() => t.abs().max().dataSync()[0]);
}

describe('train-arch for MBV3 subnets', () => {
  it('trains an OFA subnet on real CIFAR-10 images, saves it with its OFA config and loads it back strictly', async () => {
    const { net, info, result } = await trainArchOnDataset({ space: 'mbv3', arch: ARCH, dataset: ds, recipe: TINY_MBV3, classes: [0, 8], testFraction: 0.1, seed: 2 });
    expect(net).toBeInstanceOf(OfaSubnet);
    expect(info).toMatchObject({ space: 'mbv3', arch: ARCH, ofaConfig: CFG, classes: ['airplane', 'ship'], dataset: 'cifar10', seed: 2 });
    expect(info.config).toEqual({ resolution: 32, numClasses: 2, widthMult: 1, dropout: 0.2 });
    expect(info.recipe).toMatchObject({ id: TINY_MBV3, space: 'mbv3', inputSize: 32, epochs: 1 });
    expect(result.trainImages).toBe(40); // the recipe's 20 per class
    expect(result.testImages).toBe(20); // 10 % of 100 per class
    expect(result.epochs).toHaveLength(1);
    expect(Number.isFinite(result.trainLoss)).toBe(true);

    const out = path.join(dir, 'trained');
    saveTrainedNetwork(out, net, info);
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'info.json'), 'utf8'));
    expect(saved.ofaConfig).toEqual(CFG);
    const back = loadTrainedNetwork(out);
    expect(back.inputSize).toBe(32);
    expect(back.net).toBeInstanceOf(OfaSubnet);
    const x = await realImages(32);
    const a = net.forward(x, false);
    const b = back.net.forward(x, false);
    expect(b.arraySync()).toEqual(a.arraySync());
    tf.dispose([a, b]);

    // strictness: an edited OFA config, a config that does not fit the weights, a wrong field
    const edit = (name: string, f: (j: Record<string, any>) => void) => {
      const d = path.join(dir, name);
      fs.cpSync(out, d, { recursive: true });
      const j = JSON.parse(fs.readFileSync(path.join(d, 'info.json'), 'utf8'));
      f(j);
      fs.writeFileSync(path.join(d, 'info.json'), JSON.stringify(j));
      try {
        loadTrainedNetwork(d).net.dispose();
      } catch (e) {
        // InputError naming info.json, or ShapeError naming network.json
        expect(e).toBeInstanceOf(MetaD2AError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(edit('ks', (j) => (j.ofaConfig.ks[0] = 5))).toMatch(/info\.json.*ofaConfig.*differs from arch/);
    expect(edit('ks9', (j) => (j.ofaConfig.ks[0] = 9))).toMatch(/info\.json.*ks\[0\].*not allowed/);
    expect(edit('noofa', (j) => delete j.ofaConfig)).toMatch(/info\.json.*expected an OFA config/);
    expect(edit('classes', (j) => (j.config.numClasses = 3))).toMatch(/classifier\.linear\.weight.*network\.json.*expected shape \[3, 1280\]/);
    expect(edit('width', (j) => (j.config.widthMult = 0))).toMatch(/info\.json.*config\.widthMult/);
    expect(edit('space', (j) => (j.space = 'nb101'))).toMatch(/info\.json.*space.*unsupported space 'nb101'/);
    back.net.dispose();
    x.dispose();
    net.dispose();
  });

  it('exports to a standard tf.js layers model whose logits equal the subnet to 1e-4 on real images', async () => {
    const exportDiff = async (net: OfaSubnet, x: tf.Tensor4D, name: string) => {
      const model = trainedToLayersModel(net);
      // only standard layers: what any tfjs runtime can load
      const kinds = new Set(model.layers.map((l) => l.getClassName()));
      for (const k of kinds) expect(['InputLayer', 'ZeroPadding2D', 'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'ReLU', 'Multiply', 'Add', 'GlobalAveragePooling2D', 'Reshape', 'Flatten', 'Dense']).toContain(k);
      const saved = await saveTfjsModel(model, path.join(dir, name));
      expect(fs.statSync(saved.weights).size).toBe(saved.bytes);
      const { model: loaded } = await loadTfjsModel(path.join(dir, name));
      const ref = net.forward(x, false);
      const mem = model.predict(x) as tf.Tensor;
      const got = loaded.predict(x) as tf.Tensor;
      const diff = maxAbs(tf.sub(ref, got));
      // the files restore exactly the model that was saved
      expect(got.arraySync()).toEqual(mem.arraySync());
      // logits that vary with the input (else an input-independent export would pass)
      const spread = tf.tidy(() => tf.moments(ref, 0).variance.sqrt().max().dataSync()[0]);
      const scale = maxAbs(ref);
      tf.dispose([ref, mem, got]);
      model.dispose();
      loaded.dispose();
      return { diff, spread, scale };
    };
    // a trained subnet, as train-arch leaves it (2 SGD steps: BN running statistics are near their initial values)
    const { net } = await trainArchOnDataset({ space: 'mbv3', arch: ARCH, dataset: ds, recipe: TINY_MBV3, classes: [0, 8], testFraction: 0.1, seed: 2 });
    const x32 = await realImages(32);
    const trained = await exportDiff(net as OfaSubnet, x32, 'trained');
    expect(trained.diff).toBeLessThan(1e-4);
    // the same subnet with its BN statistics recalibrated on real images: logits of the order of 1 that differ per image
    calibrateBatchNorm(net as OfaSubnet, x32);
    const calibrated = await exportDiff(net as OfaSubnet, x32, 'calibrated');
    expect(calibrated.spread).toBeGreaterThan(0.05);
    expect(calibrated.diff).toBeLessThan(1e-4);
    net.dispose();
    // odd sizes: PyTorch's symmetric padding of the stride-2 convs (tf 'same' would pad differently)
    const odd = new OfaSubnet({ ...CFG, d: [3, 2, 3, 2, 3] }, { resolution: 37, numClasses: 4, widthMult: 0.5, rng: new Rng(4) });
    const x37 = await realImages(37);
    calibrateBatchNorm(odd, x37);
    const r37 = await exportDiff(odd, x37, 'odd');
    expect(r37.spread).toBeGreaterThan(0.05);
    expect(r37.diff).toBeLessThan(1e-4);
    console.log(`mbv3 export max |logit diff|: trained ${trained.diff.toExponential(2)}, calibrated ${calibrated.diff.toExponential(2)} (logits up to ${calibrated.scale.toFixed(2)}), 37 px w0.5 ${r37.diff.toExponential(2)} (up to ${r37.scale.toFixed(2)})`);
    odd.dispose();
    tf.dispose([x32, x37]);
    expect(() => mbv3ToLayersModel({} as OfaSubnet)).toThrow();
  });

  it('refuses mixed-up spaces, recipes and depths with one-line errors that name the fix', async () => {
    const err = async (o: Partial<Parameters<typeof trainArchOnDataset>[0]>) => {
      try {
        const r = await trainArchOnDataset({ space: 'mbv3', arch: ARCH, dataset: ds, recipe: TINY_MBV3, classes: [0, 8], ...o });
        r.net.dispose();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      return 'no error';
    };
    const nb201 = '|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|';
    expect(await err({ space: 'nb201', recipe: 'tiny-c4n1-16px-1ep' })).toMatch(/architecture is of space mbv3, not nb201.*pass --space mbv3/);
    expect(await err({ arch: nb201 })).toMatch(/architecture is of space nb201, not mbv3.*pass --space nb201/);
    expect(await err({ recipe: 'tiny-c4n1-16px-1ep' })).toMatch(/'tiny-c4n1-16px-1ep' is a recipe for nb201 networks, not mbv3.*tiny-mbv3-w100-32px-1ep/);
    expect(await err({ space: 'nb201', arch: nb201, recipe: TINY_MBV3 })).toMatch(/is a recipe for mbv3 networks, not nb201/);
    expect(await err({ overrides: { depth: 2 } })).toMatch(/depth must be 1/);
    expect(await err({ arch: JSON.stringify({ ...CFG, r: 224 }) })).toMatch(/r=224.*--input-size 224/);
  });

  it('uses the space default recipe when none is named', async () => {
    expect(defaultRecipeFor('mbv3')).toBe('mbv3-w100-32px-5ep-200pc');
    expect(defaultRecipeFor('nb201')).toBe('nb201-c8n2-16px-5ep-200pc');
    // a config that names its resolution (r) keeps it, and the folder loads back
    const small = { ks: Array(20).fill(3), e: Array(20).fill(3), d: Array(5).fill(2), r: 32 };
    const { net, info } = await trainArchOnDataset({ space: 'mbv3', arch: JSON.stringify(small), dataset: ds, classes: [1, 2], overrides: { epochs: 1, maxTrainPerClass: 4 } });
    expect(info.recipe).toMatchObject({ id: 'mbv3-w100-32px-5ep-200pc+custom', space: 'mbv3', epochs: 1, width: 100, inputSize: 32 });
    expect(info.trainImages).toBe(8);
    expect(info.ofaConfig).toEqual(small);
    saveTrainedNetwork(path.join(dir, 'with-r'), net, info);
    const back = loadTrainedNetwork(path.join(dir, 'with-r'));
    expect(back.info.ofaConfig).toEqual(small);
    back.net.dispose();
    net.dispose();
  });
});
