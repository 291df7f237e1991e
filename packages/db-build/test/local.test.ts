import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '@metad2a/nn';
import { readDatabase, readTasks, type MetaRecord } from '@metad2a/data-pipeline';
import { Rng } from '@metad2a/core';
import { Nb201Network, parseNb201 } from '@metad2a/search-space-201';
import { onlyUsedParameters, resolveRecipe, runLocal, runTrainJob, tasksFileOf } from '../src/index.js';
import { tinyPlan, tmpDir, TINY } from './helpers.js';

beforeAll(async () => {
  await initBackend({ quiet: true });
});

const strip = (r: MetaRecord) => ({ ...r, time: '' });

describe('one training job', () => {
  it('trains a real NB201 cell network (C=4, N=1, 16x16, 2 classes x 20 images, 1 epoch) and yields a valid record', async () => {
    const plan = await tinyPlan({ tasks: 1, archsPerTask: 1 });
    const job = plan.jobs[0].data;
    const res = await runTrainJob(job);
    const r = res.record;
    expect(r).toMatchObject({ taskId: job.task.id, dataset: 'cifar10-subset', classes: job.task.classes, searchSpace: 'nb201', arch: job.arch, recipe: TINY, seed: 7 });
    expect(res.trainImages).toBe(40);
    expect(res.testImages).toBe(20);
    // top-1 on 20 held-out images: a multiple of 5 %, in range
    expect(r.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.accuracy).toBeLessThanOrEqual(100);
    expect(Number.isInteger(Math.round(r.accuracy * 1e6) / 5e6)).toBe(true);
    expect(Number.isFinite(res.trainLoss)).toBe(true);
    expect(Date.parse(r.time)).not.toBeNaN();
    // the same job again gives the same accuracy (seeded weights, batches and augmentation)
    const tensors = tf.memory().numTensors;
    const again = await runTrainJob(job);
    expect(tf.memory().numTensors).toBe(tensors); // nothing leaks from a job (workers run thousands)
    expect(again.record.accuracy).toBe(r.accuracy);
    expect(again.trainLoss).toBe(res.trainLoss);
  });
});

describe('a backend that cannot train convolutions', () => {
  it('fails the job with one clear line', async () => {
    const plan = await tinyPlan({ tasks: 1, archsPerTask: 1 });
    const backend = tf.getBackend();
    const kernel = tf.getKernel('Conv2DBackpropFilter', backend)!;
    expect(kernel).toBeDefined();
    tf.unregisterKernel('Conv2DBackpropFilter', backend);
    try {
      await expect(runTrainJob(plan.jobs[0].data)).rejects.toThrow(new RegExp(`^the '${backend}' backend cannot train convolutions \\(no Conv2DBackpropFilter kernel\\)`));
    } finally {
      tf.registerKernel(kernel);
    }
    expect((await runTrainJob(plan.jobs[0].data)).record.accuracy).toBeGreaterThanOrEqual(0);
  });
});

describe('parameters without a gradient', () => {
  it('a conv on an edge that leads nowhere is left out of training, everything else stays in', async () => {
    // edge 1 (node 0 -> node 2) is a 1x1 conv, but node 2 feeds node 3 only through 'none'
    const arch = '|skip_connect~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|none~2|';
    const net = new Nb201Network(parseNb201(arch), { C: 4, N: 1, inputSize: 16, numClasses: 2, rng: new Rng(1) });
    const named = net.namedParameters().filter(([, v]) => v.trainable);
    const kept = new Set(onlyUsedParameters(net, 16).trainableParameters());
    // N=1: cells.0, cells.2 and cells.4 are searched cells (1 and 3 are the reductions)
    const dead = named.filter(([n]) => /^cells\.[024]\.layers\.1\./.test(n)).map(([n]) => n);
    expect(dead).toHaveLength(9); // conv weight + BN weight + BN bias, in 3 cells
    expect(named.filter(([, v]) => !kept.has(v)).map(([n]) => n)).toEqual(dead);
    net.dispose();
    // and such a network trains (every remaining variable gets a gradient)
    const plan = await tinyPlan({ tasks: 1, archsPerTask: 1 });
    const job = { ...plan.jobs[0].data, arch };
    const res = await runTrainJob(job);
    expect(res.record.arch).toBe(arch);
    expect(resolveRecipe(TINY).epochs).toBe(1);
  });
});

describe('local runner', () => {
  it('is deterministic, resumes an interrupted run without duplicates, and writes a valid database + tasks file', async () => {
    const dir = tmpDir('local');
    const plan = await tinyPlan({ tasks: 2, archsPerTask: 2 });
    const full = path.join(dir, 'full.csv');
    const s1 = await runLocal(plan, full);
    expect(s1).toMatchObject({ planned: 4, skipped: 0, added: 4, total: 4 });

    // interrupted: 1 record, then a torn line as a killed writer leaves it, then resume
    const resumed = path.join(dir, 'resumed.csv');
    const s2 = await runLocal(plan, resumed, { limit: 1 });
    expect(s2).toMatchObject({ added: 1, total: 1 });
    fs.appendFileSync(resumed, `${plan.jobs[1].data.task.id},cifar10-subset,3;5,nb201,|nor_conv`);
    const warnings: string[] = [];
    const origWrite = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (warnings.push(String(s)), true)) as typeof process.stderr.write;
    let s3;
    try {
      s3 = await runLocal(plan, resumed);
    } finally {
      process.stderr.write = origWrite;
    }
    expect(warnings.join('')).toMatch(/incomplete last line/);
    expect(s3).toMatchObject({ planned: 4, skipped: 1, added: 3, total: 4 });
    const s4 = await runLocal(plan, resumed);
    expect(s4).toMatchObject({ skipped: 4, added: 0, total: 4 });

    const a = (await readDatabase(full)).records;
    const b = (await readDatabase(resumed)).records;
    expect(a).toHaveLength(4);
    expect(b.map(strip)).toEqual(a.map(strip));
    expect(new Set(a.map((r) => `${r.taskId} ${r.arch}`)).size).toBe(4);

    // JSONL gets the same records; the tasks file holds both tasks with their image indices
    const jl = path.join(dir, 'full.jsonl');
    await runLocal(plan, jl);
    expect((await readDatabase(jl)).records.map(strip)).toEqual(a.map(strip));
    const tasks = readTasks(tasksFileOf(full));
    expect(tasks.map((t) => t.id)).toEqual(plan.tasks.map((t) => t.id));
    expect(tasks[0].train).toEqual(plan.tasks[0].train);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
