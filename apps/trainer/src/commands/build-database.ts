import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, MetaD2AError } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { formatTable, ProgressBar } from '@metad2a/cli-kit';
import { findRepoRoot } from '@metad2a/search-space-201';
import {
  checkRedis, collectIntoDatabase, DEFAULT_QUEUE, defaultRecipeFor, enqueuePlan, getTrainableSpace, openSource, parseSourceSpec, planJobs,
  queueConfigOf, resolveRecipe, runLocal, splitList, tasksFileOf, type OpenSource, type RunSummary,
} from '@metad2a/db-build';

interface Args {
  space: string;
  sources?: string[];
  tasks?: number;
  'archs-per-task': number;
  recipe?: string;
  'classes-per-task': number;
  'test-per-class': number;
  seed: number;
  out?: string;
  limit?: number;
  backend?: string;
  redis?: string;
  queue?: string;
  prefix?: string;
  attempts: number;
  'enqueue-only': boolean;
  timeout?: number;
}

/** Default database file: <repo>/datasets/meta-train/<space>-<recipe>.csv. */
function defaultOut(space: string, recipe: string): string {
  const root = findRepoRoot(process.cwd()) ?? process.cwd();
  return path.join(root, 'datasets', 'meta-train', `${space}-${recipe}.csv`);
}

/**
 * yargs catches errors thrown by handlers and prints the usage text with a stack before runCli sees
 * them; errors raised on purpose (bad options, bad input) print as one line instead, exit code 2.
 */
