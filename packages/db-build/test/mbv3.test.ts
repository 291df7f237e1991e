import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError, Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { readDatabase } from '@metad2a/data-pipeline';
import { ofaCost, parseOfaConfig, type OfaConfig } from '@metad2a/search-space-mbv3';
import { DEFAULT_MBV3_RECIPE, getTrainableSpace, planJobs, recipesForSpace, resolveRecipe, runLocal, runTrainJob } from '../src/index.js';
import { cifarSubset, tinyPlan, tmpDir, TINY } from './helpers.js';

const TINY_MBV3 = 'tiny-mbv3-w100-32px-1ep';
const SMALLEST: OfaConfig = { ks: Array(20).fill(3), e: Array(20).fill(3), d: Array(5).fill(2) };

beforeAll(async () => {
  await initBackend({ quiet: true });
});

async function mbv3Plan(over: { tasks?: number; archsPerTask?: number } = {}) {
  return planJobs({
    space: 'mbv3',
    sources: [await cifarSubset()],
    tasks: over.tasks ?? 1,
    archsPerTask: over.archsPerTask ?? 2,
    recipe: resolveRecipe(TINY_MBV3),
    seed: 5,
    classesPerTask: 2,
    testPerClass: 5,
  });
}

describe('mbv3 build-database', () => {
  it('trains real OFA subnets (32 px, 2 CIFAR-10 classes x 20 images, 1 epoch) and appends valid records', async () => {
    const plan = await mbv3Plan();
    expect(plan.jobs).toHaveLength(2);
    const space = getTrainableSpace('mbv3');
    // the drawn architectures are distinct subnets, written as OFA configs
    expect(space.functionalKey(plan.jobs[0].data.arch)).not.toBe(space.functionalKey(plan.jobs[1].data.arch));
    const dir = tmpDir('mbv3');
    const db = path.join(dir, 'mbv3.csv');
    const s = await runLocal(plan, db);
    expect(s).toMatchObject({ planned: 2, added: 2, total: 2 });
    const { records } = await readDatabase(db);
    expect(records).toHaveLength(2);
    records.forEach((r, k) => {
      const job = plan.jobs[k].data;
      expect(r).toMatchObject({ taskId: job.task.id, dataset: 'cifar10-subset', classes: job.task.classes, searchSpace: 'mbv3', recipe: TINY_MBV3, seed: 5 });
      // the arch column (JSON with commas) survives the CSV round trip and is a valid config
      expect(r.arch).toBe(job.arch);
      const cfg = parseOfaConfig(r.arch);
      expect(cfg.ks).toHaveLength(20);
      expect(cfg.r).toBeUndefined();
      // top-1 on 10 held-out images: a multiple of 10 %
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(100);
      expect(Math.abs(r.accuracy / 10 - Math.round(r.accuracy / 10))).toBeLessThan(1e-9);
    });
    // resuming finds both records and trains nothing
    expect(await runLocal(plan, db)).toMatchObject({ skipped: 2, added: 0, total: 2 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is deterministic per job and leaks no tensors', async () => {
    const plan = await mbv3Plan({ archsPerTask: 1 });
    // the smallest subnet keeps this cheap; the job's own arch is replaced before anything is trained
    const job = { ...plan.jobs[0].data, arch: JSON.stringify(SMALLEST) };
    const a = await runTrainJob(job);
    const tensors = tf.memory().numTensors;
    const b = await runTrainJob(job);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(b.record.accuracy).toBe(a.record.accuracy);
    expect(b.trainLoss).toBe(a.trainLoss);
    expect(Number.isFinite(a.trainLoss)).toBe(true);
    expect(a.trainImages).toBe(40);
    expect(a.testImages).toBe(10);
  });

  it('builds the subnet the recipe asks for, and every trainable parameter gets a gradient', () => {
    const space = getTrainableSpace('mbv3');
    const recipe = resolveRecipe(TINY_MBV3);
    const cfg: OfaConfig = { ...SMALLEST, ks: SMALLEST.ks.map((k, i) => (i % 3 === 0 ? 7 : k)), e: SMALLEST.e.map((e, i) => (i % 2 ? 6 : e)), d: [2, 3, 4, 2, 3] };
    const net = space.build(JSON.stringify(cfg), recipe, 3, new Rng(1));
    expect(net.inputSize).toBe(32);
    expect(net.config).toEqual({ resolution: 32, numClasses: 3, widthMult: 1, dropout: 0.2 });
    const params = net.trainableParameters();
    // analytic count (search-space-mbv3's ofaCost, checked there against an independent python count)
    expect(params.reduce((s, v) => s + v.size, 0)).toBe(ofaCost(cfg, { resolution: 32, numClasses: 3 }).params);
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, true)) as tf.Scalar, params);
    expect(Object.keys(grads)).toHaveLength(params.length);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    tf.dispose([x, y, value, ...Object.values(grads)]);
    net.dispose();
    // width 50 = the w0.5 supernet: first conv 8 channels, last stage 80
    const half = space.build(JSON.stringify(SMALLEST), { ...recipe, width: 50 }, 2, new Rng(1));
    const shapes = new Map(half.module.namedParameters().map(([n, v]) => [n, v.shape]));
    expect(shapes.get('first_conv.conv.weight')).toEqual([3, 3, 3, 8]);
    expect(shapes.get('final_expand_layer.conv.weight')).toEqual([1, 1, 80, 480]);
    half.dispose();
  });

  it('rebuilds a saved network shape strictly from its config', () => {
    const space = getTrainableSpace('mbv3');
    const arch = JSON.stringify(SMALLEST);
    const built = space.build(arch, resolveRecipe(TINY_MBV3), 2, new Rng(1));
    const again = space.rebuild(arch, built.config, { file: 'info.json', field: 'config' });
    expect(again.module.namedParameters().map(([n, v]) => `${n}:${v.shape}`)).toEqual(built.module.namedParameters().map(([n, v]) => `${n}:${v.shape}`));
    built.dispose();
    again.dispose();
    const bad = (config: unknown) => {
      try {
        space.rebuild(arch, config, { file: 'info.json', field: 'config' });
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(bad({ resolution: 32, numClasses: 2, widthMult: 1, dropout: 0.2, C: 4 })).toMatch(/info\.json.*config\.C.*unknown field/);
    expect(bad({ resolution: 32, numClasses: 0, widthMult: 1, dropout: 0.2 })).toMatch(/config\.numClasses.*positive integer/);
    expect(bad({ resolution: 32, numClasses: 2, widthMult: 1, dropout: 1 })).toMatch(/config\.dropout/);
  });

  it('refuses mixed-up recipes, depths and resolutions with one-line ConfigErrors that name the fix', async () => {
    const msg = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(recipesForSpace('mbv3')).toContain(DEFAULT_MBV3_RECIPE);
    expect(recipesForSpace('mbv3')).not.toContain(TINY);
    expect(recipesForSpace('nb201')).toContain(TINY);
    // an NB201 recipe for an mbv3 plan, and the reverse
    expect(await msg(() => tinyPlan({ space: 'mbv3' }))).toMatch(new RegExp(`'${TINY}' is a recipe for nb201 networks, not mbv3.*${DEFAULT_MBV3_RECIPE}`));
    expect(await msg(() => tinyPlan({ recipe: resolveRecipe(TINY_MBV3) }))).toMatch(new RegExp(`'${TINY_MBV3}' is a recipe for mbv3 networks, not nb201.*${TINY}`));
    // a job that carries the wrong recipe (e.g. built by hand for a queue) fails before training
    const plan = await mbv3Plan({ archsPerTask: 1 });
    expect(await msg(() => runTrainJob({ ...plan.jobs[0].data, recipe: resolveRecipe(TINY) }))).toMatch(/is a recipe for nb201 networks, not mbv3/);
    const space = getTrainableSpace('mbv3');
    const arch = JSON.stringify(SMALLEST);
    expect(await msg(() => space.build(arch, { ...resolveRecipe(TINY_MBV3), depth: 2 }, 2, new Rng(1)))).toMatch(/depth must be 1/);
    expect(await msg(() => space.build(JSON.stringify({ ...SMALLEST, r: 224 }), resolveRecipe(TINY_MBV3), 2, new Rng(1)))).toMatch(/r=224 but the network is built for 32 px/);
  });
});
