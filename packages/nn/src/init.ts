import { Rng } from '@metad2a/core';

/**
 * PyTorch-equivalent initialisers on a seeded Rng (values differ from torch's generator, the
 * distributions are the same).
 */
let globalRng = new Rng(333);

/** Reseed the generator used by module constructors that are not given their own Rng. */
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}

export function defaultRng(): Rng {
  return globalRng;
}

export function uniformArray(n: number, bound: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * bound;
  return out;
}

/** nn.Linear weight: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same bound. */
export function linearBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}

/** xavier_uniform for a tensor with the given fan-in and fan-out. */
export function xavierBound(fanIn: number, fanOut: number): number {
  return Math.sqrt(6 / (fanIn + fanOut));
}

/**
 * kaiming_uniform_ bound for leaky-relu slope `a`: gain * sqrt(3 / fanIn), gain = sqrt(2 / (1 + a^2)).
 * With a = sqrt(5) (nn.Linear's default) this is 1 / sqrt(fanIn).
 */
export function kaimingUniformBound(fanIn: number, a = Math.sqrt(5)): number {
  return fanIn > 0 ? Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fanIn) : 0;
}

/** Values drawn from N(mean, std^2) (torch.nn.init.normal_). */
export function normalArray(n: number, std: number, rng: Rng, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal(mean, std);
  return out;
}
