import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@metad2a/nn';
import { loadTfjsModel, saveTfjsModel } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  await initBackend({ quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-format-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A 3 -> 2 dense layer saved with our writer, its float32 weights read back from the files. */
async function savedDense(name: string) {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3], kernelInitializer: 'glorotUniform', biasInitializer: 'randomNormal' })] });
  const saved = await saveTfjsModel(model, path.join(dir, name));
  const json = JSON.parse(fs.readFileSync(saved.modelJson, 'utf8'));
  const raw = fs.readFileSync(saved.weights);
  const floats = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  return { saved, json, kernel: Array.from(floats.slice(0, 6)), bias: Array.from(floats.slice(6, 8)) };
}

describe('loadTfjsModel', () => {
  it('loads weights quantized the way the tfjs converter stores them (uint8 kernel, uint16 bias)', async () => {
    const { saved, json, kernel, bias } = await savedDense('quantized');
    const quantize = (v: number[], levels: number) => {
      const min = Math.min(...v);
      const scale = (Math.max(...v) - min) / levels;
      const q = v.map((x) => Math.round((x - min) / scale));
      return { min, scale, q, deq: q.map((k) => k * scale + min) };
    };
    const k8 = quantize(kernel, 255);
    const b16 = quantize(bias, 65535);
    const [kSpec, bSpec] = json.weightsManifest[0].weights;
    kSpec.quantization = { dtype: 'uint8', min: k8.min, scale: k8.scale };
    bSpec.quantization = { dtype: 'uint16', min: b16.min, scale: b16.scale };
    const bytes = Buffer.concat([Buffer.from(Uint8Array.from(k8.q)), Buffer.from(new Uint8Array(Uint16Array.from(b16.q).buffer))]);
    fs.writeFileSync(saved.weights, bytes);
    fs.writeFileSync(saved.modelJson, JSON.stringify(json));
    const { model } = await loadTfjsModel(path.dirname(saved.modelJson));
    const x = [[0.5, -1, 2], [1, 1, -0.25]];
    const got = (model.predict(tf.tensor2d(x)) as tf.Tensor).arraySync() as number[][];
    // kernel [in=3, out=2], row-major as stored
    for (let i = 0; i < 2; i++) {
      for (let o = 0; o < 2; o++) {
        const ref = x[i].reduce((s, xi, j) => s + xi * k8.deq[j * 2 + o], b16.deq[o]);
        expect(got[i][o]).toBeCloseTo(ref, 5);
      }
    }
  });

  it('refuses a weight of a dtype it cannot size, naming the weight', async () => {
    const { saved, json } = await savedDense('complex');
    json.weightsManifest[0].weights[1].dtype = 'complex64';
    fs.writeFileSync(saved.modelJson, JSON.stringify(json));
    await expect(loadTfjsModel(saved.modelJson)).rejects.toThrow(/model\.json.*weightsManifest .*bias.*unsupported stored dtype 'complex64'/);
  });

  it('refuses a truncated weights file', async () => {
    const { saved } = await savedDense('truncated');
    fs.writeFileSync(saved.weights, fs.readFileSync(saved.weights).subarray(0, 20));
    await expect(loadTfjsModel(saved.modelJson)).rejects.toThrow(/weights hold 20 bytes, the manifest needs 32/);
  });
});
