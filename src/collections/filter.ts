// Structured row filters for a collection. A filter is data (field, operator, values), never text: `--where`
// is parsed into one with a small grammar over known columns, and compiled to Lance SQL here, with every
// literal escaped, so no user text reaches the SQL as code.

/** Columns a filter may name, with their kind. */
export const FILTER_COLUMNS = {
  label: 'string',
  path: 'string',
  sha256: 'string',
  bytes: 'number',
  mtime: 'number',
  cluster: 'number',
} as const;
export type FilterColumn = keyof typeof FILTER_COLUMNS;
export type FilterOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'prefix' | 'null' | 'notnull';

/** One condition; a filter is the AND of its conditions. */
export interface Condition {
  column: FilterColumn;
  op: FilterOp;
  /** Values for '='…'>=' (one), 'in' (one or more), 'prefix' (one string); none for 'null'/'notnull'. */
  values: (string | number)[];
}

/** The filter of serve's JSON API and of the library: label(s) and a path prefix, plus any conditions. */
export interface Filter {
  /** One label or any of several. */
  label?: string | string[];
  /** Path starts with this string. */
  pathPrefix?: string;
  /** More conditions, ANDed (from {@link parseWhere}). */
  where?: Condition[];
}

const OPS = ['<=', '>=', '!=', '<>', '=', '<', '>'];

/**
 * Parses `--where` text: conditions joined by AND, each `col OP value`, `col IN (v, …)`, `col LIKE 'prefix%'`,
 * `col IS [NOT] NULL`; strings in single quotes ('' for a quote), numbers bare. Columns: label, path, sha256,
 * bytes, mtime (ms since 1970), cluster. Throws naming the text and what is valid.
 */
export function parseWhere(text: string): Condition[] {
  const toks = tokenize(text);
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(
      `--where ${JSON.stringify(text)}: ${why}; expected conditions joined by AND, each \`col = 'text'\`, \`col != …\`, \`col < number\` (<, <=, >, >=), \`col IN ('a', 'b')\`, \`col LIKE 'prefix%'\` or \`col IS [NOT] NULL\`, over the columns ${Object.keys(FILTER_COLUMNS).join(', ')}`,
    );
  };
  const value = (): string | number => {
    const t = toks[i++];
    if (!t || (t.kind !== 'str' && t.kind !== 'num'))
      return fail(`a value was expected${t ? ` at '${t.text}'` : ' at the end'}`);
    return t.kind === 'num' ? Number(t.text) : t.text;
  };
  const out: Condition[] = [];
  for (;;) {
    const c = toks[i++];
    if (!c || c.kind !== 'word') return fail(c ? `a column was expected at '${c.text}'` : 'a condition was expected');
    const column = c.text.toLowerCase();
    if (!(column in FILTER_COLUMNS)) return fail(`unknown column '${c.text}'`);
    const col = column as FilterColumn;
    const o = toks[i++];
    if (!o) return fail(`an operator was expected after '${c.text}'`);
    const ow = o.text.toUpperCase();
    if (o.kind === 'op') {
      const v = value();
      out.push({ column: col, op: (o.text === '<>' ? '!=' : o.text) as FilterOp, values: [v] });
    } else if (ow === 'IN') {
      if (toks[i++]?.text !== '(') fail("IN needs a list in parentheses: IN ('a', 'b')");
      const vs = [value()];
      while (toks[i]?.text === ',') {
        i++;
        vs.push(value());
      }
      if (toks[i++]?.text !== ')') fail('the IN list is not closed');
      out.push({ column: col, op: 'in', values: vs });
    } else if (ow === 'LIKE') {
      const v = value();
      if (typeof v !== 'string' || !/^[^%_]*%$/.test(v))
        fail(`LIKE takes a prefix pattern 'text%' (no other % or _), got ${JSON.stringify(v)}`);
      out.push({ column: col, op: 'prefix', values: [(v as string).slice(0, -1)] });
    } else if (ow === 'IS') {
      const n = toks[i]?.text.toUpperCase() === 'NOT' ? (i++, true) : false;
      if (toks[i++]?.text.toUpperCase() !== 'NULL') fail('IS must be followed by NULL or NOT NULL');
      out.push({ column: col, op: n ? 'notnull' : 'null', values: [] });
    } else {
      fail(`unknown operator '${o.text}'`);
    }
    const last = out[out.length - 1]!;
    for (const v of last.values) {
      if (typeof v !== (FILTER_COLUMNS[col] === 'string' ? 'string' : 'number'))
        fail(`${col} holds ${FILTER_COLUMNS[col]}s, got ${JSON.stringify(v)}`);
    }
    if (i >= toks.length) return out;
    if (toks[i++]!.text.toUpperCase() !== 'AND')
      fail(`AND was expected at '${toks[i - 1]!.text}' (OR is not supported)`);
  }
}

