import * as tf from '@tensorflow/tfjs';
import type { ArchDag, Rng } from '@metad2a/core';
import { GRUCell, Linear, Module, Sequential, Sigmoid } from '@metad2a/nn';
import { packGraphs, type GraphBatch, type ModelSpace } from './graph-batch.js';
import { GruWeights, MessageWeights, oneHotRows } from './message-passing.js';
import { fusedAddon, type BlasAddon } from '@metad2a/kernels-blas';
import { gatedRecurrence, hostStepWeights, type RecurrenceVertex } from './recurrence.js';
import { scratchPool } from './scratch.js';

/**
 * D-VAE's bidirectional asynchronous message-passing graph encoder with vertex-id one-hots ("vid"),
 * as used by MetaD2A (generator hs = 56, predictor hs = 512):
 * - forward pass in vertex order: vertex 0 gets GRU_f(onehot(type), 0); every other vertex gets
 *   GRU_f(onehot(type), sum over predecessors p of sigmoid(gate_f [h_p; e_p]) * mapper_f [h_p; e_p]);
 * - backward pass in reverse order over successors with the *_backward weights, the last vertex
 *   starting from 0;
 * - graph state hg_unify([h_forward(last vertex) ; h_backward(vertex 0)]).
 * Every vertex step runs for the whole batch at once; the adjacency masks select the senders.
 * Parameter names are the original's (grue_forward, gate_forward.0, mapper_forward.0, hg_unify.0, ...);
 * hv_unify exists in the checkpoints but is never used.
 */
export class DagEncoder extends Module {
  readonly nvt: number;
  readonly maxN: number;
  readonly vs: number;
  readonly grue_forward: GRUCell;
  readonly grue_backward: GRUCell;
  readonly gate_forward: Sequential;
  readonly gate_backward: Sequential;
  readonly mapper_forward: Sequential;
  readonly mapper_backward: Sequential;
  readonly hv_unify: Sequential;
  readonly hg_unify: Sequential;

  constructor(
    readonly space: ModelSpace,
    readonly hs: number,
    options: { rng?: Rng } = {},
  ) {
    super();
    const rng = options.rng;
    this.nvt = space.numVertexTypes;
    this.maxN = space.maxNodes;
    this.vs = hs + this.maxN;
    this.grue_forward = this.addModule('grue_forward', new GRUCell(this.nvt, hs, { rng }));
    this.grue_backward = this.addModule('grue_backward', new GRUCell(this.nvt, hs, { rng }));
    this.gate_forward = this.addModule('gate_forward', new Sequential(new Linear(this.vs, hs, { rng }), new Sigmoid()));
    this.gate_backward = this.addModule('gate_backward', new Sequential(new Linear(this.vs, hs, { rng }), new Sigmoid()));
    this.mapper_forward = this.addModule('mapper_forward', new Sequential(new Linear(this.vs, hs, { bias: false, rng })));
    this.mapper_backward = this.addModule('mapper_backward', new Sequential(new Linear(this.vs, hs, { bias: false, rng })));
    this.hv_unify = this.addModule('hv_unify', new Sequential(new Linear(2 * hs, hs, { rng })));
    this.hg_unify = this.addModule('hg_unify', new Sequential(new Linear(2 * hs, hs, { rng })));
  }

