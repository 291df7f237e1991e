#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runCli } from '@metad2a/cli-kit';
import { MetaD2AError } from '@metad2a/core';
import { metaTrainCommand } from './commands/meta-train.js';
import { buildDatabaseCommand } from './commands/build-database.js';
import { workerCommand } from './commands/worker.js';
import { statusCommand } from './commands/status.js';
import { packageModelCommand } from './commands/package-model.js';

// The trainer only parses arguments, prints and plots; the work is done by the packages.
await runCli(() =>
  yargs(hideBin(process.argv))
    .scriptName('metad2a-trainer')
    .command(metaTrainCommand)
    .command(buildDatabaseCommand)
    .command(workerCommand)
    .command(statusCommand)
    .command(packageModelCommand)
    .demandCommand(1, 'name a command: meta-train, build-database, worker, status or package-model')
    .strict()
    // Usage mistakes are one line; errors thrown by handlers reach runCli instead of yargs' help dump.
    .fail((msg, err) => {
      if (err) throw err;
      throw new MetaD2AError('E_USAGE', `${msg} (see metad2a-trainer --help)`);
    })
    .help()
    .parseAsync(),
);