interface Tok {
  kind: 'word' | 'str' | 'num' | 'op' | 'punct';
  text: string;
}

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === "'") {
      let v = '';
      i++;
      for (;;) {
        if (i >= s.length)
          throw new Error(
            `--where ${JSON.stringify(s)}: a string is not closed (strings are in single quotes, '' for a quote)`,
          );
        if (s[i] === "'") {
          if (s[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += s[i++];
      }
      out.push({ kind: 'str', text: v });
      continue;
    }
    const op = OPS.find((o) => s.startsWith(o, i));
    if (op) {
      out.push({ kind: 'op', text: op });
      i += op.length;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      out.push({ kind: 'punct', text: ch });
      i++;
      continue;
    }
    const num = /^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i.exec(s.slice(i));
    if (num) {
      out.push({ kind: 'num', text: num[0] });
      i += num[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i));
    if (word) {
      out.push({ kind: 'word', text: word[0] });
      i += word[0].length;
      continue;
    }
    throw new Error(`--where ${JSON.stringify(s)}: unexpected character '${ch}' at ${i}`);
  }
  return out;
}

/** The conditions a filter stands for (label and pathPrefix included), validated. */
export function conditionsOf(f: Filter = {}): Condition[] {
  const out: Condition[] = [];
  if (f.label !== undefined) {
    const ls = Array.isArray(f.label) ? f.label : [f.label];
    if (!ls.length || ls.some((l) => typeof l !== 'string'))
      throw new Error('filter.label must be a string or a non-empty list of strings');
    out.push({ column: 'label', op: 'in', values: ls });
  }
  if (f.pathPrefix !== undefined) {
    if (typeof f.pathPrefix !== 'string') throw new Error('filter.pathPrefix must be a string');
    out.push({ column: 'path', op: 'prefix', values: [f.pathPrefix] });
  }
  for (const c of f.where ?? []) {
    if (!(c.column in FILTER_COLUMNS)) throw new Error(`filter: unknown column '${String(c.column)}'`);
    out.push(c);
  }
  return out;
}

const lit = (v: string | number): string => {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`filter: ${v} is not a finite number`);
    return String(v);
  }
  return `'${v.replace(/'/g, "''")}'`;
};

/** Lance SQL for a filter, or undefined when it keeps every row. Columns come from a fixed list; values are escaped literals. */
export function toSql(f: Filter = {}): string | undefined {
  const parts = conditionsOf(f).map((c) => {
    const col = c.column;
    switch (c.op) {
      case 'in':
        return `${col} IN (${c.values.map(lit).join(', ')})`;
      case 'prefix':
        return `starts_with(${col}, ${lit(c.values[0]!)})`;
      case 'null':
        return `${col} IS NULL`;
      case 'notnull':
        return `${col} IS NOT NULL`;
      default:
        return `${col} ${c.op} ${lit(c.values[0]!)}`;
    }
  });
  return parts.length ? parts.join(' AND ') : undefined;
}
