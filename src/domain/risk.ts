/**
 * Risk and priority: a score from severity, CVSS, known-exploited, endpoint criticality and exposure;
 * SLA due dates; and assessment of a cycle's missing patches with a plain-words reason per decision.
 * Pure; safe in workflow code.
 */
import { resolveSupersedence, type PatchType, type Severity } from './patch';
import { type PolicyFilters } from './policy';

/** Days from detection to the remediation deadline, per severity; known-exploited has its own clock. */
export interface SlaPolicy {
  criticalDays: number;
  importantDays: number;
  moderateDays: number;
  lowDays: number;
  unspecifiedDays: number;
  knownExploitedDays: number;
}

export const DEFAULT_SLA: SlaPolicy = {
  criticalDays: 14,
  importantDays: 30,
  moderateDays: 60,
  lowDays: 90,
  unspecifiedDays: 90,
  knownExploitedDays: 7,
};

export interface PatchFacts {
  id: string;
  title: string;
  type: PatchType;
  severity: Severity;
  cvss: number | null;
  cves: string[];
  knownExploited: boolean;
  supersededBy: string | null;
  vendor: string;
  product: string;
  releasedAt?: string | null;
}

export interface EndpointFacts {
  id: string;
  hostname: string;
  /** 1 (low) .. 4 (business critical). */
  criticality: number;
  exposure: 'internal' | 'dmz' | 'internet';
  groups: string[];
}

export interface ExceptionFacts {
  code: string;
  patchId?: string | null;
  endpointId?: string | null;
  groupName?: string | null;
  reason: string;
  expiresAt: string;
}

export type Priority = 'P1' | 'P2' | 'P3' | 'P4';

export interface AssessInput {
  patches: PatchFacts[];
  missing: Array<{ endpointId: string; patchId: string; detectedAt: string }>;
  endpoints: EndpointFacts[];
  exceptions: ExceptionFacts[];
  sla: SlaPolicy;
  now: string;
  filters?: PolicyFilters;
}

export interface AssessedPatch {
  patchId: string;
  decision: 'include' | 'skipped' | 'dropped';
  priority: Priority;
  /** Max over the endpoints missing it. */
  riskScore: number;
  slaDue: string;
  /** Endpoints the patch goes to. */
  endpointIds: string[];
  /** Endpoints left out by an exception. */
  skippedEndpointIds: string[];
  reason: string;
}

const SEVERITY_POINTS: Record<Severity, number> = { critical: 50, important: 38, moderate: 24, low: 10, unspecified: 15 };
const EXPOSURE_POINTS: Record<EndpointFacts['exposure'], number> = { internal: 0, dmz: 6, internet: 12 };
const DAY_MS = 86_400_000;

/**
 * 0–100: severity or CVSS (whichever is higher, up to 50), known-exploited (+20), endpoint criticality
 * 1..4 (0–18) and exposure (internal 0, DMZ 6, internet 12). Rounded to a whole number.
 */
export function riskScore(p: PatchFacts, e: EndpointFacts): number {
  const cvssPoints = p.cvss !== null && Number.isFinite(p.cvss) ? Math.min(10, Math.max(0, p.cvss)) * 5 : 0;
  const base = Math.max(SEVERITY_POINTS[p.severity] ?? 15, cvssPoints);
  const crit = Math.min(4, Math.max(1, Number.isFinite(e.criticality) ? e.criticality : 2));
  const score = base + (p.knownExploited ? 20 : 0) + ((crit - 1) / 3) * 18 + (EXPOSURE_POINTS[e.exposure] ?? 0);
  return Math.round(Math.min(100, Math.max(0, score)));
}

/** P1 for anything known exploited or scoring 75+; P2 from 50; P3 from 30; else P4. */
export function priorityOf(score: number, knownExploited: boolean): Priority {
  if (knownExploited || score >= 75) return 'P1';
  if (score >= 50) return 'P2';
  if (score >= 30) return 'P3';
  return 'P4';
}

export function slaDays(p: Pick<PatchFacts, 'severity' | 'knownExploited'>, sla: SlaPolicy): number {
  const bySeverity: Record<Severity, number> = {
    critical: sla.criticalDays,
    important: sla.importantDays,
    moderate: sla.moderateDays,
    low: sla.lowDays,
    unspecified: sla.unspecifiedDays,
  };
  const days = bySeverity[p.severity] ?? sla.unspecifiedDays;
  return p.knownExploited ? Math.min(days, sla.knownExploitedDays) : days;
}

