import { InputError } from '@metad2a/core';

/**
 * A small Python unpickler (protocols 0-5, the opcodes torch.save and plain Python emit) that never
 * executes anything: globals are looked up in an allow-list of JS handlers, everything else becomes
 * an inert PyObject. Python values map to JS as: dict/OrderedDict -> Map, list/tuple -> array,
 * str -> string, bytes -> Buffer, int -> number (bigint beyond 2^53), float -> number, None -> null,
 * set/frozenset -> Set.
 */

/** A Python global (class or function) referenced by the pickle but not handled. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An object built by an unhandled global: its class, constructor args and BUILD state. */
export class PyObject {
  state: unknown = undefined;
  constructor(
    readonly cls: string,
    readonly args: unknown[],
  ) {}
}

/** Attributes set by BUILD on a dict-like object (an OrderedDict state dict keeps `_metadata` here). */
export const pyAttributes = new WeakMap<object, unknown>();

export type GlobalHandler = (args: unknown[]) => unknown;

export interface UnpickleOptions {
  /** Handlers for `module.name` globals called through REDUCE / NEWOBJ. */
  globals?: Record<string, GlobalHandler>;
  /** Resolves persistent ids (torch storages). */
  persistentLoad?: (pid: unknown) => unknown;
  /** For error messages: the file (and member) being read. */
  file?: string;
}

const DEFAULT_GLOBALS: Record<string, GlobalHandler> = {
  'collections.OrderedDict': (args) => new Map(Array.isArray(args[0]) ? (args[0] as Array<[unknown, unknown]>) : []),
  'builtins.dict': (args) => (args[0] instanceof Map ? new Map(args[0]) : new Map()),
  'builtins.list': (args) => (Array.isArray(args[0]) ? [...args[0]] : []),
  'builtins.tuple': (args) => (Array.isArray(args[0]) ? [...args[0]] : []),
  'builtins.set': (args) => new Set(Array.isArray(args[0]) ? args[0] : []),
  'builtins.frozenset': (args) => new Set(Array.isArray(args[0]) ? args[0] : []),
  '__builtin__.set': (args) => new Set(Array.isArray(args[0]) ? args[0] : []),
  // Protocol 2 pickles bytes as _codecs.encode(latin-1 text, 'latin1').
  '_codecs.encode': (args) => Buffer.from(String(args[0]), args[1] === 'latin1' || args[1] === 'latin-1' ? 'latin1' : 'utf8'),
  'torch.Size': (args) => (Array.isArray(args[0]) ? [...args[0]] : []),
};

const MARK = Symbol('mark');

class Fail extends Error {}

