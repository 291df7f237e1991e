import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, Rng } from '@metad2a/core';
import { GRUCell, Linear, Module, initBackend, loadCheckpoint, loadOptimizerState, optimizerStateDict, readF32Bundle, saveCheckpoint, type StateDict } from '../src/index.js';

let tmp: string;
beforeAll(async () => {
  await initBackend({ quiet: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nn-ckpt-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

class Net extends Module {
  enc: Linear;
  gru: GRUCell;
  head: Linear;
  constructor(seed: number) {
    super();
    const rng = new Rng(seed);
    this.enc = this.addModule('enc', new Linear(5, 6, { rng }));
    this.gru = this.addModule('gru', new GRUCell(6, 6, { rng }));
    this.head = this.addModule('head', new Linear(6, 1, { rng }));
  }
  loss(x: tf.Tensor3D, y: tf.Tensor2D): tf.Scalar {
    return tf.tidy(() => {
      let h = tf.zeros([x.shape[0], 6]) as tf.Tensor2D;
      for (let t = 0; t < x.shape[1]; t++) {
        const xt = x.slice([0, t, 0], [x.shape[0], 1, 5]).reshape([x.shape[0], 5]) as tf.Tensor2D;
        h = this.gru.forward(this.enc.forward(xt) as tf.Tensor2D, h);
      }
      return tf.losses.meanSquaredError(y, this.head.forward(h)) as tf.Scalar;
    });
  }
}

const same = (a: StateDict, b: StateDict) => {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [n, v] of a) {
    expect(b.get(n)!.shape, n).toEqual(v.shape);
    expect(Array.from(b.get(n)!.data), n).toEqual(Array.from(v.data));
  }
};

describe('saveCheckpoint / loadCheckpoint', () => {
  it('round-trips a module bit for bit with metadata, as one manifest plus one blob, no temp files left', () => {
    const a = new Net(1);
    const file = path.join(tmp, 'rt', 'gen.json');
    const meta = { config: { hs: 6, nz: 6 }, epoch: 17, optimizer: { kind: 'adam', lr: 1e-3 } };
    const manifest = saveCheckpoint(file, a, meta);
    expect(manifest.format).toBe('metad2a-checkpoint');
    expect(manifest.version).toBe(1);
    expect(manifest.tensors.map((t) => t.name)).toEqual(a.namedParameters().map(([n]) => n));
    expect(manifest.tensors.every((t) => t.dtype === 'float32')).toBe(true);
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual(['gen.json', manifest.blob].sort());
    expect(manifest.blob).toMatch(/^gen\.[0-9a-f]{16}\.bin$/);
    expect(fs.statSync(path.join(tmp, 'rt', manifest.blob)).size).toBe(4 * a.numParameters());

    const { state, meta: m2 } = loadCheckpoint(file);
    expect(m2).toEqual(meta);
    const b = new Net(2);
    b.loadStateDict(state, { source: file });
    same(a.stateDict(), b.stateDict());
    a.dispose();
    b.dispose();
  });

  it('overwriting replaces the blob and removes the old one only after the new manifest is in place', () => {
    const file = path.join(tmp, 'ow', 'm.json');
    const a = new Net(3);
    const first = saveCheckpoint(file, a, { epoch: 1 });
    const c = new Net(4);
    const second = saveCheckpoint(file, c, { epoch: 2 });
    expect(second.blob).not.toBe(first.blob);
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual(['m.json', second.blob].sort());
    const { state, meta } = loadCheckpoint(file);
    expect(meta.epoch).toBe(2);
    same(c.stateDict(), state);
    a.dispose();
    c.dispose();
  });

  it('Adam state saved beside the parameters resumes training exactly', async () => {
    const rng = new Rng(9);
    const x = tf.tensor3d(rng.normalArray(4 * 3 * 5), [4, 3, 5]);
    const y = tf.tensor2d(rng.normalArray(4), [4, 1]);
    const a = new Net(5);
    const optA = tf.train.adam(0.02);
    const step = (net: Net, opt: tf.Optimizer) => opt.minimize(() => net.loss(x, y), false, net.trainableParameters());
    for (let i = 0; i < 5; i++) step(a, optA);
    const optState = await optimizerStateDict(optA, a);
    expect([...optState.keys()]).toContain('optimizer.iterations');
    expect([...optState.keys()]).toContain('optimizer.m.gru.weight_hh');
    expect([...optState.keys()]).toContain('optimizer.v.enc.bias');
    const file = path.join(tmp, 'adam', 'ck.json');
    saveCheckpoint(file, new Map([...a.stateDict(), ...optState]), { epoch: 5, optimizerState: [...optState.keys()] });

    const { state } = loadCheckpoint(file);
    const b = new Net(6);
    const { unexpected } = b.loadStateDict(state, { source: file });
    expect(unexpected.every((n) => n.startsWith('optimizer.'))).toBe(true);
    const optB = tf.train.adam(0.02);
    await loadOptimizerState(optB, b, state, file);
    for (let i = 0; i < 3; i++) {
      step(a, optA);
      step(b, optB);
    }
    const sa = a.stateDict();
    const sb = b.stateDict();
    for (const [n, v] of sa) for (let i = 0; i < v.data.length; i++) expect(Math.abs(sb.get(n)!.data[i] - v.data[i])).toBeLessThan(1e-6);
    // a fresh optimizer instead would not reproduce the trajectory (the test can fail)
    const c = new Net(7);
    c.loadStateDict(state);
    const optC = tf.train.adam(0.02);
    for (let i = 0; i < 3; i++) step(c, optC);
    const dc = Math.max(...[...sa].map(([n, v]) => Math.max(...Array.from(v.data, (q, i) => Math.abs(q - c.stateDict().get(n)!.data[i])))));
    expect(dc).toBeGreaterThan(1e-4);
    x.dispose();
    y.dispose();
    for (const o of [optA, optB, optC]) o.dispose();
    for (const m of [a, b, c]) m.dispose();
  });
});

describe('damaged checkpoints give clear errors naming the file and the problem', () => {
  let file: string;
  let blobPath: string;
  const fresh = (name: string) => {
    const dir = path.join(tmp, 'bad', name);
    file = path.join(dir, 'ck.json');
    const m = saveCheckpoint(file, new Map([['w', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }], ['b', { shape: [3], data: Float32Array.from([7, 8, 9]) }]]), { epoch: 1 });
    blobPath = path.join(dir, m.blob);
  };
  const editManifest = (f: (m: Record<string, any>) => void) => {
    const m = JSON.parse(fs.readFileSync(file, 'utf8'));
    f(m);
    fs.writeFileSync(file, JSON.stringify(m));
  };
  const message = (): string => {
    try {
      loadCheckpoint(file);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return (e as Error).message;
    }
    throw new Error('expected an error');
  };

  it('truncated or non-JSON manifest', () => {
    fresh('trunc-manifest');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 40));
    expect(message()).toMatch(new RegExp(`^${file}: manifest is not valid JSON .*\\(the file is truncated or corrupted\\)`));
  });

  it('missing, truncated or corrupted blob', () => {
    fresh('missing-blob');
    fs.rmSync(blobPath);
    expect(message()).toMatch(new RegExp(`^${blobPath}: blob of checkpoint ${file} is missing or unreadable \\(ENOENT\\)`));
    fresh('trunc-blob');
    fs.writeFileSync(blobPath, fs.readFileSync(blobPath).subarray(0, 20));
    expect(message()).toMatch(/blob has 20 bytes, manifest .*ck\.json says 36 \(the blob is truncated\)/);
    fresh('flip-blob');
    const b = fs.readFileSync(blobPath);
    b[5] ^= 0x10;
    fs.writeFileSync(blobPath, b);
    expect(message()).toMatch(/SHA-256 .* does not match manifest .*\(the blob is corrupted\)/);
  });

  it('shape that does not fit the blob, bad dtype, newer version, wrong format', () => {
    fresh('shape');
    editManifest((m) => (m.tensors[1].shape = [4]));
    expect(message()).toMatch(new RegExp(`^${file}, field 'tensors\\[1\\] 'b'': shape \\[4\\] at byte 24 needs 16 bytes but the blob has 36`));
    fresh('dtype');
    editManifest((m) => (m.tensors[0].dtype = 'int8'));
    expect(message()).toMatch(/field 'tensors\[0\] 'w'': unsupported dtype "int8"/);
    fresh('version');
    editManifest((m) => (m.version = 2));
    expect(message()).toMatch(/field 'version': format version 2 is newer than this reader \(1\)/);
    fresh('format');
    editManifest((m) => (m.format = 'something-else'));
    expect(message()).toMatch(/not a metad2a-checkpoint manifest/);
  });

  it('a checkpoint of another shape is refused by loadStateDict with the parameter named', () => {
    fresh('mismatch');
    const { state } = loadCheckpoint(file);
    const lin = new Linear(2, 3); // weight [3, 2], not [2, 3]
    expect(() => lin.loadStateDict(new Map([['weight', state.get('w')!], ['bias', state.get('b')!]]), { source: file })).toThrow(
      new RegExp(`parameter 'weight' from ${file}: expected shape \\[3, 2\\], got \\[2, 3\\]`),
    );
    lin.dispose();
  });
});

