import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import { nb201Space } from '@metad2a/search-space-201';
import { Generator } from '../src/index.js';
import { NB201, fixture, manifest, maxRelDiff, nb201Dag, nb201String } from './helpers.js';

let gen: Generator;
beforeAll(async () => {
  await initBackend({ quiet: true });
  gen = new Generator(NB201);
  gen.loadOriginal(fixture().group('generator_state'), 'parity fixture');
});

const t3 = (name: string) => {
  const a = fixture().get(name);
  return tf.tensor3d(a.data, a.shape as [number, number, number]);
};
const t2 = (name: string) => {
  const a = fixture().get(name);
  return tf.tensor2d(a.data, a.shape as [number, number]);
};

describe('generator parity with the original checkpoint', () => {
  it('has the original 304,200 parameters under the PyTorch names', () => {
    expect(gen.numParameters()).toBe(304200);
    expect(gen.namedParameters().map(([n]) => n)).toEqual([...fixture().group('generator_state').keys()]);
  });

  it('set-encodes to mu/logvar within 1e-4', () => {
    const { mu, logvar } = gen.encodeDatasets(t3('generator_case/input_X'));
    const dm = maxRelDiff(mu.dataSync(), fixture().get('generator_case/set_encode_mu').data);
    const dl = maxRelDiff(logvar.dataSync(), fixture().get('generator_case/set_encode_logvar').data);
    console.log('set encode', dm, dl);
    expect(dm).toBeLessThan(1e-4);
    expect(dl).toBeLessThan(1e-4);
    tf.dispose([mu, logvar]);
  });

  it('graph-encodes the three architectures to mu/logvar within 1e-4', () => {
    const dags = manifest().generator_case.teacher_forced_archs.map(nb201Dag);
    const { mu, logvar } = gen.graphEncode(dags);
    const dm = maxRelDiff(mu.dataSync(), fixture().get('generator_case/graph_encode_mu').data);
    const dl = maxRelDiff(logvar.dataSync(), fixture().get('generator_case/graph_encode_logvar').data);
    console.log('graph encode', dm, dl);
    expect(dm).toBeLessThan(1e-4);
    expect(dl).toBeLessThan(1e-4);
    tf.dispose([mu, logvar]);
  });

  it('teacher-forced loss, recon and KL (eval mode, beta 0.005) within 1e-3', () => {
    const dags = manifest().generator_case.teacher_forced_archs.map(nb201Dag);
    const want = manifest().generator_case['loss_eval_mode_beta_0.005'];
    const r = tf.tidy(() => {
      const { loss, recon, kld } = gen.loss(t3('generator_case/input_X'), dags, { beta: 0.005, train: false });
      return [loss.dataSync()[0], recon.dataSync()[0], kld.dataSync()[0]];
    });
    console.log('loss', r, want);
    expect(Math.abs(r[0] - want.loss) / want.loss).toBeLessThan(1e-3);
    expect(Math.abs(r[1] - want.recon) / want.recon).toBeLessThan(1e-3);
    expect(Math.abs(r[2] - want.kld) / want.kld).toBeLessThan(1e-3);
  });

  it('argmax decoding of the set-encoder mus is identical (types, edges, NB201 string)', () => {
    const { mu, logvar } = gen.encodeDatasets(t3('generator_case/input_X'));
    const got = gen.sample(mu, { mode: 'argmax' });
    tf.dispose([mu, logvar]);
    const want = manifest().generator_case.argmax_decode_of_mu;
    expect(got.map((g) => ({ types: g.types, edges: g.edges, arch: nb201String(g) }))).toEqual(want);
    expect(got.map(archOf)).toEqual(want.map((w: { arch: string | null }) => w.arch));
  });

  it('the 24 decode_from_z cases decode identically, invalid ones included', () => {
    const z = t2('generator_case/decode_from_z/z');
    const got = gen.sample(z, { mode: 'argmax' });
    z.dispose();
    const want = manifest().generator_case.decode_from_z.decoded;
    expect(want.length).toBe(24);
    expect(want.some((w: { arch: string | null }) => w.arch === null)).toBe(true);
    expect(got.map((g) => ({ types: g.types, edges: g.edges, arch: nb201String(g) }))).toEqual(want);
    // the search-space package agrees on validity and strings, the invalid decodings included
    expect(got.map(archOf)).toEqual(want.map((w: { arch: string | null }) => w.arch));
  });
});

function archOf(dag: { types: number[]; edges: Array<[number, number]> }): string | null {
  const arch = nb201Space.fromDag(dag);
  return arch ? nb201Space.format(arch) : null;
}
