import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@metad2a/core';
import { OfaAccuracyPredictor, defaultOfaDataDir, loadHelpOfaArchs, ofaPredictorFeatures, type OfaConfig } from '../src/index.js';

const dir = defaultOfaDataDir();
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'ofa_acc_predictor.json'), 'utf8')) as {
  test_vectors_float64: Array<OfaConfig & { name: string; pred: number }>;
};
const predictor = OfaAccuracyPredictor.load();

describe('OFA accuracy predictor', () => {
  it('reproduces the 22 numpy test vectors', () => {
    const vs = manifest.test_vectors_float64;
    expect(vs.length).toBe(22);
    let worst = 0;
    for (const v of vs) worst = Math.max(worst, Math.abs(predictor.predict({ ks: v.ks, e: v.e, d: v.d }, v.r) - v.pred));
    expect(worst).toBeLessThan(1e-9);
  });

  it('reproduces ofa_predictor_top1_computed_here of the 5,000 HELP subnets', () => {
    const help = loadHelpOfaArchs();
    let worst = 0;
    predictor.predictMany(help.archs).forEach((p, i) => {
      worst = Math.max(worst, Math.abs(p - help.ofaPredictorTop1[i]));
    });
    // single and batched paths agree
    expect(predictor.predict(help.archs[17])).toBe(predictor.predictMany(help.archs.slice(0, 20))[17]);
    // stored rounded to 1e-6
    expect(worst).toBeLessThanOrEqual(5e-7 + 1e-12);
  });

  it('encodes as spec2feats: active slots one-hot, resolution bucket', () => {
    const cfg: OfaConfig = { ks: Array(20).fill(5), e: Array(20).fill(4), d: [2, 3, 4, 2, 2] };
    const x = ofaPredictorFeatures(cfg, 224);
    expect(x.reduce((s, v) => s + v, 0)).toBe(13 * 2 + 1);
    expect(x[1]).toBe(1); // slot 0, ks 5
    expect(x[60 + 1]).toBe(1); // slot 0, e 4
    expect(x[2 * 3 + 1]).toBe(0); // slot 2 inactive (d[0] = 2)
    expect(x[120 + 7]).toBe(1); // (224 - 112) div 16
    expect(ofaPredictorFeatures(cfg, 127)[120]).toBe(1);
    // inactive slots do not change the prediction
    const other = { ...cfg, ks: cfg.ks.map((v, i) => (i === 2 ? 7 : v)) };
    expect(predictor.predict(other, 224)).toBe(predictor.predict(cfg, 224));
    expect(() => ofaPredictorFeatures(cfg, 111)).toThrow(ConfigError);
    expect(() => ofaPredictorFeatures(cfg, 240)).toThrow(/covers 112\.\.239/);
  });

  it('reports a broken weights file by name', () => {
    const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'ofa-pred-'));
    try {
      const man = JSON.parse(fs.readFileSync(path.join(dir, 'ofa_acc_predictor.json'), 'utf8'));
      man.file = path.join(dir, man.file);
      man.tensors[2].shape = [400, 399];
      fs.writeFileSync(path.join(tmp, 'm.json'), JSON.stringify(man));
      expect(() => OfaAccuracyPredictor.load(path.join(tmp, 'm.json'))).toThrow(/m\.json, field '2\.weight': expected shape \[400,400\], got \[400,399\]/);
      expect(() => OfaAccuracyPredictor.load(path.join(tmp, 'missing.json'))).toThrow(InputError);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
