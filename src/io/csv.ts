// CSV as the commands write it (RFC 4180): a field is quoted only when it holds a quote, a comma or a line break.

/** A CSV cell: strings and numbers as written, null as an empty field. */
export type CsvValue = string | number | null;

/** One field, quoted (inner quotes doubled) when it holds `"`, `,`, `\n` or `\r`; null is the empty field. */
export function csvField(v: CsvValue): string {
  const s = v === null ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A whole CSV text: the header line, then a line a row, each line ended by `\n`. */
export function csvText(header: readonly string[], rows: Iterable<readonly CsvValue[]>): string {
  const lines = [header.map(csvField).join(',')];
  for (const r of rows) lines.push(r.map(csvField).join(','));
  return `${lines.join('\n')}\n`;
}
