// Timing of @metad2a/nn checkpoint I/O on the original MetaD2A generator (304,200 parameters).
// Build first (cd packages/nn && npx tsup), then: node tools/bench/nn-checkpoint.mjs [runs]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importTorchStateDict, loadCheckpoint, saveCheckpoint } from '../../packages/nn/dist/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pt = path.resolve(root, '../shared/data/metad2a-original/generator_ckpt_400.pt');
const runs = Number(process.argv[2] ?? 9);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nn-bench-'));
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const time = (fn) => {
  const t = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  return median(t);
};
const sd = importTorchStateDict(pt);
const file = path.join(dir, 'gen.json');
const imp = time(() => importTorchStateDict(pt));
const save = time(() => saveCheckpoint(file, sd, { epoch: 400 }));
const load = time(() => loadCheckpoint(file));
fs.rmSync(dir, { recursive: true, force: true });
console.log(`runs ${runs}, median ms: import .pt ${imp.toFixed(1)}, saveCheckpoint ${save.toFixed(1)}, loadCheckpoint ${load.toFixed(1)}; import/load ratio ${(imp / load).toFixed(1)}x`);