  /**
   * The graph state Hg [B, hs] of each graph (before the model's mu / fc1 head).
   * `dedupe` (inference only, no gradients): compute every distinct vertex state once. A vertex's
   * forward state depends only on the types and edges of its ancestors (backward: descendants), so
   * graphs that share such a sub-DAG share the state; with 500 NB201 cells this halves the work.
   */
  graphState(graphs: readonly ArchDag[] | GraphBatch, options: { dedupe?: boolean } = {}): tf.Tensor2D {
    const batch = Array.isArray(graphs) ? packGraphs(graphs as ArchDag[], this.space) : (graphs as GraphBatch);
    if (options.dedupe) return this.graphStateDeduped(batch);
    const addon = fusedAddon();
    if (addon) {
      return tf.tidy(() => {
        const fwd = this.propagateFused(addon, batch, false);
        const bwd = this.propagateFused(addon, batch, true);
        const { B, n, sizes } = batch;
        const hs = this.hs;
        let hf: tf.Tensor2D;
        if (sizes.every((s) => s === n)) hf = fwd.slice([n - 1, 0, 0], [1, B, hs]).reshape([B, hs]);
        else {
          // each graph's state at its last vertex: a 0/1 selection summed over vertices
          const sel = new Float32Array(n * B);
          for (let b = 0; b < B; b++) sel[(sizes[b] - 1) * B + b] = 1;
          hf = fwd.mul(tf.tensor3d(sel, [n, B, 1])).sum(0) as tf.Tensor2D;
        }
        const hb = bwd.slice([0, 0, 0], [1, B, hs]).reshape([B, hs]);
        return this.hg_unify.forward(tf.concat([hf, hb], 1)) as tf.Tensor2D;
      });
    }
    return tf.tidy(() => {
      const fwd = this.propagate(batch, false);
      const bwd = this.propagate(batch, true);
      const hf = selectLast(fwd, batch);
      return this.hg_unify.forward(tf.concat([hf, bwd[0]], 1)) as tf.Tensor2D;
    });
  }

  private graphStateDeduped(batch: GraphBatch): tf.Tensor2D {
    const { B, sizes } = batch;
    const fwd = this.propagateDeduped(batch, false);
    const bwd = this.propagateDeduped(batch, true);
    const hs = this.hs;
    const x = new Float32Array(B * 2 * hs);
    for (let b = 0; b < B; b++) {
      const last = sizes[b] - 1;
      x.set(fwd.states[last].subarray(fwd.ids[last][b] * hs, (fwd.ids[last][b] + 1) * hs), b * 2 * hs);
      x.set(bwd.states[0].subarray(bwd.ids[0][b] * hs, (bwd.ids[0][b] + 1) * hs), b * 2 * hs + hs);
    }
    return tf.tidy(() => this.hg_unify.forward(tf.tensor2d(x, [B, 2 * hs])) as tf.Tensor2D);
  }

