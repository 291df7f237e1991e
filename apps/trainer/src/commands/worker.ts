import type { Argv, CommandModule } from 'yargs';
import { oneLineErrors } from './build-database.js';
import { ConfigError } from '@metad2a/core';
import { checkRedis, DEFAULT_QUEUE, queueConfigOf, startDbWorker, type TrainJobResult } from '@metad2a/db-build';

interface Args {
  redis?: string;
  queue?: string;
  prefix?: string;
  concurrency: number;
  'lock-ms': number;
  'stalled-ms': number;
  backend?: string;
}

export const workerCommand: CommandModule<object, Args> = {
  command: 'worker',
  describe: 'Train queued build-database jobs (run one per machine, or several); stops cleanly on SIGINT/SIGTERM',
  builder: (y: Argv) =>
    y
      .option('redis', { type: 'string', describe: 'Redis URL (default $METAD2A_REDIS_URL or redis://127.0.0.1:6379)' })
      .option('queue', { type: 'string', describe: `queue name (default ${DEFAULT_QUEUE})` })
      .option('prefix', { type: 'string', describe: 'Redis key prefix (default metad2a)' })
      .option('concurrency', { type: 'number', default: 1, describe: 'jobs trained at once (each in its own worker thread)' })
      .option('lock-ms', { type: 'number', default: 30_000, describe: 'job lock; a dead worker\'s job is retried elsewhere after about this long' })
      .option('stalled-ms', { type: 'number', default: 15_000, describe: 'how often stalled jobs are looked for' })
      .option('backend', { type: 'string', describe: 'tfjs backend for the training threads (sets METAD2A_BACKEND)' }) as unknown as Argv<Args>,
  handler: oneLineErrors(async (a: Args) => {
    const cfg = queueConfigOf(a);
    for (const k of ['concurrency', 'lock-ms', 'stalled-ms'] as const) {
      if (!Number.isInteger(a[k]) || a[k] < 1) throw new ConfigError(k, `must be a positive integer, got ${a[k]}`);
    }
    await checkRedis(cfg.url);
    // Worker threads share process.env, so this selects their backend.
    if (a.backend) process.env.METAD2A_BACKEND = a.backend;
    const say = (line: string) => process.stdout.write(`${line}\n`);
    const w = startDbWorker(cfg, {
      concurrency: a.concurrency,
      lockDurationMs: a['lock-ms'],
      stalledIntervalMs: a['stalled-ms'],
      onEvent: (e, job) => {
        if (e === 'completed' && job) {
          const r = job.returnvalue as TrainJobResult;
          say(`completed ${job.id} ${r.record.accuracy.toFixed(2)}% ${r.seconds.toFixed(2)}s ${r.backend}`);
        } else if (e === 'failed') say(`failed ${job?.id ?? '?'} attempt ${job?.attemptsMade ?? '?'}: ${(job?.failedReason ?? '').split('\n')[0]}`);
        else say(`${e}${job?.id ? ` ${job.id}` : ''}`);
      },
    });
    say(`worker ready: queue '${cfg.name}' on ${cfg.url}, concurrency ${a.concurrency}, pid ${process.pid}`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        say(`${sig}: finishing the active job, then exiting`);
        w.close().then(resolve, resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    say(`worker stopped after ${w.processed()} job(s)`);
  }),
};
