/**
 * Charts for emails and PDF reports: SVG built by hand (no DOM, no browser), rasterised to PNG with
 * @resvg/resvg-js (prebuilt native binary shipped as an npm optional dependency; no install scripts).
 * Text needs a font: resvg loads the system fonts and prefers DejaVu Sans, then any sans-serif.
 * Shared by the email reports (integrations/email) and the dashboard's PDF reports.
 */
import { Resvg } from '@resvg/resvg-js';
import { niceTicks } from './ticks';
import { escapeHtml as esc } from '../shared/html-escape';

export interface ChartSpec {
  kind: 'bar' | 'stackedBar' | 'donut' | 'line';
  title: string;
  labels: string[];
  series: Array<{ name: string; values: number[]; color?: string }>;
  width?: number;
  height?: number;
  unit?: string;
}

const PALETTE = ['#2f6fde', '#2e9e5b', '#e0a100', '#d9453d', '#7b4fd6', '#1aa3b8', '#8a8f98', '#e86fb0'];
const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';
const TEXT = '#1f2328';
const MUTED = '#59636e';
const GRID = '#d8dee4';

export function renderChartSvg(spec: ChartSpec): string {
  validate(spec);
  const width = Math.round(spec.width ?? 640);
  const height = Math.round(spec.height ?? 320);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`,
    `<title>${esc(spec.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="${TEXT}">${esc(spec.title)}</text>`,
  );
  const legendY = height - 14;
  const body = { x: 56, y: 40, w: width - 56 - 20, h: height - 40 - 56 };
  if (spec.kind === 'donut') {
    parts.push(...donut(spec, width, height));
  } else {
    parts.push(...axesChart(spec, body));
    parts.push(
      ...legend(
        spec.series.map((s, i) => ({ name: s.name, color: colorOf(spec, i) })),
        width,
        legendY,
      ),
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export async function renderChartPng(spec: ChartSpec): Promise<Buffer> {
  const svg = renderChartSvg(spec);
  const resvg = new Resvg(svg, {
    background: '#ffffff',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return Buffer.from(resvg.render().asPng());
}

// ---------------------------------------------------------------- layouts

function axesChart(spec: ChartSpec, box: { x: number; y: number; w: number; h: number }): string[] {
  const out: string[] = [];
  const n = spec.labels.length;
  const stacked = spec.kind === 'stackedBar';
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (stacked)
      max = Math.max(
        max,
        spec.series.reduce((sum, s) => sum + Math.max(0, s.values[i] ?? 0), 0),
      );
    else for (const s of spec.series) max = Math.max(max, s.values[i] ?? 0);
  }
  const allWhole = spec.series.every((ser) => ser.values.every((v) => Number.isInteger(v)));
  const axis = niceTicks(max, { intervals: 5, integer: allWhole && spec.unit !== '%', percent: spec.unit === '%' });
  const top = axis.top;
  const yOf = (v: number) => box.y + box.h - (v / top) * box.h;
  for (const v of axis.values) {
    const y = round(yOf(v));
    out.push(`<line x1="${box.x}" y1="${y}" x2="${box.x + box.w}" y2="${y}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(
      `<text x="${box.x - 6}" y="${y + 4}" text-anchor="end" font-size="11" fill="${MUTED}">${esc(withUnit(v.toFixed(axis.decimals), spec.unit))}</text>`,
    );
  }
  out.push(
    `<line x1="${box.x}" y1="${box.y + box.h}" x2="${box.x + box.w}" y2="${box.y + box.h}" stroke="${MUTED}" stroke-width="1"/>`,
  );
  if (n === 0) return out;
  const slot = box.w / n;
  const labelEvery = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(box.w / 60))));
  for (let i = 0; i < n; i++) {
    if (i % labelEvery !== 0) continue;
    const cx = round(box.x + slot * i + slot / 2);
    out.push(
      `<text x="${cx}" y="${box.y + box.h + 16}" text-anchor="middle" font-size="11" fill="${MUTED}">${esc(truncate(spec.labels[i] ?? '', 14))}</text>`,
    );
  }
  if (spec.kind === 'line') {
    spec.series.forEach((s, si) => {
      const color = colorOf(spec, si);
      const pts = s.values.slice(0, n).map((v, i) => `${round(box.x + slot * i + slot / 2)},${round(yOf(v))}`);
      if (pts.length > 1)
        out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2.5"/>`);
      for (const p of pts) {
        const [x, y] = p.split(',');
        out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
      }
    });
    return out;
  }
  const pad = slot * 0.15;
  for (let i = 0; i < n; i++) {
    const x0 = box.x + slot * i + pad;
    const w = slot - pad * 2;
    if (stacked) {
      let acc = 0;
      spec.series.forEach((s, si) => {
        const v = Math.max(0, s.values[i] ?? 0);
        if (v === 0) return;
        const y1 = yOf(acc + v);
        const y0 = yOf(acc);
        out.push(
          rect(x0, y1, w, y0 - y1, colorOf(spec, si), `${s.name} ${spec.labels[i]}: ${formatValue(v, spec.unit)}`),
        );
        acc += v;
      });
    } else {
      const bw = w / Math.max(1, spec.series.length);
      spec.series.forEach((s, si) => {
        const v = Math.max(0, s.values[i] ?? 0);
        const y = yOf(v);
        out.push(
          rect(
            x0 + bw * si,
            y,
            bw,
            box.y + box.h - y,
            colorOf(spec, si),
            `${s.name} ${spec.labels[i]}: ${formatValue(v, spec.unit)}`,
          ),
        );
      });
    }
  }
  return out;
}

