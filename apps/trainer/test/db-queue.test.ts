import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDatabase, type MetaRecord } from '@metad2a/data-pipeline';
import { startRedisServer, type RedisServer } from '@metad2a/db-build';
import { root, runCli, start, tmpDir, TINY_ARGS, until, type Proc } from './db-helpers.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

const strip = (r: MetaRecord) => ({ ...r, time: '' });

describe('trainer build-database through a Redis queue', () => {
  it('two worker processes, one SIGKILLed mid-job: every record exactly once, equal to a local run; status counts', async () => {
    const dir = tmpDir('queue');
    const db = path.join(dir, 'queued.jsonl');
    const q = ['--redis', redis.url, '--queue', 'dbtest', '--prefix', 'e2e'];
    const plan = [...TINY_ARGS, '--tasks', '3', '--archs-per-task', '2'];

    const enq = await runCli(['build-database', ...plan, ...q, '--out', db, '--enqueue-only']);
    expect(enq.code, enq.err.join('\n')).toBe(0);
    expect(enq.err.join('\n')).toMatch(/6 jobs added, 0 already queued, 0 already in the database/);

    const st0 = await runCli(['status', ...q]);
    expect(st0.code).toBe(0);
    expect(st0.out.join('\n')).toMatch(/waiting\s+active\s+delayed\s+completed\s+failed\n[- ]+\n\s*6\s+0\s+0\s+0\s+0/);

    // short locks so the killed worker's job is handed on within seconds
    const wargs = ['worker', ...q, '--lock-ms', '2000', '--stalled-ms', '500'];
    const a = start(wargs);
    const b = start(wargs);
    const workers: Proc[] = [a, b];
    try {
      const collector = start(['build-database', ...plan, ...q, '--out', db, '--timeout', '90']);
      await until(() => a.out.some((l) => l.startsWith('active ')), 60_000, 'worker A to take a job');
      const killed = a.out.find((l) => l.startsWith('active '))!.split(' ')[1];
      a.proc.kill('SIGKILL');
      const code = await collector.done;
      expect(code, collector.err.join('\n')).toBe(0);
      expect(collector.err.some((l) => /build-database \[#+\] 6\/6 100%/.test(l))).toBe(true);
      // summary: planned 6, none there before, 6 added, 6 in the file, and the backend the workers used
      expect(collector.out.join('\n')).toMatch(/queued\.jsonl\s+6\s+0\s+6\s+6\s+[\d.]+ s\s+(wasm|cpu|tensorflow|tensorflow-gpu)/);

      const recs = (await readDatabase(db)).records;
      expect(recs).toHaveLength(6);
      expect(new Set(recs.map((r) => `${r.taskId} ${r.arch}`)).size).toBe(6);
      // the job A died in was trained again by B
      expect(b.out.some((l) => l.startsWith(`completed ${killed} `))).toBe(true);
      expect(a.out.some((l) => l.startsWith(`completed ${killed} `))).toBe(false);

      // collecting again adds nothing; status shows 6 completed, none failed
      const again = await runCli(['build-database', ...plan, ...q, '--out', db]);
      expect(again.code).toBe(0);
      expect(again.err.join('\n')).toMatch(/0 jobs added, 0 already queued, 6 already in the database/);
      expect((await readDatabase(db)).records).toHaveLength(6);
      const st = await runCli(['status', ...q, '--db', db]);
      expect(st.out.join('\n')).toMatch(/\n\s*0\s+0\s+0\s+6\s+0\n/);
      expect(st.out.join('\n')).toMatch(/database .*queued\.jsonl: 6 records/);

      // the same plan trained in one local process gives the same records (same backend, same seeds)
      const local = path.join(dir, 'local.jsonl');
      expect((await runCli(['build-database', ...plan, '--out', local])).code).toBe(0);
      const key = (r: MetaRecord) => `${r.taskId} ${r.arch}`;
      const sorted = (rs: MetaRecord[]) => [...rs].sort((x, y) => key(x).localeCompare(key(y))).map(strip);
      expect(sorted(recs)).toEqual(sorted((await readDatabase(local)).records));
    } finally {
      for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.done));
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(b.out.some((l) => /^worker stopped after \d+ job/.test(l))).toBe(true);
  });

  it('a job that keeps failing is retried up to --attempts, then reported by build-database and status', async () => {
    const dir = tmpDir('fail');
    const db = path.join(dir, 'db.csv');
    const q = ['--redis', redis.url, '--queue', 'failing', '--prefix', 'e2e'];
    const plan = [...TINY_ARGS, '--tasks', '1', '--archs-per-task', '1', '--attempts', '2'];
    expect((await runCli(['build-database', ...plan, ...q, '--out', db, '--enqueue-only'])).code).toBe(0);
    // a worker machine without the data: named sources resolve under its own (empty) data folder
    const w = start(['worker', ...q], { METAD2A_DATA_DIR: dir });
    try {
      const r = await runCli(['build-database', ...plan, ...q, '--out', db, '--timeout', '60']);
      expect(r.code).toBe(2);
      const errs = r.err.filter((l) => l.startsWith('error:'));
      expect(errs).toHaveLength(1);
      expect(errs[0]).toMatch(/^error: 1 job\(s\) failed after their retries; first: nb201-[0-9a-f]+ \(2 attempts\): .*cifar10-subset.*not found/);
      expect(w.out.filter((l) => l.startsWith('failed '))).toHaveLength(2);
      const st = await runCli(['status', ...q]);
      expect(st.out.join('\n')).toMatch(/\n\s*0\s+0\s+0\s+0\s+1\n/);
      expect(st.out.join('\n')).toMatch(/failed jobs:[\s\S]*nb201-[0-9a-f]+\s+2\s+.*not found/);
      expect((await readDatabase(db)).records).toHaveLength(0);
    } finally {
      w.proc.kill('SIGTERM');
      await w.done;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('status, worker and queue mode fail with one line when Redis is unreachable', async () => {
    for (const args of [['status'], ['worker'], ['build-database', ...TINY_ARGS, '--tasks', '1']]) {
      const r = await runCli([...args, '--redis', 'redis://127.0.0.1:1', '--queue', 'x']);
      expect(r.code, args[0]).toBe(2);
      expect(r.err.filter((l) => l.trim() && !l.startsWith('[')).join('\n')).toBe('error: cannot reach Redis at redis://127.0.0.1:1: ECONNREFUSED');
    }
  });
});
