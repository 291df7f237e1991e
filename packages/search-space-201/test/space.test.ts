import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, Rng, type ArchDag } from '@metad2a/core';
import {
  archAtEnumerationIndex,
  enumerationIndex,
  findRepoRoot,
  formatNb201,
  loadNb201Table,
  nb201FunctionalKey,
  nb201Space,
  nb201UniqueString,
  opIndices,
  parseNb201,
  type Nb201Table,
} from '../src/index.js';

const BEST = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|';

let table: Nb201Table;
beforeAll(async () => {
  const repo = findRepoRoot(process.cwd())!;
  table = await loadNb201Table(path.resolve(repo, '../shared/data/nb201/nats_bench.csv'), { epoch12Path: null });
});

describe('strings and op indices', () => {
  it('parses into the 6 edge ops in string order and formats back', () => {
    const arch = parseNb201(BEST);
    expect(arch).toEqual(['nor_conv_3x3', 'nor_conv_3x3', 'nor_conv_3x3', 'skip_connect', 'nor_conv_3x3', 'nor_conv_3x3']);
    expect(opIndices(arch)).toEqual([3, 3, 3, 1, 3, 3]);
    expect(formatNb201(arch)).toBe(BEST);
    expect(nb201Space.format(nb201Space.parse(BEST))).toBe(BEST);
  });

  it('rejects malformed strings with an InputError saying what is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['|none~0|+|none~0|none~1|', /2 node groups/],
      ['|none~0|+|none~0|+|none~0|none~1|none~2|', /node 2 .* has 1 inputs, expected 2/],
      ['|none~1|+|none~0|none~1|+|none~0|none~1|none~2|', /names input '1', expected 0/],
      ['|sep_conv~0|+|none~0|none~1|+|none~0|none~1|none~2|', /unknown op 'sep_conv'/],
      ['none~0|+|none~0|none~1|+|none~0|none~1|none~2|', /must start and end with '\|'/],
      ['|none0|+|none~0|none~1|+|none~0|none~1|none~2|', /is not 'op~input'/],
    ];
    for (const [s, re] of bad) {
      expect(() => nb201Space.parse(s)).toThrow(InputError);
      expect(() => nb201Space.parse(s)).toThrow(re);
    }
  });

  it('enumerates 15,625 distinct cells; enumeration index is base 5 of the op indices', () => {
    const all = [...nb201Space.enumerate!()];
    expect(all).toHaveLength(15625);
    expect(new Set(all.map(formatNb201)).size).toBe(15625);
    expect(all[0]).toEqual(['none', 'none', 'none', 'none', 'none', 'none']);
    // [3,3,3,1,3,3] in base 5 = 3*3125 + 3*625 + 3*125 + 1*25 + 3*5 + 3 = 11668
    expect(enumerationIndex(parseNb201(BEST))).toBe(11668);
    expect(formatNb201(archAtEnumerationIndex(11668))).toBe(BEST);
    for (const s of table.strings) expect(table.has(formatNb201(all[enumerationIndex(parseNb201(s))]))).toBe(true);
  });

  it('samples uniformly from a seeded Rng', () => {
    const rng = new Rng(7);
    const counts = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const arch = nb201Space.sample(rng);
      expect(arch).toHaveLength(6);
      for (const op of arch) counts.set(op, (counts.get(op) ?? 0) + 1);
    }
    // 36,000 draws over 5 ops: each near 7,200 (sd ~76).
    for (const c of counts.values()) expect(Math.abs(c - 7200)).toBeLessThan(400);
    expect(formatNb201(nb201Space.sample(new Rng(1)))).toBe(formatNb201(nb201Space.sample(new Rng(1))));
  });
});

