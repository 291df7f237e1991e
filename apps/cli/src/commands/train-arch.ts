import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, InputError } from '@metad2a/core';
import { openDataset } from '@metad2a/data-pipeline';
import { initBackend } from '@metad2a/nn';
import { defaultRecipeFor, recipesForSpace, resolveTrainSetup, saveTrainedNetwork, trainArchOnDataset } from '@metad2a/search';
import type { TrainRecipe } from '@metad2a/arch-training';
import { readJson, writeJson } from '../common.js';
import type { SearchJson } from './search.js';

interface TrainArchArgs {
  arch?: string;
  from?: string;
  rank: number;
  space?: string;
  dataset: string;
  recipe?: string;
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

/**
 * The architecture: --arch (a string, or a file holding one: an OFA config .json, or the arch JSON that
 * `metad2a export -o` writes), or rank k of a search result; with the space the source names, if any.
 */
export function chooseArch(a: { arch?: string; from?: string; rank: number }): { arch: string; space?: string } {
  if (a.arch && a.from) throw new ConfigError('arch', 'give --arch or --from, not both');
  if (a.arch) return archFromArg(a.arch);
  if (!a.from) throw new ConfigError('arch', 'no architecture given', 'pass --arch <string> or --from <search result .json>');
  const res = readJson<SearchJson>(a.from, 'search result');
  if (res.command !== 'search' || !Array.isArray(res.top)) throw new InputError({ file: a.from, field: 'command' }, 'not a search result of metad2a search');
  const list = res.candidates?.length ? res.candidates : res.top;
  const hit = list.find((c) => c.rank === a.rank) ?? (a.rank === 1 ? res.top[0] : undefined);
  if (!hit) throw new InputError({ file: a.from, field: 'candidates' }, `no candidate of rank ${a.rank}`);
  return { arch: hit.arch, space: res.model?.space };
}

function archFromArg(arg: string): { arch: string; space?: string } {
  // Architecture strings never name an existing file; a path is read.
  if (!/^[[{|]/.test(arg.trim()) && fs.existsSync(arg) && fs.statSync(arg).isFile()) {
    const text = fs.readFileSync(arg, 'utf8').trim();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { arch: text };
    }
    // metad2a export's arch JSON: {space, arch, ...}
    if (json && typeof json === 'object' && typeof (json as { arch?: unknown }).arch === 'string') {
      const j = json as { arch: string; space?: unknown };
      return { arch: j.arch, space: typeof j.space === 'string' ? j.space : undefined };
    }
    return { arch: text };
  }
  return { arch: arg };
}

/** --space if given (it must agree with the search result or export file the arch came from), else theirs, else nb201. */
export function chooseSpace(given: string | undefined, fromSource: string | undefined, source: string): string {
  if (given && fromSource && given !== fromSource) {
    throw new ConfigError('space', `--space ${given}, but ${source} is a ${fromSource} architecture`, `drop --space or pass --space ${fromSource}`);
  }
  return given ?? fromSource ?? 'nb201';
}

export const trainArchCommand: CommandModule<object, TrainArchArgs> = {
  command: 'train-arch',
  describe: 'train a chosen or found architecture on an image dataset with a recipe, report accuracy, save the model',
  builder: (y: Argv) =>
    y
      .option('arch', {
        alias: 'a',
        type: 'string',
        describe:
          'architecture: an NB201 cell string (|nor_conv_3x3~0|+|...|), an OFA MobileNetV3 config as JSON ({"ks":[20],"e":[20],"d":[5]}, with --space mbv3), or a file holding one (e.g. the arch JSON of metad2a export -o)',
      })
      .option('from', { type: 'string', describe: 'a search result .json; trains the candidate of --rank' })
      .option('rank', { type: 'number', default: 1, describe: 'which ranked candidate of --from' })
      .option('space', { type: 'string', choices: ['nb201', 'mbv3'], describe: "search space (default: the search result's or export file's, else nb201)" })
      .option('dataset', { alias: 'd', type: 'string', demandOption: true, describe: 'image dataset: folder of class folders, CIFAR binaries, IDX, mnist, fashion-mnist' })
      .option('recipe', {
        type: 'string',
        describe: `training recipe id (default per space: nb201 ${defaultRecipeFor('nb201')}, mbv3 ${defaultRecipeFor('mbv3')}); nb201: ${recipesForSpace('nb201').join(', ')}; mbv3: ${recipesForSpace('mbv3').join(', ')}`,
      })
      .option('epochs', { type: 'number', describe: 'override the recipe' })
      .option('width', { type: 'number', describe: 'override: nb201: channels of the first stage (C); mbv3: width multiplier in percent (100 = w1.0)' })
      .option('depth', { type: 'number', describe: 'override, nb201 only: cells per stage (N); an MBV3 subnet\'s depth is its config\'s d' })
      .option('input-size', { type: 'number', describe: 'override: input pixels (nb201: divisible by 4)' })
      .option('batch-size', { type: 'number', describe: 'override' })
      .option('lr', { type: 'number', describe: 'override' })
      .option('max-train-per-class', { type: 'number', describe: 'override: training images per class (0 = all)' })
      .option('classes', { type: 'string', describe: 'comma-separated class names or indices to train on (default: all)' })
      .option('test-fraction', { type: 'number', default: 0.2, describe: 'share of each class held out for the test accuracy' })
      .option('seed', { type: 'number', default: 0 })
      .option('out', { alias: 'o', type: 'string', default: 'metad2a-trained', describe: 'folder for the trained network (network.json + info.json)' })
      .option('backend', { type: 'string' })
      .example('$0 train-arch --from metad2a-search.json -d ./my-images --epochs 10', 'train the top-1 of a search')
      .example('$0 train-arch --space mbv3 -a subnet.json -d ./my-images', 'train an OFA MobileNetV3 subnet (subnet.json: {"ks":[20 ints],"e":[20 ints],"d":[5 ints]})') as unknown as Argv<TrainArchArgs>,
  handler: async (a) => {
    const chosen = chooseArch(a);
    const space = chooseSpace(a.space, chosen.space, a.from ?? a.arch ?? 'the architecture');
    const overrides: Partial<Omit<TrainRecipe, 'id'>> = {};
    if (a.epochs !== undefined) overrides.epochs = a.epochs;
    if (a.width !== undefined) overrides.width = a.width;
    if (a.depth !== undefined) overrides.depth = a.depth;
    if (a.inputSize !== undefined) overrides.inputSize = a.inputSize;
    if (a.batchSize !== undefined) overrides.batchSize = a.batchSize;
    if (a.lr !== undefined) overrides.lr = a.lr;
    if (a.maxTrainPerClass !== undefined) overrides.maxTrainPerClass = a.maxTrainPerClass;
    // Space, architecture and recipe are checked before any image is read.
    const setup = resolveTrainSetup({ space, arch: chosen.arch, recipe: a.recipe, overrides });
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
      process.stdout.write(`training ${setup.arch} on ${a.dataset} (${(classes ?? ds.classes.map((_, i) => i)).length} classes), ${space}, recipe ${setup.recipe.id}\n`);
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
