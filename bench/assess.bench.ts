/**
 * assess() over 100,000 endpoints × 200 patches with ~2M missing rows (each endpoint misses 20 patches).
 * Run: npm run bench:assess
 */
import { assess, DEFAULT_SLA, type EndpointFacts, type ExceptionFacts, type PatchFacts } from '../src/domain/risk';

const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 100_000);
const PATCHES = Number(process.env.BENCH_PATCHES ?? 200);
const PER_ENDPOINT = Number(process.env.BENCH_MISSING_PER_ENDPOINT ?? 20);
const SEVERITIES = ['critical', 'important', 'moderate', 'low', 'unspecified'] as const;
const EXPOSURES = ['internal', 'internal', 'internal', 'dmz', 'internet'] as const;

const endpoints: EndpointFacts[] = Array.from({ length: ENDPOINTS }, (_, i) => ({
  id: `ep-${i}`,
  hostname: `host-${i}.example.net`,
  criticality: (i % 4) + 1,
  exposure: EXPOSURES[i % EXPOSURES.length]!,
  groups: [`site-${i % 50}`, i % 7 === 0 ? 'servers' : 'workstations'],
}));
const patches: PatchFacts[] = Array.from({ length: PATCHES }, (_, j) => ({
  id: `KB${5000000 + j}`,
  title: `Update ${j}`,
  type: j % 10 === 0 ? 'definition' : 'security',
  severity: SEVERITIES[j % SEVERITIES.length]!,
  cvss: j % 3 === 0 ? 5 + (j % 50) / 10 : null,
  cves: [`CVE-2026-${10000 + j}`],
  knownExploited: j % 25 === 0,
  supersededBy: j % 40 === 1 ? `KB${5000000 + j + 1}` : null,
  vendor: 'Microsoft',
  product: 'Windows',
}));
const days = [
  '2026-11-01T00:00:00.000Z',
  '2026-11-08T00:00:00.000Z',
  '2026-11-15T00:00:00.000Z',
  '2026-11-22T00:00:00.000Z',
];
const missing: Array<{ endpointId: string; patchId: string; detectedAt: string }> = [];
for (let i = 0; i < ENDPOINTS; i++) {
  for (let k = 0; k < PER_ENDPOINT; k++) {
    const j = (i * 7 + k * 13) % PATCHES;
    missing.push({ endpointId: `ep-${i}`, patchId: patches[j]!.id, detectedAt: days[(i + k) % days.length]! });
  }
}
const exceptions: ExceptionFacts[] = [
  { code: 'EXC-1', patchId: patches[3]!.id, reason: 'vendor hotfix pending', expiresAt: '2027-01-10T00:00:00.000Z' },
  { code: 'EXC-2', groupName: 'site-7', reason: 'store freeze', expiresAt: '2027-01-10T00:00:00.000Z' },
  { code: 'EXC-3', endpointId: 'ep-42', reason: 'lab box', expiresAt: '2027-01-10T00:00:00.000Z' },
];

const runs = Number(process.env.BENCH_RUNS ?? 3);
const times: number[] = [];
let included = 0;
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  const result = assess({ patches, missing, endpoints, exceptions, sla: DEFAULT_SLA, now: '2026-11-27T10:00:00.000Z' });
  times.push(performance.now() - t0);
  included = result.patches.filter((p) => p.decision === 'include').length;
}
const best = Math.min(...times);
console.log(
  `assess: ${ENDPOINTS.toLocaleString('en')} endpoints × ${PATCHES} patches, ${missing.length.toLocaleString('en')} missing rows, ${included} patches included — ` +
    `best ${(best / 1000).toFixed(2)} s, runs ${times.map((t) => (t / 1000).toFixed(2)).join(' / ')} s (node ${process.version})`,
);
