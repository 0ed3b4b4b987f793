import { describe, expect, it } from 'vitest';
import { defaultMaxHeldPolls, isOverload, overloadReason, readOpenFileLimit } from './agent-gateway';

describe('isOverload', () => {
  const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: select 1'), { cause });
  it.each([
    ['node-postgres pool timeout', new Error('timeout exceeded when trying to connect'), true],
    ['the pool timeout wrapped by drizzle', wrapped(new Error('timeout exceeded when trying to connect')), true],
    [
      'too many connections (53300)',
      Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
      true,
    ],
    ['deadlock (40P01)', wrapped(Object.assign(new Error('deadlock detected'), { code: '40P01' })), true],
    [
      'statement timeout (57014)',
      Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
      true,
    ],
    [
      'database restarted (57P01)',
      wrapped(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })),
      true,
    ],
    ['database down', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), true],
    ['a unique violation (23505)', wrapped(Object.assign(new Error('duplicate key'), { code: '23505' })), false],
    ['a programming error', new TypeError('cannot read properties of undefined'), false],
    ['not an error', 'boom', false],
  ])('%s → %s', (_name, e, expected) => {
    expect(isOverload(e)).toBe(expected);
  });

  it('names the reason the summary warning counts: the code, else the message that matched', () => {
    expect(overloadReason(wrapped(Object.assign(new Error('deadlock detected'), { code: '40P01' })))).toBe('40P01');
    expect(overloadReason(wrapped(new Error('timeout exceeded when trying to connect')))).toBe(
      'timeout exceeded when trying to connect',
    );
    expect(overloadReason(new TypeError('x'))).toBeNull();
  });
});

describe('held-poll cap from the open-file limit', () => {
  it.each([
    [20_000, 9488],
    [1_048_576, 523_776],
    [1024, 16],
    [null, 4096],
    [Infinity, 4096],
  ])('ulimit -n %s → %s held polls', (limit, expected) => {
    expect(defaultMaxHeldPolls(limit)).toBe(expected);
  });

  it('reads the soft limit from /proc/self/limits', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units',
      'Max processes             63382                63382                processes',
      'Max open files            20000                524288               files',
    ].join('\n');
    expect(readOpenFileLimit(text)).toBe(20_000);
    expect(readOpenFileLimit('Max open files            unlimited            unlimited            files')).toBe(
      Infinity,
    );
    expect(readOpenFileLimit('nothing here')).toBeNull();
  });
});
