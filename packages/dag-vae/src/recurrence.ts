import * as tf from '@tensorflow/tfjs';
import { hostView, type BlasAddon } from '@metad2a/kernels-blas';
import { hostOp, type GRUCell, type Linear } from '@metad2a/nn';

/**
 * D-VAE's gated GRU message passing (encoder and teacher-forced decoder) as ONE differentiable op
 * with a hand-written backward pass, computed on the host with OpenBLAS gemm calls: the tfjs
 * composition runs ~40 small kernels per vertex step forwards and about twice that backwards, and
 * at these sizes (B = 32, hs = 56 or 512) the per-kernel overhead, not arithmetic, is the cost.
 *
 * A plan visits vertices in order. Each vertex runs one or more GRU evaluations ("steps") with
 * its one-hot type as input and, as hidden input, a running sum of gated messages:
 *   hIn  = [hInit] + sum of mask_s * m_s over the senders added so far (zero when none)
 *   h    = GRUCell(onehot(type), hIn)
 *   m_v  = sigmoid(Wg [h_v; e_v] + bg) * (Wm [h_v; e_v])      (from v's state after its last step)
 * The encoder has one step per vertex (all predecessors at once); the decoder one step before any
 * edge and one after each added edge, as the original recomputes the state after every edge.
 */
export interface RecurrenceStep {
  /** Senders whose messages join the running hidden input before this step (mask: per graph 0/1, null = all). */
  add: Array<{ s: number; mask: Float32Array | null }>;
}

export interface RecurrenceVertex {
  v: number;
  /** Vertex type per graph [B]. */
  types: Int32Array;
  steps: RecurrenceStep[];
  /** The running hidden input starts from hInit (the decoder's first vertex) instead of zero. */
  init?: boolean;
}

export interface RecurrencePlan {
  B: number;
  n: number;
  vertices: RecurrenceVertex[];
  /**
   * Extra outputs: tuples of global step ids (steps numbered in plan order); read r is the states
   * of its steps side by side, [B, width * hs]. The decoder reads (final state of vi, state of v
   * when edge vi -> v is decided).
   */
  reads?: Int32Array[];
  readWidth?: number;
}

export interface RecurrenceParams {
  gru: GRUCell;
  gate: Linear;
  mapper: Linear;
}

/**
 * Run the plan. Returns the final state of every vertex [n, B, hs] (vertex-index order; vertices
 * outside the plan are zero) and, when the plan has reads, [R, B, width * hs].
 */
