import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, InputError, repoRootOf } from '@metad2a/core';
import { validateOfaConfig, type OfaConfig } from './config.js';

/** Environment variable naming the folder of the OFA MobileNetV3 data files. */
export const OFA_DATA_ENV = 'METAD2A_OFA_DATA';

/** $METAD2A_OFA_DATA, else <repo root>/../shared/data/ofa-mbv3 (third-party files, never copied into the repo). */
export function defaultOfaDataDir(): string {
  const env = process.env[OFA_DATA_ENV];
  if (env) return path.resolve(env);
  const root = repoRootOf(import.meta.url);
  if (!root) throw new ConfigError(OFA_DATA_ENV, `no repository root (a folder with nx.json) above this package or ${process.cwd()}`, 'set it to the ofa-mbv3 data folder');
  return path.resolve(root, '..', 'shared', 'data', 'ofa-mbv3');
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError({ file }, `cannot read: ${(e as Error).message}`, `set ${OFA_DATA_ENV} to the folder holding the OFA data files`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
}

export interface HelpOfaArchs {
  file: string;
  /** The 5,000 subnets, each with its resolution r (128..224). */
  archs: OfaConfig[];
  /** Measured latency (ms) per device key ('2080ti_1', 'titan_rtx_64', ...), aligned with archs. */
  latencyMs: Record<string, number[]>;
  /** The OFA accuracy predictor's output per arch as stored in the file (rounded to 1e-6). */
  ofaPredictorTop1: number[];
}

/** HELP's 5,000 OFA MobileNetV3 subnets with GPU latencies (help_ofa_mbv3_5000_archs_latency.json). */
export function loadHelpOfaArchs(file = path.join(defaultOfaDataDir(), 'help_ofa_mbv3_5000_archs_latency.json')): HelpOfaArchs {
  const raw = readJsonFile(file) as Record<string, unknown>;
  if (!raw || !Array.isArray(raw.archs)) throw new InputError({ file, field: 'archs' }, 'expected an array of OFA configs');
  const archs = raw.archs.map((a, i) => validateOfaConfig(a, { file, record: i }));
  const latencyMs: Record<string, number[]> = {};
  for (const [k, v] of Object.entries((raw.latency_ms ?? {}) as Record<string, unknown>)) {
    if (!Array.isArray(v) || v.length !== archs.length || v.some((x) => typeof x !== 'number')) {
      throw new InputError({ file, field: `latency_ms.${k}` }, `expected ${archs.length} numbers`);
    }
    latencyMs[k] = v as number[];
  }
  const top1 = raw.ofa_predictor_top1_computed_here;
  if (!Array.isArray(top1) || top1.length !== archs.length) throw new InputError({ file, field: 'ofa_predictor_top1_computed_here' }, `expected ${archs.length} numbers`);
  return { file, archs, latencyMs, ofaPredictorTop1: top1 as number[] };
}