describe('DAG encoding', () => {
  it('uses the original 8-node types and 11-edge pattern (spec §2.1)', () => {
    expect(nb201Space.maxNodes).toBe(8);
    expect(nb201Space.numVertexTypes).toBe(7);
    expect([nb201Space.startType, nb201Space.endType]).toEqual([0, 1]);
    expect([2, 3, 4, 5, 6].map((t) => nb201Space.vertexTypeName(t))).toEqual(['none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3']);
    const dag = nb201Space.toDag(parseNb201(BEST));
    expect(dag.types).toEqual([0, 5, 5, 5, 3, 5, 5, 1]);
    const pattern = '0>1 1>2 1>3 1>5 2>3 2>6 3>4 3>6 4>5 5>6 6>7';
    expect(dag.edges.map(([a, b]) => `${a}>${b}`).sort().join(' ')).toBe(pattern.split(' ').sort().join(' '));
  });

  it('round-trips all 15,625 benchmark cells string -> DAG -> string', () => {
    let n = 0;
    for (const s of table.strings) {
      const dag = nb201Space.toDag(nb201Space.parse(s));
      expect(nb201Space.invalidReason(dag)).toBeNull();
      const back = nb201Space.fromDag(dag);
      expect(back && nb201Space.format(back)).toBe(s);
      n++;
    }
    expect(n).toBe(15625);
  });

  it('rejects broken graphs with reasons, and accepts any edge pattern the original accepts', () => {
    const base = () => nb201Space.toDag(parseNb201(BEST));
    const cases: Array<[string, (d: ArchDag) => void, RegExp]> = [
      ['cycle', (d) => d.edges.push([4, 3]), /cycle/],
      ['self-loop', (d) => d.edges.push([2, 2]), /cycle/],
      ['two STARTs', (d) => (d.types[3] = 0), /exactly one START/],
      ['two ENDs', (d) => (d.types[3] = 1), /exactly one END/],
      ['END in the middle', (d) => ([d.types[6], d.types[7]] = [1, 5]), /vertex 7 has no outgoing edge|vertex 6 is END/],
      ['unfed vertex', (d) => (d.edges = d.edges.filter(([, b]) => b !== 4)), /vertex 4 has no incoming edge/],
      ['dead end', (d) => (d.edges = d.edges.filter(([a]) => a !== 4)), /vertex 4 has no outgoing edge/],
      ['7 vertices', (d) => {
        d.types.splice(6, 1);
        d.edges = d.edges.filter(([a, b]) => a !== 6 && b !== 6).map(([a, b]) => [a > 6 ? a - 1 : a, b > 6 ? b - 1 : b] as [number, number]);
        d.edges.push([5, 6], [3, 6], [2, 6]);
      }, /expected 8 vertices, found 7/],
      ['unknown type', (d) => (d.types[2] = 7), /vertex 2 has type 7/],
      ['edge to nowhere', (d) => d.edges.push([3, 9]), /outside 0..7/],
    ];
    for (const [name, edit, re] of cases) {
      const d = base();
      edit(d);
      const reason = nb201Space.invalidReason(d);
      expect(reason, name).toMatch(re);
      expect(nb201Space.fromDag(d), name).toBeNull();
    }
    // A graph that passes the generic rules but has its START at vertex 4 (4 -> 0 -> 1 -> ...).
    const startInside = base();
    startInside.types[0] = 2;
    startInside.types[4] = 0;
    startInside.edges = startInside.edges.filter(([a, b]) => !(a === 3 && b === 4));
    startInside.edges.push([4, 0]);
    expect(nb201Space.invalidReason(startInside)).toMatch(/vertex 4 is START/);
    // The textbook line graph is not the stored pattern, but the original only checks validity.
    const line: ArchDag = { types: [0, 2, 3, 4, 5, 6, 4, 1], edges: [[0, 1], [0, 2], [0, 4], [1, 3], [1, 5], [2, 6], [3, 6], [4, 7], [5, 7], [6, 7]] };
    expect(nb201Space.invalidReason(line)).toBeNull();
    expect(formatNb201(nb201Space.fromDag(line)!)).toBe('|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|');
  });
});

describe('isomorphism-canonical key', () => {
  it("equals the table's UniqueString on every cell (6,466 classes)", () => {
    let mismatches = 0;
    table.strings.forEach((s, i) => {
      if (nb201Space.canonicalKey(parseNb201(s)) !== table.uniqueStringAt(i)) mismatches++;
    });
    expect(mismatches).toBe(0);
    expect(new Set(table.uniqueStrings).size).toBe(6466);
  });

  it('merges hand-checked equivalent cells and separates different ones', () => {
    const key = (s: string) => nb201UniqueString(parseNb201(s));
    // Node 2 feeds the output only through none~2, so its inputs do not matter: out = 1x1(x) + 3x3(3x3(x)).
    const p = '|nor_conv_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|';
    const q = '|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|';
    // Terms sorted as ASCII: '#' < '((' < '(0'.
    expect(key(p)).toBe('#+((0)@nor_conv_3x3)@nor_conv_3x3+(0)@nor_conv_1x1');
    expect(key(q)).toBe(key(p));
    // The same edges with a skip instead of the 1x1 from the input compute something else.
    expect(key('|nor_conv_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|')).toBe('#+((0)@nor_conv_3x3)@nor_conv_3x3+0');
    // All-none output: every term is zero.
    expect(key('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|')).toBe('#+#+#');
  });
});

describe('functional key (coarser, not the canonical key)', () => {
  it('never splits a UniqueString class', () => {
    const byUnique = new Map<string, string>();
    for (let i = 0; i < table.size; i++) {
      const f = nb201FunctionalKey(table.archAt(i));
      const u = table.uniqueStringAt(i);
      const prev = byUnique.get(u);
      if (prev !== undefined) expect(f).toBe(prev);
      else byUnique.set(u, f);
    }
    expect(new Set(byUnique.values()).size).toBe(4930);
  });
});
