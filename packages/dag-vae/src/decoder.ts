import * as tf from '@tensorflow/tfjs';
import { InputError, Rng, type ArchDag } from '@metad2a/core';
import { GRUCell, Linear, Module, ReLU, Sequential, Sigmoid } from '@metad2a/nn';
import { packGraphs, type GraphBatch, type ModelSpace } from './graph-batch.js';
import { GruWeights, MessageWeights, affine, oneHotRows, type GateInputs } from './message-passing.js';
import { fusedAddon } from '@metad2a/kernels-blas';
import { gatedRecurrence, type RecurrenceVertex } from './recurrence.js';

export type DecodeMode = 'argmax' | 'sample';

export interface DecodeOptions {
  /** 'sample': types ~ softmax, edges ~ Bernoulli (the original's search); 'argmax': argmax types, p > 0.5 edges. */
  mode?: DecodeMode;
  /** Source of the sampling decisions (mode 'sample'). */
  rng?: Rng;
}

/**
 * Parts of the D-VAE decoder of the original, with its parameter names: grud (GRUCell nvt -> hs),
 * fc3 (z -> h0), add_vertex (hs -> 2hs -> nvt), add_edge (2hs -> 4hs -> 1), decoding_gate (sigmoid
 * Linear vs -> hs) and decoding_mapper (Linear vs -> hs, no bias). The Generator registers them at
 * its top level; this class holds the batched decoding and the teacher-forced likelihood.
 */
export class DagDecoder extends Module {
  readonly nvt: number;
  readonly maxN: number;
  readonly vs: number;
  readonly grud: GRUCell;
  readonly fc3: Linear;
  readonly add_vertex: Sequential;
  readonly add_edge: Sequential;
  readonly decoding_gate: Sequential;
  readonly decoding_mapper: Sequential;

  constructor(
    readonly space: ModelSpace,
    readonly hs: number,
    readonly nz: number,
    options: { rng?: Rng } = {},
  ) {
    super();
    const rng = options.rng;
    this.nvt = space.numVertexTypes;
    this.maxN = space.maxNodes;
    this.vs = hs + this.maxN;
    this.grud = this.addModule('grud', new GRUCell(this.nvt, hs, { rng }));
    this.fc3 = this.addModule('fc3', new Linear(nz, hs, { rng }));
    this.add_vertex = this.addModule('add_vertex', new Sequential(new Linear(hs, 2 * hs, { rng }), new ReLU(), new Linear(2 * hs, this.nvt, { rng })));
    this.add_edge = this.addModule('add_edge', new Sequential(new Linear(2 * hs, 4 * hs, { rng }), new ReLU(), new Linear(4 * hs, 1, { rng })));
    this.decoding_gate = this.addModule('decoding_gate', new Sequential(new Linear(this.vs, hs, { rng }), new Sigmoid()));
    this.decoding_mapper = this.addModule('decoding_mapper', new Sequential(new Linear(this.vs, hs, { bias: false, rng })));
  }

  /**
   * Weights laid out for one decoding/likelihood call. add_edge's first layer acts on [h_vi ; h_new]:
   * its h_vi half (plus bias) is computed once per vertex alongside the message ("P"), its h_new half
   * ("Q") after each state update.
   */
  private prepare() {
    const hs = this.hs;
    const e0 = this.add_edge.layers[0] as Linear;
    const e2 = this.add_edge.layers[2] as Linear;
    const gw = new GruWeights(this.grud);
    const mw = new MessageWeights(this.decoding_gate.layers[0] as Linear, this.decoding_mapper.layers[0] as Linear, this.maxN, {
      weight: e0.weight.slice([0, 0], [4 * hs, hs]) as tf.Tensor2D,
      bias: e0.bias as unknown as tf.Tensor1D,
    });
    const wNewT = e0.weight.slice([0, hs], [4 * hs, hs]).transpose() as tf.Tensor2D;
    const w2T = e2.weight.transpose() as tf.Tensor2D;
    const b2 = e2.bias!;
    /** Edge logits [k*B] for k stacked P blocks and the new vertex's current Q. */
    const edgeLogits = (P: tf.Tensor2D[], Q: tf.Tensor2D): tf.Tensor1D => {
      const B = Q.shape[0];
      const x = P.length === 1 ? P[0].add(Q) : tf.stack(P).add(Q).reshape([P.length * B, 4 * hs]);
      return affine(tf.relu(x) as tf.Tensor2D, w2T, b2).reshape([-1]) as tf.Tensor1D;
    };
    const v0 = this.add_vertex.layers[0] as Linear;
    const v2 = this.add_vertex.layers[2] as Linear;
    const av0 = v0.weight.transpose() as tf.Tensor2D;
    const av2 = v2.weight.transpose() as tf.Tensor2D;
    /** add_vertex(h): type logits [B, nvt]. */
    const typeLogits = (h: tf.Tensor2D) => affine(affine(h, av0, v0.bias, 'relu'), av2, v2.bias);
    const tensors = [...gw.tensors(), ...mw.tensors(), wNewT, w2T, av0, av2];
    return { gw, mw, wNewT, edgeLogits, typeLogits, tensors, dispose: () => tf.dispose(tensors) };
  }

