import type { CommandModule } from 'yargs';
import { MetaD2AError } from '@metad2a/core';

// Being written (see apps/trainer/README.md once it exists); fails loudly until then.
export const workerCommand: CommandModule = {
  command: 'worker',
  describe: 'worker (not available yet)',
  handler: () => {
    throw new MetaD2AError('E_NOT_READY', "'worker' is not available in this build yet");
  },
};
