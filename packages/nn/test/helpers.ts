import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** /work/main/packages/nn/test -> /work/shared (third-party data lives beside the repo). */
export const SHARED = path.resolve(here, '../../../../shared');
export const PARITY_MANIFEST = path.join(SHARED, 'fixtures/metad2a-parity/manifest.json');
export const ORIGINAL_CKPT = path.join(SHARED, 'data/metad2a-original/generator_ckpt_400.pt');
export const TINY_PT = path.join(here, 'fixtures/tiny.pt');

/** Row-major Float64 reference of y = x W^T + b (W stored [out, in]). */
export function linearRef(x: ArrayLike<number>, rows: number, w: ArrayLike<number>, b: ArrayLike<number> | null, inF: number, outF: number): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  return y;
}

const sig = (v: number) => 1 / (1 + Math.exp(-v));

/**
 * torch.nn.GRUCell written out in Float64 (PyTorch docs):
 * r = s(W_ir x + b_ir + W_hr h + b_hr); z = s(W_iz x + b_iz + W_hz h + b_hz);
 * n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h.
 */
export function gruRef(
  x: ArrayLike<number>,
  h: ArrayLike<number>,
  B: number,
  I: number,
  H: number,
  p: { wih: ArrayLike<number>; whh: ArrayLike<number>; bih: ArrayLike<number>; bhh: ArrayLike<number> },
): Float64Array {
  const gi = linearRef(x, B, p.wih, p.bih, I, 3 * H);
  const gh = linearRef(h, B, p.whh, p.bhh, H, 3 * H);
  const out = new Float64Array(B * H);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < H; j++) {
      const o = b * 3 * H;
      const r = sig(gi[o + j] + gh[o + j]);
      const z = sig(gi[o + H + j] + gh[o + H + j]);
      const n = Math.tanh(gi[o + 2 * H + j] + r * gh[o + 2 * H + j]);
      out[b * H + j] = (1 - z) * n + z * h[b * H + j];
    }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
