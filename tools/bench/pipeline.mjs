// data-pipeline benchmark: feature-extraction speed and few-shot quality of the MobileNet extractor,
// store sampling, database appends. Runs against built dist:
//   (cd packages/data-pipeline && npx tsup) && node tools/bench/pipeline.mjs [--sizes 64,96] [--shots 30] [--queries 20]
// Reports medians; accuracy is 10-way cosine nearest-centroid on cifar10-subset (train shots, test queries).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { MetaDatabaseWriter, encodeDataset, loadMobileNetExtractor, openCifarBinary, openFeatureStore } from '@metad2a/data-pipeline';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sizes = arg('sizes', '64,96').split(',').map(Number);
const shots = Number(arg('shots', '30'));
const queries = Number(arg('queries', '20'));
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = path.resolve(repo, '../shared/data');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const info = await initBackend({ quiet: true });
console.log(`backend ${info.name}${info.blas?.active ? ' + OpenBLAS' : ''}, ${os.cpus().length} cpus, node ${process.version}`);

const train = openCifarBinary([path.join(shared, 'cifar10-subset/train_100per_class.bin')], { variant: 'cifar10' });
const test = openCifarBinary([path.join(shared, 'cifar10-subset/test_100per_class.bin')], { variant: 'cifar10' });
const pick = (n) => Array.from({ length: 10 }, (_, c) => Array.from({ length: n }, (_, i) => c * 100 + i)).flat();
const sIdx = pick(shots);
const qIdx = pick(queries);
const sImgs = await train.read(sIdx);
const qImgs = await test.read(qIdx);

function nearestCentroid(S, Q, d) {
  const unit = (x, i) => {
    const v = x.subarray(i * d, (i + 1) * d);
    let s = 0;
    for (const a of v) s += a * a;
    return Array.from(v, (a) => a / Math.sqrt(s || 1));
  };
  const cents = Array.from({ length: 10 }, () => new Float64Array(d));
  sIdx.forEach((r, i) => unit(S, i).forEach((u, k) => (cents[train.labels[r]][k] += u)));
  let ok = 0;
  qIdx.forEach((r, i) => {
    const u = unit(Q, i);
    let best = -1;
    let bs = -Infinity;
    cents.forEach((c, j) => {
      let s = 0;
      let n = 0;
      for (let k = 0; k < d; k++) (s += c[k] * u[k]), (n += c[k] * c[k]);
      if (s / Math.sqrt(n) > bs) (bs = s / Math.sqrt(n)), (best = j);
    });
    if (best === test.labels[r]) ok++;
  });
  return ok / qIdx.length;
}

const raw = (imgs) => Float32Array.from(imgs.flatMap((im) => Array.from(im.data, (v) => v / 255)));
console.log(`raw pixels: 10-way nearest-centroid accuracy ${nearestCentroid(raw(sImgs), raw(qImgs), 3072).toFixed(3)} (${shots} shots, ${queries} queries per class)`);

for (const size of sizes) {
  const t0 = performance.now();
  const fx = await loadMobileNetExtractor({ source: path.join(shared, 'mobilenet-v1-imagenet'), inputSize: size });
  const loadMs = performance.now() - t0;
  await fx.embed(sImgs.slice(0, 8)); // warm-up
  const per = [];
  for (let b = 0; b < 5; b++) {
    const t = performance.now();
    await fx.embed(sImgs.slice(b * 32, b * 32 + 32), { batchSize: 32 });
    per.push((performance.now() - t) / 32);
  }
  const S = await fx.embed(sImgs);
  const Q = await fx.embed(qImgs);
  console.log(`${fx.id}: load ${loadMs.toFixed(0)} ms, embed median ${median(per).toFixed(1)} ms/img (batches of 32), accuracy ${nearestCentroid(S, Q, fx.dims).toFixed(3)}`);
  fx.dispose();
}

// store: encode 1000 images at the smallest size, then time sampling 20 x 10 classes
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pipeline-'));
const fx = await loadMobileNetExtractor({ source: path.join(shared, 'mobilenet-v1-imagenet'), inputSize: sizes[0] });
let t = performance.now();
const store = await encodeDataset(train, { out: path.join(tmp, 'c10.json'), extractor: fx, perClass: 30 });
console.log(`encodeDataset 300 images @${sizes[0]}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
const st = openFeatureStore(path.join(tmp, 'c10.json'), { extractor: fx.id });
const rng = new Rng(0);
const sampleMs = [];
for (let i = 0; i < 50; i++) {
  t = performance.now();
  st.sample({ rng, numSample: 20 });
  sampleMs.push(performance.now() - t);
}
console.log(`store.sample 10 classes x 20 rows x ${st.dims}: median ${median(sampleMs).toFixed(3)} ms`);
st.close();
store.close();

// database: appends with fsync
const w = await MetaDatabaseWriter.open(path.join(tmp, 'db.csv'));
const n = 200;
t = performance.now();
for (let i = 0; i < n; i++) {
  await w.append({ taskId: `t${i}`, dataset: 'imagenet32', classes: [1, 2, 3], searchSpace: 'nb201', arch: '|none~0|+|none~0|none~1|+|none~0|none~1|none~2|', accuracy: 50, recipe: 'r', seed: 0, time: new Date().toISOString() });
}
console.log(`database append (one record + fsync each): ${((performance.now() - t) / n).toFixed(2)} ms/record`);
w.close();
fs.rmSync(tmp, { recursive: true, force: true });
