// The MBV3 meta-test of the shipped model: search CIFAR-10 under a FLOPs bound, then train the found subnet
// and random subnets of similar FLOPs with the same recipe and seeds, and report their accuracies.
//
//   npx nx run-many -t build && node tools/database/mbv3-meta-test.mjs [--model datasets/models/mbv3]
//       [--max-flops 300] [--recipe mbv3-w100-32px-5ep-200pc] [--random 2] [--seeds 0,1,2] [--tolerance 0.05]
//       [--dataset ../shared/data/cifar10] [--out runs/mbv3-meta-test]
//
// Search: `metad2a search` on the model with the CIFAR-10 feature store (datasets/features/cifar10.json,
// training images only) and --max-flops; the predictor's top-1 is "found". Random subnets: uniform OFA
// configs (seeded) whose MFLOPs at 224 px lie within --tolerance of the found one's. Each subnet is trained
// with `metad2a train-arch` on the 10 CIFAR-10 classes (recipe's images per class, 20 % held out per class,
// the same split for every subnet) once per seed. Every training is a folder under --out that is reused when
// present, so a stopped run resumes. Writes <out>/summary.json and <out>/summary.md.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng, writeFileAtomic } from '@metad2a/core';
import { formatOfaConfig, ofaCost, parseOfaConfig, sampleOfaConfig } from '@metad2a/search-space-mbv3';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const model = path.resolve(opt('model', path.join(repo, 'datasets/models/mbv3')));
const maxFlops = Number(opt('max-flops', 300));
const recipe = opt('recipe', 'mbv3-w100-32px-5ep-200pc');
const nRandom = Number(opt('random', 2));
const seeds = opt('seeds', '0,1,2').split(',').map(Number);
const tolerance = Number(opt('tolerance', 0.05));
const dataset = path.resolve(opt('dataset', path.join(repo, '..', 'shared', 'data', 'cifar10')));
const features = path.resolve(opt('features', path.join(repo, 'datasets/features/cifar10.json')));
const out = path.resolve(opt('out', path.join(repo, 'runs/mbv3-meta-test')));
for (const [name, v] of Object.entries({ 'max-flops': maxFlops, random: nRandom, tolerance })) {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`--${name}: expected a positive number, got '${opt(name)}'`);
}
if (!seeds.every(Number.isInteger)) throw new Error(`--seeds: expected comma-separated integers, got '${opt('seeds')}'`);
if (!fs.existsSync(path.join(model, 'model.json'))) throw new Error(`--model: no model.json in ${model}`);
fs.mkdirSync(out, { recursive: true });

const cli = path.join(repo, 'apps/cli/dist/index.js');
function run(cmdArgs) {
  console.error(`[mbv3-meta-test] metad2a ${cmdArgs.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, ...cmdArgs], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`metad2a ${cmdArgs[0]} failed (exit ${r.status})`);
}

// 1. search
const searchFile = path.join(out, 'search.json');
if (!fs.existsSync(searchFile)) {
  run(['search', '-c', model, '--space', 'mbv3', '-d', features, '--max-flops', String(maxFlops), '-n', '500', '-k', '10', '--seed', '0', '-q', '-o', searchFile]);
}
const search = JSON.parse(fs.readFileSync(searchFile, 'utf8'));
if (!search.top?.length) throw new Error(`${searchFile}: no candidate within ${maxFlops} MFLOPs`);
const found = parseOfaConfig(search.top[0].arch, { file: searchFile });
const foundFlops = ofaCost(found).mflops;

// 2. random subnets of similar FLOPs (uniform configs, rejection-sampled into the FLOPs window)
const rng = new Rng('mbv3-meta-test:random');
const randoms = [];
for (let tries = 0; randoms.length < nRandom; tries++) {
  if (tries > 200000) throw new Error(`no random subnet within ${tolerance * 100} % of ${foundFlops.toFixed(0)} MFLOPs after ${tries} draws`);
  const cfg = sampleOfaConfig(rng);
  if (Math.abs(ofaCost(cfg).mflops - foundFlops) <= tolerance * foundFlops) randoms.push(cfg);
}

// 3. train each subnet with each seed
const subnets = [{ name: 'found', cfg: found }, ...randoms.map((cfg, i) => ({ name: `random${i + 1}`, cfg }))];
const results = [];
for (const s of subnets) {
  const archFile = path.join(out, `${s.name}.arch.json`);
  writeFileAtomic(archFile, `${formatOfaConfig(s.cfg)}\n`);
  const accs = [];
  for (const seed of seeds) {
    const dir = path.join(out, `${s.name}-seed${seed}`);
    if (!fs.existsSync(path.join(dir, 'info.json'))) {
      run(['train-arch', '--space', 'mbv3', '-a', archFile, '-d', dataset, '--recipe', recipe, '--seed', String(seed), '-o', dir]);
    }
    accs.push(JSON.parse(fs.readFileSync(path.join(dir, 'info.json'), 'utf8')).testAccuracy);
  }
  const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
  const sd = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, accs.length - 1));
  results.push({ name: s.name, arch: formatOfaConfig(s.cfg), mflops: ofaCost(s.cfg).mflops, accuracies: accs, mean, sd });
}

const summary = { model, maxFlops, recipe, seeds, tolerance, dataset: path.relative(repo, dataset), predictedScore: search.top[0].score, results };
writeFileAtomic(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
const md = [
  `MBV3 meta-test: CIFAR-10 search under ${maxFlops} MFLOPs with \`${path.relative(repo, model)}\`, each subnet trained with \`${recipe}\` (seeds ${seeds.join(', ')}).`,
  '',
  '| subnet | MFLOPs (224 px) | test accuracy per seed | mean +- sd |',
  '| --- | --- | --- | --- |',
  ...results.map((r) => `| ${r.name} | ${r.mflops.toFixed(0)} | ${r.accuracies.map((a) => a.toFixed(2)).join(' / ')} | ${r.mean.toFixed(2)} +- ${r.sd.toFixed(2)} |`),
  '',
].join('\n');
writeFileAtomic(path.join(out, 'summary.md'), md);
console.log(md);
