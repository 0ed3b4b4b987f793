import { describe, expect, it } from 'vitest';
import { parsePolicy, type DeploymentPolicy } from './policy';
import { chunk, planWaves, stableHash, stableOrder, type PlannedEndpoint, type WavePlan } from './waves';

type PlanPolicy = Pick<DeploymentPolicy, 'test' | 'waves' | 'batchSize'>;
const policy = (doc: Record<string, unknown>): PlanPolicy => parsePolicy({ name: 'p', ...doc });
const fleet = (n: number, groups: (i: number) => string[] = () => ['all']): PlannedEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ id: `ep-${String(i).padStart(5, '0')}`, groups: groups(i) }));
const everyone = (plan: WavePlan) => [...plan.test.endpointIds, ...plan.waves.flatMap((w) => w.endpointIds)];

describe('planWaves', () => {
  const cases: Array<{
    name: string;
    endpoints: PlannedEndpoint[];
    policy: PlanPolicy;
    test: number;
    waves: Array<[string, number]>;
  }> = [
    {
      name: 'default: test ring then 10% / 90%',
      endpoints: fleet(103, (i) => (i < 3 ? ['test'] : ['web'])),
      policy: policy({}),
      test: 3,
      waves: [
        ['pilot', 10],
        ['broad', 90],
      ],
    },
    {
      name: 'no test group members',
      endpoints: fleet(10),
      policy: policy({}),
      test: 0,
      waves: [
        ['pilot', 1],
        ['broad', 9],
      ],
    },
    {
      name: 'test ring disabled',
      endpoints: fleet(10, () => ['test']),
      policy: policy({ test: { group: null } }),
      test: 0,
      waves: [
        ['pilot', 1],
        ['broad', 9],
      ],
    },
    {
      name: 'small pilot still gets one endpoint',
      endpoints: fleet(5),
      policy: policy({}),
      test: 0,
      waves: [
        ['pilot', 1],
        ['broad', 4],
      ],
    },
    {
      name: 'one endpoint: pilot only, empty broad wave dropped',
      endpoints: fleet(1),
      policy: policy({}),
      test: 0,
      waves: [['pilot', 1]],
    },
    { name: 'no endpoints', endpoints: [], policy: policy({}), test: 0, waves: [] },
    {
      name: 'named groups first, percent waves split the rest',
      endpoints: fleet(40, (i) => (i < 4 ? ['canary'] : i < 10 ? ['db', 'linux'] : ['web'])),
      policy: policy({
        test: { group: null },
        waves: [
          { name: 'canary', groups: ['canary'] },
          { name: 'half1', percent: 50 },
          { name: 'dbs', groups: ['db'] },
          { name: 'half2', percent: 50 },
        ],
      }),
      test: 0,
      waves: [
        ['canary', 4],
        ['half1', 15],
        ['dbs', 6],
        ['half2', 15],
      ],
    },
    {
      name: 'test members are in no later wave, even if in a named group',
      endpoints: fleet(6, (i) => (i < 2 ? ['test', 'db'] : ['db'])),
      policy: policy({ waves: [{ name: 'dbs', groups: ['db'] }] }),
      test: 2,
      waves: [['dbs', 4]],
    },
    {
      name: 'an endpoint in two named groups goes to the first wave only',
      endpoints: fleet(4, () => ['a', 'b']),
      policy: policy({
        test: { group: null },
        waves: [
          { name: 'wa', groups: ['a'] },
          { name: 'wb', groups: ['b'] },
        ],
      }),
      test: 0,
      waves: [['wa', 4]],
    },
    {
      name: 'endpoints outside the named groups are not deployed when there is no percent wave',
      endpoints: fleet(4, (i) => (i < 1 ? ['a'] : ['x'])),
      policy: policy({ test: { group: null }, waves: [{ name: 'wa', groups: ['a'] }] }),
      test: 0,
      waves: [['wa', 1]],
    },
  ];
  it.each(cases)('$name', ({ endpoints, policy: p, test, waves }) => {
    const plan = planWaves(endpoints, p);
    expect(plan.test.endpointIds).toHaveLength(test);
    expect(plan.waves.map((w) => [w.name, w.endpointIds.length])).toEqual(waves);
    expect(plan.waves.map((w) => w.index)).toEqual(waves.map((_, i) => i + 1));
    const all = everyone(plan);
    expect(new Set(all).size).toBe(all.length);
  });

  it('cuts waves into batches of batchSize', () => {
    const plan = planWaves(fleet(25), {
      ...policy({ test: { group: null }, waves: [{ name: 'all', percent: 100 }] }),
      batchSize: 10,
    });
    expect(plan.waves[0]!.batches.map((b) => b.length)).toEqual([10, 10, 5]);
    expect(plan.waves[0]!.batches.flat()).toEqual(plan.waves[0]!.endpointIds);
  });

  it('is deterministic and independent of input order', () => {
    const eps = fleet(500, (i) => (i % 50 === 0 ? ['test'] : ['web']));
    const a = planWaves(eps, policy({}));
    const b = planWaves([...eps].reverse(), policy({}));
    expect(b).toEqual(a);
  });

  it('ignores duplicate endpoints', () => {
    const eps = fleet(10);
    const plan = planWaves([...eps, ...eps], policy({}));
    expect(everyone(plan).sort()).toEqual(eps.map((e) => e.id).sort());
  });

  it('moves few endpoints when one is added', () => {
    const eps = fleet(1000);
    const p = policy({
      test: { group: null },
      waves: [
        { name: 'a', percent: 10 },
        { name: 'b', percent: 30 },
        { name: 'c', percent: 60 },
      ],
    });
    const before = planWaves(eps, p);
    const after = planWaves([...eps, { id: 'ep-new', groups: ['all'] }], p);
    const waveOf = (plan: WavePlan) =>
      new Map(plan.waves.flatMap((w) => w.endpointIds.map((id) => [id, w.name] as const)));
    const x = waveOf(before);
    const y = waveOf(after);
    const moved = [...x].filter(([id, w]) => y.get(id) !== w).length;
    expect(moved).toBeLessThanOrEqual(3);
  });

  it('spreads a percent wave over the fleet, not the first ids', () => {
    const plan = planWaves(fleet(1000), policy({ test: { group: null } }));
    const pilot = plan.waves[0]!.endpointIds.map((id) => Number(id.slice(3)));
    expect(pilot).toHaveLength(100);
    expect(pilot.filter((n) => n < 500).length).toBeGreaterThan(25);
    expect(pilot.filter((n) => n >= 500).length).toBeGreaterThan(25);
  });
});

describe('helpers', () => {
  it('stableHash is stable and spreads', () => {
    expect(stableHash('ep-1')).toBe(stableHash('ep-1'));
    expect(stableHash('ep-1')).not.toBe(stableHash('ep-2'));
    expect(Number.isSafeInteger(stableHash('x'.repeat(1000)))).toBe(true);
  });
  it('stableOrder sorts by hash then id', () => {
    const ids = ['b', 'a', 'c', 'd'];
    expect(stableOrder(ids)).toEqual(stableOrder([...ids].reverse()));
    expect(stableOrder(ids).sort()).toEqual(['a', 'b', 'c', 'd']);
  });
  it.each([
    [[1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]],
    [[], 3, []],
    [[1], 0, [[1]]],
  ] as Array<[number[], number, number[][]]>)('chunk %j by %d', (items, size, expected) => {
    expect(chunk(items, size)).toEqual(expected);
  });
});
