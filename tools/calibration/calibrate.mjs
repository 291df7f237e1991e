// Calibrate a cheap training recipe against NAS-Bench-201: train random NB201 cells on CIFAR-10 with
// the recipe and compare their test accuracies with the benchmark's 200-epoch CIFAR-10 table.
//
//   (cd packages/db-build && npx tsup) && nice -n 10 node tools/calibration/calibrate.mjs \
//       --recipe nb201-c8n1-16px-4ep-100pc --cells 100 [--test-per-class 200] [--seed 0]
//
// Train images: the first batches of ../shared/data/cifar10 (data_batch_*.bin), `maxTrainPerClass`
// of the recipe per class (seeded pick); test images: test_batch.bin, --test-per-class per class.
// Cells: uniform random indices of the 15,625-cell table (seeded). One CSV row is appended per cell
// as soon as it is trained, so a stopped run resumes where it was. At the end (or with --summary)
// it writes <out>.summary.json and <out>.md with Spearman, Kendall and the cost per training.
// Recipe fields can be overridden for exploration (--epochs, --per-class, --input, --width, --depth,
// --batch, --pad, --lr); the recipe id then records the overrides. --shard I/N trains only every N-th
// cell from the I-th (0-based), so N processes (one per core) share one calibration and one CSV: rows are
// single O_APPEND writes, and each process skips cells already in the file.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { kendall, Rng, spearman, writeFileAtomic } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { openCifarBinary } from '@metad2a/data-pipeline';
import { loadNb201Table } from '@metad2a/search-space-201';
import { channelStats, DEFAULT_DB_RECIPE, getTrainableSpace, readTaskImages, resolveRecipe, toImageSet, trainArchitecture } from '@metad2a/db-build';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);

const base = resolveRecipe(opt('recipe', DEFAULT_DB_RECIPE));
const overrides = { epochs: 'epochs', maxTrainPerClass: 'per-class', inputSize: 'input', width: 'width', depth: 'depth', batchSize: 'batch', augmentPad: 'pad', lr: 'lr' };
const recipe = { ...base };
const changed = [];
for (const [field, name] of Object.entries(overrides)) {
  const v = opt(name);
  if (v !== undefined) {
    recipe[field] = Number(v);
    changed.push(`${name}${v}`);
  }
}
if (changed.length) recipe.id = `${base.id}+${changed.join('+')}`;
if (recipe.inputSize !== base.inputSize && opt('pad') === undefined) recipe.augmentPad = Math.max(1, Math.round(recipe.inputSize / 8));
const cells = Number(opt('cells', 100));
const seed = Number(opt('seed', 0));
// Seed of the trainings only (init, batch order, augmentation); cells and images stay those of --seed.
// A second run with another --train-seed measures how much of a recipe's ranking is training noise.
const trainSeed = Number(opt('train-seed', seed));
if (trainSeed !== seed) recipe.id = `${recipe.id}+trainseed${trainSeed}`;
const testPerClass = Number(opt('test-per-class', 200));
// A larger held-out set shrinks the accuracy's sampling noise (binomial: about 1.1 points at 2,000 images).
if (testPerClass !== 200) recipe.id = `${recipe.id}+test${testPerClass}`;
const dataDir = path.resolve(opt('data', path.join(repo, '..', 'shared', 'data', 'cifar10')));
const shardSpec = opt('shard', '0/1');
const shardMatch = /^(\d+)\/(\d+)$/.exec(shardSpec);
if (!shardMatch || Number(shardMatch[1]) >= Number(shardMatch[2])) throw new Error(`--shard: expected I/N with 0 <= I < N, got '${shardSpec}'`);
const [shard, shards] = [Number(shardMatch[1]), Number(shardMatch[2])];
const out = path.resolve(opt('out', path.join(here, 'results', `${recipe.id}.csv`)));

const table = await loadNb201Table(undefined, { epoch12Path: null });
const truth = table.column({ dataset: 'cifar10', split: 'test', epochs: 200 });