export function gatedRecurrence(addon: BlasAddon, p: RecurrenceParams, plan: RecurrencePlan, hInit?: tf.Tensor2D | null): { finals: tf.Tensor3D; reads: tf.Tensor3D | null } {
  const { gru, gate, mapper } = p;
  const H = gru.hiddenSize;
  const nvt = gru.inputSize;
  const { B, n } = plan;
  const W = H + n; // gate/mapper input width [h; vid]
  const H3 = 3 * H;
  const BH = B * H;
  if (gate.inFeatures !== W || mapper.inFeatures !== W || gate.outFeatures !== H || mapper.outFeatures !== H) {
    throw new Error(`gatedRecurrence: gate/mapper must map ${W} -> ${H}`);
  }
  const reads = plan.reads ?? [];
  const width = plan.readWidth ?? 1;
  // which vertices send messages, and the global step id of every vertex's last step
  const sends = new Uint8Array(n);
  const finalStep = new Int32Array(n).fill(-1);
  let numSteps = 0;
  for (const vx of plan.vertices) {
    for (const st of vx.steps) for (const a of st.add) sends[a.s] = 1;
    numSteps += vx.steps.length;
    finalStep[vx.v] = numSteps - 1;
  }
  const inputs: Record<string, tf.Tensor> = {
    wih: gru.weightIh, bih: gru.biasIh, whh: gru.weightHh, bhh: gru.biasHh,
    wg: gate.weight, bg: gate.bias!, wm: mapper.weight,
  };
  if (hInit) inputs.hInit = hInit;

  // Per-step buffers, stacked so that the weight gradients are single gemms over all steps:
  // states and gates [S, B, hs]; hidden inputs of the steps that have one [slots, B, hs]; senders'
  // final states and message gates [senders, B, hs].
  const slotOf = new Int32Array(numSteps).fill(-1);
  const msgSlot = new Int32Array(n).fill(-1);
  let numMsg = 0;
  for (let v = 0; v < n; v++) if (sends[v]) msgSlot[v] = numMsg++;
  const stepTypes: Int32Array[] = [];
  let numSlots = 0;
  {
    let sid = 0;
    for (const vx of plan.vertices) {
      let has = Boolean(vx.init && hInit);
      for (const st of vx.steps) {
        if (st.add.length) has = true;
        if (has) slotOf[sid] = numSlots++;
        stepTypes.push(vx.types);
        sid++;
      }
    }
  }
  const S = numSteps;
  const R = new Float32Array(S * BH);
  const Z = new Float32Array(S * BH);
  const NN = new Float32Array(S * BH);
  const GHN = new Float32Array(S * BH);
  const HH = new Float32Array(S * BH);
  const HIN = new Float32Array(numSlots * BH);
  const G = new Float32Array(numMsg * BH);
  const C = new Float32Array(numMsg * BH);
  const HF = new Float32Array(numMsg * BH);
  const at = (buf: Float32Array, i: number) => buf.subarray(i * BH, (i + 1) * BH);

  const forwardFunc = (): tf.Tensor[] => {
    const wih = hostView(gru.weightIh);
    const bih = hostView(gru.biasIh);
    const whh = hostView(gru.weightHh);
    const bhh = hostView(gru.biasHh);
    const wg = hostView(gate.weight);
    const bg = hostView(gate.bias!);
    const wm = hostView(mapper.weight);
    const h0 = hInit ? Float32Array.from(hostView(hInit)) : null;
    // gate inputs per type: table[t] = W_ih[:, t] + b_ih
    const table = new Float32Array(nvt * H3);
    for (let t = 0; t < nvt; t++) for (let g = 0; g < H3; g++) table[t * H3 + g] = wih[g * nvt + t] + bih[g];
    const msgs: Array<Float32Array | null> = new Array(n).fill(null);
    const finals = new Float32Array(n * BH);
    const gh = new Float32Array(B * H3);
    let sid = 0;
    for (const vx of plan.vertices) {
      let cur: Float32Array | null = vx.init && h0 ? h0 : null;
      for (const st of vx.steps) {
        for (const { s, mask } of st.add) {
          const m = msgs[s];
          if (!m) throw new Error(`gatedRecurrence: vertex ${s} sends before its state exists`);
          cur ??= new Float32Array(BH);
          for (let b = 0; b < B; b++) {
            const f = mask ? mask[b] : 1;
            if (f === 0) continue;
            const o = b * H;
            for (let j = 0; j < H; j++) cur[o + j] += f * m[o + j];
          }
        }
        let hIn: Float32Array | null = null;
        if (cur) {
          hIn = at(HIN, slotOf[sid]);
          hIn.set(cur);
          addon.gemm(false, true, B, H3, H, 1, hIn, H, whh, H, 0, gh, H3);
        }
        addon.gruFwd(table, vx.types, hIn ? gh : null, bhh, hIn, at(R, sid), at(Z, sid), at(NN, sid), at(GHN, sid), at(HH, sid), B, H);
        sid++;
      }
      const hv = at(HH, sid - 1);
      finals.set(hv, vx.v * BH);
      if (sends[vx.v]) {
        const k = msgSlot[vx.v];
        const a = at(G, k);
        const c = at(C, k);
        at(HF, k).set(hv);
        addon.gemm(false, true, B, H, H, 1, hv, H, wg, W, 0, a, H);
        addon.gemm(false, true, B, H, H, 1, hv, H, wm, W, 0, c, H);
        const m = new Float32Array(BH);
        addon.msgFwd(a, c, m, wg, bg, wm, W, vx.v, B, H);
        msgs[vx.v] = m;
      }
    }
    const outs: tf.Tensor[] = [tf.tensor3d(finals, [n, B, H])];
    if (reads.length) {
      const out = new Float32Array(reads.length * B * width * H);
      reads.forEach((tuple, r) => {
        tuple.forEach((id, w) => {
          const h = at(HH, id);
          for (let b = 0; b < B; b++) out.set(h.subarray(b * H, (b + 1) * H), ((r * B + b) * width + w) * H);
        });
      });
      outs.push(tf.tensor3d(out, [reads.length, B, width * H]));
    }
    return outs;
  };

  const backward = (dys: tf.Tensor[]): Record<string, tf.Tensor> => {
    const whh = hostView(gru.weightHh);
    const wg = hostView(gate.weight);
    const wm = hostView(mapper.weight);
    const dFin = hostView(dys[0]);
    const dRead = reads.length ? hostView(dys[1]) : null;
    const dStep: Array<Float32Array | null> = new Array(numSteps).fill(null);
    const dOf = (id: number) => (dStep[id] ??= new Float32Array(BH));
    for (let v = 0; v < n; v++) {
      if (finalStep[v] < 0) continue;
      const d = dOf(finalStep[v]);
      const src = dFin.subarray(v * BH, (v + 1) * BH);
      for (let i = 0; i < BH; i++) d[i] += src[i];
    }
    if (dRead) {
      reads.forEach((tuple, r) => {
        tuple.forEach((id, w) => {
          const d = dOf(id);
          for (let b = 0; b < B; b++) {
            const o = ((r * B + b) * width + w) * H;
            for (let j = 0; j < H; j++) d[b * H + j] += dRead[o + j];
          }
        });
      });
    }
    const dTable = new Float32Array(nvt * H3);
    const dWhh = new Float32Array(H3 * H);
    const dbhh = new Float32Array(H3);
    const dWg = new Float32Array(H * W);
    const dbg = new Float32Array(H);
    const dWm = new Float32Array(H * W);
    const DGH = new Float32Array(numSlots * B * H3);
    const DA = new Float32Array(numMsg * BH);
    const DC = new Float32Array(numMsg * BH);
    const scratch = new Float32Array(B * H3);
    const dMsg: Array<Float32Array | null> = new Array(n).fill(null);
    let dInit: Float32Array | null = null;
    const dhIn = new Float32Array(BH);
    let sid = numSteps;
    for (let q = plan.vertices.length - 1; q >= 0; q--) {
      const vx = plan.vertices[q];
      const v = vx.v;
      sid -= vx.steps.length;
      const fin = sid + vx.steps.length - 1;
      const dM = dMsg[v];
      if (dM && sends[v]) {
        // m = g * c, g = sigmoid(a): back to the vertex's final state (weights: one gemm at the end)
        const k = msgSlot[v];
        const da = at(DA, k);
        const dc = at(DC, k);
        addon.msgBwd(dM, at(G, k), at(C, k), da, dc, dWg, dbg, dWm, W, v, B, H);
        const dh = dOf(fin);
        addon.gemm(false, false, B, H, H, 1, da, H, wg, W, 1, dh, H);
        addon.gemm(false, false, B, H, H, 1, dc, H, wm, W, 1, dh, H);
      }
      // running sum of the hidden-input gradients of this vertex's later steps
      let acc: Float32Array | null = null;
      for (let k = vx.steps.length - 1; k >= 0; k--) {
        const id = sid + k;
        const dh = dStep[id];
        if (dh) {
          const slot = slotOf[id];
          const hIn = slot >= 0 ? at(HIN, slot) : null;
          const dgh = slot >= 0 ? DGH.subarray(slot * B * H3, (slot + 1) * B * H3) : scratch;
          addon.gruBwd(dh, hIn, at(R, id), at(Z, id), at(NN, id), at(GHN, id), stepTypes[id], dgh, hIn ? dhIn : null, dTable, dbhh, B, H);
          if (hIn) {
            addon.gemm(false, false, B, H, H3, 1, dgh, H3, whh, H, 1, dhIn, H);
            acc ??= new Float32Array(BH);
            for (let i = 0; i < BH; i++) acc[i] += dhIn[i];
          }
        }
        if (acc) {
          for (const { s: snd, mask } of vx.steps[k].add) {
            const d = (dMsg[snd] ??= new Float32Array(BH));
            for (let b = 0; b < B; b++) {
              const f = mask ? mask[b] : 1;
              if (f === 0) continue;
              const o = b * H;
              for (let j = 0; j < H; j++) d[o + j] += f * acc[o + j];
            }
          }
        }
      }
      if (vx.init && hInit && acc) {
        dInit ??= new Float32Array(BH);
        for (let i = 0; i < BH; i++) dInit[i] += acc[i];
      }
    }
    // weight gradients summed over all steps in one product each
    if (numSlots) addon.gemm(true, false, H3, H, numSlots * B, 1, DGH, H3, HIN, H, 0, dWhh, H);
    if (numMsg) {
      addon.gemm(true, false, H, H, numMsg * B, 1, DA, H, HF, H, 1, dWg, W);
      addon.gemm(true, false, H, H, numMsg * B, 1, DC, H, HF, H, 1, dWm, W);
    }
    // table[t] = W_ih[:, t] + b_ih
    const dWih = new Float32Array(H3 * nvt);
    const dbih = new Float32Array(H3);
    for (let t = 0; t < nvt; t++) {
      for (let g = 0; g < H3; g++) {
        dWih[g * nvt + t] = dTable[t * H3 + g];
        dbih[g] += dTable[t * H3 + g];
      }
    }
    const grads: Record<string, tf.Tensor> = {
      wih: tf.tensor2d(dWih, [H3, nvt]),
      bih: tf.tensor1d(dbih),
      whh: tf.tensor2d(dWhh, [H3, H]),
      bhh: tf.tensor1d(dbhh),
      wg: tf.tensor2d(dWg, [H, W]),
      bg: tf.tensor1d(dbg),
      wm: tf.tensor2d(dWm, [H, W]),
    };
    if (hInit) grads.hInit = dInit ? tf.tensor2d(dInit, [B, H]) : tf.zeros([B, H]);
    return grads;
  };

  const outs = hostOp(inputs, forwardFunc, backward);
  return { finals: outs[0] as tf.Tensor3D, reads: reads.length ? (outs[1] as tf.Tensor3D) : null };
}