/** Remediation deadline (ISO): detection plus the severity's days; known-exploited runs on its own, shorter clock. */
export function slaDue(p: Pick<PatchFacts, 'severity' | 'knownExploited'>, detectedAt: string, sla: SlaPolicy): string {
  const t = Date.parse(detectedAt);
  if (Number.isNaN(t)) throw new RangeError(`slaDue: "${detectedAt}" is not an ISO date-time`);
  return new Date(t + slaDays(p, sla) * DAY_MS).toISOString();
}

const UNKNOWN_ENDPOINT: Omit<EndpointFacts, 'id' | 'hostname'> = { criticality: 2, exposure: 'internal', groups: [] };
const DECISION_ORDER = { include: 0, skipped: 1, dropped: 2 } as const;

function day(iso: string): string {
  return iso.slice(0, 10);
}

function exceptionWords(list: ExceptionFacts[]): string {
  const uniq = [...new Map(list.map((x) => [x.code, x])).values()].sort((a, b) => (a.code < b.code ? -1 : 1));
  return `exception${uniq.length > 1 ? 's' : ''} ${uniq.map((x) => `${x.code} until ${day(x.expiresAt)}`).join(', ')}`;
}

function includeReason(priority: Priority, p: PatchFacts, worst: EndpointFacts | undefined): string {
  const parts: string[] = [];
  if (p.knownExploited) parts.push(`known exploited ${p.cves[0] ?? p.id}`);
  else parts.push(`${p.severity} severity${p.cves.length > 0 ? ` ${p.cves[0]}` : ''}`);
  if (p.cvss !== null && Number.isFinite(p.cvss)) parts.push(`CVSS ${p.cvss.toFixed(1)}`);
  if (worst?.exposure === 'internet') parts.push('internet-facing group');
  else if (worst?.exposure === 'dmz') parts.push('DMZ group');
  if (worst && worst.criticality >= 4) parts.push('business-critical endpoint');
  return `${priority}: ${parts.join(', ')}`;
}

function filterReason(p: PatchFacts, f: PolicyFilters | undefined): string | null {
  if (!f) return null;
  if (f.excludePatches?.includes(p.id)) return 'dropped: excluded by the policy';
  if (f.includePatches?.includes(p.id)) return null;
  if (f.types && f.types.length > 0 && !f.types.includes(p.type)) return `dropped: type ${p.type} is not in the policy's types (${f.types.join(', ')})`;
  if (f.severities && f.severities.length > 0 && !f.severities.includes(p.severity)) {
    return `dropped: severity ${p.severity} is not in the policy's severities (${f.severities.join(', ')})`;
  }
  const lower = (xs: string[]) => xs.map((x) => x.toLowerCase());
  if (f.vendors && f.vendors.length > 0 && !lower(f.vendors).includes(p.vendor.toLowerCase())) return `dropped: vendor ${p.vendor} is not in the policy's vendors`;
  if (f.products && f.products.length > 0 && !lower(f.products).includes(p.product.toLowerCase())) return `dropped: product ${p.product} is not in the policy's products`;
  return null;
}

/**
 * Assesses a cycle's missing patches: drops superseded patches whose successor is in the catalog and
 * patches the policy filters leave out, skips endpoints (or whole patches) under an unexpired exception
 * (patch-, endpoint- or group-level, or a pair), and scores and prioritises the rest. Every patch gets a
 * plain-words reason. Linear in the missing rows (maps, no nested scans): 2M rows in a few seconds.
 */