  /**
   * Decode latents z [B, nz] into graphs, all graphs one vertex step at a time: type of the new
   * vertex from the last vertex's state (forced END at the last step), then edges from the nearest
   * previous vertex down to 0, the new vertex's state recomputed after every added edge; END is
   * wired from every vertex without an outgoing edge. An END drawn early finishes the graph.
   * Edges are listed in the order the original adds them.
   */
  decode(z: tf.Tensor2D, options: DecodeOptions = {}): ArchDag[] {
    const mode = options.mode ?? 'sample';
    const rng = options.rng ?? (mode === 'sample' ? new Rng(Date.now() >>> 0) : null);
    const { nvt, maxN: n } = this;
    const START = this.space.startType;
    const END = this.space.endType;
    const B = z.shape[0];
    const out: ArchDag[] = Array.from({ length: B }, () => ({ types: [START], edges: [] }));
    if (B === 0) return out;
    const outdeg = new Int32Array(B * n);
    const finished = new Uint8Array(B);
    // the prepared weights live for the whole call; their temporaries do not
    let prep!: ReturnType<DagDecoder['prepare']>;
    tf.tidy(() => {
      prep = this.prepare();
      for (const t of prep.tensors) tf.keep(t);
    });
    const keepers: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T): T => (keepers.push(t), t);
    const P: tf.Tensor2D[] = [];
    const M: tf.Tensor2D[] = [];
    try {
      let h = keep(
        tf.tidy(() => {
          const h0 = tf.tanh(this.fc3.forward(z)) as tf.Tensor2D;
          return prep.gw.step(prep.gw.inputGates(oneHotRows(new Array(B).fill(START), nvt)), h0);
        }),
      );
      const remember = (state: tf.Tensor2D, v: number) => {
        const [msg, extra] = tf.tidy(() => {
          const r = prep.mw.message(state, v);
          return [r.msg, r.extra!];
        });
        M[v] = keep(msg);
        P[v] = keep(extra);
      };
      remember(h, 0);
      for (let idx = 1; idx < n; idx++) {
        const newTypes = new Int32Array(B).fill(END);
        if (idx < n - 1) {
          const logits = tf.tidy(() => {
            const l = prep.typeLogits(h);
            return mode === 'sample' ? tf.softmax(l) : l;
          });
          const vals = logits.dataSync() as Float32Array;
          logits.dispose();
          for (let b = 0; b < B; b++) newTypes[b] = mode === 'sample' ? sampleIndex(vals, b * nvt, nvt, rng!) : argmaxIndex(vals, b * nvt, nvt);
        }
        let anyNormal = false;
        for (let b = 0; b < B; b++) {
          if (finished[b]) continue;
          out[b].types.push(newTypes[b]);
          if (newTypes[b] !== END) anyNormal = true;
        }
        const gi: GateInputs = tf.tidy(() => prep.gw.inputGates(oneHotRows(newTypes, nvt)));
        keep(gi.r), keep(gi.z), keep(gi.n);
        h = keep(tf.tidy(() => prep.gw.step(gi, null)));
        if (anyNormal) {
          let hIn: tf.Tensor2D | null = null;
          let Q = tf.tidy(() => tf.matMul(h, prep.wNewT)) as tf.Tensor2D;
          for (let vi = idx - 1; vi >= 0; vi--) {
            const s = tf.tidy(() => tf.sigmoid(prep.edgeLogits([P[vi]], Q)));
            const sv = s.dataSync() as Float32Array;
            s.dispose();
            const d = new Float32Array(B);
            let any = false;
            for (let b = 0; b < B; b++) {
              if (finished[b] || newTypes[b] === END) continue;
              const take = mode === 'argmax' ? sv[b] > 0.5 : rng!.next() < sv[b];
              if (take) {
                d[b] = 1;
                any = true;
                out[b].edges.push([vi, idx]);
                outdeg[b * n + vi]++;
              }
            }
            if (any) {
              const prevIn = hIn as tf.Tensor2D | null;
              hIn = keep(tf.tidy(() => {
                const m = M[vi].mul(tf.tensor2d(d, [B, 1])) as tf.Tensor2D;
                return prevIn ? (prevIn.add(m) as tf.Tensor2D) : m;
              }));
              const hInNow = hIn;
              h = keep(tf.tidy(() => prep.gw.step(gi, hInNow)));
              const hNow = h;
              Q.dispose();
              Q = tf.tidy(() => tf.matMul(hNow, prep.wNewT)) as tf.Tensor2D;
            }
          }
          Q.dispose();
        }
        let allDone = true;
        for (let b = 0; b < B; b++) {
          if (finished[b]) continue;
          if (newTypes[b] === END) {
            for (let u = 0; u < idx; u++) if (outdeg[b * n + u] === 0) out[b].edges.push([u, idx]);
            finished[b] = 1;
          } else allDone = false;
        }
        if (allDone || idx === n - 1) break;
        remember(h, idx);
      }
    } finally {
      tf.dispose(keepers);
      prep.dispose();
    }
    return out;
  }

  /**
   * Teacher-forced log-likelihood pieces of the true graphs given latents z [B, nz] (the original's
   * `loss` without the KL term): recon = -(sum of type log-softmax at the true types + sum of
   * -BCE(edge probabilities, true incoming edges)), both summed over the batch. Differentiable;
   * every graph must have exactly maxNodes vertices (as all NB201 and MBV3 graphs do).
   */
  reconstructionLoss(z: tf.Tensor2D, graphs: readonly ArchDag[] | GraphBatch): tf.Scalar {
    const batch = Array.isArray(graphs) ? packGraphs(graphs as ArchDag[], this.space) : (graphs as GraphBatch);
    return tf.tidy(() => {
      const t = this.teacherForcedTerms(z, batch);
      const typeLL = tf.sum(t.typeLogProbs);
      return bceWithTorchClamp(t.edgeLogits, t.edgeTargets).sub(typeLL) as tf.Scalar;
    });
  }

  /**
   * The pieces of the teacher-forced likelihood: log-probability of every true type (steps 1..n-1,
   * step-major [(n-1)*B]) and every edge logit with its 0/1 target (one per graph per candidate
   * parent, in decision order per step). For diagnostics and custom losses; call inside a tidy.
   */
  teacherForcedTerms(z: tf.Tensor2D, batch: GraphBatch): { typeLogProbs: tf.Tensor1D; edgeLogits: tf.Tensor1D; edgeTargets: tf.Tensor1D } {
    const { B, n, types, sizes, adj } = batch;
    if (B !== z.shape[0]) throw new InputError({ field: 'graphs' }, `${B} graphs for ${z.shape[0]} latent vectors`);
    sizes.forEach((s, b) => {
      if (s !== n) throw new InputError({ record: b, field: 'types' }, `teacher forcing needs graphs of exactly ${n} vertices, got ${s}`);
    });
    const nvt = this.nvt;
    const addon = fusedAddon();
    if (addon) return this.teacherForcedFused(addon, z, batch);
    {
      const prep = this.prepare();
      const gi = (v: number) => prep.gw.inputGates(oneHotRows(Int32Array.from({ length: B }, (_, b) => types[b * n + v]), nvt));
      const h0 = tf.tanh(this.fc3.forward(z)) as tf.Tensor2D;
      let h = prep.gw.step(prep.gw.inputGates(oneHotRows(new Array(B).fill(this.space.startType), nvt)), h0);
      const P: tf.Tensor2D[] = [];
      const M: tf.Tensor2D[] = [];
      const remember = (state: tf.Tensor2D, v: number) => {
        const r = prep.mw.message(state, v);
        M[v] = r.msg;
        P[v] = r.extra!;
      };
      remember(h, 0);
      const typeLogits: tf.Tensor2D[] = [];
      const edgeLogits: tf.Tensor1D[] = [];
      const edgeTargets: number[] = [];
      for (let v = 1; v < n; v++) {
        typeLogits.push(prep.typeLogits(h));
        const giV = gi(v);
        h = prep.gw.step(giV, null);
        let hIn: tf.Tensor2D | null = null;
        let pending: number[] = [];
        // score all pending candidate parents with the current state of v (one batched matmul)
        const flush = () => {
          if (!pending.length) return;
          edgeLogits.push(prep.edgeLogits(pending.map((vi) => P[vi]), tf.matMul(h, prep.wNewT)));
          for (const vi of pending) for (let b = 0; b < B; b++) edgeTargets.push(adj[(b * n + vi) * n + v]);
          pending = [];
        };
        for (let vi = v - 1; vi >= 0; vi--) {
          pending.push(vi);
          const col = new Float32Array(B);
          let any = false;
          let all = true;
          for (let b = 0; b < B; b++) {
            col[b] = adj[(b * n + vi) * n + v];
            if (col[b]) any = true;
            else all = false;
          }
          if (!any) continue; // state unchanged: the next score uses the same h
          flush();
          const m = all ? M[vi] : (M[vi].mul(tf.tensor2d(col, [B, 1])) as tf.Tensor2D);
          hIn = hIn ? (hIn.add(m) as tf.Tensor2D) : m;
          h = prep.gw.step(giV, hIn);
        }
        flush();
        if (v < n - 1) remember(h, v);
      }
      // vertex types 1..n-1, in the order the logits were stacked (step-major)
      const trueTypes = new Int32Array((n - 1) * B);
      for (let v = 1; v < n; v++) for (let b = 0; b < B; b++) trueTypes[(v - 1) * B + b] = types[b * n + v];
      const typeLogProbs = tf.sum(tf.logSoftmax(tf.concat(typeLogits, 0)).mul(oneHotRows(trueTypes, nvt)), 1) as tf.Tensor1D;
      const logits = edgeLogits.length === 1 ? edgeLogits[0] : (tf.concat(edgeLogits, 0) as tf.Tensor1D);
      return { typeLogProbs, edgeLogits: logits, edgeTargets: tf.tensor1d(Float32Array.from(edgeTargets)) };
    }
  }

  /**
   * teacherForcedTerms with the state recursion (GRU updates and gated messages) as one host op
   * (gatedRecurrence) and the add_vertex / add_edge MLPs batched over all steps and decisions.
   * Same values and gradients as the per-step composition.
   */
  private teacherForcedFused(addon: NonNullable<ReturnType<typeof fusedAddon>>, z: tf.Tensor2D, batch: GraphBatch) {
    const { B, n, types, adj } = batch;
    const nvt = this.nvt;
    const typesAt = (v: number) => Int32Array.from({ length: B }, (_, b) => types[b * n + v]);
    const vertices: RecurrenceVertex[] = [{ v: 0, types: new Int32Array(B).fill(this.space.startType), steps: [{ add: [] }], init: true }];
    const finalStep: number[] = [0];
    let nextStep = 1;
    const reads: Int32Array[] = [];
    const edgeTargets = new Float32Array(((n * (n - 1)) / 2) * B);
    let e = 0;
    for (let v = 1; v < n; v++) {
      const steps: RecurrenceVertex['steps'] = [{ add: [] }];
      let cur = nextStep++;
      for (let vi = v - 1; vi >= 0; vi--) {
        reads.push(Int32Array.of(finalStep[vi], cur));
        const col = new Float32Array(B);
        let any = false;
        let all = true;
        for (let b = 0; b < B; b++) {
          col[b] = adj[(b * n + vi) * n + v];
          edgeTargets[e * B + b] = col[b];
          if (col[b]) any = true;
          else all = false;
        }
        e++;
        if (!any) continue; // state unchanged: the next decision reads the same step
        steps.push({ add: [{ s: vi, mask: all ? null : col }] });
        cur = nextStep++;
      }
      finalStep[v] = cur;
      vertices.push({ v, types: typesAt(v), steps });
    }
    const h0 = tf.tanh(this.fc3.forward(z)) as tf.Tensor2D;
    const { finals, reads: pairs } = gatedRecurrence(
      addon,
      { gru: this.grud, gate: this.decoding_gate.layers[0] as Linear, mapper: this.decoding_mapper.layers[0] as Linear },
      { B, n, vertices, reads, readWidth: 2 },
      h0,
    );
    const hs = this.hs;
    // add_vertex on the final states of vertices 0..n-2 (step-major, as the per-step logits)
    const last = finals.slice([0, 0, 0], [n - 1, B, hs]).reshape([(n - 1) * B, hs]);
    const typeLogits = this.add_vertex.forward(last) as tf.Tensor2D;
    const trueTypes = new Int32Array((n - 1) * B);
    for (let v = 1; v < n; v++) for (let b = 0; b < B; b++) trueTypes[(v - 1) * B + b] = types[b * n + v];
    const typeLogProbs = tf.sum(tf.logSoftmax(typeLogits).mul(oneHotRows(trueTypes, nvt)), 1) as tf.Tensor1D;
    // add_edge on [h_vi ; h_v] of every decision
    const edgeLogits = this.add_edge.forward(pairs!.reshape([reads.length * B, 2 * hs])).reshape([-1]) as tf.Tensor1D;
    return { typeLogProbs, edgeLogits, edgeTargets: tf.tensor1d(edgeTargets.subarray(0, e * B)) };
  }
}

