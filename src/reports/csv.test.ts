import { describe, expect, it } from 'vitest';
import { csvCell, toCsv } from './csv';

describe('csv', () => {
  it.each([
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['=HYPERLINK("http://x")', `"'=HYPERLINK(""http://x"")"`],
    ['+1', "'+1"],
    ['@sum', "'@sum"],
    [null, ''],
    [undefined, ''],
    [-3, '-3'],
    [true, 'true'],
    [{ a: 1 }, '"{""a"":1}"'],
  ] as Array<[unknown, string]>)('%j → %s', (v, out) => {
    expect(csvCell(v)).toBe(out);
  });

  it('ends every line with CRLF', () => {
    expect(
      toCsv(
        ['a', 'b'],
        [
          [1, 'x'],
          [2, 'y,z'],
        ],
      ),
    ).toBe('a,b\r\n1,x\r\n2,"y,z"\r\n');
  });
});