function summarize(rows) {
  const ours = rows.map((r) => r.accuracy);
  const ref = rows.map((r) => r.nb201);
  const med = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  // An independent check of the statistics with scipy where python3-scipy is installed.
  let scipy = null;
  const py = spawnSync('python3', ['-c', 'import sys,json;from scipy.stats import spearmanr,kendalltau;d=json.load(sys.stdin);print(json.dumps([spearmanr(d[0],d[1])[0],kendalltau(d[0],d[1])[0]]))'], { input: JSON.stringify([ours, ref]) });
  if (py.status === 0) {
    const [s, k] = JSON.parse(py.stdout.toString());
    scipy = { spearman: s, kendall: k };
  }
  return {
    recipe: rows[0]?.recipeFields ? JSON.parse(rows[0].recipeFields) : recipe,
    cells: rows.length,
    spearman: spearman(ours, ref),
    kendall: kendall(ours, ref),
    scipy,
    // A diagnostic, not the recipe's measurement: the last epoch's running training accuracy.
    spearmanTrainAccuracy: spearman(rows.map((r) => r.trainAccuracy), ref),
    medianSeconds: med(rows.map((r) => r.seconds)),
    medianCpuSeconds: med(rows.map((r) => r.cpuSeconds)),
    totalCpuSeconds: rows.reduce((s, r) => s + r.cpuSeconds, 0),
    meanAccuracy: ours.reduce((a, b) => a + b, 0) / rows.length,
    minAccuracy: Math.min(...ours),
    maxAccuracy: Math.max(...ours),
    backends: [...new Set(rows.map((r) => r.backend))],
    trainImages: rows[0]?.trainImages,
    testImages: rows[0]?.testImages,
    seed,
    data: path.relative(repo, dataDir),
  };
}

const HEADER = 'index,arch,nb201_cifar10_200ep,accuracy,train_accuracy,seconds,cpu_seconds,backend,train_images,test_images,recipe_fields';
function readRows() {
  if (!fs.existsSync(out)) return [];
  const lines = fs.readFileSync(out, 'utf8').split('\n');
  const rows = [];
  for (const [i, line] of lines.entries()) {
    if (i === 0 || !line.trim()) continue;
    const f = line.split(',');
    if (f.length < 11) continue; // a torn last line of a killed run: trained again
    rows.push({
      index: Number(f[0]), arch: f[1], nb201: Number(f[2]), accuracy: Number(f[3]), trainAccuracy: Number(f[4]), seconds: Number(f[5]),
      cpuSeconds: Number(f[6]), backend: f[7], trainImages: Number(f[8]), testImages: Number(f[9]), recipeFields: f.slice(10).join(',').replace(/^"|"$/g, '').replace(/""/g, '"'),
    });
  }
  return rows;
}

function writeSummary(rows) {
  const s = summarize(rows);
  writeFileAtomic(out.replace(/\.csv$/, '.summary.json'), `${JSON.stringify(s, null, 2)}\n`);
  const md = [
    `# Calibration of \`${recipe.id}\``,
    '',
    `${s.cells} random NB201 cells (seed ${seed}) trained on CIFAR-10 (${s.data}: ${s.trainImages} train images, ${s.testImages} test images of test_batch.bin)`,
    `with the recipe below, compared with the NB201 200-epoch CIFAR-10 test accuracies (nats_bench.csv).`,
    '',
    `| statistic | value |`,
    `| --- | --- |`,
    `| Spearman rho | ${s.spearman.toFixed(4)}${s.scipy ? ` (scipy: ${s.scipy.spearman.toFixed(4)})` : ''} |`,
    `| Kendall tau-b | ${s.kendall.toFixed(4)}${s.scipy ? ` (scipy: ${s.scipy.kendall.toFixed(4)})` : ''} |`,
    `| Spearman rho of the last epoch's training accuracy (diagnostic) | ${s.spearmanTrainAccuracy.toFixed(4)} |`,
    `| median wall seconds per training | ${s.medianSeconds.toFixed(2)} |`,
    `| median CPU seconds per training | ${s.medianCpuSeconds.toFixed(2)} |`,
    `| total CPU seconds | ${s.totalCpuSeconds.toFixed(0)} |`,
    `| our accuracy mean / min / max | ${s.meanAccuracy.toFixed(2)} / ${s.minAccuracy.toFixed(2)} / ${s.maxAccuracy.toFixed(2)} |`,
    `| backend | ${s.backends.join(', ')} |`,
    '',
    'Recipe:',
    '',
    '```json',
    JSON.stringify(s.recipe),
    '```',
    '',
    `Per-cell results: \`${path.basename(out)}\`.`,
    '',
  ].join('\n');
  writeFileAtomic(out.replace(/\.csv$/, '.md'), md);
  return s;
}

if (flag('summary')) {
  console.log(JSON.stringify(writeSummary(readRows()), null, 2));
  process.exit(0);
}

