import { NB201_EDGES, type Nb201Arch } from './ops.js';

/**
 * The isomorphism-canonical string of NATS-Bench (the `UniqueString` column of the table), i.e.
 * the benchmark's own notion of "same cell". Each cell node is an expression of the input `0`:
 *   - a 'none' edge, or any edge leaving a node that is exactly zero, contributes `#`;
 *   - a skip edge contributes its source expression unchanged;
 *   - a conv/pool edge contributes `(src)@op`;
 * and a node is its terms sorted as strings and joined with `+`. Edge order within a node, and
 * hence which conv sits on which edge, stops mattering; nodes unreachable from the input become
 * `#`, and nodes that do not reach the output vanish because only the output's expression is kept.
 * Agrees with `UniqueString` on all 15,625 cells (6,466 classes), checked by the tests.
 */
export function nb201UniqueString(arch: Nb201Arch): string {
  const nodes: string[] = ['0'];
  for (let to = 1; to <= 3; to++) {
    const terms: string[] = [];
    NB201_EDGES.forEach((e, k) => {
      if (e.to !== to) return;
      const op = arch[k];
      const src = nodes[e.from];
      if (op === 'none' || src === '#') terms.push('#');
      else if (op === 'skip_connect') terms.push(src);
      else terms.push(`(${src})@${op}`);
    });
    // Plain code-unit order, like Python's sorted() on ASCII strings.
    terms.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    nodes[to] = terms.join('+');
  }
  return nodes[3];
}

type Expr = { kind: 'in' } | { kind: 'op'; op: string; arg: Expr } | { kind: 'sum'; terms: Expr[] };

/**
 * A coarser key: the function the cell computes up to weights, with sums flattened and every
 * zero path removed (`(#+#)@conv` is zero; `x + #` is `x`). Cells with equal `nb201UniqueString`
 * always share this key, but NATS' string also separates some cells this key merges (it does not
 * flatten nested sums), giving 4,930 classes instead of 6,466. Not the space's canonicalKey,
 * because the benchmark's equivalence classes are what callers compare against.
 */
export function nb201FunctionalKey(arch: Nb201Arch): string {
  const nodes: Array<Expr | null> = [{ kind: 'in' }];
  for (let to = 1; to <= 3; to++) {
    const terms: Expr[] = [];
    NB201_EDGES.forEach((e, k) => {
      if (e.to !== to) return;
      const op = arch[k];
      const src = nodes[e.from];
      if (op === 'none' || src === null) return;
      if (op === 'skip_connect') {
        if (src.kind === 'sum') terms.push(...src.terms);
        else terms.push(src);
      } else terms.push({ kind: 'op', op, arg: src });
    });
    nodes[to] = terms.length === 0 ? null : terms.length === 1 ? terms[0] : { kind: 'sum', terms };
  }
  return exprKey(nodes[3]);
}

function exprKey(e: Expr | null): string {
  if (e === null) return 'zero';
  if (e.kind === 'in') return 'in';
  if (e.kind === 'op') return `${e.op}(${exprKey(e.arg)})`;
  const keys = e.terms.map(exprKey).sort();
  return `sum(${keys.join(',')})`;
}
