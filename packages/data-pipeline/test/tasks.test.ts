import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { assertTasksExclude, indicesByClass, leaveOneDatasetOut, openCifarBinary, readTasks, sampleTasks, wholeDatasetTask, writeTasks, type TaskSource } from '../src/index.js';
import { CIFAR_SUBSET, tmpDir } from './paths.js';

const cifar = openCifarBinary([path.join(CIFAR_SUBSET, 'train_100per_class.bin')], { variant: 'cifar10' });
const SOURCES: TaskSource[] = [
  { name: 'cifar10', numClasses: 10, indicesByClass: indicesByClass(cifar.labels, 10) },
  { name: 'imagenet32', numClasses: 1000 },
  { name: 'mnist', numClasses: 10 },
];

describe('tasks', () => {
  test('seeded and reproducible; task k does not depend on how many are drawn', () => {
    const a = sampleTasks({ sources: SOURCES, numTasks: 30, classesPerTask: 5, seed: 1 });
    const b = sampleTasks({ sources: SOURCES, numTasks: 30, classesPerTask: 5, seed: 1 });
    const c = sampleTasks({ sources: SOURCES, numTasks: 10, classesPerTask: 5, seed: 1 });
    const d = sampleTasks({ sources: SOURCES, numTasks: 30, classesPerTask: 5, seed: 2 });
    expect(b).toEqual(a);
    expect(c).toEqual(a.slice(0, 10));
    expect(d.map((t) => t.classes)).not.toEqual(a.map((t) => t.classes));
    for (const t of a) {
      expect(t.classes).toHaveLength(5);
      expect(new Set(t.classes).size).toBe(5);
      expect([...t.classes].sort((x, y) => x - y)).toEqual(t.classes);
      expect(t.numSample).toBe(20);
    }
    expect(new Set(a.map((t) => t.id)).size).toBe(30);
    expect(a[0].id).toBe('task-1-0000');
    // every source is used over 30 draws (uniform over 3)
    expect(new Set(a.map((t) => t.dataset))).toEqual(new Set(['cifar10', 'imagenet32', 'mnist']));
  });

  test('leave-one-dataset-out removes the meta-test dataset, and the guard catches leaks', () => {
    const rest = leaveOneDatasetOut(SOURCES, 'cifar10');
    expect(rest.map((s) => s.name)).toEqual(['imagenet32', 'mnist']);
    const tasks = sampleTasks({ sources: rest, numTasks: 50, classesPerTask: 3, seed: 0 });
    expect(() => assertTasksExclude(tasks, 'cifar10')).not.toThrow();
    const leaky = sampleTasks({ sources: SOURCES, numTasks: 50, classesPerTask: 3, seed: 0 });
    expect(() => assertTasksExclude(leaky, 'cifar10')).toThrow(/uses held-out dataset 'cifar10'/);
    expect(sampleTasks({ sources: SOURCES, numTasks: 40, classesPerTask: 3, seed: 0, exclude: ['cifar10'] }).every((t) => t.dataset !== 'cifar10')).toBe(true);
    expect(() => leaveOneDatasetOut(SOURCES, 'svhn')).toThrow(/'svhn' is not among the sources/);
    // 20-class tasks can only come from imagenet32
    expect(sampleTasks({ sources: SOURCES, numTasks: 5, classesPerTask: 20, seed: 0 }).every((t) => t.dataset === 'imagenet32')).toBe(true);
  });

  test('train/test image indices: disjoint, of the right class, seeded', () => {
    const tasks = sampleTasks({ sources: [SOURCES[0]], numTasks: 4, classesPerTask: 4, seed: 9, trainPerClass: 30, testPerClass: 10 });
    for (const t of tasks) {
      t.classes.forEach((c, k) => {
        expect(t.train![k]).toHaveLength(30);
        expect(t.test![k]).toHaveLength(10);
        const all = [...t.train![k], ...t.test![k]];
        expect(new Set(all).size).toBe(40);
        expect(all.every((i) => cifar.labels[i] === c)).toBe(true);
      });
    }
    expect(() => sampleTasks({ sources: [SOURCES[0]], numTasks: 1, classesPerTask: 2, seed: 0, trainPerClass: 95, testPerClass: 10 })).toThrow(/has 100 images, 95\+10 needed/);
    expect(() => sampleTasks({ sources: [SOURCES[2]], numTasks: 1, classesPerTask: 2, seed: 0, trainPerClass: 1 })).toThrow(/needs indicesByClass/);
  });

  test('whole-dataset task and file round trip with validation', () => {
    expect(wholeDatasetTask(SOURCES[0]).classes).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const f = path.join(tmpDir('tasks'), 'tasks.json');
    const tasks = sampleTasks({ sources: SOURCES, numTasks: 5, classesPerTask: 3, seed: 4 });
    writeTasks(f, tasks);
    expect(readTasks(f)).toEqual(tasks);
    const doc = JSON.parse(fs.readFileSync(f, 'utf8'));
    doc.tasks[3].classes = [1, 1, 2];
    fs.writeFileSync(f, JSON.stringify(doc));
    expect(() => readTasks(f)).toThrow(/tasks\.json, record 3, field 'classes': repeated class id/);
  });
});
