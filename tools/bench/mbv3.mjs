// OFA MobileNetV3 search-space benchmark and accuracy report: encodings, costs, lookup tables and the
// accuracy predictor over HELP's 5,000 subnets, agreement with the published data, and the trainable
// subnet's forward / training step on the active tfjs backend. Runs against built dist:
//   (cd packages/search-space-mbv3 && npx tsup) && node tools/bench/mbv3.mjs [--backend cpu|wasm] [--reps 5] [--res 64]
// Reports medians over --reps runs (per-item times are the median batch time / items).
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import { Rng, spearman, pearson } from '@metad2a/core';
import {
  mbv3Space, loadHelpOfaArchs, ofaCost, OfaAccuracyPredictor, Note10LatencyTable, I7LatencyTable, OfaSubnet, defaultOfaDataDir,
} from '@metad2a/search-space-mbv3';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const reps = Number(opt('reps', 5));
const res = Number(opt('res', 64));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
async function time(label, fn, items = 1, n = reps) {
  const ts = [];
  let out;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    out = await fn();
    ts.push(performance.now() - t0);
  }
  const m = median(ts);
  const per = items > 1 ? `  = ${((m / items) * 1000).toFixed(1)} us/item` : '';
  console.log(`${label.padEnd(60)} median ${m.toFixed(2)} ms${per}  (n=${n})`);
  return { median: m, out };
}

const help = loadHelpOfaArchs();
const archs = help.archs;
const N = archs.length;
console.log(`HELP subnets: ${N}; machine load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

await time('toDag + invalidReason + fromDag (all)', () => archs.forEach((a) => mbv3Space.fromDag(mbv3Space.toDag(a))), N);
await time('format + parse + canonicalKey (all)', () => archs.forEach((a) => mbv3Space.canonicalKey(mbv3Space.parse(mbv3Space.format(a)))), N);
const costs = (await time('ofaCost at own r (all)', () => archs.map((a) => ofaCost(a)), N)).out;
const predictor = OfaAccuracyPredictor.load();
const preds = (await time('OFA accuracy predictor predictMany (all)', () => predictor.predictMany(archs), N)).out;
await time('OFA accuracy predictor predict, one by one (first 500)', () => archs.slice(0, 500).map((a) => predictor.predict(a)), 500);
const note10 = Note10LatencyTable.load();
await time('Note10 LUT at 224 (all)', () => archs.map((a) => note10.predict(a, 224)), N);
const i7 = I7LatencyTable.load();
const i7lat = (await time('i7-8700K LUT at own r (all)', () => archs.map((a) => i7.predict(a)), N)).out;

console.log('\nAgreement with published / stored numbers');
const worstPred = Math.max(...preds.map((p, i) => Math.abs(p - help.ofaPredictorTop1[i])));
console.log(`  predictor vs ofa_predictor_top1_computed_here (rounded 1e-6): max |diff| ${worstPred.toExponential(2)}`);
const man = JSON.parse(fs.readFileSync(path.join(defaultOfaDataDir(), 'ofa_acc_predictor.json'), 'utf8'));
const worstTv = Math.max(...man.test_vectors_float64.map((v) => Math.abs(predictor.predict({ ks: v.ks, e: v.e, d: v.d }, v.r) - v.pred)));
console.log(`  predictor vs 22 float64 test vectors: max |diff| ${worstTv.toExponential(2)}`);
const nets = JSON.parse(fs.readFileSync(path.join(defaultOfaDataDir(), 'ofa_specialized_nets.json'), 'utf8')).nets;
for (const n of nets.filter((x) => x.name.startsWith('flops-'))) {
  const cfg = { ks: n.ks.map((v) => v || 3), e: n.e.map((v) => v || 3), d: n.d, r: n.r };
  const c = ofaCost(cfg, { widthMult: 1.2 });
  console.log(`  ${n.name} (w1.2, r=${n.r}): ${c.mflops.toFixed(2)} MFLOPs (MACs), ${c.mparams.toFixed(3)} M params`);
}
const n30 = nets.find((x) => x.name.startsWith('note10_lat-30ms'));
console.log(`  note10_lat-30ms (w1.2, r=224): Note10 LUT ${note10.predict({ ks: n30.ks.map((v) => v || 3), e: n30.e.map((v) => v || 3), d: n30.d }, 224).toFixed(3)} ms`);
for (const dev of ['titan_rtx_64', 'v100_64', '2080ti_1']) {
  const lat = help.latencyMs[dev];
  console.log(`  HELP ${dev} latency vs MACs: spearman ${spearman(costs.map((c) => c.macs), lat).toFixed(3)}, vs i7 LUT: spearman ${spearman(i7lat, lat).toFixed(3)}`);
}
const w10 = nets.filter((x) => x.stage_out_channels.join() === '24,40,80,112,160');
console.log(`  24 w1.0 specialised nets: predictor vs fine-tuned top-1 pearson ${pearson(w10.map((n) => predictor.predict({ ks: n.ks.map((v) => v || 3), e: n.e.map((v) => v || 3), d: n.d }, n.r)), w10.map((n) => n.top1_after_finetune)).toFixed(3)}`);

const info = await initBackend({ force: opt('backend', 'cpu'), quiet: true });
console.log(`\nTrainable subnet on ${info.name ?? JSON.stringify(info)}, r=${res}, 10 classes`);
const rng = new Rng(1);
for (const [label, cfg] of [['HELP subnet #0', archs[0]], ['largest (k7 e6 d4)', { ks: Array(20).fill(7), e: Array(20).fill(6), d: Array(5).fill(4) }]]) {
  const net = new OfaSubnet(cfg, { resolution: res, numClasses: 10, rng });
  const x = tf.randomNormal([8, res, res, 3]);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
  const optim = tf.train.momentum(0.01, 0.9);
  await time(`${label}: forward eval, batch 8`, async () => {
    const o = net.forward(x, false);
    await o.data();
    o.dispose();
  }, 1, Math.min(reps, 3));
  await time(`${label}: train step (fwd+bwd+SGD), batch 8`, async () => {
    const l = optim.minimize(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, true)), true, net.trainableParameters());
    await l.data();
    l.dispose();
  }, 1, Math.min(reps, 3));
  tf.dispose([x, y]);
  optim.dispose();
  net.dispose();
}
