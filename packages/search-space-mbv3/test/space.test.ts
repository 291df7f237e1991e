import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, Rng, genericInvalidReason, type ArchDag } from '@metad2a/core';
import {
  canonicalOfaKey,
  decodeMbv3NodeType,
  formatOfaConfig,
  isActiveSlot,
  loadHelpOfaArchs,
  mbv3NodeType,
  mbv3Space,
  parseOfaConfig,
  validateOfaConfig,
  type OfaConfig,
} from '../src/index.js';

const help = loadHelpOfaArchs();

function chain(types: number[]): ArchDag {
  return { types, edges: types.slice(1).map((_, v) => [v, v + 1] as [number, number]) };
}

const RANDOM1: OfaConfig = {
  ks: [5, 5, 3, 5, 7, 5, 5, 7, 7, 7, 5, 7, 7, 5, 7, 7, 7, 5, 7, 3],
  e: [4, 6, 6, 4, 4, 3, 4, 4, 6, 6, 3, 6, 4, 4, 6, 4, 3, 3, 6, 4],
  d: [3, 3, 4, 3, 2],
};

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

describe('node types', () => {
  it('follow the original type_dict (key d-ks-e, +2 for START/END)', () => {
    // Hand-read from MetaD2A utils.type_dict: '2-3-3': 0, '3-5-4': 13, '4-7-6': 26, '2-7-4': 7, '4-3-6': 20.
    expect(mbv3NodeType(2, 3, 3)).toBe(2);
    expect(mbv3NodeType(3, 5, 4)).toBe(15);
    expect(mbv3NodeType(4, 7, 6)).toBe(28);
    expect(mbv3NodeType(2, 7, 4)).toBe(9);
    expect(mbv3NodeType(4, 3, 6)).toBe(22);
    for (let t = 2; t <= 28; t++) {
      const { d, ks, e } = decodeMbv3NodeType(t);
      expect(mbv3NodeType(d, ks, e)).toBe(t);
    }
    expect(mbv3Space.vertexTypeName(15)).toBe('d3-k5-e4');
    expect(mbv3Space.vertexTypeName(0)).toBe('START');
    expect(mbv3Space.numVertexTypes).toBe(29);
    expect(mbv3Space.maxNodes).toBe(22);
  });
});

