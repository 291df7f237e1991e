/**
 * A tiny XML well-formedness check (enough for SVG we write): balanced tags, quoted attributes
 * without duplicates, known entities only, one root. Returns every element as {name, attrs, text}.
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlElement[];
}

const ENTITY = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

function decode(s: string, where: string): string {
  const stripped = s.replace(ENTITY, '');
  if (stripped.includes('&')) throw new Error(`${where}: bare '&' or unknown entity`);
  if (stripped.includes('<')) throw new Error(`${where}: '<' in text or attribute`);
  return s.replace(ENTITY, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e] ?? String.fromCodePoint(e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
}

export function parseXml(src: string): { root: XmlElement; all: XmlElement[] } {
  const all: XmlElement[] = [];
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  let i = 0;
  const s = src.replace(/^<\?xml[^?]*\?>/, '');
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const chunk = lt < 0 ? s.slice(i) : s.slice(i, lt);
    if (chunk.trim()) {
      if (!stack.length) throw new Error(`text outside the root at ${i}`);
      stack[stack.length - 1].text += decode(chunk, `text at ${i}`);
    }
    if (lt < 0) break;
    const gt = s.indexOf('>', lt);
    if (gt < 0) throw new Error(`unterminated tag at ${lt}`);
    const tag = s.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`closing </${name}> does not match <${open?.name}> at ${lt}`);
    } else {
      const selfClose = tag.endsWith('/');
      const body = selfClose ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)/.exec(body);
      if (!m) throw new Error(`bad tag name at ${lt}`);
      const attrs: Record<string, string> = {};
      let rest = body.slice(m[1].length);
      const re = /^\s+([A-Za-z_][\w:.-]*)="([^"]*)"/;
      for (let a = re.exec(rest); a; a = re.exec(rest)) {
        if (a[1] in attrs) throw new Error(`duplicate attribute ${a[1]} on <${m[1]}>`);
        attrs[a[1]] = decode(a[2], `attribute ${a[1]} of <${m[1]}>`);
        rest = rest.slice(a[0].length);
      }
      if (rest.trim()) throw new Error(`malformed attributes on <${m[1]}>: '${rest.trim()}'`);
      const e: XmlElement = { name: m[1], attrs, text: '', children: [] };
      all.push(e);
      if (stack.length) stack[stack.length - 1].children.push(e);
      else if (root) throw new Error('more than one root element');
      else root = e;
      if (!selfClose) stack.push(e);
    }
    i = gt + 1;
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  if (!root) throw new Error('no root element');
  return { root, all };
}

export function byClass(all: XmlElement[], cls: string): XmlElement[] {
  return all.filter((e) => (e.attrs.class ?? '').split(/\s+/).includes(cls));
}
