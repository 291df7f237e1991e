import * as tf from '@tensorflow/tfjs';
import { hostTensor, hostView, type BlasAddon } from '@metad2a/kernels-blas';
import { hostOp, type GRUCell, type Linear } from '@metad2a/nn';
import { scratchPool } from './scratch.js';

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
 * Host views of one message-passing direction's weights (valid until the next backend allocation)
 * and, written into `table` ([nvt, 3H]), the GRU's input-side pre-activations per vertex type:
 * table[t] = W_ih[:, t] + b_ih (the input is a type one-hot). The training op and the inference
 * encoder both step on these.
 */
export function hostStepWeights(gru: GRUCell, gate: Linear, mapper: Linear, nvt: number, table: Float32Array) {
  const wih = hostView(gru.weightIh);
  const bih = hostView(gru.biasIh);
  const H3 = bih.length;
  for (let t = 0; t < nvt; t++) for (let g = 0; g < H3; g++) table[t * H3 + g] = wih[g * nvt + t] + bih[g];
  return { whh: hostView(gru.weightHh), bhh: hostView(gru.biasHh), wg: hostView(gate.weight), bg: hostView(gate.bias!), wm: hostView(mapper.weight), table };
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

  // Per-step values kept for the backward pass, stacked so that the weight gradients are single
  // gemms over all steps: states and gates [S, B, hs]; hidden inputs of the steps that have one
  // [slots, B, hs]; senders' final states and message gates [senders, B, hs]. They live in one
  // backend tensor saved with the op (freed with the tape, no JS garbage), viewed by offset.
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
  const layout = { R: 0, Z: S, NN: 2 * S, GHN: 3 * S, HH: 4 * S, HIN: 5 * S, G: 5 * S + numSlots, C: 5 * S + numSlots + numMsg, HF: 5 * S + numSlots + 2 * numMsg };
  const storeRows = 5 * S + numSlots + 3 * numMsg;
  type Views = Record<keyof typeof layout, Float32Array>;
  const viewsOf = (buf: Float32Array): Views => {
    const out = {} as Views;
    for (const k of Object.keys(layout) as Array<keyof typeof layout>) out[k] = buf.subarray(layout[k] * BH);
    return out;
  };
  const at = (buf: Float32Array, i: number) => buf.subarray(i * BH, (i + 1) * BH);
  /** Rows b of a [B, hs] block with mask[b] != 0 (null: every row). */
  const maskRows = (mask: Float32Array | null): Int32Array | null => {
    if (!mask) return null;
    const idx = new Int32Array(B);
    let k = 0;
    for (let b = 0; b < B; b++) if (mask[b] !== 0) idx[k++] = b;
    return idx.subarray(0, k);
  };
  const rowsOfAdd = new Map<Float32Array, Int32Array>();
  const rowsOf = (mask: Float32Array) => {
    let r = rowsOfAdd.get(mask);
    if (!r) rowsOfAdd.set(mask, (r = maskRows(mask)!));
    return r;
  };
  /** dst (+)= src on the rows of the mask (masks are 0/1 per graph). */
  const addMasked = (dst: Float32Array, src: Float32Array, mask: Float32Array | null) => {
    if (!mask) addon.ewise(3, dst, src, null, BH);
    else {
      const rows = rowsOf(mask);
      addon.addRows(dst, rows, src, rows, rows.length, H);
    }
  };

  const forwardFunc = (save: (t: tf.Tensor[]) => void): tf.Tensor[] => {
    // every backend allocation first: views of the wasm heap do not survive one
    const finalsT = hostTensor([n, B, H]);
    const readsT = reads.length ? hostTensor([reads.length, B, width * H]) : null;
    const storeT = hostTensor([Math.max(1, storeRows * BH)]);
    const V = viewsOf(hostView(storeT));
    const finals = hostView(finalsT);
    finals.fill(0);
    const { whh, bhh, wg, bg, wm, table } = hostStepWeights(gru, gate, mapper, nvt, scratch('table', nvt * H3));
    const h0 = hInit ? hostView(hInit) : null;
    const msgAll = scratch('msgs', Math.max(1, numMsg) * BH);
    const cur = scratch('cur', BH);
    const gh = scratch('gh', B * H3);
    let sid = 0;
    for (const vx of plan.vertices) {
      let started = false;
      if (vx.init && h0) {
        cur.set(h0);
        started = true;
      }
      for (const st of vx.steps) {
        for (const { s, mask } of st.add) {
          if (msgSlot[s] < 0) throw new Error(`gatedRecurrence: vertex ${s} sends before its state exists`);
          if (!started) {
            cur.fill(0);
            started = true;
          }
          addMasked(cur, at(msgAll, msgSlot[s]), mask);
        }
        let hIn: Float32Array | null = null;
        if (started) {
          hIn = at(V.HIN, slotOf[sid]);
          hIn.set(cur);
          addon.gemm(false, true, B, H3, H, 1, hIn, H, whh, H, 0, gh, H3);
        }
        addon.gruFwd(table, vx.types, hIn ? gh : null, bhh, hIn, at(V.R, sid), at(V.Z, sid), at(V.NN, sid), at(V.GHN, sid), at(V.HH, sid), B, H);
        sid++;
      }
      const hv = at(V.HH, sid - 1);
      finals.set(hv, vx.v * BH);
      if (sends[vx.v]) {
        const k = msgSlot[vx.v];
        const a = at(V.G, k);
        const c = at(V.C, k);
        at(V.HF, k).set(hv);
        addon.gemm(false, true, B, H, H, 1, hv, H, wg, W, 0, a, H);
        addon.gemm(false, true, B, H, H, 1, hv, H, wm, W, 0, c, H);
        addon.msgFwd(a, c, at(msgAll, k), wg, bg, wm, W, vx.v, B, H);
      }
    }
    const outs: tf.Tensor[] = [finalsT];
    if (readsT) {
      const out = hostView(readsT);
      reads.forEach((tuple, r) => {
        tuple.forEach((id, w) => addon.copy2d(out, (r * B * width + w) * H, width * H, V.HH, id * BH, H, B, H));
      });
      outs.push(readsT);
    }
    // saved last (and no view used after it): with a copying Identity (stock wasm) the saved clone
    // is a copy of what is there now, and its allocation may move the heap
    save([storeT]);
    return outs;
  };

  const backward = (dys: tf.Tensor[], saved: tf.Tensor[]): Record<string, tf.Tensor> => {
    const grads: Record<string, tf.Tensor> = {
      wih: hostTensor([H3, nvt]),
      bih: hostTensor([H3]),
      whh: hostTensor([H3, H]),
      bhh: hostTensor([H3]),
      wg: hostTensor([H, W]),
      bg: hostTensor([H]),
      wm: hostTensor([H, W]),
    };
    if (hInit) grads.hInit = hostTensor([B, H]);
    const V = viewsOf(hostView(saved[0]));
    const whh = hostView(gru.weightHh);
    const wg = hostView(gate.weight);
    const wm = hostView(mapper.weight);
    const dFin = hostView(dys[0]);
    const dRead = reads.length ? hostView(dys[1]) : null;
    const dWhh = hostView(grads.whh);
    const dbhh = hostView(grads.bhh).fill(0);
    const dWg = hostView(grads.wg).fill(0);
    const dbg = hostView(grads.bg).fill(0);
    const dWm = hostView(grads.wm).fill(0);
    const dInit = hInit ? hostView(grads.hInit).fill(0) : null;
    const dStepAll = scratch('dstep', S * BH).fill(0);
    const dMsgAll = scratch('dmsg', Math.max(1, numMsg) * BH).fill(0);
    const hasMsgGrad = new Uint8Array(n);
    const dTable = scratch('dtable', nvt * H3).fill(0);
    const DGH = scratch('dgh', Math.max(1, numSlots) * B * H3).fill(0);
    const DA = scratch('da', Math.max(1, numMsg) * BH).fill(0);
    const DC = scratch('dc', Math.max(1, numMsg) * BH).fill(0);
    const gradScratch = scratch('dghTmp', B * H3);
    const dhIn = scratch('dhin', BH);
    const acc = scratch('acc', BH);
    for (let v = 0; v < n; v++) if (finalStep[v] >= 0) addon.ewise(3, at(dStepAll, finalStep[v]), dFin.subarray(v * BH, (v + 1) * BH), null, BH);
    if (dRead) {
      const iota = Int32Array.from({ length: B }, (_, b) => b);
      const src = new Int32Array(B);
      reads.forEach((tuple, r) => {
        tuple.forEach((id, w) => {
          for (let b = 0; b < B; b++) src[b] = (r * B + b) * width + w;
          addon.addRows(at(dStepAll, id), iota, dRead, src, B, H);
        });
      });
    }
    let sid = numSteps;
    for (let q = plan.vertices.length - 1; q >= 0; q--) {
      const vx = plan.vertices[q];
      const v = vx.v;
      sid -= vx.steps.length;
      const fin = sid + vx.steps.length - 1;
      if (sends[v] && hasMsgGrad[v]) {
        // m = g * c, g = sigmoid(a): back to the vertex's final state (weights: one gemm at the end)
        const k = msgSlot[v];
        const da = at(DA, k);
        const dc = at(DC, k);
        addon.msgBwd(at(dMsgAll, k), at(V.G, k), at(V.C, k), da, dc, dWg, dbg, dWm, W, v, B, H);
        const dh = at(dStepAll, fin);
        addon.gemm(false, false, B, H, H, 1, da, H, wg, W, 1, dh, H);
        addon.gemm(false, false, B, H, H, 1, dc, H, wm, W, 1, dh, H);
      }
      // running sum of the hidden-input gradients of this vertex's later steps
      let accOn = false;
      for (let k = vx.steps.length - 1; k >= 0; k--) {
        const id = sid + k;
        const slot = slotOf[id];
        const hIn = slot >= 0 ? at(V.HIN, slot) : null;
        const dgh = slot >= 0 ? DGH.subarray(slot * B * H3, (slot + 1) * B * H3) : gradScratch;
        addon.gruBwd(at(dStepAll, id), hIn, at(V.R, id), at(V.Z, id), at(V.NN, id), at(V.GHN, id), stepTypes[id], dgh, hIn ? dhIn : null, dTable, dbhh, B, H);
        if (hIn) {
          addon.gemm(false, false, B, H, H3, 1, dgh, H3, whh, H, 1, dhIn, H);
          if (!accOn) {
            acc.fill(0);
            accOn = true;
          }
          addon.ewise(3, acc, dhIn, null, BH);
        }
        if (accOn) {
          for (const { s: snd, mask } of vx.steps[k].add) {
            addMasked(at(dMsgAll, msgSlot[snd]), acc, mask);
            hasMsgGrad[snd] = 1;
          }
        }
      }
      if (vx.init && dInit && accOn) addon.ewise(3, dInit, acc, null, BH);
    }
    // weight gradients summed over all steps in one product each
    if (numSlots) addon.gemm(true, false, H3, H, numSlots * B, 1, DGH, H3, V.HIN, H, 0, dWhh, H);
    else dWhh.fill(0);
    if (numMsg) {
      addon.gemm(true, false, H, H, numMsg * B, 1, DA, H, V.HF, H, 1, dWg, W);
      addon.gemm(true, false, H, H, numMsg * B, 1, DC, H, V.HF, H, 1, dWm, W);
    }
    // table[t] = W_ih[:, t] + b_ih
    const dWih = hostView(grads.wih);
    const dbih = hostView(grads.bih).fill(0);
    for (let t = 0; t < nvt; t++) {
      for (let g = 0; g < H3; g++) {
        dWih[g * nvt + t] = dTable[t * H3 + g];
        dbih[g] += dTable[t * H3 + g];
      }
    }
    return grads;
  };

  const outs = hostOp(inputs, forwardFunc, backward);
  return { finals: outs[0] as tf.Tensor3D, reads: reads.length ? (outs[1] as tf.Tensor3D) : null };
}

/** Host buffers for this module's temporaries (see scratchPool). */
const scratch = scratchPool();
