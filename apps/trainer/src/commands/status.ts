import fs from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { oneLineErrors } from './build-database.js';
import { formatTable } from '@metad2a/cli-kit';
import { checkRedis, DEFAULT_QUEUE, queueConfigOf, queueStatus, readRecords } from '@metad2a/db-build';

interface Args {
  redis?: string;
  queue?: string;
  prefix?: string;
  db?: string;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe: 'Show the build-database queue (waiting, active, done, failed jobs) and, with --db, the database',
  builder: (y: Argv) =>
    y
      .option('redis', { type: 'string', describe: 'Redis URL (default $METAD2A_REDIS_URL or redis://127.0.0.1:6379)' })
      .option('queue', { type: 'string', describe: `queue name (default ${DEFAULT_QUEUE})` })
      .option('prefix', { type: 'string', describe: 'Redis key prefix (default metad2a)' })
      .option('db', { type: 'string', describe: 'also summarise this database file' }) as unknown as Argv<Args>,
  handler: oneLineErrors(async (a: Args) => {
    const cfg = queueConfigOf(a);
    await checkRedis(cfg.url);
    const s = await queueStatus(cfg);
    const out: string[] = [`queue '${cfg.name}' on ${cfg.url}`];
    out.push(formatTable(['waiting', 'active', 'delayed', 'completed', 'failed'], [[s.waiting, s.active, s.delayed, s.completed, s.failed]]));
    if (s.failures.length) {
      out.push('', 'failed jobs:');
      out.push(formatTable(['job', 'attempts', 'reason'], s.failures.map((f) => [f.id, f.attempts, f.reason.split('\n')[0].slice(0, 120)])));
    }
    if (a.db !== undefined) {
      const records = fs.existsSync(a.db) ? await readRecords(a.db) : [];
      const byRecipe = new Map<string, { n: number; tasks: Set<string> }>();
      for (const r of records) {
        const k = `${r.searchSpace} ${r.recipe}`;
        const e = byRecipe.get(k) ?? { n: 0, tasks: new Set() };
        e.n++;
        e.tasks.add(r.taskId);
        byRecipe.set(k, e);
      }
      out.push('', `database ${a.db}: ${records.length} records`);
      if (records.length) out.push(formatTable(['space', 'recipe', 'records', 'tasks'], [...byRecipe].map(([k, e]) => [...k.split(' '), e.n, e.tasks.size])));
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }),
};
