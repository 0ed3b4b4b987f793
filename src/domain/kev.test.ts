import { describe, expect, it } from 'vitest';
import { CodedError } from './errors';
import { KevIndex, markKnownExploited } from './kev';
import { assess, DEFAULT_SLA, type PatchFacts } from './risk';

const catalog = (vulnerabilities: unknown[]) => ({
  title: 'CISA Catalog of Known Exploited Vulnerabilities',
  catalogVersion: '2026.11.27',
  count: vulnerabilities.length,
  vulnerabilities,
});
const entry = (cveID: string, over: Record<string, unknown> = {}) => ({
  cveID,
  vendorProject: 'Acme',
  product: 'Widget',
  vulnerabilityName: 'Acme Widget RCE',
  dateAdded: '2026-01-02',
  shortDescription: '…',
  requiredAction: 'Apply updates.',
  dueDate: '2026-01-23',
  knownRansomwareCampaignUse: 'Unknown',
  notes: '',
  cwes: ['CWE-78'],
  ...over,
});

describe('KevIndex.fromCatalog', () => {
  it('indexes entries by CVE id, case-insensitively', () => {
    const k = KevIndex.fromCatalog(
      catalog([entry('CVE-2026-0001'), entry('CVE-2026-0002', { knownRansomwareCampaignUse: 'Known' })]),
    );
    expect(k.size).toBe(2);
    expect(k.catalogVersion).toBe('2026.11.27');
    expect(k.has('cve-2026-0001')).toBe(true);
    expect(k.has(' CVE-2026-0002 ')).toBe(true);
    expect(k.has('CVE-2026-9999')).toBe(false);
    expect(k.entry('CVE-2026-0002')).toEqual({
      cveID: 'CVE-2026-0002',
      vendorProject: 'Acme',
      product: 'Widget',
      vulnerabilityName: 'Acme Widget RCE',
      dateAdded: '2026-01-02',
      dueDate: '2026-01-23',
      knownRansomwareCampaignUse: 'Known',
    });
    expect(k.entry('CVE-2026-9999')).toBeUndefined();
  });

  it('skips malformed entries and counts them', () => {
    const k = KevIndex.fromCatalog(
      catalog([entry('CVE-2026-0001'), { vendorProject: 'no id' }, entry('not-a-cve'), 42]),
    );
    expect(k.size).toBe(1);
    expect(k.skipped).toBe(3);
  });

  it('lists which of a patch’s CVEs are known exploited', () => {
    const k = KevIndex.fromCatalog(catalog([entry('CVE-2026-0001'), entry('CVE-2026-0003')]));
    expect(k.knownExploited(['CVE-2026-0003', 'CVE-2026-0002', 'cve-2026-0003', 'CVE-2026-0001'])).toEqual([
      'CVE-2026-0003',
      'CVE-2026-0001',
    ]);
    expect(KevIndex.empty().knownExploited(['CVE-2026-0001'])).toEqual([]);
  });

  it.each([null, 'catalog', [], { vulnerabilities: 'x' }, { title: 'no list' }])(
    'refuses %j with a plain message',
    (doc) => {
      expect(() => KevIndex.fromCatalog(doc)).toThrow(CodedError);
      expect(() => KevIndex.fromCatalog(doc)).toThrow(/not a CISA KEV catalog/);
    },
  );
});

describe('markKnownExploited', () => {
  const k = KevIndex.fromCatalog(catalog([entry('CVE-2024-3400')]));
  const p = (id: string, cves: string[], knownExploited = false): PatchFacts => ({
    id,
    title: id,
    type: 'security',
    severity: 'critical',
    cvss: 10,
    cves,
    knownExploited,
    supersededBy: null,
    vendor: 'Palo Alto Networks',
    product: 'PAN-OS',
  });

  it('sets the flag from the catalog and keeps a vendor flag', () => {
    const [a, b, c] = markKnownExploited(
      [p('A', ['CVE-2024-0001', 'cve-2024-3400']), p('B', ['CVE-2024-0001']), p('C', [], true)],
      k,
    );
    expect(a).toMatchObject({ knownExploited: true, knownExploitedCves: ['CVE-2024-3400'] });
    expect(b).toMatchObject({ knownExploited: false, knownExploitedCves: [] });
    expect(c).toMatchObject({ knownExploited: true, knownExploitedCves: [] });
  });

  it('makes the reason name the exploited CVE', () => {
    const [a] = markKnownExploited([p('PAN-OS-h3', ['CVE-2024-0001', 'CVE-2024-3400'])], k);
    const r = assess({
      patches: [a!],
      missing: [{ endpointId: 'fw-1', patchId: 'PAN-OS-h3', detectedAt: '2026-11-20T00:00:00.000Z' }],
      endpoints: [{ id: 'fw-1', hostname: 'fw-1', criticality: 3, exposure: 'internet', groups: ['edge'] }],
      exceptions: [],
      sla: DEFAULT_SLA,
      now: '2026-11-27T00:00:00.000Z',
    });
    expect(r.patches[0]!.reason).toBe('P1: known exploited CVE-2024-3400, CVSS 10.0, internet-facing group');
  });
});
