import type { CommandModule } from 'yargs';
import { initBackend } from '@metad2a/nn';
import { packageSearchModel } from '@metad2a/search';

interface Args {
  generator: string;
  predictor: string[];
  out: string;
  name: string;
  description?: string;
  'default-dataset'?: string;
  'score-repeats'?: number;
}

/** Assemble what `metad2a search` loads (model.json + both checkpoints) from two meta-training runs. */
export const packageModelCommand: CommandModule<object, Args> = {
  command: 'package-model',
  describe: 'assemble a search model folder (what `metad2a search --checkpoint` loads) from a generator and a predictor checkpoint',
  builder: (y) =>
    y
      .option('generator', { type: 'string', demandOption: true, describe: 'generator checkpoint of a meta-train run, e.g. runs/gen/ckpt_400.json' })
      .option('predictor', { type: 'string', array: true, demandOption: true, describe: 'predictor checkpoint, e.g. runs/pred/ckpt_max_corr.json; repeat it for an ensemble (other seeds): candidates are ranked by the mean accuracy of all' })
      .option('out', { type: 'string', demandOption: true, describe: 'model folder to write (e.g. datasets/models/default)' })
      .option('name', { type: 'string', demandOption: true, describe: 'model name recorded in model.json' })
      .option('description', { type: 'string' })
      .option('default-dataset', { type: 'string', describe: 'feature store copied beside the model as the dataset `metad2a search` uses without --dataset' })
      .option('score-repeats', { type: 'number', describe: 'predictions averaged over this many dataset samples (default: 10 for nb201, 1 for mbv3)' }) as never,
  handler: async (a) => {
    await initBackend({ quiet: true });
    const m = packageSearchModel({
      generatorCheckpoint: a.generator,
      predictorCheckpoint: a.predictor[0],
      extraPredictorCheckpoints: a.predictor.slice(1),
      out: a.out,
      name: a.name,
      description: a.description,
      defaultDataset: a['default-dataset'],
      scoreRepeats: a['score-repeats'],
    });
    process.stdout.write(`wrote ${a.out}: ${m.space} model '${m.name}', extractor ${m.extractor}, ${m.featureDim}-d features` +
        `${m.extraPredictors ? `, ${1 + m.extraPredictors.length} predictors averaged` : ''}\n`);
  },
};
