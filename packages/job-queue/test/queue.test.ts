import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { collectResults, drainQueue, enqueueJobs, obliterateQueue, queueStatus, redisConnectionOptions, startRedisServer, type QueueConfig, type RedisServer } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

function spawnWorker(cfg: QueueConfig, label: string): { proc: ChildProcess; lines: string[] } {
  const proc = spawn(process.execPath, [path.join(here, 'fixtures/worker.mjs'), cfg.url, cfg.name], {
    env: { ...process.env, WORKER_NAME: label },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  return { proc, lines };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('distributed jobs on a real Redis', () => {
  it('two workers, one killed mid-job: every job done once, no duplicate records', async () => {
    const cfg: QueueConfig = { url: redis.url, name: 'db-build', prefix: 'test' };
    await obliterateQueue(cfg);
    const jobs = Array.from({ length: 10 }, (_, i) => ({ id: `job-${i}`, data: { x: i, ms: 300 } }));
    expect(await enqueueJobs(cfg, jobs, { attempts: 3, backoffMs: 100 })).toEqual({ added: 10, existing: 0 });

    const a = spawnWorker(cfg, 'A');
    const b = spawnWorker(cfg, 'B');
    await until(() => a.lines.some((l) => l.startsWith('active ')), 20_000);
    const killedJob = a.lines.find((l) => l.startsWith('active '))!.split(' ')[1];
    a.proc.kill('SIGKILL');

    const records = new Map<string, { square: number; worker: string }>();
    let writes = 0;
    const final = await drainQueue<{ square: number; worker: string }>(
      cfg,
      (id) => records.has(id),
      (id, r) => {
        writes++;
        records.set(id, r);
      },
      { pollMs: 200, timeoutMs: 60_000 },
    );
    b.proc.kill('SIGTERM');
    await new Promise((r) => b.proc.once('exit', r));

    expect(final.failed).toBe(0);
    expect(final.completed).toBe(10);
    expect(writes).toBe(10);
    expect([...records.keys()].sort()).toEqual(jobs.map((j) => j.id).sort());
    for (const j of jobs) expect(records.get(j.id)!.square).toBe(j.data.x * j.data.x);
    // the job that was active in the killed worker was finished by the survivor
    expect(records.get(killedJob)!.worker).toBe('B');

    // enqueueing again and collecting again change nothing
    expect(await enqueueJobs(cfg, jobs)).toEqual({ added: 0, existing: 10 });
    expect(await collectResults(cfg, (id) => records.has(id), () => writes++)).toBe(0);
    expect(writes).toBe(10);
    const s = await queueStatus(cfg);
    expect(s.waiting + s.active + s.delayed).toBe(0);
  }, 90_000);

  it('reports a failing job with its reason after the retry limit', async () => {
    const cfg: QueueConfig = { url: redis.url, name: 'db-fail', prefix: 'test' };
    await obliterateQueue(cfg);
    await enqueueJobs(cfg, [{ id: 'bad', data: { x: 2, ms: 0, fail: true } }, { id: 'good', data: { x: 3, ms: 0 } }], { attempts: 2, backoffMs: 10 });
    const w = spawnWorker(cfg, 'C');
    const got = new Map<string, unknown>();
    const final = await drainQueue(cfg, (id) => got.has(id), (id, r) => got.set(id, r), { pollMs: 100, timeoutMs: 30_000 });
    w.proc.kill('SIGTERM');
    await new Promise((r) => w.proc.once('exit', r));
    expect(final.completed).toBe(1);
    expect(final.failed).toBe(1);
    expect(final.failures).toEqual([{ id: 'bad', reason: 'job bad asked to fail', attempts: 2 }]);
    expect([...got.keys()]).toEqual(['good']);
  }, 60_000);

  it('rejects a malformed Redis URL clearly', async () => {
    await expect(queueStatus({ url: 'http://x', name: 'q' })).rejects.toThrow(/protocol must be redis: or rediss:/);
    expect(() => redisConnectionOptions('redis://h:6379/queue')).toThrow(/database number.*'\/queue'/);
    expect(() => redisConnectionOptions('not a url')).toThrow(/invalid Redis URL 'not a url'/);
  });

  it('reads user, percent-encoded password, database and TLS from the URL', () => {
    expect(redisConnectionOptions('rediss://worker:p%40ss%3Aw@redis.example.org:6380/2')).toEqual({
      host: 'redis.example.org',
      port: 6380,
      db: 2,
      username: 'worker',
      password: 'p@ss:w',
      tls: { servername: 'redis.example.org' },
      maxRetriesPerRequest: null,
    });
    expect(redisConnectionOptions('redis://:secret@10.0.0.5')).toEqual({ host: '10.0.0.5', port: 6379, db: 0, password: 'secret', maxRetriesPerRequest: null });
  });

  it('authenticates as an ACL user named in the URL', async () => {
    const admin = new Redis(redis.url);
    try {
      await admin.call('ACL', 'SETUSER', 'worker', 'on', '>p@ss', '~*', '&*', '+@all');
      // the default user gets another password, so only AUTH as 'worker' with its password gets in
      await admin.call('ACL', 'SETUSER', 'default', 'resetpass', '>admin-only');
      const port = new URL(redis.url).port;
      const cfg: QueueConfig = { url: `redis://worker:p%40ss@127.0.0.1:${port}`, name: 'db-acl', prefix: 'test' };
      await obliterateQueue(cfg);
      expect(await enqueueJobs(cfg, [{ id: 'a', data: { x: 1, ms: 0 } }])).toEqual({ added: 1, existing: 0 });
      expect((await queueStatus(cfg)).waiting).toBe(1);
      // the default user sees the same job: the ACL user wrote to this server
      expect(await admin.exists('test:db-acl:a')).toBe(1);
    } finally {
      await admin.call('ACL', 'SETUSER', 'default', 'nopass');
      admin.disconnect();
    }
  }, 20_000);
});
