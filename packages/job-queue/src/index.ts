import { Queue, Worker, type Job } from 'bullmq';
import { MetaD2AError } from '@metad2a/core';

/** Where the queue lives: a Redis URL (redis://[user:password@]host:port/db, rediss:// for TLS), a queue name, and a key prefix. */
export interface QueueConfig {
  url: string;
  name: string;
  prefix?: string;
}

export interface JobSpec<T> {
  /** Deterministic id: enqueueing the same id twice adds it once (BullMQ dedupes by jobId). */
  id: string;
  data: T;
}

/** ioredis connection options for a queue URL. */
export interface RedisConnection {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** Present for rediss: URLs (TLS, server name checked against the host). */
  tls?: { servername: string };
  maxRetriesPerRequest: null;
}

/**
 * Parse redis://[user[:password]@]host[:port][/db] or rediss://... (TLS). User and password are
 * percent-decoded, as in URLs generally (a '@' in a password is written %40).
 */
export function redisConnectionOptions(url: string): RedisConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MetaD2AError('E_CONFIG', `invalid Redis URL '${url}' (expected redis://host:port or rediss://host:port for TLS)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new MetaD2AError('E_CONFIG', `invalid Redis URL '${url}': protocol must be redis: or rediss: (TLS), not ${u.protocol}`);
  }
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) {
    throw new MetaD2AError('E_CONFIG', `invalid Redis URL '${url}': the path must be a database number (/0, /1, ...), got '/${dbText}'`);
  }
  const host = u.hostname || '127.0.0.1';
  const decode = (v: string) => (v ? decodeURIComponent(v) : undefined);
  return {
    host,
    port: Number(u.port || 6379),
    db: Number(dbText || 0),
    ...(u.username ? { username: decode(u.username) } : {}),
    ...(u.password ? { password: decode(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
    // BullMQ workers need blocking commands that must not be retried per request.
    maxRetriesPerRequest: null,
  };
}

function openQueue(cfg: QueueConfig): Queue {
  return new Queue(cfg.name, { connection: redisConnectionOptions(cfg.url), prefix: cfg.prefix ?? 'metad2a' });
}

/**
 * Add jobs; ids already known to the queue (waiting, active, completed or failed) are not added again.
 * Failed attempts are retried up to `attempts` times with exponential backoff.
 */
export async function enqueueJobs<T>(cfg: QueueConfig, jobs: JobSpec<T>[], options: { attempts?: number; backoffMs?: number } = {}): Promise<{ added: number; existing: number }> {
  const q = openQueue(cfg);
  try {
    let existing = 0;
    const fresh: JobSpec<T>[] = [];
    for (const j of jobs) {
      if (await q.getJob(j.id)) existing++;
      else fresh.push(j);
    }
    const chunk = 500;
    for (let i = 0; i < fresh.length; i += chunk) {
      await q.addBulk(
        fresh.slice(i, i + chunk).map((j) => ({
          name: 'job',
          data: j.data,
          opts: {
            jobId: j.id,
            attempts: options.attempts ?? 3,
            backoff: { type: 'exponential', delay: options.backoffMs ?? 1000 },
            removeOnComplete: false,
            removeOnFail: false,
          },
        })),
      );
    }
    return { added: fresh.length, existing };
  } finally {
    await q.close();
  }
}

export interface WorkerHandle {
  close(): Promise<void>;
  /** How many job attempts this worker has finished (completed, or failed including those that will be retried). */
  readonly processed: () => number;
}

/**
 * Run a worker for the queue. The processor is a module file (default export `async (job) => result`)
 * run in a worker thread, so CPU-bound training never blocks lock renewal; when the whole process dies,
 * its active job's lock expires after `lockDurationMs` and another worker picks the job up again.
 */
export function startWorker(
  cfg: QueueConfig,
  processorFile: string,
  options: { concurrency?: number; lockDurationMs?: number; stalledIntervalMs?: number; maxStalledCount?: number; onEvent?: (e: string, job?: Job) => void } = {},
): WorkerHandle {
  let processed = 0;
  const worker = new Worker(cfg.name, processorFile, {
    connection: redisConnectionOptions(cfg.url),
    prefix: cfg.prefix ?? 'metad2a',
    concurrency: options.concurrency ?? 1,
    useWorkerThreads: true,
    lockDuration: options.lockDurationMs ?? 60_000,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    maxStalledCount: options.maxStalledCount ?? 2,
  });
  worker.on('active', (job) => options.onEvent?.('active', job));
  worker.on('completed', (job) => {
    processed++;
    options.onEvent?.('completed', job);
  });
  worker.on('failed', (job) => {
    processed++;
    options.onEvent?.('failed', job ?? undefined);
  });
  worker.on('error', (err) => options.onEvent?.(`error: ${err.message}`));
  return { close: () => worker.close(), processed: () => processed };
}

export interface QueueStatus {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
  /** The last error of failed jobs (id: reason), at most the first 51 (the view is a summary). */
  failures: Array<{ id: string; reason: string; attempts: number }>;
}

export async function queueStatus(cfg: QueueConfig): Promise<QueueStatus> {
  const q = openQueue(cfg);
  try {
    const c = await q.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children');
    const failed = await q.getJobs(['failed'], 0, 50);
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      failures: failed.map((j) => ({ id: String(j.id), reason: j.failedReason ?? '', attempts: j.attemptsMade })),
    };
  } finally {
    await q.close();
  }
}

/**
 * Hand every completed job's result to `store` exactly once per id: `isStored` is the store's own
 * record of what it already holds, so a collector restarted after a crash (or two workers finishing the
 * same retried job) never writes a record twice. Returns how many new results were stored.
 */
export async function collectResults<R>(cfg: QueueConfig, isStored: (id: string) => boolean, store: (id: string, result: R) => void): Promise<number> {
  const q = openQueue(cfg);
  try {
    let stored = 0;
    const page = 1000;
    for (let start = 0; ; start += page) {
      const jobs = await q.getJobs(['completed'], start, start + page - 1, true);
      for (const j of jobs) {
        const id = String(j.id);
        if (isStored(id)) continue;
        store(id, j.returnvalue as R);
        stored++;
      }
      if (jobs.length < page) break;
    }
    return stored;
  } finally {
    await q.close();
  }
}

/**
 * Collect results until nothing is waiting, active or delayed. Calls `onTick` with the status each poll.
 * Returns the final status (failed jobs are reported, not hidden).
 */
export async function drainQueue<R>(
  cfg: QueueConfig,
  isStored: (id: string) => boolean,
  store: (id: string, result: R) => void,
  options: { pollMs?: number; timeoutMs?: number; onTick?: (s: QueueStatus, stored: number) => void } = {},
): Promise<QueueStatus & { stored: number }> {
  const t0 = Date.now();
  let stored = 0;
  for (;;) {
    stored += await collectResults(cfg, isStored, store);
    const s = await queueStatus(cfg);
    options.onTick?.(s, stored);
    if (s.waiting + s.active + s.delayed === 0) {
      stored += await collectResults(cfg, isStored, store);
      return { ...s, stored };
    }
    if (options.timeoutMs !== undefined && Date.now() - t0 > options.timeoutMs) {
      throw new MetaD2AError('E_TIMEOUT', `queue '${cfg.name}' not drained after ${options.timeoutMs} ms: ${s.waiting} waiting, ${s.active} active, ${s.delayed} delayed`);
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
  }
}

/** Remove every key of the queue (used by the tests to start from an empty queue). */
export async function obliterateQueue(cfg: QueueConfig): Promise<void> {
  const q = openQueue(cfg);
  try {
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
}

export { startRedisServer, type RedisServer } from './redis-server.js';
