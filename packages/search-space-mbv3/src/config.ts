import { InputError, type InputLocation, type Rng } from '@metad2a/core';

/**
 * An OFA MobileNetV3 subnet as once-for-all and MetaD2A write it: 5 stages x 4 block slots.
 * In stage s only slots 4s .. 4s+d[s]-1 are built; the other slots still carry ks/e values
 * (the original samples them and encodes them as graph nodes) but do not change the network.
 */
export interface OfaConfig {
  /** Depthwise kernel size of each of the 20 slots: 3, 5 or 7. */
  ks: number[];
  /** Expand ratio of each of the 20 slots: 3, 4 or 6. */
  e: number[];
  /** Depth (blocks used) of each of the 5 stages: 2, 3 or 4. */
  d: number[];
  /** Input resolution; not part of MetaD2A's graph encoding (it searches at 224). */
  r?: number;
}

export const OFA_NUM_STAGES = 5;
export const OFA_SLOTS_PER_STAGE = 4;
export const OFA_NUM_SLOTS = OFA_NUM_STAGES * OFA_SLOTS_PER_STAGE;
export const OFA_KERNEL_SIZES = [3, 5, 7] as const;
export const OFA_EXPAND_RATIOS = [3, 4, 6] as const;
export const OFA_DEPTHS = [2, 3, 4] as const;
/** The resolution MetaD2A's evaluation and `--bound` filter use. */
export const OFA_DEFAULT_RESOLUTION = 224;

const FIELDS = ['ks', 'e', 'd', 'r'] as const;

/** Whether slot i (0..19) is built for depths d. */
export function isActiveSlot(d: readonly number[], slot: number): boolean {
  return slot % OFA_SLOTS_PER_STAGE < d[Math.floor(slot / OFA_SLOTS_PER_STAGE)];
}

function checkList(value: unknown, field: 'ks' | 'e' | 'd', length: number, allowed: readonly number[], loc: InputLocation): number[] {
  if (!Array.isArray(value)) {
    throw new InputError({ ...loc, field }, `expected an array of ${length} integers, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
  }
  if (value.length !== length) throw new InputError({ ...loc, field }, `expected ${length} values, got ${value.length}`);
  value.forEach((v, i) => {
    if (typeof v !== 'number' || !allowed.includes(v)) {
      throw new InputError({ ...loc, field: `${field}[${i}]` }, `value ${JSON.stringify(v)} is not allowed`, `allowed: ${allowed.join(', ')}`);
    }
  });
  return [...(value as number[])];
}

/**
 * Check an untrusted value (parsed JSON, a record of a file) and return a clean OfaConfig copy.
 * Errors name the field and index (`ks[7]`) and the allowed values. `r` may be a number or a
 * one-element list (once-for-all's spec dicts write `r: [224]`).
 */
export function validateOfaConfig(value: unknown, loc: InputLocation = {}): OfaConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(loc, `expected an OFA config object {ks, e, d, r?}, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
  }
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(FIELDS as readonly string[]).includes(k)) throw new InputError({ ...loc, field: k }, 'unknown field', `an OFA config has ${FIELDS.join(', ')}`);
  }
  const cfg: OfaConfig = {
    ks: checkList(o.ks, 'ks', OFA_NUM_SLOTS, OFA_KERNEL_SIZES, loc),
    e: checkList(o.e, 'e', OFA_NUM_SLOTS, OFA_EXPAND_RATIOS, loc),
    d: checkList(o.d, 'd', OFA_NUM_STAGES, OFA_DEPTHS, loc),
  };
  if (o.r !== undefined) {
    const r = Array.isArray(o.r) && o.r.length === 1 ? o.r[0] : o.r;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) {
      throw new InputError({ ...loc, field: 'r' }, `resolution must be a positive integer, got ${JSON.stringify(o.r)}`);
    }
    cfg.r = r;
  }
  return cfg;
}

/** Throw unless `cfg` is a valid config (same checks as validateOfaConfig, for values built in code). */
export function assertOfaConfig(cfg: OfaConfig, loc: InputLocation = {}): void {
  validateOfaConfig(cfg, loc);
}

/** Compact JSON `{"ks":[..],"e":[..],"d":[..],"r":224}` (r only when set); keeps inactive slots as they are. */
export function formatOfaConfig(cfg: OfaConfig): string {
  const out: Record<string, unknown> = { ks: cfg.ks, e: cfg.e, d: cfg.d };
  if (cfg.r !== undefined) out.r = cfg.r;
  return JSON.stringify(out);
}

/**
 * Parse the text form: JSON, or the Python dict repr the original writes to its
 * `generated_arch/run_*.txt` files (`{'ks': [...], 'e': [...], 'd': [...]}`).
 */
export function parseOfaConfig(text: string, loc: InputLocation = {}): OfaConfig {
  const t = String(text).trim();
  let value: unknown;
  try {
    value = JSON.parse(t);
  } catch {
    try {
      value = JSON.parse(t.replace(/'/g, '"'));
    } catch (e) {
      throw new InputError(loc, `not an OFA config (JSON or Python dict): ${(e as Error).message}`, `got ${t.length > 80 ? `${t.slice(0, 80)}...` : JSON.stringify(t)}`);
    }
  }
  return validateOfaConfig(value, loc);
}

/**
 * Key equal for configs that build the same network: ks/e of slots beyond a stage's depth are
 * written as 0 (they are never built), the rest is formatOfaConfig's. Not parseable as a config.
 */
export function canonicalOfaKey(cfg: OfaConfig): string {
  const ks = cfg.ks.map((v, i) => (isActiveSlot(cfg.d, i) ? v : 0));
  const e = cfg.e.map((v, i) => (isActiveSlot(cfg.d, i) ? v : 0));
  return formatOfaConfig({ ks, e, d: cfg.d, r: cfg.r });
}

/**
 * A uniformly random config (each slot's ks and e, each stage's d, drawn in that order as in
 * OFA's sample_active_subnet). `resolutions` adds a uniformly drawn r.
 */
export function sampleOfaConfig(rng: Rng, options: { resolutions?: readonly number[] } = {}): OfaConfig {
  const ks = Array.from({ length: OFA_NUM_SLOTS }, () => OFA_KERNEL_SIZES[rng.int(3)]);
  const e = Array.from({ length: OFA_NUM_SLOTS }, () => OFA_EXPAND_RATIOS[rng.int(3)]);
  const d = Array.from({ length: OFA_NUM_STAGES }, () => OFA_DEPTHS[rng.int(3)]);
  const cfg: OfaConfig = { ks, e, d };
  if (options.resolutions?.length) cfg.r = rng.choice(options.resolutions);
  return cfg;
}
