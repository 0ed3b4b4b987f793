import { describe, expect, it } from 'vitest';
import { renderChartPng, renderChartSvg, type ChartSpec } from './charts';

const base = (kind: ChartSpec['kind']): ChartSpec => ({
  kind,
  title: `Compliance <${kind}>`,
  labels: ['Wave 1', 'Wave 2', 'Wave 3'],
  series: [
    { name: 'succeeded', values: [10, 20, 5], color: '#2e9e5b' },
    { name: 'failed', values: [1, 0, 3] },
  ],
  unit: '%',
});

describe('renderChartSvg', () => {
  it.each(['bar', 'stackedBar', 'line', 'donut'] as const)(
    'renders a %s chart as escaped SVG with its title and labels',
    (kind) => {
      const svg = renderChartSvg(base(kind));
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg).toContain(`Compliance &lt;${kind}&gt;`);
      expect(svg).not.toContain(`<${kind}>`);
      expect(svg).toContain('Wave 2');
    },
  );

  it('draws one bar per value per series, sized by value', () => {
    const svg = renderChartSvg({ ...base('bar'), series: [{ name: 'a', values: [10, 20, 5] }] });
    const heights = [
      ...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill="#2f6fde"><title>/g),
    ].map((m) => Number(m[1]));
    expect(heights).toHaveLength(3);
    expect(heights[1]).toBeCloseTo(heights[0]! * 2, 0);
    expect(heights[2]).toBeCloseTo(heights[0]! / 2, 0);
  });

  it('stacks segments so a column reaches the sum of its series', () => {
    const svg = renderChartSvg({
      kind: 'stackedBar',
      title: 't',
      labels: ['x'],
      series: [
        { name: 'a', values: [30] },
        { name: 'b', values: [10] },
      ],
    });
    const titles = [...svg.matchAll(/<title>([^<]+)<\/title><\/rect>/g)].map((m) => m[1]);
    expect(titles).toEqual(['a x: 30', 'b x: 10']);
  });

  it('shows donut shares as percentages', () => {
    const svg = renderChartSvg({
      kind: 'donut',
      title: 'Severity',
      labels: ['critical', 'high'],
      series: [{ name: 'n', values: [1, 3] }],
    });
    expect(svg).toContain('critical 1 (25%)');
    expect(svg).toContain('high 3 (75%)');
  });

  it('labels the axis of an empty percentage chart 0% … 100% in round steps', () => {
    const svg = renderChartSvg({
      kind: 'bar',
      title: 'Compliance by group',
      labels: [],
      series: [{ name: 'compliant %', values: [] }],
      unit: '%',
    });
    const ticks = [...svg.matchAll(/text-anchor="end" font-size="11" fill="#59636e">([^<]+)</g)].map((m) => m[1]);
    expect(ticks).toEqual(['0%', '20%', '40%', '60%', '80%', '100%']);
  });

  it('counts get whole-number ticks', () => {
    const svg = renderChartSvg({
      kind: 'stackedBar',
      title: 'Overdue',
      labels: ['a', 'b'],
      series: [{ name: 'n', values: [1, 3] }],
    });
    const ticks = [...svg.matchAll(/text-anchor="end" font-size="11" fill="#59636e">([^<]+)</g)].map((m) => m[1]);
    expect(ticks).toEqual(['0', '1', '2', '3']);
  });

  it('rejects values that are not finite numbers', () => {
    expect(() =>
      renderChartSvg({ kind: 'bar', title: 'bad', labels: ['a'], series: [{ name: 's', values: [Number.NaN] }] }),
    ).toThrow(/finite/);
  });

  it('ignores a colour that could break out of the attribute', () => {
    const svg = renderChartSvg({
      kind: 'bar',
      title: 't',
      labels: ['a'],
      series: [{ name: 's', values: [1], color: '"/><script>' }],
    });
    expect(svg).not.toContain('<script>');
  });
});

describe('renderChartPng', () => {
  it('rasterises to a PNG of the requested size', async () => {
    const png = await renderChartPng({ ...base('stackedBar'), width: 400, height: 200 });
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(400);
    expect(png.readUInt32BE(20)).toBe(200);
  });
});
