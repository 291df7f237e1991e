import { describe, expect, it } from 'vitest';
import { ConfigError, MetaD2AError } from '@metad2a/core';
import { getTrainableSpace, jobIdOf, parseSourceSpec, openSource, resolveRecipe } from '../src/index.js';
import { cifarSubset, tinyPlan, TINY } from './helpers.js';

describe('job planning', () => {
  it('is deterministic, and a longer plan extends a shorter one with the same ids', async () => {
    const a = await tinyPlan({ tasks: 3 });
    const b = await tinyPlan({ tasks: 3 });
    expect(a.jobs.map((j) => j.id)).toEqual(b.jobs.map((j) => j.id));
    expect(JSON.stringify(a.jobs)).toEqual(JSON.stringify(b.jobs));
    const longer = await tinyPlan({ tasks: 5 });
    expect(longer.jobs.slice(0, a.jobs.length).map((j) => j.id)).toEqual(a.jobs.map((j) => j.id));
    const other = await tinyPlan({ tasks: 3, seed: 8 });
    expect(other.jobs.map((j) => j.id)).not.toEqual(a.jobs.map((j) => j.id));
    // ids are unique and contain no ':' (BullMQ rejects those)
    expect(new Set(longer.jobs.map((j) => j.id)).size).toBe(longer.jobs.length);
    for (const j of longer.jobs) expect(j.id).not.toContain(':');
  });

  it('draws K functionally distinct architectures per task and disjoint train/test images of the task classes', async () => {
    const plan = await tinyPlan({ tasks: 4, archsPerTask: 5, classesPerTask: 3 });
    const src = await cifarSubset();
    const space = getTrainableSpace('nb201');
    expect(plan.tasks).toHaveLength(4);
    expect(plan.jobs).toHaveLength(20);
    for (const t of plan.tasks) {
      const jobs = plan.jobs.filter((j) => j.data.task.id === t.id);
      expect(jobs).toHaveLength(5);
      expect(new Set(jobs.map((j) => space.functionalKey(j.data.arch))).size).toBe(5);
      expect(t.classes).toHaveLength(3);
      t.classes.forEach((c, k) => {
        const train = t.train![k];
        const test = t.test![k];
        expect(train).toHaveLength(20); // the tiny recipe's maxTrainPerClass
        expect(test).toHaveLength(10);
        expect(train.filter((i) => test.includes(i))).toEqual([]);
        for (const i of [...train, ...test]) expect(src.dataset.labels[i]).toBe(c);
      });
    }
    // the job id is the hash of what identifies a measurement
    const j = plan.jobs[0];
    expect(j.id).toBe(jobIdOf('nb201', j.data.task.id, j.data.arch, TINY, 7));
  });

  it('rejects unknown spaces, recipes and sources with one-line messages', async () => {
    const oneLine = (e: unknown) => {
      expect(e).toBeInstanceOf(MetaD2AError);
      expect((e as Error).message).not.toContain('\n');
      return (e as Error).message;
    };
    await expect(tinyPlan({ space: 'nb101' })).rejects.toThrow(ConfigError);
    expect(oneLine(await tinyPlan({ space: 'nb101' }).catch((e) => e))).toMatch(/unknown search space 'nb101'.*nb201/);
    expect(oneLine(await tinyPlan({ space: 'mbv3' }).catch((e) => e))).toMatch(/mbv3/);
    expect(oneLine((() => { try { resolveRecipe('fast'); } catch (e) { return e; } })())).toMatch(/unknown recipe 'fast'.*nb201-c8n1/);
    expect(oneLine(await openSource(parseSourceSpec('no-such-dataset')).catch((e) => e))).toMatch(/unknown source .*no-such-dataset/);
    expect(oneLine(await tinyPlan({ classesPerTask: 11 }).catch((e) => e))).toMatch(/classes-per-task.*cifar10-subset: 10/);
    expect(oneLine(await tinyPlan({ tasks: 0 }).catch((e) => e))).toMatch(/tasks/);
  });
});
