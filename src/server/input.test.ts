import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { nulPath, refuseNul } from './input';

describe('nulPath', () => {
  it.each([
    ['a string', 'a\u0000b', 'body'],
    ['a buffer', Buffer.from([1, 0, 2]), 'body'],
    ['a nested field', { a: { b: 'x\u0000' } }, 'body.a.b'],
    ['a clean object', { a: ['x', 1, null] }, null],
  ])('finds NUL in %s', (_what, value, expected) => {
    expect(nulPath(value, 'body')).toBe(expected);
  });

  it('passes a stream body through unread, even one whose buffered bytes hold NUL (a binary upload)', () => {
    const stream = new PassThrough();
    stream.write(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0]));
    expect(nulPath(stream, 'body')).toBeNull();
    expect(() => refuseNul(Readable.from([Buffer.alloc(4)]), 'body')).not.toThrow();
    expect(stream.readableLength).toBe(7); // nothing was consumed
  });
});
