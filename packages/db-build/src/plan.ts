import { createHash } from 'node:crypto';
import { ConfigError, Rng } from '@metad2a/core';
import { validateRecipe, type TrainRecipe } from '@metad2a/arch-training';
import { sampleTasks, type MetaRecord, type Task } from '@metad2a/data-pipeline';
import type { JobSpec } from '@metad2a/job-queue';
import { checkRecipeForSpace, getTrainableSpace } from './spaces.js';
import { taskSourceOf, type OpenSource, type SourceRef } from './sources.js';

/** A task as a job carries it: its classes and the record indices to train and to test on. */
export interface JobTask {
  id: string;
  dataset: string;
  classes: number[];
  train: number[][];
  test: number[][];
}

/** One training: everything a worker on another machine needs, as plain JSON. */
export interface TrainJob {
  space: string;
  arch: string;
  /** The full recipe, so workers need not share a recipe registry; `recipe.id` goes into the record. */
  recipe: TrainRecipe;
  /** The run's seed; the network's initial weights and the batch order derive from (seed, task, arch). */
  seed: number;
  task: JobTask;
  source: SourceRef;
}

export interface PlanOptions {
  space: string;
  sources: readonly OpenSource[];
  tasks: number;
  archsPerTask: number;
  recipe: TrainRecipe;
  seed: number;
  classesPerTask: number;
  /** Held-out images per class to measure accuracy on (disjoint from the training images). */
  testPerClass: number;
}

export interface Plan {
  options: Omit<PlanOptions, 'sources'> & { sources: SourceRef[]; trainPerClass: number };
  tasks: Task[];
  jobs: Array<JobSpec<TrainJob>>;
}

/** Deterministic job id of a measurement: the same (space, task, arch, recipe, seed) always gets the same id. */
export function jobIdOf(space: string, taskId: string, arch: string, recipe: string, seed: number | null): string {
  const h = createHash('sha256').update([space, taskId, arch, recipe, String(seed ?? '')].join('\u0000')).digest('hex');
  // BullMQ job ids must not contain ':'; a hex digest also keeps Redis keys short.
  return `${space}-${h.slice(0, 32)}`;
}

export function jobIdOfRecord(r: Pick<MetaRecord, 'searchSpace' | 'taskId' | 'arch' | 'recipe' | 'seed'>): string {
  return jobIdOf(r.searchSpace, r.taskId, r.arch, r.recipe, r.seed);
}

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new ConfigError(name, `must be an integer >= ${min}, got ${v}`);
}

/**
 * Sample tasks and K distinct architectures per task, and list one job per (task, arch). Everything
 * derives from the seed: task k from (seed, k), the architectures of a task from (seed, task id),
 * so a run with more tasks extends a shorter run's plan and ids never change.
 */
export function planJobs(options: PlanOptions): Plan {
  const space = getTrainableSpace(options.space);
  validateRecipe(options.recipe);
  checkRecipeForSpace(space.id, options.recipe);
  positiveInt('tasks', options.tasks);
  positiveInt('archs-per-task', options.archsPerTask);
  positiveInt('classes-per-task', options.classesPerTask, 2);
  positiveInt('test-per-class', options.testPerClass);
  positiveInt('seed', options.seed, 0);
  if (options.sources.length === 0) throw new ConfigError('sources', 'no source datasets given');
  const names = new Set<string>();
  for (const s of options.sources) {
    if (names.has(s.name)) throw new ConfigError('sources', `two sources are named '${s.name}'`, 'name them: NAME=PATH');
    names.add(s.name);
  }
  const taskSources = options.sources.map(taskSourceOf);
  const eligible = taskSources.filter((s) => s.numClasses >= options.classesPerTask);
  if (eligible.length === 0) throw new ConfigError('classes-per-task', `${options.classesPerTask} is more than any source has (${taskSources.map((s) => `${s.name}: ${s.numClasses}`).join(', ')})`);
  // A recipe without a cap trains on every image a class has left after the held-out ones.
  const smallest = Math.min(...eligible.flatMap((s) => s.indicesByClass!.map((c) => c.length)));
  const trainPerClass = options.recipe.maxTrainPerClass > 0 ? options.recipe.maxTrainPerClass : smallest - options.testPerClass;
  if (trainPerClass <= 0) throw new ConfigError('test-per-class', `${options.testPerClass} leaves no training images (smallest class: ${smallest})`);
  // Task ids name the sampling settings, so two plans that draw different tasks never share an id.
  const settings = JSON.stringify([taskSources.map((s) => s.name), options.classesPerTask, trainPerClass, options.testPerClass]);
  const idPrefix = `t${createHash('sha256').update(settings).digest('hex').slice(0, 6)}`;
  const tasks = sampleTasks({
    sources: taskSources,
    numTasks: options.tasks,
    classesPerTask: options.classesPerTask,
    seed: options.seed,
    trainPerClass,
    testPerClass: options.testPerClass,
    idPrefix,
  });
  const refOf = new Map(options.sources.map((s) => [s.name, { name: s.name, spec: s.spec }]));
  const jobs: Array<JobSpec<TrainJob>> = [];
  for (const t of tasks) {
    const rng = new Rng(`archs:${options.seed}:${t.id}`);
    const seen = new Set<string>();
    for (let tries = 0; seen.size < options.archsPerTask; tries++) {
      if (tries > 1000 * options.archsPerTask) throw new ConfigError('archs-per-task', `could not draw ${options.archsPerTask} distinct architectures`);
      const arch = space.sample(rng);
      const key = space.functionalKey(arch);
      if (seen.has(key)) continue;
      seen.add(key);
      const task: JobTask = { id: t.id, dataset: t.dataset, classes: t.classes, train: t.train!, test: t.test! };
      const data: TrainJob = { space: space.id, arch, recipe: options.recipe, seed: options.seed, task, source: refOf.get(t.dataset)! };
      jobs.push({ id: jobIdOf(space.id, t.id, arch, options.recipe.id, options.seed), data });
    }
  }
  const { sources, ...rest } = options;
  return { options: { ...rest, sources: sources.map((s) => ({ name: s.name, spec: s.spec })), trainPerClass }, tasks, jobs };
}