export function assess(input: AssessInput): { patches: AssessedPatch[]; reasons: string[] } {
  const now = Date.parse(input.now);
  const reasons: string[] = [];
  const catalog = new Map(input.patches.map((p) => [p.id, p]));
  const endpoints = new Map(input.endpoints.map((e) => [e.id, e]));

  // Supersedence: the furthest successor that is in the catalog (loops are ignored).
  const resolved = resolveSupersedence(input.patches);
  const successorOf = (id: string): string | null => {
    if (!resolved.has(id)) return null;
    let cur = catalog.get(id)?.supersededBy ?? null;
    let known: string | null = null;
    for (let steps = 0; cur && steps <= catalog.size; steps++) {
      if (catalog.has(cur)) known = cur;
      cur = catalog.get(cur)?.supersededBy ?? null;
    }
    return known;
  };

  // Exceptions, indexed.
  const active = input.exceptions.filter((x) => Date.parse(x.expiresAt) > now);
  const patchWide = new Map<string, ExceptionFacts[]>();
  const byEndpoint = new Map<string, ExceptionFacts[]>();
  const byGroup = new Map<string, ExceptionFacts[]>();
  const push = (m: Map<string, ExceptionFacts[]>, k: string, x: ExceptionFacts) => {
    const l = m.get(k);
    if (l) l.push(x);
    else m.set(k, [x]);
  };
  for (const x of active) {
    if (x.endpointId) push(byEndpoint, x.endpointId, x);
    else if (x.groupName) push(byGroup, x.groupName, x);
    else if (x.patchId) push(patchWide, x.patchId, x);
  }
  const hasGroupExceptions = byGroup.size > 0;
  const endpointException = (e: EndpointFacts, patchId: string): ExceptionFacts | undefined => {
    const own = byEndpoint.get(e.id);
    if (own) for (const x of own) if (!x.patchId || x.patchId === patchId) return x;
    if (hasGroupExceptions) {
      for (const g of e.groups) {
        const l = byGroup.get(g);
        if (l) for (const x of l) if (!x.patchId || x.patchId === patchId) return x;
      }
    }
    return undefined;
  };

  // Missing rows grouped by patch.
  const rows = new Map<string, Array<{ endpointId: string; detectedAt: string }>>();
  const unknownPatches = new Set<string>();
  for (const m of input.missing) {
    if (!catalog.has(m.patchId)) {
      unknownPatches.add(m.patchId);
      continue;
    }
    let l = rows.get(m.patchId);
    if (!l) rows.set(m.patchId, (l = []));
    l.push({ endpointId: m.endpointId, detectedAt: m.detectedAt });
  }
  if (unknownPatches.size > 0) {
    reasons.push(`ignored ${unknownPatches.size} patch id(s) missing from the catalog: ${[...unknownPatches].sort().slice(0, 10).join(', ')}${unknownPatches.size > 10 ? ', …' : ''}`);
  }

  const out: AssessedPatch[] = [];
  for (const [patchId, list] of rows) {
    const p = catalog.get(patchId)!;
    const successor = successorOf(patchId);
    const dropReason = successor ? `dropped: superseded by ${successor}` : filterReason(p, input.filters);
    const wide = patchWide.get(patchId);

    const included: string[] = [];
    const skipped: string[] = [];
    const usedExceptions: ExceptionFacts[] = [];
    let best = -1;
    let worst: EndpointFacts | undefined;
    let earliest = Infinity;
    let earliestAny = Infinity;
    const seen = new Set<string>();
    for (const r of list) {
      if (seen.has(r.endpointId)) continue;
      seen.add(r.endpointId);
      const e = endpoints.get(r.endpointId) ?? { id: r.endpointId, hostname: r.endpointId, ...UNKNOWN_ENDPOINT };
      const detected = Date.parse(r.detectedAt);
      if (detected < earliestAny) earliestAny = detected;
      if (!dropReason) {
        const x = wide?.[0] ?? endpointException(e, patchId);
        if (x) {
          skipped.push(e.id);
          if (!usedExceptions.includes(x)) usedExceptions.push(x);
          continue;
        }
      }
      included.push(e.id);
      if (detected < earliest) earliest = detected;
      const s = riskScore(p, e);
      if (s > best) {
        best = s;
        worst = e;
      }
    }
    if (!Number.isFinite(earliest)) earliest = Number.isFinite(earliestAny) ? earliestAny : now;
    if (best < 0) {
      // Every endpoint skipped: score over all of them, for the record.
      for (const id of seen) {
        const e = endpoints.get(id) ?? { id, hostname: id, ...UNKNOWN_ENDPOINT };
        const s = riskScore(p, e);
        if (s > best) {
          best = s;
          worst = e;
        }
      }
    }
    const priority = priorityOf(best, p.knownExploited);
    const due = slaDue(p, new Date(earliest).toISOString(), input.sla);
    let decision: AssessedPatch['decision'];
    let reason: string;
    if (dropReason) {
      decision = 'dropped';
      reason = dropReason;
    } else if (included.length === 0) {
      decision = 'skipped';
      reason = `skipped: ${exceptionWords(usedExceptions)}`;
    } else {
      decision = 'include';
      reason = includeReason(priority, p, worst);
      if (skipped.length > 0) reason += `; ${skipped.length} endpoint${skipped.length > 1 ? 's' : ''} skipped by ${exceptionWords(usedExceptions)}`;
    }
    out.push({
      patchId,
      decision,
      priority,
      riskScore: best,
      slaDue: due,
      endpointIds: decision === 'include' ? included : [],
      skippedEndpointIds: decision === 'dropped' ? [] : skipped,
      reason,
    });
  }
  const prio = (x: AssessedPatch) => Number(x.priority.slice(1));
  out.sort(
    (a, b) =>
      DECISION_ORDER[a.decision] - DECISION_ORDER[b.decision] ||
      prio(a) - prio(b) ||
      b.riskScore - a.riskScore ||
      (a.patchId < b.patchId ? -1 : a.patchId > b.patchId ? 1 : 0),
  );
  for (const a of out) reasons.push(`${a.patchId}: ${a.reason}`);
  return { patches: out, reasons };
}
