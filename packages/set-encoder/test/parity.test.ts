import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import { DatasetEncoder } from '../src/index.js';
import { fixture, maxRelDiff, stateDictOf } from './fixture.js';

beforeAll(async () => {
  await initBackend({ quiet: true });
});

function subState(state: Map<string, { shape: number[]; data: Float32Array }>, prefixes: string[]) {
  return new Map([...state].filter(([k]) => prefixes.some((p) => k.startsWith(p))));
}

describe('two-level set encoder parity with the original', () => {
  it('generator: mu = fc1(v), logvar = fc2(v) match set_encode_mu/logvar to 1e-4', () => {
    const state = stateDictOf('generator_state');
    const enc = new DatasetEncoder({ featureDim: 512, numSample: 20, dim: 56 });
    enc.loadStateDict(subState(state, ['intra_setpool.', 'inter_setpool.']));
    const x = fixture().get('generator_case/input_X');
    const lin = (name: string, v: tf.Tensor2D) => {
      const w = state.get(`${name}.weight`)!;
      const b = state.get(`${name}.bias`)!;
      return tf.matMul(v, tf.tensor2d(w.data, w.shape as [number, number]), false, true).add(tf.tensor1d(b.data));
    };
    const [mu, logvar] = tf.tidy(() => {
      const v = enc.forward(tf.tensor3d(x.data, x.shape as [number, number, number]));
      return [lin('fc1', v).dataSync(), lin('fc2', v).dataSync()];
    });
    const wantMu = fixture().get('generator_case/set_encode_mu').data;
    const wantLv = fixture().get('generator_case/set_encode_logvar').data;
    console.log('mu', maxRelDiff(mu, wantMu), 'logvar', maxRelDiff(logvar, wantLv));
    expect(maxRelDiff(mu, wantMu)).toBeLessThan(1e-4);
    expect(maxRelDiff(logvar, wantLv)).toBeLessThan(1e-4);
  });
});

describe('predictor set encoder parity', () => {
  it('set_encode of the predictor fixture matches to 1e-4', () => {
    const state = stateDictOf('predictor_state');
    const enc = new DatasetEncoder();
    enc.loadStateDict(subState(state, ['intra_setpool.', 'inter_setpool.']));
    const x = fixture().get('predictor_case/input_X');
    const got = tf.tidy(() => enc.forward(tf.tensor3d(x.data, x.shape as [number, number, number])).dataSync());
    expect(maxRelDiff(got, fixture().get('predictor_case/set_encode').data)).toBeLessThan(1e-4);
  });
});
