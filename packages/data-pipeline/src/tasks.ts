import fs from 'node:fs';
import { ConfigError, InputError, Rng, writeFileAtomic } from '@metad2a/core';

/** A dataset tasks can be drawn from: its name, class count and (optionally) record indices per class. */
export interface TaskSource {
  name: string;
  numClasses: number;
  /** Record indices of every class; needed only when tasks carry train/test image indices. */
  indicesByClass?: number[][];
}

/** A class subset of one source dataset (MetaD2A's meta-training unit). */
export interface Task {
  id: string;
  dataset: string;
  /** Class ids of the source dataset, ascending. */
  classes: number[];
  /** Features drawn per class for the set encoder. */
  numSample: number;
  /** Per task class (same order as `classes`): record indices for training the architecture. */
  train?: number[][];
  /** Per task class: held-out record indices to measure accuracy on (disjoint from train). */
  test?: number[][];
}

export interface SampleTasksOptions {
  sources: readonly TaskSource[];
  numTasks: number;
  classesPerTask: number;
  seed: number;
  numSample?: number;
  /** Images per class for training / testing the architectures (both need indicesByClass). */
  trainPerClass?: number;
  testPerClass?: number;
  /** Datasets that must not appear (leave-one-dataset-out: the meta-test dataset). */
  exclude?: readonly string[];
  /** Prefix of task ids (default 'task'). */
  idPrefix?: string;
}

/** All sources but the held-out meta-test dataset(s): the leave-one-dataset-out rule. */
export function leaveOneDatasetOut(sources: readonly TaskSource[], heldOut: string | readonly string[]): TaskSource[] {
  const out = new Set(typeof heldOut === 'string' ? [heldOut] : heldOut);
  for (const h of out) if (!sources.some((s) => s.name === h)) throw new ConfigError('heldOut', `dataset '${h}' is not among the sources (${sources.map((s) => s.name).join(', ')})`);
  return sources.filter((s) => !out.has(s.name));
}

/** Throws if any task uses one of `datasets` (a guard before meta-testing on them). */
export function assertTasksExclude(tasks: readonly Task[], datasets: string | readonly string[]): void {
  const bad = new Set(typeof datasets === 'string' ? [datasets] : datasets);
  const hit = tasks.find((t) => bad.has(t.dataset));
  if (hit) throw new ConfigError('tasks', `task '${hit.id}' uses held-out dataset '${hit.dataset}'`, 'meta-training tasks must not contain the meta-test dataset');
}

/**
 * Draw tasks reproducibly: task k depends only on (seed, k), so a longer list extends a shorter
 * one. Each picks a source uniformly among those with enough classes, then `classesPerTask`
 * distinct classes (sorted), then disjoint train/test record indices per class.
 */
export function sampleTasks(options: SampleTasksOptions): Task[] {
  const { numTasks, classesPerTask, seed } = options;
  const numSample = options.numSample ?? 20;
  if (!Number.isInteger(numTasks) || numTasks < 0) throw new ConfigError('numTasks', `${numTasks}`, 'a non-negative integer');
  if (!Number.isInteger(classesPerTask) || classesPerTask < 1) throw new ConfigError('classesPerTask', `${classesPerTask}`, 'a positive integer');
  const excluded = new Set(options.exclude ?? []);
  const sources = options.sources.filter((s) => !excluded.has(s.name) && s.numClasses >= classesPerTask);
  if (sources.length === 0) throw new ConfigError('sources', `no source dataset has ${classesPerTask} classes after excluding ${[...excluded].join(', ') || 'none'}`);
  const trainPer = options.trainPerClass ?? 0;
  const testPer = options.testPerClass ?? 0;
  if (trainPer + testPer > 0) {
    for (const s of sources) {
      if (!s.indicesByClass || s.indicesByClass.length !== s.numClasses) throw new ConfigError('sources', `source '${s.name}' needs indicesByClass for ${s.numClasses} classes to draw image indices`);
    }
  }
  const prefix = options.idPrefix ?? 'task';
  const width = Math.max(4, String(numTasks - 1).length);
  const tasks: Task[] = [];
  for (let k = 0; k < numTasks; k++) {
    // Derived per task, not advanced across tasks, so task k is independent of numTasks.
    const rng = new Rng(`tasks:${seed}:${k}`);
    const src = sources[rng.int(sources.length)];
    const classes = rng.sampleWithoutReplacement(src.numClasses, classesPerTask).sort((a, b) => a - b);
    const task: Task = { id: `${prefix}-${seed}-${String(k).padStart(width, '0')}`, dataset: src.name, classes, numSample };
    if (trainPer + testPer > 0) {
      task.train = [];
      task.test = [];
      for (const c of classes) {
        const pool = src.indicesByClass![c];
        if (pool.length < trainPer + testPer) {
          throw new ConfigError('trainPerClass', `class ${c} of '${src.name}' has ${pool.length} images, ${trainPer}+${testPer} needed`);
        }
        const pick = rng.sampleWithoutReplacement(pool.length, trainPer + testPer).map((i) => pool[i]);
        task.train.push(pick.slice(0, trainPer).sort((a, b) => a - b));
        task.test.push(pick.slice(trainPer).sort((a, b) => a - b));
      }
    }
    tasks.push(task);
  }
  return tasks;
}

/** The meta-test "task" of a whole dataset: every class. */
export function wholeDatasetTask(source: TaskSource, numSample = 20): Task {
  return { id: `${source.name}-all`, dataset: source.name, classes: Array.from({ length: source.numClasses }, (_, i) => i), numSample };
}

/** Save tasks as JSON (atomically). */
export function writeTasks(file: string, tasks: readonly Task[]): void {
  writeFileAtomic(file, `${JSON.stringify({ format: 'metad2a-tasks', version: 1, tasks })}\n`);
}

/** Load and validate a tasks file; errors name the task index and field. */
export function readTasks(file: string): Task[] {
  if (!fs.existsSync(file)) throw new InputError({ file }, 'tasks file not found');
  let doc: { format?: string; tasks?: unknown };
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
  if (doc.format !== 'metad2a-tasks' || !Array.isArray(doc.tasks)) throw new InputError({ file, field: 'format' }, "not a metad2a tasks file (format 'metad2a-tasks' with a 'tasks' list)");
  const ids = new Set<string>();
  return (doc.tasks as Task[]).map((t, i) => {
    const bad = (field: string, problem: string): never => {
      throw new InputError({ file, record: i, field }, problem);
    };
    if (typeof t.id !== 'string' || !t.id) bad('id', 'missing');
    if (ids.has(t.id)) bad('id', `duplicate id '${t.id}'`);
    ids.add(t.id);
    if (typeof t.dataset !== 'string' || !t.dataset) bad('dataset', 'missing');
    if (!Array.isArray(t.classes) || t.classes.length === 0 || !t.classes.every((c) => Number.isInteger(c) && c >= 0)) bad('classes', 'must be a non-empty list of class ids');
    if (new Set(t.classes).size !== t.classes.length) bad('classes', 'repeated class id');
    if (!Number.isInteger(t.numSample) || t.numSample <= 0) bad('numSample', `invalid ${t.numSample}`);
    for (const key of ['train', 'test'] as const) {
      const v = t[key];
      if (v !== undefined && (!Array.isArray(v) || v.length !== t.classes.length)) bad(key, `must hold one index list per class (${t.classes.length})`);
    }
    return t;
  });
}
