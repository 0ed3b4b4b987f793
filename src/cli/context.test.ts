import { afterEach, describe, expect, it, vi } from 'vitest';
import { reportFatal } from './context';

afterEach(() => vi.restoreAllMocks());

describe('reportFatal', () => {
  it('prints the causes under a wrapped error (a driver\'s reason under drizzle\'s "Failed query")', () => {
    const printed: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void printed.push(a.join(' ')));
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => {
      throw new Error('exit');
    }) as never);
    const pg = new Error('operator does not exist: text = bigint');
    expect(() => reportFatal(new Error('Failed query: select 1', { cause: pg }))).toThrow('exit');
    expect(exit).toHaveBeenCalledWith(1);
    expect(printed[0]).toBe('error: Failed query: select 1\n  caused by: operator does not exist: text = bigint');
  });
});
