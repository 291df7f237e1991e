import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSource, parseSourceSpec, planJobs, resolveRecipe, type OpenSource, type Plan, type PlanOptions } from '../src/index.js';

export const TINY = 'tiny-c4n1-16px-1ep';

let subset: Promise<OpenSource> | null = null;
/** The shared CIFAR-10 subset (100 train images per class), opened once per test file. */
export function cifarSubset(): Promise<OpenSource> {
  subset ??= openSource(parseSourceSpec('cifar10-subset'));
  return subset;
}

export async function tinyPlan(over: Partial<PlanOptions> = {}): Promise<Plan> {
  return planJobs({
    space: 'nb201',
    sources: [await cifarSubset()],
    tasks: 2,
    archsPerTask: 2,
    recipe: resolveRecipe(TINY),
    seed: 7,
    classesPerTask: 2,
    testPerClass: 10,
    ...over,
  });
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dbb-${label}-`));
}