/**
 * sum BCE(sigmoid(x), y) exactly as torch computes F.binary_cross_entropy on probabilities: logs
 * clamped at -100, and the gradient (p - y) * p(1-p) / max(p(1-p), 1e-12) (so 0 where p saturated).
 */
export function bceWithTorchClamp(x: tf.Tensor1D, y: tf.Tensor1D): tf.Scalar {
  const f = tf.customGrad(((xs: tf.Tensor, ys: tf.Tensor, save: tf.GradSaveFunc) => {
    const p = tf.sigmoid(xs);
    const logp = tf.maximum(tf.log(p), -100);
    const log1mp = tf.maximum(tf.log(tf.scalar(1).sub(p)), -100);
    const value = tf.neg(tf.sum(ys.mul(logp).add(tf.scalar(1).sub(ys).mul(log1mp)))) as tf.Scalar;
    save([p, ys]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [ps, yv] = saved;
        const pq = ps.mul(tf.scalar(1).sub(ps));
        const factor = tf.minimum(pq.mul(1e12), 1);
        return [dy.mul(ps.sub(yv)).mul(factor), tf.zerosLike(yv)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad<tf.Scalar>>[0]);
  return f(x, y) as tf.Scalar;
}

function argmaxIndex(vals: Float32Array, off: number, k: number): number {
  let best = 0;
  for (let i = 1; i < k; i++) if (vals[off + i] > vals[off + best]) best = i; // first maximum wins, like torch.argmax
  return best;
}

/** numpy.random.choice(p=probs): first index whose cumulative probability exceeds u * total. */
function sampleIndex(probs: Float32Array, off: number, k: number, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < k; i++) total += probs[off + i];
  const u = rng.next() * total;
  let acc = 0;
  for (let i = 0; i < k; i++) {
    acc += probs[off + i];
    if (u < acc) return i;
  }
  return k - 1;
}