  /**
   * One direction over distinct vertex states only: ids[v][b] is graph b's row in states[v]
   * ([distinct, hs] host arrays). Message sums are formed on the host from the senders' rows.
   */
  private propagateDeduped(batch: GraphBatch, reverse: boolean): { ids: Int32Array[]; states: Float32Array[] } {
    const { B, n, types, adj } = batch;
    const hs = this.hs;
    const ids: Int32Array[] = new Array(n);
    const states: Float32Array[] = new Array(n);
    const msgs: Array<Float32Array | null> = new Array(n).fill(null);
    const order = reverse ? Array.from({ length: n }, (_, i) => n - 1 - i) : Array.from({ length: n }, (_, i) => i);
    const edge = (b: number, from: number, to: number) => (reverse ? adj[(b * n + to) * n + from] : adj[(b * n + from) * n + to]);
    const host = this.hostStepper(reverse);
    // host path: each sender state's message times W_hh^T, so a receiver's hidden-side gates are a
    // sum of rows (W_hh (sum m) = sum W_hh m): computed once per distinct sender state instead of
    // once per distinct receiver state
    const projected: Array<Float32Array | null> = new Array(n).fill(null);
    const hs3 = 3 * hs;
    let prep!: { gw: GruWeights; mw: MessageWeights };
    const kept: tf.Tensor[] = [];
    if (!host) tf.tidy(() => {
      const gate = (reverse ? this.gate_backward : this.gate_forward).layers[0] as Linear;
      const mapper = (reverse ? this.mapper_backward : this.mapper_forward).layers[0] as Linear;
      prep = { gw: new GruWeights(reverse ? this.grue_backward : this.grue_forward), mw: new MessageWeights(gate, mapper, n) };
      for (const t of [...prep.gw.tensors(), ...prep.mw.tensors()]) kept.push(tf.keep(t));
    });
    try {
      order.forEach((v, k) => {
        const senders = k === 0 ? [] : reverse ? range(v + 1, n) : range(0, v);
        // distinct (type, sender rows) signatures at v
        const sig = new Map<string, number>();
        const idv = new Int32Array(B);
        const reps: number[] = [];
        for (let b = 0; b < B; b++) {
          let key = String(types[b * n + v]);
          for (const s of senders) if (edge(b, s, v)) key += `,${s}:${ids[s][b]}`;
          let id = sig.get(key);
          if (id === undefined) {
            id = reps.length;
            sig.set(key, id);
            reps.push(b);
          }
          idv[b] = id;
        }
        ids[v] = idv;
        const U = reps.length;
        let gh: Float32Array | null = null;
        // hidden inputs of the distinct rows: sums of the senders' messages (null when none has any)
        let hIn: Float32Array | null = null;
        for (const s of senders) {
          const m = msgs[s];
          if (!m) continue;
          const P = projected[s];
          if (host && P) {
            // the receivers of s and the rows of their sender states, summed natively
            const dst = new Int32Array(U);
            const src = new Int32Array(U);
            let k = 0;
            for (let u = 0; u < U; u++) {
              const b = reps[u];
              if (!edge(b, s, v)) continue;
              dst[k] = u;
              src[k++] = ids[s][b];
            }
            if (!k) continue;
            hIn ??= new Float32Array(U * hs);
            if (!gh) {
              gh = scratchBuffer('gh', U * hs3);
              gh.fill(0);
            }
            host.addRows(hIn, dst, m, src, k, hs);
            host.addRows(gh, dst, P, src, k, hs3);
            continue;
          }
          for (let u = 0; u < U; u++) {
            const b = reps[u];
            if (!edge(b, s, v)) continue;
            hIn ??= new Float32Array(U * hs);
            const src = ids[s][b] * hs;
            for (let j = 0; j < hs; j++) hIn[u * hs + j] += m[src + j];
          }
        }
        const needMsg = B > 0 && (reverse ? range(0, v) : range(v + 1, n)).some((w) => {
          for (let b = 0; b < B; b++) if (edge(b, v, w)) return true;
          return false;
        });
        if (host) {
          const typesU = Int32Array.from(reps, (b) => types[b * n + v]);
          const r = host.step(typesU, hIn, gh, U, needMsg ? v : -1);
          states[v] = r.h;
          msgs[v] = r.msg;
          projected[v] = r.projected;
          return;
        }
        const [h, msg] = tf.tidy(() => {
          const typesU = Int32Array.from(reps, (b) => types[b * n + v]);
          const hv = prep.gw.step(prep.gw.inputGates(oneHotRows(typesU, this.nvt)), hIn ? tf.tensor2d(hIn, [U, hs]) : null);
          return [hv, needMsg ? prep.mw.message(hv, v).msg : hv];
        });
        states[v] = h.dataSync() as Float32Array;
        msgs[v] = needMsg ? (msg.dataSync() as Float32Array) : null;
        tf.dispose([h, msg]);
      });
    } finally {
      tf.dispose(kept);
    }
    return { ids, states };
  }

