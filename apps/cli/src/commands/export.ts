import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { loadTfjsModel, loadTrainedNetwork, nb201ToLayersModel, saveTfjsModel, spaceById } from '@metad2a/search';
import { NB201_EDGES, nb201Cost, type Nb201Arch } from '@metad2a/search-space-201';
import { writeJson } from '../common.js';
import { chooseArch } from './train-arch.js';

interface ExportArgs {
  arch?: string;
  from?: string;
  rank: number;
  space: string;
  trained?: string;
  out?: string;
  tfjs?: string;
  backend?: string;
}

/** The architecture in the forms users need: canonical string, ops per edge, DAG, costs (NB201) or the OFA config (MBV3). */
export function archJson(spaceId: string, text: string): Record<string, unknown> {
  const space = spaceById(spaceId);
  const arch = space.parse(text);
  const canonical = space.format(arch);
  const dag = space.toDag(arch);
  const out: Record<string, unknown> = { space: spaceId, arch: canonical, dag };
  if (spaceId === 'nb201') {
    const a = arch as Nb201Arch;
    out.edges = NB201_EDGES.map((e, k) => ({ from: e.from, to: e.to, op: a[k] }));
    const c = nb201Cost(a);
    out.cost = { network: 'C=16, N=5, 32x32, 10 classes', mflops: c.flops, mparams: c.params };
  } else {
    // MBV3's text form is the OFA config itself ({ks, e, d}).
    out.ofaConfig = JSON.parse(canonical);
  }
  return out;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: 'write an architecture as string + JSON, and a trained network as a TensorFlow.js model',
  builder: (y: Argv) =>
    y
      .option('arch', { alias: 'a', type: 'string', describe: 'architecture string' })
      .option('from', { type: 'string', describe: 'a search result .json (exports the candidate of --rank)' })
      .option('rank', { type: 'number', default: 1 })
      .option('space', { type: 'string', default: 'nb201', choices: ['nb201', 'mbv3'] })
      .option('trained', { type: 'string', describe: 'a folder written by train-arch: export the trained network' })
      .option('out', { alias: 'o', type: 'string', describe: 'architecture JSON file (default: print it)' })
      .option('tfjs', { type: 'string', describe: 'folder for the TensorFlow.js model of --trained (default <trained>/tfjs)' })
      .option('backend', { type: 'string' })
      .example('$0 export --from metad2a-search.json -o arch.json', 'the top-1 architecture as JSON')
      .example('$0 export --trained metad2a-trained', 'the trained network as model.json + weights.bin') as unknown as Argv<ExportArgs>,
  handler: async (a) => {
    if (!a.trained && !a.arch && !a.from) throw new ConfigError('arch', 'nothing to export', 'pass --arch, --from <search result> or --trained <folder>');
    if (a.arch || a.from) {
      const chosen = chooseArch(a);
      const json = archJson(chosen.space ?? a.space, chosen.arch);
      if (a.out) process.stdout.write(`${json.arch}\nwrote ${writeJson(a.out, json)}\n`);
      else process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    }
    if (a.trained) {
      await initBackend({ force: a.backend, quiet: true });
      const { net, info } = loadTrainedNetwork(a.trained);
      const dir = path.resolve(a.tfjs ?? path.join(a.trained, 'tfjs'));
      const model = nb201ToLayersModel(net);
      try {
        const saved = await saveTfjsModel(model, dir, { arch: info.arch, classes: info.classes, normalization: info.normalization, inputSize: info.config.inputSize, testAccuracy: info.testAccuracy });
        // Check the written files: reload them and compare logits with the trained network on random inputs.
        const { model: back } = await loadTfjsModel(dir);
        const x = tf.randomNormal([4, info.config.inputSize, info.config.inputSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
        const ref = net.forward(x, false);
        const got = back.predict(x) as tf.Tensor;
        const diff = tf.tidy(() => ref.sub(got).abs().max().dataSync()[0]);
        tf.dispose([x, ref, got]);
        back.dispose();
        process.stdout.write(`wrote ${saved.modelJson} and ${saved.weights} (${saved.bytes} bytes); reloaded logits differ from the trained network by at most ${diff.toExponential(2)}\n`);
      } finally {
        model.dispose();
        net.dispose();
      }
    }
  },
};
