/**
 * The audit chain's hashes and the scan digests are over canonicalJson's text: the fast writer must give exactly the
 * bytes of the definition (JSON.stringify of a key-sorted copy) for any value, or every stored hash would stop
 * verifying. Property-based over fast-check's arbitrary values, with the shapes where the two could part: integer-like
 * keys (a new object enumerates them first), dates, undefined and functions, sparse arrays, boxed primitives,
 * objects with their own toJSON.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, canonicalJsonByCopy } from './audit';

const same = (v: unknown) => {
  let want: string | Error;
  try {
    want = canonicalJsonByCopy(v);
  } catch (e) {
    want = e as Error;
  }
  if (want instanceof Error) expect(() => canonicalJson(v)).toThrow(want.constructor as ErrorConstructor);
  else expect(canonicalJson(v)).toBe(want);
};

describe('canonicalJson writes the bytes of its definition', () => {
  it('for arbitrary values', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withDate: true,
          withBoxedValues: true,
          withSparseArray: true,
          withNullPrototype: true,
          withObjectString: true,
          withBigInt: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
          key: fc.oneof(
            fc.string(),
            fc.nat().map(String),
            fc.constantFrom('__proto__', '4294967294', '4294967295', '01', '-1'),
          ),
        }),
        (v) => same(v),
      ),
      { numRuns: 2000, seed: Number(process.env.FC_SEED ?? 20261207) },
    );
  });

  it('for the shapes where a writer could part from it', () => {
    same({ b: 1, a: { '10': 1, '9': 2, z: 3, '1': [undefined, () => 1, Symbol('s')] }, c: undefined });
    same({ '4294967295': 'not an index', '4294967294': 'an index', '0': 0, '007': 'a string key' });
    same([new Date(0), new Date(Number.NaN), new String('ab'), new Number(5), Number.NaN, -0, Infinity]);
    same({ toJSON: () => 'x', y: 1 });
    same(Object.assign([1, 2], { extra: 3 }));
    same('plain');
    same(undefined);
    same({ at: new Date('2026-12-07T05:00:00.000Z'), list: [{ patchId: 'P2', cves: ['CVE-1'] }, { patchId: 'P1' }] });
  });
});
