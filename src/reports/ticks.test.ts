import { describe, expect, it } from 'vitest';
import { niceStep, niceTicks } from './ticks';

describe('niceStep', () => {
  it.each([
    [0.03, 0.05],
    [0.2, 0.2],
    [0.25, 0.5],
    [0.3, 0.5],
    [1, 1],
    [1.2, 2],
    [3, 5],
    [7, 10],
    [16, 20],
    [25, 50],
    [120, 200],
  ])('rounds %s up to %s', (rough, step) => {
    expect(niceStep(rough)).toBeCloseTo(step, 10);
  });

  it('refuses a step that is not a positive number', () => {
    expect(() => niceStep(0)).toThrow(/positive/);
    expect(() => niceStep(Number.NaN)).toThrow(/positive/);
  });
});

describe('niceTicks', () => {
  it.each([
    { max: 100, options: {}, values: [0, 20, 40, 60, 80, 100] },
    { max: 87, options: {}, values: [0, 20, 40, 60, 80, 100] },
    { max: 7, options: {}, values: [0, 2, 4, 6, 8] },
    { max: 1, options: {}, values: [0, 0.2, 0.4, 0.6, 0.8, 1] },
    { max: 2.5, options: { intervals: 4 }, values: [0, 1, 2, 3] },
    { max: 1.5, options: { intervals: 3 }, values: [0, 0.5, 1, 1.5] },
    { max: 1340, options: {}, values: [0, 500, 1000, 1500] },
    { max: 3, options: { integer: true }, values: [0, 1, 2, 3] },
    { max: 0, options: { integer: true }, values: [0, 1] },
    { max: 0, options: {}, values: [0, 0.2, 0.4, 0.6, 0.8, 1] },
    { max: 0, options: { percent: true }, values: [0, 20, 40, 60, 80, 100] },
    { max: 42.5, options: { percent: true }, values: [0, 20, 40, 60, 80, 100] },
    { max: 130, options: { percent: true }, values: [0, 50, 100, 150] },
  ])('gives $values for a max of $max ($options)', ({ max, options, values }) => {
    const t = niceTicks(max, options);
    expect(t.values).toEqual(values);
    expect(t.top).toBe(values[values.length - 1]);
    expect(t.top).toBeGreaterThanOrEqual(max);
  });

  it('never gives a tick that is not a multiple of 1, 2 or 5 × 10^k (no 0.25, 0.3, 0.75)', () => {
    for (let max = 0.01; max < 5000; max *= 1.37) {
      const t = niceTicks(max);
      const mantissa = Number((t.step / 10 ** Math.floor(Math.log10(t.step))).toFixed(6));
      expect([1, 2, 5]).toContain(mantissa);
      for (const v of t.values) expect(Number(v.toFixed(t.decimals))).toBe(v);
      expect(t.values.length).toBeGreaterThanOrEqual(2);
      expect(t.values.length).toBeLessThanOrEqual(11);
    }
  });
});
