import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MetaD2AError } from '@metad2a/core';
import { collectResults, enqueueJobs, queueStatus, startWorker, type QueueConfig, type QueueStatus, type WorkerHandle } from '@metad2a/job-queue';
import { mergeTasksFile, openDatabase, readRecords, tasksFileOf } from './database.js';
import type { TrainJobResult } from './job.js';
import { median, type RunSummary } from './local.js';
import { jobIdOfRecord, type Plan } from './plan.js';

/**
 * The built processor module BullMQ runs in worker threads (dist/processor.js). Found beside this
 * module in dist, or in ../dist when this module is the TypeScript source (tests).
 */
export function processorFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const p of [path.join(here, 'processor.js'), path.join(here, '..', 'dist', 'processor.js')]) if (fs.existsSync(p)) return p;
  throw new MetaD2AError('E_NOT_BUILT', `db-build processor not built (expected ${path.join(here, 'processor.js')}; run npx tsup in packages/db-build)`);
}

/** Ids of the measurements a database file already holds. */
export async function storedJobIds(dbFile: string): Promise<Set<string>> {
  return new Set((await readRecords(dbFile)).map(jobIdOfRecord));
}

/** Enqueue the plan's jobs that the database does not hold yet (ids already in the queue are not added twice). */
export async function enqueuePlan(cfg: QueueConfig, plan: Plan, dbFile: string, options: { attempts?: number; backoffMs?: number } = {}): Promise<{ added: number; existing: number; stored: number }> {
  const stored = await storedJobIds(dbFile);
  const fresh = plan.jobs.filter((j) => !stored.has(j.id));
  const r = await enqueueJobs(cfg, fresh, { attempts: options.attempts ?? 3, backoffMs: options.backoffMs ?? 2000 });
  return { ...r, stored: plan.jobs.length - fresh.length };
}

export interface CollectOptions {
  pollMs?: number;
  timeoutMs?: number;
  onTick?: (s: QueueStatus, added: number, last: TrainJobResult | undefined) => void;
}

/**
 * Move finished results of the plan from the queue into the database until nothing of it is waiting,
 * active or delayed. Exactly once per measurement: a job id is written only when the file does not
 * hold it yet, and the file is what is checked, so a collector restarted after a crash, or a job
 * finished twice after its worker died, never adds a duplicate.
 */
export async function collectIntoDatabase(cfg: QueueConfig, plan: Plan, dbFile: string, options: CollectOptions = {}): Promise<RunSummary & { status: QueueStatus; backends: string[] }> {
  const t0 = Date.now();
  const planIds = new Set(plan.jobs.map((j) => j.id));
  const writer = await openDatabase(dbFile);
  try {
    mergeTasksFile(tasksFileOf(dbFile), plan.tasks);
    const stored = await storedJobIds(dbFile);
    const skipped = plan.jobs.filter((j) => stored.has(j.id)).length;
    let added = 0;
    const times: number[] = [];
    const backends = new Set<string>();
    let last: TrainJobResult | undefined;
    const pull = async (): Promise<void> => {
      const batch: TrainJobResult[] = [];
      await collectResults<TrainJobResult>(
        cfg,
        (id) => stored.has(id) || !planIds.has(id),
        (id, r) => {
          stored.add(id);
          batch.push(r);
        },
      );
      for (const r of batch) {
        if (!r || !r.record) throw new MetaD2AError('E_QUEUE', `a completed job of queue '${cfg.name}' returned no record`);
        if (!planIds.has(jobIdOfRecord(r.record))) throw new MetaD2AError('E_QUEUE', `job result for task ${r.record.taskId} / ${r.record.arch} does not match its job id`);
      }
      if (batch.length) await writer.append(batch.map((r) => r.record));
      added += batch.length;
      for (const r of batch) {
        times.push(r.seconds);
        backends.add(r.backend);
      }
      if (batch.length) last = batch[batch.length - 1];
    };
    for (;;) {
      await pull();
      const s = await queueStatus(cfg);
      options.onTick?.(s, added, last);
      if (s.waiting + s.active + s.delayed === 0) {
        await pull();
        const status = await queueStatus(cfg);
        return { planned: plan.jobs.length, skipped, added, total: writer.size, seconds: (Date.now() - t0) / 1000, medianTrainSeconds: median(times), status, backends: [...backends] };
      }
      if (options.timeoutMs !== undefined && Date.now() - t0 > options.timeoutMs) {
        throw new MetaD2AError('E_TIMEOUT', `queue '${cfg.name}' not drained after ${options.timeoutMs} ms: ${s.waiting} waiting, ${s.active} active, ${s.delayed} delayed`);
      }
      await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
    }
  } finally {
    writer.close();
  }
}

export interface DbWorkerOptions {
  concurrency?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Worker events ('active', 'completed', 'failed', 'error: ...') with the job where there is one. */
  onEvent?: (e: string, job?: { id?: string; returnvalue?: unknown; failedReason?: string; attemptsMade?: number }) => void;
}

/** A worker that trains the queue's jobs in worker threads with the db-build processor. */
export function startDbWorker(cfg: QueueConfig, options: DbWorkerOptions = {}): WorkerHandle {
  return startWorker(cfg, processorFile(), {
    concurrency: options.concurrency ?? 1,
    lockDurationMs: options.lockDurationMs ?? 30_000,
    stalledIntervalMs: options.stalledIntervalMs ?? 15_000,
    onEvent: options.onEvent,
  });
}