export function unpickle(data: Uint8Array, options: UnpickleOptions = {}): unknown {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const globals = { ...DEFAULT_GLOBALS, ...(options.globals ?? {}) };
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let opStart = 0;
  let op = 0;

  const need = (n: number) => {
    if (pos + n > buf.length) throw new Fail(`needs ${n} more bytes but the data ends at byte ${buf.length} (truncated)`);
  };
  const u8 = () => (need(1), buf[pos++]);
  const u16 = () => (need(2), (pos += 2), buf.readUInt16LE(pos - 2));
  const u32 = () => (need(4), (pos += 4), buf.readUInt32LE(pos - 4));
  const i32 = () => (need(4), (pos += 4), buf.readInt32LE(pos - 4));
  const u64 = () => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Fail(`length ${v} is too large`);
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    pos += n;
    return buf.subarray(pos - n, pos);
  };
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) throw new Fail('unterminated text argument (truncated)');
    const s = buf.toString('latin1', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw new Fail('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new Fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) throw new Fail('no MARK on the stack');
    const items = stack.slice(i + 1);
    stack.length = i;
    return items;
  };
  const memoGet = (k: number) => {
    if (!memo.has(k)) throw new Fail(`memo key ${k} was never stored`);
    return memo.get(k);
  };
  const long = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const findGlobal = (module: string, name: string) => new PyGlobal(module, name);
  const call = (fn: unknown, args: unknown[]): unknown => {
    if (!(fn instanceof PyGlobal)) throw new Fail(`cannot call a ${typeName(fn)}`);
    const h = globals[fn.fullName];
    return h ? h(args) : new PyObject(fn.fullName, args);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) {
      if (target instanceof PyObject) {
        // A dict subclass we do not know: keep its items as state.
        const m = target.state instanceof Map ? target.state : new Map();
        for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
        target.state = m;
        return;
      }
      throw new Fail(`SETITEM(S) on a ${typeName(target)}`);
    }
    if (items.length % 2) throw new Fail('odd number of items for SETITEMS');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PyObject) target.args.push(...items);
    else throw new Fail(`APPEND(S) on a ${typeName(target)}`);
  };

  try {
    for (;;) {
      opStart = pos;
      op = u8();
      switch (op) {
        case 0x80: // PROTO
          if (u8() > 5) throw new Fail('pickle protocol newer than 5');
          break;
        case 0x95: // FRAME
          u64();
          break;
        case 0x2e: // STOP
          if (stack.length !== 1) throw new Fail(`STOP with ${stack.length} values on the stack`);
          return stack[0];
        case 0x28: // MARK
          stack.push(MARK);
          break;
        case 0x30: // POP
          pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          stack.push(top());
          break;
        case 0x4e: // NONE
          stack.push(null);
          break;
        case 0x88: // NEWTRUE
          stack.push(true);
          break;
        case 0x89: // NEWFALSE
          stack.push(false);
          break;
        case 0x49: {
          // INT (text; also encodes booleans as 00/01)
          const s = line().trim();
          if (s === '00') stack.push(false);
          else if (s === '01') stack.push(true);
          else stack.push(parseTextInt(s));
          break;
        }
        case 0x4c: // LONG (text)
          stack.push(parseTextInt(line().trim().replace(/L$/, '')));
          break;
        case 0x4a: // BININT
          stack.push(i32());
          break;
        case 0x4b: // BININT1
          stack.push(u8());
          break;
        case 0x4d: // BININT2
          stack.push(u16());
          break;
        case 0x8a: // LONG1
          stack.push(long(bytes(u8())));
          break;
        case 0x8b: // LONG4
          stack.push(long(bytes(u32())));
          break;
        case 0x46: // FLOAT (text)
          stack.push(parseFloat(line()));
          break;
        case 0x47: // BINFLOAT (big-endian double)
          need(8);
          stack.push(buf.readDoubleBE(pos));
          pos += 8;
          break;
        case 0x58: // BINUNICODE
          stack.push(bytes(u32()).toString('utf8'));
          break;
        case 0x8c: // SHORT_BINUNICODE
          stack.push(bytes(u8()).toString('utf8'));
          break;
        case 0x8d: // BINUNICODE8
          stack.push(bytes(u64()).toString('utf8'));
          break;
        case 0x56: // UNICODE (raw-unicode-escape text)
          stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
          break;
        case 0x53: {
          // STRING (quoted repr)
          const s = line();
          stack.push(s.length >= 2 ? s.slice(1, -1) : s);
          break;
        }
        case 0x54: // BINSTRING
          stack.push(bytes(i32()).toString('latin1'));
          break;
        case 0x55: // SHORT_BINSTRING
          stack.push(bytes(u8()).toString('latin1'));
          break;
        case 0x42: // BINBYTES
          stack.push(Buffer.from(bytes(u32())));
          break;
        case 0x43: // SHORT_BINBYTES
          stack.push(Buffer.from(bytes(u8())));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          stack.push(Buffer.from(bytes(u64())));
          break;
        case 0x29: // EMPTY_TUPLE
          stack.push([]);
          break;
        case 0x74: // TUPLE
          stack.push(popMark());
          break;
        case 0x85: // TUPLE1
          stack.push([pop()]);
          break;
        case 0x86: {
          // TUPLE2
          const b = pop();
          const a = pop();
          stack.push([a, b]);
          break;
        }
        case 0x87: {
          // TUPLE3
          const c = pop();
          const b = pop();
          const a = pop();
          stack.push([a, b, c]);
          break;
        }
        case 0x5d: // EMPTY_LIST
          stack.push([]);
          break;
        case 0x6c: // LIST
          stack.push(popMark());
          break;
        case 0x61: {
          // APPEND
          const v = pop();
          appendItems(top(), [v]);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = popMark();
          appendItems(top(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          stack.push(new Map());
          break;
        case 0x64: {
          // DICT
          const items = popMark();
          const m = new Map();
          setItems(m, items);
          stack.push(m);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = pop();
          const k = pop();
          setItems(top(), [k, v]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = popMark();
          setItems(top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          stack.push(new Set());
          break;
        case 0x90: {
          // ADDITEMS
          const items = popMark();
          const s = top();
          if (!(s instanceof Set)) throw new Fail(`ADDITEMS on a ${typeName(s)}`);
          for (const it of items) s.add(it);
          break;
        }
        case 0x91: // FROZENSET
          stack.push(new Set(popMark()));
          break;
        case 0x63: {
          // GLOBAL
          const module = line();
          const name = line();
          stack.push(findGlobal(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = pop();
          const module = pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw new Fail('STACK_GLOBAL needs two strings');
          stack.push(findGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = pop();
          const fn = pop();
          if (!Array.isArray(args)) throw new Fail(`REDUCE arguments are a ${typeName(args)}, not a tuple`);
          stack.push(call(fn, args));
          break;
        }
        case 0x81: {
          // NEWOBJ: cls.__new__(cls, *args)
          const args = pop();
          const cls = pop();
          stack.push(call(cls, Array.isArray(args) ? args : []));
          break;
        }
        case 0x92: {
          // NEWOBJ_EX
          pop(); // kwargs
          const args = pop();
          const cls = pop();
          stack.push(call(cls, Array.isArray(args) ? args : []));
          break;
        }
        case 0x62: {
          // BUILD
          const state = pop();
          const obj = top();
          if (obj instanceof PyObject) obj.state = state;
          else if (obj !== null && typeof obj === 'object') pyAttributes.set(obj, state);
          break;
        }
        case 0x50: // PERSID
        case 0x51: {
          // BINPERSID
          const pid = op === 0x50 ? line() : pop();
          if (!options.persistentLoad) throw new Fail('persistent id found but no persistent_load is available');
          stack.push(options.persistentLoad(pid));
          break;
        }
        case 0x70: // PUT
          memo.set(parseInt(line(), 10), top());
          break;
        case 0x71: // BINPUT
          memo.set(u8(), top());
          break;
        case 0x72: // LONG_BINPUT
          memo.set(u32(), top());
          break;
        case 0x94: // MEMOIZE
          memo.set(memo.size, top());
          break;
        case 0x67: // GET
          stack.push(memoGet(parseInt(line(), 10)));
          break;
        case 0x68: // BINGET
          stack.push(memoGet(u8()));
          break;
        case 0x6a: // LONG_BINGET
          stack.push(memoGet(u32()));
          break;
        default:
          throw new Fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    const err = e as Error;
    // Handlers report with plain Errors; anything else (a RangeError, ...) keeps its name as a clue.
    const msg = e instanceof Fail || err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
    throw new InputError({ file: options.file }, `pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${opStart}: ${msg}`, 'the pickle is truncated, corrupted or uses a feature this reader does not support');
  }
}

function parseTextInt(s: string): number | bigint {
  if (!/^[+-]?\d+$/.test(s)) throw new Fail(`bad integer literal '${s}'`);
  const v = BigInt(s);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

export function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'tuple/list';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof PyObject) return `${v.cls} object`;
  if (v instanceof PyGlobal) return `global ${v.fullName}`;
  if (Buffer.isBuffer(v)) return 'bytes';
  return typeof v;
}
