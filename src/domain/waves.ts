/**
 * Wave planner: the test ring, then the policy's waves (named groups or percentages), split into
 * batches. Deterministic: the same input always gives the same plan, in any process, so it is safe in
 * activities whose output is recorded and in workflow code. Pure.
 */
import { type DeploymentPolicy } from './policy';

export interface PlannedEndpoint {
  id: string;
  groups: string[];
}

export interface PlannedWave {
  /** 1-based, contiguous after empty waves are dropped. */
  index: number;
  name: string;
  endpointIds: string[];
  batches: string[][];
}

export interface WavePlan {
  test: { endpointIds: string[] };
  waves: PlannedWave[];
}

/** 53-bit string hash (cyrb53): stable across processes and platforms, no Node APIs. */
export function stableHash(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Ids in the planner's stable order: by hash, then by id. */
export function stableOrder(ids: string[]): string[] {
  const keyed = ids.map((id) => ({ id, h: stableHash(id) }));
  keyed.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return keyed.map((k) => k.id);
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const n = Math.max(1, Math.floor(size));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/**
 * Plans a cycle's rollout:
 * - the test ring is every endpoint in `policy.test.group` (none when the group is null); they are in
 *   no later wave;
 * - waves with `groups` take the remaining members of those groups (earlier such waves first);
 * - waves with `percent` split what is left, in stable hash order (adding one endpoint moves few);
 *   boundaries round up, so a small pilot still gets an endpoint;
 * - each wave is cut into batches of `batchSize`; no endpoint appears twice; empty waves are dropped.
 */
export function planWaves(
  endpoints: PlannedEndpoint[],
  policy: Pick<DeploymentPolicy, 'test' | 'waves' | 'batchSize'>,
): WavePlan {
  const unique = new Map<string, PlannedEndpoint>();
  for (const e of endpoints) if (!unique.has(e.id)) unique.set(e.id, e);
  const order = stableOrder([...unique.keys()]);

  const assigned = new Set<string>();
  const testGroup = policy.test.group;
  const testIds: string[] = [];
  if (testGroup) {
    for (const id of order) {
      if (unique.get(id)!.groups.includes(testGroup)) {
        testIds.push(id);
        assigned.add(id);
      }
    }
  }

  const members: string[][] = policy.waves.map(() => []);
  policy.waves.forEach((w, i) => {
    if (!w.groups || w.groups.length === 0) return;
    const wanted = new Set(w.groups);
    for (const id of order) {
      if (assigned.has(id)) continue;
      if (unique.get(id)!.groups.some((g) => wanted.has(g))) {
        members[i]!.push(id);
        assigned.add(id);
      }
    }
  });

  const rest = order.filter((id) => !assigned.has(id));
  const percentWaves = policy.waves
    .map((w, i) => ({ w, i }))
    .filter(({ w }) => (!w.groups || w.groups.length === 0) && (w.percent ?? 0) > 0);
  const totalPercent = percentWaves.reduce((s, { w }) => s + (w.percent ?? 0), 0);
  let cum = 0;
  let from = 0;
  percentWaves.forEach(({ w, i }, k) => {
    cum += w.percent ?? 0;
    const to =
      k === percentWaves.length - 1
        ? rest.length
        : Math.min(rest.length, Math.ceil((rest.length * cum) / totalPercent - 1e-9));
    members[i] = rest.slice(from, to);
    from = to;
  });

  const waves: PlannedWave[] = [];
  policy.waves.forEach((w, i) => {
    const ids = members[i]!;
    if (ids.length === 0) return;
    waves.push({ index: waves.length + 1, name: w.name, endpointIds: ids, batches: chunk(ids, policy.batchSize) });
  });
  return { test: { endpointIds: testIds }, waves };
}
