/** Where in an input a problem was found; every field optional so callers name what they know. */
export interface InputLocation {
  file?: string;
  line?: number;
  column?: number | string;
  field?: string;
  record?: number;
}

/** Base class of every error this project raises on purpose: `code` is stable for programs, `message` for people. */
export class MetaD2AError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetaD2AError';
    this.code = code;
  }
}

/** Bad user input (a file, a row, a field, an option). The message starts with the location. */
export class InputError extends MetaD2AError {
  readonly location: InputLocation;
  readonly hint?: string;
  constructor(location: InputLocation, problem: string, hint?: string, options?: { cause?: unknown }) {
    super('E_INPUT', formatInputMessage(location, problem, hint), options);
    this.name = 'InputError';
    this.location = location;
    this.hint = hint;
  }
}

export function formatLocation(loc: InputLocation): string {
  const parts: string[] = [];
  if (loc.file) parts.push(loc.file);
  if (loc.line !== undefined) parts.push(`line ${loc.line}`);
  if (loc.record !== undefined) parts.push(`record ${loc.record}`);
  if (loc.column !== undefined) parts.push(`column ${loc.column}`);
  if (loc.field) parts.push(`field '${loc.field}'`);
  return parts.join(', ');
}

function formatInputMessage(loc: InputLocation, problem: string, hint?: string): string {
  const where = formatLocation(loc);
  return `${where ? `${where}: ` : ''}${problem}${hint ? ` (${hint})` : ''}`;
}

/** Invalid configuration or option value. */
export class ConfigError extends MetaD2AError {
  constructor(field: string, problem: string, hint?: string) {
    super('E_CONFIG', `invalid option '${field}': ${problem}${hint ? ` (${hint})` : ''}`);
    this.name = 'ConfigError';
  }
}

/** Shape mismatch between tensors or stored arrays. */
export class ShapeError extends MetaD2AError {
  constructor(what: string, expected: readonly number[], actual: readonly number[]) {
    super('E_SHAPE', `${what}: expected shape [${expected.join(', ')}], got [${actual.join(', ')}]`);
    this.name = 'ShapeError';
  }
}
