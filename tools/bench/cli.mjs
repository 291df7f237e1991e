// CLI benchmark: wall time of `metad2a search` per phase at the original's NB201 meta-test sizes
// (500 unique valid candidates, predictions averaged over 10 dataset samples), run as users run it:
// the built CLI in a subprocess. Model: the original generator checkpoint + the parity fixture's
// predictor weights (timing does not depend on the weights); dataset: the fixture's real 512-d features.
//   (cd apps/cli && npx tsup) && node tools/bench/cli.mjs [--runs 5] [--num-gen 500] [--repeats 10]
// Reports medians over runs; the original reports 69 GPU seconds for CIFAR-10 (generator + predictor).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeNpyF32 } from '@metad2a/data-pipeline';
import { Generator } from '@metad2a/dag-vae';
import { importTorchStateDict, initBackend, readF32Bundle } from '@metad2a/nn';
import { Predictor } from '@metad2a/predictor';
import { saveSearchModel } from '@metad2a/search';
import { nb201Space } from '@metad2a/search-space-201';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('runs', '5'));
const numGen = Number(arg('num-gen', '500'));
const repeats = Number(arg('repeats', '10'));
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = path.resolve(repo, '../shared');
const cli = path.join(repo, 'apps/cli/dist/index.js');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const info = await initBackend({ quiet: true });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-bench-cli-'));
try {
  const gen = new Generator(nb201Space, { hs: 56, nz: 56, featureDim: 512, numSample: 20 });
  gen.loadOriginal(importTorchStateDict(path.join(shared, 'data/metad2a-original/generator_ckpt_400.pt')));
  const bundle = readF32Bundle(path.join(shared, 'fixtures/metad2a-parity/manifest.json'));
  const pred = new Predictor(nb201Space, { hs: 512, nz: 56, featureDim: 512, numSample: 20 });
  pred.loadOriginal(bundle.group('predictor_state'));
  const model = path.join(dir, 'model');
  saveSearchModel(model, { generator: gen, predictor: pred, manifest: { name: 'bench', space: 'nb201', extractor: 'resnet18-original@32', featureDim: 512, numSample: 20, scoreRepeats: repeats, targetMean: 70, targetStd: 15 } });
  const x = bundle.get('generator_case/input_X').data.slice(0, 200 * 512);
  fs.writeFileSync(path.join(dir, 'f.npy'), encodeNpyF32(x, 200, 512));
  fs.writeFileSync(path.join(dir, 'f.labels.txt'), Array.from({ length: 200 }, (_, i) => `c${Math.floor(i / 20)}`).join('\n'));
  const env = { ...process.env, METAD2A_CACHE_DIR: path.join(dir, 'cache'), CI: '1' };
  const rows = [];
  for (let r = 0; r < runs + 1; r++) {
    const t0 = performance.now();
    execFileSync(process.execPath, [cli, 'search', '-c', model, '-d', path.join(dir, 'f.npy'), '--features-extractor', 'resnet18-original@32', '-n', String(numGen), '--seed', String(r), '-q', '-o', 'r.json'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
    const wall = (performance.now() - t0) / 1000;
    const t = JSON.parse(fs.readFileSync(path.join(dir, 'r.json'), 'utf8')).timings;
    // run 0 builds the feature cache: reported separately, not in the medians
    if (r === 0) console.log(`first run (features encoded into the cache): features ${t.featuresSeconds.toFixed(2)} s, process ${wall.toFixed(2)} s`);
    else rows.push({ ...t, wall });
  }
  const m = (k) => median(rows.map((x) => x[k]));
  console.log(`backend ${info.name}${info.blas?.active ? ' + OpenBLAS' : ''}, ${os.cpus().length} cpus, node ${process.version}; ${numGen} candidates, ${repeats} dataset samples per prediction, median of ${runs} runs`);
  console.log(`  load model      ${m('loadModelSeconds').toFixed(2)} s`);
  console.log(`  features        ${m('featuresSeconds').toFixed(2)} s (cached store)`);
  console.log(`  generate        ${m('generateSeconds').toFixed(2)} s`);
  console.log(`  rank            ${m('rankSeconds').toFixed(2)} s`);
  console.log(`  search (gen+rank) ${m('searchSeconds').toFixed(2)} s (the original's README: 69 s on an RTX 2080Ti for CIFAR-10; ratio ${(69 / m('searchSeconds')).toFixed(1)}x, different code and hardware)`);
  console.log(`  whole process   ${m('wall').toFixed(2)} s (node start, tfjs, model, table printing, JSON)`);
  gen.dispose();
  pred.dispose();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