function donut(spec: ChartSpec, width: number, height: number): string[] {
  const out: string[] = [];
  // A donut shows one series across the labels.
  const values = (spec.series[0]?.values ?? []).map((v) => Math.max(0, v));
  const total = values.reduce((a, b) => a + b, 0);
  const legendW = 200;
  const cx = (width - legendW) / 2 + 10;
  const cy = 40 + (height - 60) / 2;
  const r = Math.max(10, Math.min(width - legendW, height - 60) / 2 - 6);
  const inner = r * 0.58;
  const colors = spec.labels.map((_, i) =>
    spec.series[i]?.color && spec.series.length === spec.labels.length
      ? spec.series[i]!.color!
      : PALETTE[i % PALETTE.length]!,
  );
  if (total === 0) {
    out.push(
      `<circle cx="${round(cx)}" cy="${round(cy)}" r="${round((r + inner) / 2)}" fill="none" stroke="${GRID}" stroke-width="${round(r - inner)}"/>`,
    );
  } else {
    let angle = -Math.PI / 2;
    values.forEach((v, i) => {
      if (v === 0) return;
      const sweep = (v / total) * Math.PI * 2;
      if (sweep >= Math.PI * 2 - 1e-9) {
        out.push(
          `<circle cx="${round(cx)}" cy="${round(cy)}" r="${round((r + inner) / 2)}" fill="none" stroke="${colors[i]}" stroke-width="${round(r - inner)}"/>`,
        );
      } else {
        out.push(
          `<path d="${arcPath(cx, cy, r, inner, angle, angle + sweep)}" fill="${colors[i]}"><title>${esc(`${spec.labels[i]}: ${formatValue(v, spec.unit)}`)}</title></path>`,
        );
      }
      angle += sweep;
    });
  }
  out.push(
    `<text x="${round(cx)}" y="${round(cy + 6)}" text-anchor="middle" font-size="18" font-weight="bold" fill="${TEXT}">${esc(formatValue(total, spec.unit))}</text>`,
  );
  const lx = width - legendW + 10;
  spec.labels.forEach((label, i) => {
    const y = 56 + i * 22;
    if (y > height - 10) return;
    const pct = total === 0 ? 0 : Math.round(((values[i] ?? 0) / total) * 100);
    out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${colors[i]}"/>`);
    out.push(
      `<text x="${lx + 18}" y="${y}" font-size="12" fill="${TEXT}">${esc(`${truncate(label, 16)} ${formatValue(values[i] ?? 0, spec.unit)} (${pct}%)`)}</text>`,
    );
  });
  return out;
}

function legend(items: Array<{ name: string; color: string }>, width: number, y: number): string[] {
  if (items.length <= 1 && (items[0]?.name ?? '') === '') return [];
  const widths = items.map((it) => 22 + Math.min(20, it.name.length) * 7);
  const total = widths.reduce((a, b) => a + b, 0);
  let x = Math.max(8, (width - total) / 2);
  const out: string[] = [];
  items.forEach((it, i) => {
    out.push(`<rect x="${round(x)}" y="${y - 10}" width="12" height="12" fill="${it.color}"/>`);
    out.push(`<text x="${round(x + 16)}" y="${y}" font-size="12" fill="${TEXT}">${esc(truncate(it.name, 20))}</text>`);
    x += widths[i]!;
  });
  return out;
}

// ---------------------------------------------------------------- helpers

function validate(spec: ChartSpec): void {
  if (!['bar', 'stackedBar', 'donut', 'line'].includes(spec.kind))
    throw new Error(`chart kind "${String(spec.kind)}" is not one of bar, stackedBar, donut, line`);
  for (const s of spec.series) {
    if (s.values.some((v) => !Number.isFinite(v)))
      throw new Error(`chart "${spec.title}": series "${s.name}" has a value that is not a finite number`);
  }
  if ((spec.width ?? 640) < 100 || (spec.height ?? 320) < 80)
    throw new Error(`chart "${spec.title}": width must be ≥ 100 and height ≥ 80`);
}

function colorOf(spec: ChartSpec, i: number): string {
  return safeColor(spec.series[i]?.color) ?? PALETTE[i % PALETTE.length]!;
}

function safeColor(c: string | undefined): string | undefined {
  return c !== undefined && /^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|rgba?\([\d\s.,%]+\))$/.test(c) ? c : undefined;
}

function rect(x: number, y: number, w: number, h: number, fill: string, title: string): string {
  return `<rect x="${round(x)}" y="${round(y)}" width="${round(Math.max(0, w))}" height="${round(Math.max(0, h))}" fill="${fill}"><title>${esc(title)}</title></rect>`;
}

function arcPath(cx: number, cy: number, r: number, inner: number, a0: number, a1: number): string {
  const large = a1 - a0 > Math.PI ? 1 : 0;
  const p = (rad: number, a: number) => `${round(cx + rad * Math.cos(a))} ${round(cy + rad * Math.sin(a))}`;
  return `M ${p(r, a0)} A ${round(r)} ${round(r)} 0 ${large} 1 ${p(r, a1)} L ${p(inner, a1)} A ${round(inner)} ${round(inner)} 0 ${large} 0 ${p(inner, a0)} Z`;
}

function formatValue(v: number, unit: string | undefined): string {
  return withUnit(Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 1 : 0), unit);
}

function withUnit(n: string, unit: string | undefined): string {
  if (!unit) return n;
  return unit === '%' ? `${n}%` : `${n} ${unit}`;
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