describe('readF32Bundle', () => {
  it('reads the parity fixture by path and groups', async () => {
    const { PARITY_MANIFEST } = await import('./helpers.js');
    const b = readF32Bundle(PARITY_MANIFEST);
    expect(b.manifest.nz).toBe(56);
    expect(b.get('generator_case/input_X').shape).toEqual([3, 200, 512]);
    expect(b.group('generator_state').size).toBe(99);
    expect(b.group('predictor_state').get('pred_fc.2.weight')!.shape).toEqual([1, 512]);
    expect(() => b.get('generator_state/nope')).toThrow(/manifest\.json, field 'generator_state\/nope': no such tensor in the bundle/);
  });

  it('rejects a blob too short for its manifest and a shape/length mismatch', () => {
    const dir = path.join(tmp, 'bundle');
    fs.mkdirSync(dir, { recursive: true });
    const mf = path.join(dir, 'manifest.json');
    fs.writeFileSync(path.join(dir, 'tensors.f32'), Buffer.from(Float32Array.from([1, 2, 3]).buffer));
    fs.writeFileSync(mf, JSON.stringify({ g: { a: { shape: [2], offset: 0, length: 2 }, b: { shape: [2], offset: 2, length: 2 } } }));
    expect(() => readF32Bundle(mf)).toThrow(/field 'g\/b': floats 2\.\.4 lie outside .*tensors\.f32 \(3 floats\)/);
    fs.writeFileSync(mf, JSON.stringify({ a: { shape: [2, 2], offset: 0, length: 2 } }));
    expect(() => readF32Bundle(mf)).toThrow(/field 'a': shape \[2,2\] does not match length 2/);
    fs.writeFileSync(mf, JSON.stringify({ a: { shape: [3], offset: 0, length: 3 } }));
    expect(Array.from(readF32Bundle(mf).get('a').data)).toEqual([1, 2, 3]);
  });
});