describe('config <-> DAG', () => {
  it('round-trips all 5,000 HELP subnets and builds the 22-node chain', () => {
    expect(help.archs.length).toBe(5000);
    for (const cfg of help.archs) {
      const dag = mbv3Space.toDag(cfg);
      expect(dag.types.length).toBe(22);
      expect(dag.edges.length).toBe(21);
      expect(mbv3Space.invalidReason(dag)).toBeNull();
      const back = mbv3Space.fromDag(dag);
      expect(back).toEqual({ ks: cfg.ks, e: cfg.e, d: cfg.d });
    }
  });

  it('encodes a known config node by node', () => {
    const dag = mbv3Space.toDag(RANDOM1);
    expect(dag.types[0]).toBe(0);
    expect(dag.types[21]).toBe(1);
    // slot 0: d=3, ks=5, e=4 -> 2 + 9 + 3 + 1; slot 19: d=2, ks=3, e=4 -> 2 + 0 + 0 + 1
    expect(dag.types[1]).toBe(15);
    expect(dag.types[20]).toBe(3);
    // stage 3 (slots 8..11) has d=4: every node in group 2
    expect(dag.types.slice(9, 13).every((t) => Math.floor((t - 2) / 9) === 2)).toBe(true);
    expect(dag.edges[0]).toEqual([0, 1]);
    expect(dag.edges[20]).toEqual([20, 21]);
  });

  it('rejects invalid graphs with a reason', () => {
    const good = mbv3Space.toDag(RANDOM1);
    const reason = (dag: ArchDag) => mbv3Space.invalidReason(dag);
    const withTypes = (f: (t: number[]) => void) => {
      const t = [...good.types];
      f(t);
      return chain(t);
    };
    // depth groups differ inside stage 2 (vertices 5..8)
    const mixed = withTypes((t) => (t[6] = mbv3NodeType(4, 3, 3)));
    expect(reason(mixed)).toMatch(/stage 2 mixes depths.*vertex 6 says d=4/);
    expect(mbv3Space.fromDag(mixed)).toBeNull();
    // 21 vertices (one slot dropped)
    expect(reason(chain([...good.types.slice(0, 20), 1]))).toMatch(/expected 22 vertices, found 21/);
    // START inside a stage (the original raises ValueError here)
    expect(reason(withTypes((t) => (t[5] = 0)))).toMatch(/more than one|exactly one START/);
    // END type as a slot: two ENDs
    expect(reason(withTypes((t) => (t[3] = 1)))).toMatch(/exactly one END vertex, found 2/);
    // a type beyond the vocabulary
    expect(reason(withTypes((t) => (t[7] = 29)))).toMatch(/vertex 7 \(stage 2 slot 3\) has type 29/);
    // a vertex without incoming edge
    const rewired = good.edges.map(([a, b]) => (a === 9 ? [9, 11] : [a, b]) as [number, number]);
    expect(reason({ types: good.types, edges: rewired })).toBe('vertex 10 has no incoming edge');
    // a cycle
    expect(reason({ types: good.types, edges: [...good.edges, [12, 4]] })).toBe('graph has a cycle');
    // Extra forward edges are allowed (is_valid_ofa_mbv3 does not check the chain)
    const extra = { types: good.types, edges: [...good.edges, [0, 21] as [number, number], [3, 17] as [number, number]] };
    expect(reason(extra)).toBeNull();
    expect(mbv3Space.fromDag(extra)).toEqual(RANDOM1);
    expect(genericInvalidReason(extra, 0, 1)).toBeNull();
  });

  it('decodes d from the slots, ks/e of inactive slots included', () => {
    const cfg: OfaConfig = { ...RANDOM1, d: [2, 2, 2, 2, 2] };
    const back = mbv3Space.fromDag(mbv3Space.toDag(cfg))!;
    expect(back.d).toEqual([2, 2, 2, 2, 2]);
    expect(back.ks).toEqual(RANDOM1.ks);
    expect(back.e).toEqual(RANDOM1.e);
  });
});

