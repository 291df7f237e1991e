import { openDatabase, mergeTasksFile, tasksFileOf } from './database.js';
import { runTrainJob, type TrainJobResult } from './job.js';
import type { Plan } from './plan.js';

export interface RunProgress {
  /** Jobs of the plan already in the database when the run started. */
  skipped: number;
  /** Records added by this run so far. */
  added: number;
  /** Jobs this run will do (plan minus skipped, capped by limit). */
  todo: number;
  last?: TrainJobResult;
}

export interface LocalRunOptions {
  /** Stop after this many new records (the rest stays for a later run). */
  limit?: number;
  onStart?: (p: RunProgress) => void;
  onRecord?: (p: RunProgress) => void;
}

export interface RunSummary {
  planned: number;
  skipped: number;
  added: number;
  /** Records in the database file after the run. */
  total: number;
  seconds: number;
  /** Median seconds of one training in this run (NaN when nothing ran). */
  medianTrainSeconds: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Run the plan in this process, in plan order, appending each record as soon as it is measured.
 * Resumable: jobs whose record is already in the file are skipped, so an interrupted run continues
 * where it stopped and a finished one adds nothing.
 */
export async function runLocal(plan: Plan, dbFile: string, options: LocalRunOptions = {}): Promise<RunSummary> {
  const t0 = Date.now();
  const writer = await openDatabase(dbFile);
  try {
    mergeTasksFile(tasksFileOf(dbFile), plan.tasks);
    const pending = plan.jobs.filter((j) => !writer.has({ taskId: j.data.task.id, arch: j.data.arch, recipe: j.data.recipe.id, seed: j.data.seed }));
    const skipped = plan.jobs.length - pending.length;
    const todo = Math.min(pending.length, options.limit ?? Infinity);
    const progress: RunProgress = { skipped, added: 0, todo };
    options.onStart?.({ ...progress });
    const times: number[] = [];
    for (const job of pending.slice(0, todo)) {
      const res = await runTrainJob(job.data);
      await writer.append(res.record);
      times.push(res.seconds);
      progress.added++;
      progress.last = res;
      options.onRecord?.({ ...progress });
    }
    return { planned: plan.jobs.length, skipped, added: progress.added, total: writer.size, seconds: (Date.now() - t0) / 1000, medianTrainSeconds: median(times) };
  } finally {
    writer.close();
  }
}