const info = await initBackend({});
const space = getTrainableSpace('nb201');
const trainDs = openCifarBinary(
  fs.readdirSync(dataDir).filter((n) => /^data_batch_\d+\.bin$/.test(n)).sort().map((n) => path.join(dataDir, n)),
  { variant: 'cifar10' },
);
const testDs = openCifarBinary([path.join(dataDir, 'test_batch.bin')], { variant: 'cifar10' });
// per = null takes every image of each class; asking for more than a class has is an error, not a silent cap
const pick = (ds, per, label, files) => {
  const rng = new Rng(`calibration:${seed}:${label}`);
  return Array.from({ length: 10 }, (_, c) => {
    const pool = [];
    ds.labels.forEach((l, i) => l === c && pool.push(i));
    if (per !== null && per > pool.length) {
      throw new Error(`${label}: ${per} images per class asked for, but class ${c} has ${pool.length} in ${files} (lower --${label === 'train' ? 'per-class' : 'test-per-class'})`);
    }
    return rng.sampleWithoutReplacement(pool.length, per ?? pool.length).map((i) => pool[i]).sort((a, b) => a - b);
  });
};
const trainIdx = pick(trainDs, recipe.maxTrainPerClass > 0 ? recipe.maxTrainPerClass : null, 'train', `${dataDir}/data_batch_*.bin`);
const testIdx = pick(testDs, testPerClass, 'test', path.join(dataDir, 'test_batch.bin'));
const tr = await readTaskImages(trainDs, trainIdx, recipe.inputSize);
const te = await readTaskImages(testDs, testIdx, recipe.inputSize);
const stats = channelStats(tr.u8);
const train = toImageSet(tr.u8, tr.labels, recipe.inputSize, 10, stats);
const test = toImageSet(te.u8, te.labels, recipe.inputSize, 10, stats);

const rng = new Rng(`calibration-cells:${seed}`);
const indices = rng.sampleWithoutReplacement(table.size, Math.min(cells, table.size));
const rows = readRows();
const done = new Set(rows.map((r) => r.index));
if (!fs.existsSync(out) || fs.statSync(out).size === 0) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // 'wx': of several shards starting together, one writes the header
  try {
    fs.writeFileSync(out, `${HEADER}\n`, { flag: 'wx' });
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  }
} else if (!fs.readFileSync(out, 'utf8').endsWith('\n')) {
  // end a torn last line (readRows skips it and its cell is trained again) so the next row starts on its
  // own line; an append rather than a truncate, so that shards starting together cannot cut a fresh row
  fs.appendFileSync(out, '\n');
}
const fields = `"${JSON.stringify(recipe).replace(/"/g, '""')}"`;
console.error(`[calibration] ${recipe.id}: ${done.size}/${indices.length} cells done, backend ${info.name}; writing ${path.relative(repo, out)}`);
for (const [pos, index] of indices.entries()) {
  if (pos % shards !== shard || done.has(index)) continue;
  const arch = table.stringAt(index);
  const cpu0 = process.cpuUsage();
  const res = trainArchitecture(space, arch, recipe, train, test, `calibration:${trainSeed}:${index}`);
  const cpu = process.cpuUsage(cpu0);
  const row = [index, arch, truth[index], res.testAccuracy, res.trainAccuracy.toFixed(2), res.seconds.toFixed(3), ((cpu.user + cpu.system) / 1e6).toFixed(3), info.name, res.trainImages, res.testImages, fields];
  const fd = fs.openSync(out, 'a');
  fs.writeSync(fd, `${row.join(',')}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const all = readRows();
  console.error(`[calibration] ${all.length}/${indices.length} cell ${index} nb201 ${truth[index].toFixed(2)} ours ${res.testAccuracy.toFixed(2)} ${res.seconds.toFixed(1)}s (cpu ${((cpu.user + cpu.system) / 1e6).toFixed(1)}s)` +
    (all.length >= 5 ? ` spearman so far ${spearman(all.map((r) => r.accuracy), all.map((r) => r.nb201)).toFixed(3)}` : ''));
}
const finished = readRows();
if (finished.length < indices.length) {
  console.error(`[calibration] shard ${shard}/${shards} done; ${finished.length}/${indices.length} cells in the file (the other shards are still running)`);
  process.exit(0);
}
const s = writeSummary(finished);
console.log(`${recipe.id}: ${s.cells} cells, spearman ${s.spearman.toFixed(3)}, kendall ${s.kendall.toFixed(3)}, median ${s.medianSeconds.toFixed(2)} s (${s.medianCpuSeconds.toFixed(2)} CPU s) per training on ${s.backends.join(', ')}`);