export function oneLineErrors<A>(handler: (a: A) => Promise<void>): (a: A) => Promise<void> {
  return async (a) => {
    try {
      await handler(a);
    } catch (e) {
      if (e instanceof MetaD2AError) {
        process.stderr.write(`error: ${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      throw e;
    }
  };
}

function fmtSeconds(s: number): string {
  return Number.isFinite(s) ? `${s.toFixed(2)} s` : 'n/a';
}

function report(summary: RunSummary, out: string, backend: string): void {
  process.stdout.write(
    `${formatTable(
      ['database', 'planned', 'already there', 'added', 'records in file', 'median s/training', 'backend'],
      [[path.relative(process.cwd(), out) || out, summary.planned, summary.skipped, summary.added, summary.total, fmtSeconds(summary.medianTrainSeconds), backend]],
    )}\n`,
  );
}

export const buildDatabaseCommand: CommandModule<object, Args> = {
  command: 'build-database',
  describe: 'Sample tasks and architectures, train them, append (task, arch, accuracy) records; resumable; local or through a Redis queue',
  builder: (y: Argv) =>
    y
      .option('space', { type: 'string', default: 'nb201', describe: 'search space: nb201 | mbv3' })
      .option('sources', { type: 'string', array: true, describe: 'datasets to draw tasks from: mnist, fashion-mnist, cifar10, cifar10-subset, a path, or NAME=PATH (repeat or comma-separate)' })
      .option('tasks', { type: 'number', describe: 'number of tasks (class subsets) to sample' })
      .option('archs-per-task', { type: 'number', default: 10, describe: 'distinct architectures trained per task' })
      .option('recipe', { type: 'string', describe: 'training recipe name (default: the calibrated cheap recipe of the space)' })
      .option('classes-per-task', { type: 'number', default: 5 })
      .option('test-per-class', { type: 'number', default: 50, describe: 'held-out images per class the accuracy is measured on' })
      .option('seed', { type: 'number', default: 0 })
      .option('out', { type: 'string', describe: 'database file (.csv or .jsonl); default datasets/meta-train/<space>-<recipe>.csv' })
      .option('limit', { type: 'number', describe: 'stop after this many new records (local mode)' })
      .option('backend', { type: 'string', describe: 'tfjs backend: tensorflow-gpu | tensorflow | wasm | cpu (default: best available)' })
      .option('redis', { type: 'string', describe: 'queue mode: Redis URL; jobs go to the queue and `trainer worker` processes train them' })
      .option('queue', { type: 'string', describe: `queue name (default ${DEFAULT_QUEUE})` })
      .option('prefix', { type: 'string', describe: 'Redis key prefix (default metad2a)' })
      .option('attempts', { type: 'number', default: 3, describe: 'queue mode: tries per job before it counts as failed' })
      .option('enqueue-only', { type: 'boolean', default: false, describe: 'queue mode: enqueue and exit; collect later with the same command' })
      .option('timeout', { type: 'number', describe: 'queue mode: give up collecting after this many seconds' }) as unknown as Argv<Args>,
  handler: oneLineErrors(async (a: Args) => {
    // Cheap checks first, so a typo fails in a second with one line.
    getTrainableSpace(a.space);
    const recipe = resolveRecipe(a.recipe ?? defaultRecipeFor(a.space));
    const sourceSpecs = splitList(a.sources);
    if (sourceSpecs.length === 0) throw new ConfigError('sources', 'missing', 'e.g. --sources mnist fashion-mnist cifar10');
    if (a.tasks === undefined) throw new ConfigError('tasks', 'missing', 'e.g. --tasks 200');
    const queueMode = a.redis !== undefined || a.queue !== undefined;
    const cfg = queueMode ? queueConfigOf({ redis: a.redis, queue: a.queue, prefix: a.prefix }) : null;
    if (cfg) await checkRedis(cfg.url);
    const refs = sourceSpecs.map(parseSourceSpec);
    const sources: OpenSource[] = [];
    for (const r of refs) sources.push(await openSource(r));
    const plan = planJobs({
      space: a.space,
      sources,
      tasks: a.tasks,
      archsPerTask: a['archs-per-task'],
      recipe,
      seed: a.seed,
      classesPerTask: a['classes-per-task'],
      testPerClass: a['test-per-class'],
    });
    const out = path.resolve(a.out ?? defaultOut(a.space, recipe.id));
    process.stderr.write(`[build-database] ${plan.tasks.length} tasks x ${a['archs-per-task']} archs = ${plan.jobs.length} trainings with '${recipe.id}' -> ${out} (tasks: ${path.basename(tasksFileOf(out))})\n`);

    if (cfg) {
      if (!Number.isInteger(a.attempts) || a.attempts < 1) throw new ConfigError('attempts', `must be a positive integer, got ${a.attempts}`);
      const q = await enqueuePlan(cfg, plan, out, { attempts: a.attempts });
      process.stderr.write(`[build-database] queue '${cfg.name}' on ${cfg.url}: ${q.added} jobs added, ${q.existing} already queued, ${q.stored} already in the database\n`);
      if (a['enqueue-only']) return;
      const bar = new ProgressBar('build-database', plan.jobs.length - q.stored);
      const res = await collectIntoDatabase(cfg, plan, out, {
        timeoutMs: a.timeout !== undefined ? a.timeout * 1000 : undefined,
        onTick: (s, added, last) =>
          bar.update(added, `| queue: ${s.waiting} waiting, ${s.active} active, ${s.failed} failed${last ? ` | last ${last.record.accuracy.toFixed(1)}% in ${last.seconds.toFixed(1)} s on ${last.backend}` : ''}`),
      });
      report(res, out, res.backends.join(', ') || 'n/a');
      if (res.status.failed > 0) {
        const lines = res.status.failures.slice(0, 5).map((f) => `${f.id} (${f.attempts} attempts): ${f.reason.split('\n')[0]}`);
        throw new MetaD2AError('E_JOBS_FAILED', `${res.status.failed} job(s) failed after their retries; first: ${lines[0] ?? '?'} (trainer status --queue ${cfg.name} lists them)`);
      }
      return;
    }

    const info = await initBackend({ force: a.backend });
    const bar = new ProgressBar('build-database', 0);
    const summary = await runLocal(plan, out, {
      limit: a.limit,
      onStart: (p) => {
        bar.setTotal(p.todo);
        bar.update(0, p.skipped ? `(${p.skipped} already in the database)` : '');
      },
      onRecord: (p) => bar.update(p.added, p.last ? `| last ${p.last.record.accuracy.toFixed(1)}% in ${p.last.seconds.toFixed(1)} s` : ''),
    });
    report(summary, out, info.name);
  }),
};