  /**
   * Inference-only GRU step + message on host arrays (OpenBLAS gemm and the native elementwise
   * kernels), or null where the fused host ops are off: no tfjs kernels and no weight re-layout.
   */
  private hostStepper(reverse: boolean): {
    step: (types: Int32Array, hIn: Float32Array | null, gh: Float32Array | null, U: number, msgOf: number) => { h: Float32Array; msg: Float32Array | null; projected: Float32Array | null };
    addRows: BlasAddon['addRows'];
  } | null {
    const addon = fusedAddon();
    if (!addon) return null;
    const gru = reverse ? this.grue_backward : this.grue_forward;
    const gate = (reverse ? this.gate_backward : this.gate_forward).layers[0] as Linear;
    const mapper = (reverse ? this.mapper_backward : this.mapper_forward).layers[0] as Linear;
    const H = this.hs;
    const H3 = 3 * H;
    const W = this.vs;
    const nvt = this.nvt;
    // views of the backend's weights: no backend allocation happens while the stepper is in use
    // (the loop below works on host arrays only), so they stay valid
    const { whh, bhh, wg, bg, wm, table } = hostStepWeights(gru, gate, mapper, nvt, new Float32Array(nvt * H3));
    // states, messages and projected messages of one direction live until the graph states are
    // read (same call): carved from a buffer reused across calls instead of fresh zeroed arrays
    const arena = takeArena(reverse ? 'bwd' : 'fwd');
    const step = (types: Int32Array, hIn: Float32Array | null, ghIn: Float32Array | null, U: number, msgOf: number) => {
      const UH = U * H;
      let gh = ghIn;
      if (hIn && !gh) {
        gh = scratchBuffer('gh', U * H3);
        addon.gemm(false, true, U, H3, H, 1, hIn, H, whh, H, 0, gh, H3);
      }
      const h = arena(UH);
      const scratch = scratchBuffer('gates', 4 * UH);
      const part = (i: number) => scratch.subarray(i * UH, (i + 1) * UH);
      addon.gruFwd(table, types, gh, bhh, hIn, part(0), part(1), part(2), part(3), h, U, H);
      if (msgOf < 0) return { h, msg: null, projected: null };
      const a = part(0);
      const c = part(1);
      addon.gemm(false, true, U, H, H, 1, h, H, wg, W, 0, a, H);
      addon.gemm(false, true, U, H, H, 1, h, H, wm, W, 0, c, H);
      const msg = arena(UH);
      addon.msgFwd(a, c, msg, wg, bg, wm, W, msgOf, U, H);
      const projected = arena(U * H3);
      addon.gemm(false, true, U, H3, H, 1, msg, H, whh, H, 0, projected, H3);
      return { h, msg, projected };
    };
    return { step, addRows: (...a) => addon.addRows(...a) };
  }

  /** All vertex states [n, B, hs] of one direction as one host op (see gatedRecurrence). */
  private propagateFused(addon: BlasAddon, batch: GraphBatch, reverse: boolean): tf.Tensor3D {
    const { B, n, types, adj } = batch;
    const vertices: RecurrenceVertex[] = [];
    for (let k = 0; k < n; k++) {
      const v = reverse ? n - 1 - k : k;
      const add: RecurrenceVertex['steps'][number]['add'] = [];
      if (k > 0) {
        for (const s of reverse ? range(v + 1, n) : range(0, v)) {
          const col = new Float32Array(B);
          let any = false;
          let all = true;
          for (let b = 0; b < B; b++) {
            col[b] = reverse ? adj[(b * n + v) * n + s] : adj[(b * n + s) * n + v];
            if (col[b]) any = true;
            else all = false;
          }
          if (any) add.push({ s, mask: all ? null : col });
        }
      }
      vertices.push({ v, types: Int32Array.from({ length: B }, (_, b) => types[b * n + v]), steps: [{ add }] });
    }
    const p = reverse
      ? { gru: this.grue_backward, gate: this.gate_backward.layers[0] as Linear, mapper: this.mapper_backward.layers[0] as Linear }
      : { gru: this.grue_forward, gate: this.gate_forward.layers[0] as Linear, mapper: this.mapper_forward.layers[0] as Linear };
    return gatedRecurrence(addon, p, { B, n, vertices }).finals;
  }

