/** RFC 4180 CSV, with cells that a spreadsheet would run as a formula (=, +, -, @ at the start) defused. */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s =
    v instanceof Date
      ? v.toISOString()
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v as string | number | boolean);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(cells: unknown[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

export function toCsv(headers: string[], rows: unknown[][]): string {
  return csvLine(headers) + rows.map(csvLine).join('');
}
