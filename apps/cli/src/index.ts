#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runCli } from '@metad2a/cli-kit';
import { MetaD2AError } from '@metad2a/core';
import { searchCommand } from './commands/search.js';
import { evaluateCommand } from './commands/evaluate.js';
import { trainArchCommand } from './commands/train-arch.js';
import { exportCommand } from './commands/export.js';
import { plotCommand } from './commands/plot.js';
import { infoCommand } from './commands/info.js';
import { VERSION } from './version.js';

// The CLI only parses arguments, prints and plots; the work is done by the packages.
await runCli(() =>
  yargs(hideBin(process.argv))
    .scriptName('metad2a')
    .version(VERSION)
    .command(searchCommand)
    .command(evaluateCommand)
    .command(trainArchCommand)
    .command(exportCommand)
    .command(plotCommand)
    .command(infoCommand)
    .strict()
    // Usage mistakes are one line too (yargs would print the whole help); errors from handlers go to runCli.
    .fail((msg, err) => {
      if (err) throw err;
      throw new MetaD2AError('E_USAGE', `${msg} (see metad2a --help)`);
    })
    .help()
    .wrap(Math.min(120, process.stdout.columns || 120))
    .parseAsync(),
);
