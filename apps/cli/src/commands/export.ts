import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Argv, CommandModule } from 'yargs';
import { ConfigError, InputError } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { loadTfjsModel, loadTrainedNetwork, saveTfjsModel, spaceById, trainedToLayersModel } from '@metad2a/search';
import { NB201_EDGES, nb201Cost, type Nb201Arch } from '@metad2a/search-space-201';
import { ofaCost, type OfaConfig } from '@metad2a/search-space-mbv3';
import { readJson, writeJson } from '../common.js';
import { chooseArch, chooseSpace } from './train-arch.js';

interface ExportArgs {
  arch?: string;
  from?: string;
  rank: number;
  space?: string;
  trained?: string;
  out?: string;
  tfjs?: string;
  backend?: string;
}

/** The architecture in the forms users need: canonical string, ops per edge, DAG, costs (NB201) or the OFA config (MBV3). */
export function archJson(spaceId: string, text: string): Record<string, unknown> {
  const space = spaceById(spaceId);
  let arch: unknown;
  try {
    arch = space.parse(text);
  } catch (e) {
    // Say which --space the text belongs to, when it parses in another one.
    for (const other of ['nb201', 'mbv3'].filter((o) => o !== spaceId)) {
      try {
        spaceById(other).parse(text);
      } catch {
        continue;
      }
      throw new ConfigError('space', `the architecture is of space ${other}, not ${spaceId}`, `pass --space ${other}`);
    }
    throw e;
  }
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
    const cfg = arch as OfaConfig;
    out.ofaConfig = JSON.parse(canonical);
    const c = ofaCost(cfg, { resolution: cfg.r ?? 224, numClasses: 1000 });
    out.cost = { network: `OFA MobileNetV3 w1.0, ${cfg.r ?? 224}x${cfg.r ?? 224}, 1000 classes (once-for-all's count)`, mflops: c.mflops, mparams: c.mparams };
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
      .option('space', { type: 'string', choices: ['nb201', 'mbv3'], describe: "search space of --arch (default: the search result's or trained network's, else nb201)" })
      .option('trained', { type: 'string', describe: 'a folder written by train-arch: export the trained network' })
      .option('out', { alias: 'o', type: 'string', describe: 'architecture JSON file: string, DAG, costs, and the OFA config for mbv3 (default: print it)' })
      .option('tfjs', { type: 'string', describe: 'folder for the TensorFlow.js model of --trained (default <trained>/tfjs)' })
      .option('backend', { type: 'string' })
      .example('$0 export --from metad2a-search.json -o arch.json', 'the top-1 architecture as JSON')
      .example('$0 export --trained metad2a-trained', 'the trained network as model.json + weights.bin') as unknown as Argv<ExportArgs>,
  handler: async (a) => {
    if (!a.trained && !a.arch && !a.from) throw new ConfigError('arch', 'nothing to export', 'pass --arch, --from <search result> or --trained <folder>');
    const trained = a.trained ? loadTrainedInfo(a.trained) : null;
    let arch: { arch: string; space: string } | null = null;
    if (a.arch || a.from) {
      const chosen = chooseArch(a);
      arch = { arch: chosen.arch, space: chooseSpace(a.space, chosen.space, a.from ?? a.arch ?? 'the architecture') };
    } else if (trained) {
      // The trained network's own architecture.
      arch = { arch: trained.arch, space: chooseSpace(a.space, trained.space, a.trained!) };
    }
    const json = arch ? archJson(arch.space, arch.arch) : null;
    if (json && trained && (json.space !== trained.space || json.arch !== trained.arch)) {
      throw new ConfigError('arch', `the architecture given differs from the trained network's (${trained.space} ${trained.arch})`, 'drop --arch/--from to export the trained one');
    }
    if (json) {
      if (a.out) process.stdout.write(`${json.arch}\nwrote ${writeJson(a.out, json)}\n`);
      else if (!trained) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    }
    if (a.trained) {
      await initBackend({ force: a.backend, quiet: true });
      const { net, info, inputSize } = loadTrainedNetwork(a.trained);
      const dir = path.resolve(a.tfjs ?? path.join(a.trained, 'tfjs'));
      const model = trainedToLayersModel(net);
      try {
        const saved = await saveTfjsModel(model, dir, {
          space: info.space,
          arch: info.arch,
          ...(info.ofaConfig ? { ofaConfig: info.ofaConfig } : {}),
          classes: info.classes,
          normalization: info.normalization,
          inputSize,
          testAccuracy: info.testAccuracy,
        });
        // Check the written files: reload them and compare logits with the trained network on random inputs.
        const { model: back } = await loadTfjsModel(dir);
        const x = tf.randomNormal([4, inputSize, inputSize, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
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

/** space and arch of a trained-network folder, read before any tensor work (loadTrainedNetwork checks the rest). */
function loadTrainedInfo(dir: string): { space: string; arch: string } {
  const file = path.join(dir, 'info.json');
  if (!fs.existsSync(file)) throw new InputError({ file: dir }, 'not a trained network folder (no info.json)', "make one with 'metad2a train-arch --out <dir>'");
  const info = readJson<{ space?: unknown; arch?: unknown }>(file, 'trained network info');
  if (typeof info.space !== 'string') throw new InputError({ file, field: 'space' }, 'missing');
  if (typeof info.arch !== 'string') throw new InputError({ file, field: 'arch' }, 'missing');
  return { space: info.space, arch: info.arch };
}