  /** Vertex states [n] x [B, hs] of one direction (padding vertices hold unused values). */
  private propagate(batch: GraphBatch, reverse: boolean): tf.Tensor2D[] {
    const { B, n, types, adj } = batch;
    const gw = new GruWeights(reverse ? this.grue_backward : this.grue_forward);
    const gate = (reverse ? this.gate_backward : this.gate_forward).layers[0] as Linear;
    const mapper = (reverse ? this.mapper_backward : this.mapper_forward).layers[0] as Linear;
    const mw = new MessageWeights(gate, mapper, n);
    const typesAt = (v: number) => Int32Array.from({ length: B }, (_, b) => types[b * n + v]);
    // (sender, receiver) edge columns over the batch: edge p->v is a message v<-p forward, p<-v backward
    const edgeCol = (from: number, to: number): Float32Array | null => {
      const col = new Float32Array(B);
      let any = false;
      for (let b = 0; b < B; b++) {
        const e = reverse ? adj[(b * n + to) * n + from] : adj[(b * n + from) * n + to];
        col[b] = e;
        if (e) any = true;
      }
      return any ? col : null;
    };
    const states: tf.Tensor2D[] = new Array(n);
    const msgs: Array<tf.Tensor2D | null> = new Array(n).fill(null);
    const order = reverse ? Array.from({ length: n }, (_, i) => n - 1 - i) : Array.from({ length: n }, (_, i) => i);
    order.forEach((v, k) => {
      let hIn: tf.Tensor2D | null = null;
      if (k > 0) {
        const terms: tf.Tensor2D[] = [];
        const senders = reverse ? range(v + 1, n) : range(0, v);
        for (const s of senders) {
          const col = edgeCol(s, v);
          if (!col) continue;
          const m = msgs[s]!;
          terms.push(col.every((x) => x === 1) ? m : m.mul(tf.tensor2d(col, [B, 1])));
        }
        if (terms.length) hIn = terms.length === 1 ? terms[0] : (tf.addN(terms) as tf.Tensor2D);
      }
      states[v] = gw.step(gw.inputGates(oneHotRows(typesAt(v), this.nvt)), hIn);
      // only vertices that send to someone need their message
      const receivers = reverse ? range(0, v) : range(v + 1, n);
      if (receivers.some((w) => edgeCol(v, w))) msgs[v] = mw.message(states[v], v).msg;
    });
    return states;
  }
}

/** Host buffers for this module's temporaries (see scratchPool). */
const scratchBuffer = scratchPool();

/**
 * A bump allocator over a buffer kept per key across calls: take(n) hands out the next n floats
 * (contents unspecified). Starting a new arena for a key invalidates what the last one handed out;
 * when the buffer runs short a larger one replaces it (earlier pieces stay valid in the old one).
 */
const arenas = new Map<string, Float32Array>();
function takeArena(key: string): (n: number) => Float32Array {
  let buf = arenas.get(key) ?? new Float32Array(0);
  let off = 0;
  return (n: number) => {
    if (off + n > buf.length) {
      buf = new Float32Array(Math.max(2 * buf.length, n, 1 << 16));
      arenas.set(key, buf);
      off = 0;
    }
    const out = buf.subarray(off, off + n);
    off += n;
    return out;
  };
}

function range(a: number, b: number): number[] {
  const out: number[] = [];
  for (let i = a; i < b; i++) out.push(i);
  return out;
}

/** Each graph's state at its last vertex (sizes[b]-1), without a gather (wasm has no gather gradient). */
function selectLast(states: tf.Tensor2D[], batch: GraphBatch): tf.Tensor2D {
  const { B, n, sizes } = batch;
  if (sizes.every((s) => s === n)) return states[n - 1];
  const terms: tf.Tensor2D[] = [];
  for (let v = 0; v < n; v++) {
    const sel = new Float32Array(B);
    let any = false;
    for (let b = 0; b < B; b++) if (sizes[b] - 1 === v) ((sel[b] = 1), (any = true));
    if (any) terms.push(states[v].mul(tf.tensor2d(sel, [B, 1])));
  }
  return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Tensor2D;
}