describe('validation, format, parse', () => {
  it('names field, index and allowed values', () => {
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, ks: RANDOM1.ks.map((v, i) => (i === 7 ? 4 : v)) }))).toMatch(/field 'ks\[7\]': value 4 is not allowed \(allowed: 3, 5, 7\)/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, e: [...RANDOM1.e.slice(0, 12), 5, ...RANDOM1.e.slice(13)] }))).toMatch(/'e\[12\]'.*allowed: 3, 4, 6/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, d: [2, 3, 4, 4] }))).toMatch(/field 'd': expected 5 values, got 4/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, d: [2, 3, 4, 4, 1] }))).toMatch(/'d\[4\]'.*allowed: 2, 3, 4/);
    expect(messageOf(() => validateOfaConfig({ ks: RANDOM1.ks, e: RANDOM1.e }))).toMatch(/field 'd': expected an array/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, w: 1 }))).toMatch(/field 'w': unknown field/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, r: 22.5 }))).toMatch(/field 'r'/);
    expect(messageOf(() => validateOfaConfig({ ...RANDOM1, ks: ['3', ...RANDOM1.ks.slice(1)] }, { file: 'x.jsonl', line: 4 }))).toMatch(/^x\.jsonl, line 4, field 'ks\[0\]': value "3"/);
  });

  it('names file, record and field of a bad subnet in a HELP-style file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofa-help-'));
    try {
      const file = path.join(dir, 'archs.json');
      const bad = { ...RANDOM1, e: RANDOM1.e.map((v, i) => (i === 3 ? 8 : v)), r: 224 };
      fs.writeFileSync(file, JSON.stringify({ archs: [{ ...RANDOM1, r: 224 }, bad], latency_ms: {}, ofa_predictor_top1_computed_here: [0.8, 0.8] }));
      expect(messageOf(() => loadHelpOfaArchs(file))).toBe(`${file}, record 1, field 'e[3]': value 8 is not allowed (allowed: 3, 4, 6)`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('formats compact JSON and parses JSON and the original Python dict lines', () => {
    const text = formatOfaConfig({ ...RANDOM1, r: 208 });
    expect(text).toBe(`{"ks":[${RANDOM1.ks}],"e":[${RANDOM1.e}],"d":[${RANDOM1.d}],"r":208}`);
    expect(mbv3Space.parse(text)).toEqual({ ...RANDOM1, r: 208 });
    const py = `{'ks': [${RANDOM1.ks.join(', ')}], 'e': [${RANDOM1.e.join(', ')}], 'd': [${RANDOM1.d.join(', ')}]}`;
    expect(parseOfaConfig(py)).toEqual(RANDOM1);
    expect(parseOfaConfig(`{"ks":[${RANDOM1.ks}],"e":[${RANDOM1.e}],"d":[${RANDOM1.d}],"r":[176]}`).r).toBe(176);
    expect(messageOf(() => mbv3Space.parse('ks=3'))).toMatch(/not an OFA config/);
  });

  it('canonical key ignores inactive slots, format keeps them', () => {
    const a: OfaConfig = { ...RANDOM1, d: [2, 2, 2, 2, 2] };
    const b: OfaConfig = { ...a, ks: a.ks.map((v, i) => (i % 4 >= 2 ? 7 : v)), e: a.e.map((v, i) => (i % 4 === 3 ? 3 : v)) };
    expect(mbv3Space.format(a)).not.toBe(mbv3Space.format(b));
    expect(mbv3Space.canonicalKey(a)).toBe(mbv3Space.canonicalKey(b));
    const c: OfaConfig = { ...a, ks: a.ks.map((v, i) => (i === 1 ? (v === 3 ? 5 : 3) : v)) };
    expect(mbv3Space.canonicalKey(c)).not.toBe(mbv3Space.canonicalKey(a));
    expect(canonicalOfaKey({ ...a, r: 160 })).not.toBe(canonicalOfaKey(a));
    expect(JSON.parse(mbv3Space.canonicalKey(a)).ks.slice(0, 4)).toEqual([a.ks[0], a.ks[1], 0, 0]);
    // Among the HELP subnets, configs equal up to inactive slots share keys: fewer keys than formats is possible, never more.
    const keys = new Set(help.archs.map((x) => canonicalOfaKey(x)));
    const formats = new Set(help.archs.map((x) => formatOfaConfig(x)));
    expect(keys.size).toBeLessThanOrEqual(formats.size);
  });
});

describe('sampling', () => {
  it('is seeded, valid and uniform per choice', () => {
    const s1 = Array.from({ length: 5 }, ((rng) => () => mbv3Space.sample(rng))(new Rng(7)));
    const s2 = Array.from({ length: 5 }, ((rng) => () => mbv3Space.sample(rng))(new Rng(7)));
    expect(s1).toEqual(s2);
    const rng = new Rng(11);
    const n = 3000;
    const counts = { ks: new Map<number, number>(), e: new Map<number, number>(), d: new Map<number, number>() };
    let active = 0;
    for (let i = 0; i < n; i++) {
      const cfg = mbv3Space.sample(rng);
      expect(mbv3Space.fromDag(mbv3Space.toDag(cfg))).toEqual(cfg);
      counts.ks.set(cfg.ks[3], (counts.ks.get(cfg.ks[3]) ?? 0) + 1);
      counts.e.set(cfg.e[17], (counts.e.get(cfg.e[17]) ?? 0) + 1);
      counts.d.set(cfg.d[2], (counts.d.get(cfg.d[2]) ?? 0) + 1);
      active += cfg.ks.filter((_, j) => isActiveSlot(cfg.d, j)).length;
    }
    // Each value has p = 1/3: 3000 draws give 1000 +- 26 (sd); 5 sd bounds.
    for (const m of [counts.ks, counts.e, counts.d]) {
      expect(m.size).toBe(3);
      for (const c of m.values()) expect(Math.abs(c - n / 3)).toBeLessThan(130);
    }
    // E[active slots] = 5 * 3 = 15
    expect(Math.abs(active / n - 15)).toBeLessThan(0.1);
  });
});
