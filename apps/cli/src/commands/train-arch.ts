import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, InputError } from '@metad2a/core';
import { openDataset } from '@metad2a/data-pipeline';
import { initBackend } from '@metad2a/nn';
import { saveTrainedNetwork, trainArchOnDataset } from '@metad2a/search';
import type { TrainRecipe } from '@metad2a/arch-training';
import { readJson, writeJson } from '../common.js';
import type { SearchJson } from './search.js';

interface TrainArchArgs {
  arch?: string;
  from?: string;
  rank: number;
  space: string;
  dataset: string;
  recipe: string;
  epochs?: number;
  width?: number;
  depth?: number;
  inputSize?: number;
  batchSize?: number;
  lr?: number;
  maxTrainPerClass?: number;
  classes?: string;
  testFraction: number;
  seed: number;
  out: string;
  backend?: string;
}

/** The architecture string: --arch, or rank k of a search result. */
export function chooseArch(a: { arch?: string; from?: string; rank: number }): { arch: string; space?: string } {
  if (a.arch && a.from) throw new ConfigError('arch', 'give --arch or --from, not both');
  if (a.arch) return { arch: a.arch };
  if (!a.from) throw new ConfigError('arch', 'no architecture given', 'pass --arch <string> or --from <search result .json>');
  const res = readJson<SearchJson>(a.from, 'search result');
  if (res.command !== 'search' || !Array.isArray(res.top)) throw new InputError({ file: a.from, field: 'command' }, 'not a search result of metad2a search');
  const list = res.candidates?.length ? res.candidates : res.top;
  const hit = list.find((c) => c.rank === a.rank) ?? (a.rank === 1 ? res.top[0] : undefined);
  if (!hit) throw new InputError({ file: a.from, field: 'candidates' }, `no candidate of rank ${a.rank}`);
  return { arch: hit.arch, space: res.model?.space };
}

export const trainArchCommand: CommandModule<object, TrainArchArgs> = {
  command: 'train-arch',
  describe: 'train a chosen or found architecture on an image dataset with a recipe, report accuracy, save the model',
  builder: (y: Argv) =>
    y
      .option('arch', { alias: 'a', type: 'string', describe: 'architecture string, e.g. |nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|' })
      .option('from', { type: 'string', describe: 'a search result .json; trains the candidate of --rank' })
      .option('rank', { type: 'number', default: 1, describe: 'which ranked candidate of --from' })
      .option('space', { type: 'string', default: 'nb201', choices: ['nb201', 'mbv3'] })
      .option('dataset', { alias: 'd', type: 'string', demandOption: true, describe: 'image dataset: folder of class folders, CIFAR binaries, IDX, mnist, fashion-mnist' })
      .option('recipe', { type: 'string', default: 'nb201-c8n1-16px-4ep-200pc', describe: 'training recipe id (nb201-full-200ep, nb201-c8n1-16px-4ep-200pc, nb201-c16n1-32px-4ep-200pc, tiny-c4n1-16px-1ep, ...)' })
      .option('epochs', { type: 'number', describe: 'override the recipe' })
      .option('width', { type: 'number', describe: 'override: channels of the first stage (C)' })
      .option('depth', { type: 'number', describe: 'override: cells per stage (N)' })
      .option('input-size', { type: 'number', describe: 'override: input pixels (divisible by 4)' })
      .option('batch-size', { type: 'number', describe: 'override' })
      .option('lr', { type: 'number', describe: 'override' })
      .option('max-train-per-class', { type: 'number', describe: 'override: training images per class (0 = all)' })
      .option('classes', { type: 'string', describe: 'comma-separated class names or indices to train on (default: all)' })
      .option('test-fraction', { type: 'number', default: 0.2, describe: 'share of each class held out for the test accuracy' })
      .option('seed', { type: 'number', default: 0 })
      .option('out', { alias: 'o', type: 'string', default: 'metad2a-trained', describe: 'folder for the trained network (network.json + info.json)' })
      .option('backend', { type: 'string' })
      .example('$0 train-arch --from metad2a-search.json -d ./my-images --epochs 10', 'train the top-1 of a search') as unknown as Argv<TrainArchArgs>,
  handler: async (a) => {
    const chosen = chooseArch(a);
    const space = chosen.space ?? a.space;
    await initBackend({ force: a.backend, quiet: true });
    const ds = await openDataset(a.dataset, { split: 'train' });
    if (ds.kind === 'features') {
      ds.close();
      throw new InputError({ file: a.dataset }, 'training needs images, this is a features file', 'pass the image dataset the features came from');
    }
    try {
      let classes: number[] | undefined;
      if (a.classes) {
        classes = a.classes.split(',').map((s) => {
          const t = s.trim();
          const byName = ds.classes.indexOf(t);
          if (byName >= 0) return byName;
          if (/^\d+$/.test(t) && Number(t) < ds.classes.length) return Number(t);
          throw new ConfigError('classes', `'${t}' is not a class of ${a.dataset}`, `classes: ${ds.classes.slice(0, 12).join(', ')}${ds.classes.length > 12 ? ', ...' : ''}`);
        });
      }
      const overrides: Partial<Omit<TrainRecipe, 'id'>> = {};
      if (a.epochs !== undefined) overrides.epochs = a.epochs;
      if (a.width !== undefined) overrides.width = a.width;
      if (a.depth !== undefined) overrides.depth = a.depth;
      if (a.inputSize !== undefined) overrides.inputSize = a.inputSize;
      if (a.batchSize !== undefined) overrides.batchSize = a.batchSize;
      if (a.lr !== undefined) overrides.lr = a.lr;
      if (a.maxTrainPerClass !== undefined) overrides.maxTrainPerClass = a.maxTrainPerClass;
      process.stdout.write(`training ${chosen.arch} on ${a.dataset} (${(classes ?? ds.classes.map((_, i) => i)).length} classes), recipe ${a.recipe}\n`);
      const { net, info, result } = await trainArchOnDataset({
        space,
        arch: chosen.arch,
        dataset: ds,
        recipe: a.recipe,
        overrides,
        classes,
        testFraction: a.testFraction,
        seed: a.seed,
        onEpoch: (e) => process.stdout.write(`epoch ${e.epoch}: lr ${e.lr.toExponential(2)}, train loss ${e.trainLoss.toFixed(4)}, train acc ${e.trainAccuracy.toFixed(2)}%, ${e.seconds.toFixed(1)} s\n`),
      });
      try {
        const dir = path.resolve(a.out);
        saveTrainedNetwork(dir, net, info);
        writeJson(path.join(dir, 'training.json'), { command: 'train-arch', arch: info.arch, recipe: info.recipe, result });
        process.stdout.write(
          `test accuracy ${info.testAccuracy.toFixed(2)}% on ${info.testImages} held-out images (train ${info.trainAccuracy.toFixed(2)}% on ${info.trainImages}); ` +
            `${(net.numTrainableParameters() / 1e6).toFixed(3)} M params; ${result.seconds.toFixed(1)} s\nsaved: ${dir}\n`,
        );
      } finally {
        net.dispose();
      }
    } finally {
      ds.close();
    }
  },
};
