// Compare calibration runs on the cells they have in common (partial runs cover a prefix of the same
// seeded cell order, and early cells are easier to rank than later ones, so only paired figures compare).
//
//   node tools/calibration/compare.mjs results/a.csv results/b.csv ... [--features]
//
// Prints, over the common cells: each run's Spearman with the NB201 200-epoch CIFAR-10 table (all cells and
// without the degenerate 10 % ones), its median CPU seconds per training, and the runs' agreement with each
// other. --features adds the Spearman of simple cell features (count of 3x3 convs, conv parameters, pools,
// skips) with the table and with each run: what the cheap training rewards that 200 epochs do not.
// With several runs it also ranks their mean accuracy (what averaging trainings with several seeds buys),
// and where ../shared/data/nb201/nb201_12epoch_valid_test.csv is present it compares every run with NB201's
// own 12-epoch CIFAR-10 training (full data, 32 px, C=16, N=5): a reference point for a cheaper regime.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spearman } from '@metad2a/core';

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) {
  console.error('usage: node tools/calibration/compare.mjs <run.csv>... [--features]');
  process.exit(2);
}

function readRun(file) {
  const rows = new Map();
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  for (const [i, line] of lines.entries()) {
    if (i === 0 || !line.trim()) continue;
    const f = line.split(',');
    if (f.length < 11) continue; // a torn last line of a stopped run
    rows.set(Number(f[0]), { arch: f[1], truth: Number(f[2]), accuracy: Number(f[3]), cpu: Number(f[6]) });
  }
  return rows;
}

const runs = files.map((f) => ({ name: path.basename(f, '.csv'), rows: readRun(f) }));
const common = [...runs[0].rows.keys()].filter((k) => runs.every((r) => r.rows.has(k)));
if (common.length < 3) {
  console.error(`only ${common.length} cells in common`);
  process.exit(1);
}
const truth = common.map((k) => runs[0].rows.get(k).truth);
const live = common.filter((k) => runs[0].rows.get(k).truth > 10.5);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
console.log(`${common.length} cells in common (${common.length - live.length} degenerate)`);
console.log('run | Spearman | without degenerate | median CPU s');
for (const r of runs) {
  const acc = common.map((k) => r.rows.get(k).accuracy);
  const accLive = live.map((k) => r.rows.get(k).accuracy);
  const truthLive = live.map((k) => r.rows.get(k).truth);
  console.log(`${r.name} | ${spearman(acc, truth).toFixed(3)} | ${spearman(accLive, truthLive).toFixed(3)} | ${median(common.map((k) => r.rows.get(k).cpu)).toFixed(1)}`);
}
if (runs.length > 1) {
  console.log('\nagreement between runs (Spearman over the non-degenerate common cells)');
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const a = live.map((k) => runs[i].rows.get(k).accuracy);
      const b = live.map((k) => runs[j].rows.get(k).accuracy);
      console.log(`${runs[i].name} ~ ${runs[j].name}: ${spearman(a, b).toFixed(3)}`);
    }
  }
}
if (runs.length > 1) {
  const mean = common.map((k) => runs.reduce((s, r) => s + r.rows.get(k).accuracy, 0) / runs.length);
  const meanLive = live.map((k) => runs.reduce((s, r) => s + r.rows.get(k).accuracy, 0) / runs.length);
  const truthLive = live.map((k) => runs[0].rows.get(k).truth);
  console.log(`\nmean accuracy of the ${runs.length} runs | ${spearman(mean, truth).toFixed(3)} | ${spearman(meanLive, truthLive).toFixed(3)}`);
}
const epoch12File = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/data/nb201/nb201_12epoch_valid_test.csv');
if (fs.existsSync(epoch12File)) {
  const lines = fs.readFileSync(epoch12File, 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const [cellCol, testCol] = [head.indexOf('cellstr'), head.indexOf('cifar10-test')];
  const e12 = new Map(lines.slice(1).map((l) => l.split(',')).map((f) => [f[cellCol], Number(f[testCol])]));
  const ref = common.map((k) => e12.get(runs[0].rows.get(k).arch));
  if (ref.every((v) => Number.isFinite(v))) {
    console.log(`\nNB201's own 12-epoch CIFAR-10 training: Spearman ${spearman(ref, truth).toFixed(3)} with the 200-epoch table; with each run:`);
    for (const r of runs) console.log(`${r.name} ~ 12 epochs: ${spearman(common.map((k) => r.rows.get(k).accuracy), ref).toFixed(3)}`);
  }
}
if (args.includes('--features')) {
  const ops = (arch) => [...arch.matchAll(/\|([a-z_0-9]+)~\d/g)].map((m) => m[1]);
  const count = (arch, op) => ops(arch).filter((o) => o === op).length;
  const features = {
    conv3x3: (a) => count(a, 'nor_conv_3x3'),
    'conv params (9 per 3x3, 1 per 1x1)': (a) => 9 * count(a, 'nor_conv_3x3') + count(a, 'nor_conv_1x1'),
    avg_pool: (a) => count(a, 'avg_pool_3x3'),
    skip: (a) => count(a, 'skip_connect'),
  };
  console.log(`\nfeature | table | ${runs.map((r) => r.name).join(' | ')}`);
  for (const [name, fn] of Object.entries(features)) {
    const v = common.map((k) => fn(runs[0].rows.get(k).arch));
    console.log(`${name} | ${spearman(v, truth).toFixed(3)} | ${runs.map((r) => spearman(v, common.map((k) => r.rows.get(k).accuracy)).toFixed(3)).join(' | ')}`);
  }
}
