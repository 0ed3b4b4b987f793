/**
 * Round axis ticks ("nice numbers", after Heckbert, Graphics Gems 1990): the step is 1, 2 or 5 times a
 * power of ten, so an axis reads 0, 20, 40 … or 0, 0.5, 1 …, never 0.25 or 0.3. Counts get whole steps;
 * percentages get a 0–100 axis unless a value goes over 100.
 */

export interface AxisTicks {
  /** The top of the axis (the last tick). */
  top: number;
  step: number;
  /** From 0 to top inclusive, in steps of `step`, each rounded to the step's decimals. */
  values: number[];
  /** Digits after the decimal point that show every tick exactly (0 for whole steps). */
  decimals: number;
}

export interface TickOptions {
  /** About how many intervals the axis should have (default 5). */
  intervals?: number;
  /** Whole numbers only (counts): no step below 1. */
  integer?: boolean;
  /** Percentages: the axis runs 0–100 unless the largest value is over 100. */
  percent?: boolean;
}

/** The step of 1, 2 or 5 × 10^k closest above `rough`. */
export function niceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough))
    throw new Error(`a tick step must be a positive finite number, not ${rough}`);
  const exp = Math.floor(Math.log10(rough));
  const base = 10 ** exp;
  const fraction = rough / base;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * base;
}

/** Ticks for an axis from 0 to at least `max`. A max of 0 or less (an empty chart) gets the smallest sensible axis. */
export function niceTicks(max: number, options: TickOptions = {}): AxisTicks {
  const intervals = Math.max(1, Math.floor(options.intervals ?? 5));
  let span = Number.isFinite(max) && max > 0 ? max : 1;
  if (options.percent && span <= 100) span = 100;
  let step = niceStep(span / intervals);
  if (options.integer && step < 1) step = 1;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const count = Math.ceil(span / step - 1e-9);
  const values = Array.from({ length: count + 1 }, (_, i) => Number((i * step).toFixed(decimals)));
  return { top: values[values.length - 1]!, step, values, decimals };
}
