import { createHash } from 'node:crypto';
import { asc, desc, gt, sql } from 'drizzle-orm';
import type { Db } from './client';
import { auditLog } from './schema/index';

export interface AuditEntryInput {
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  details?: Record<string, unknown>;
  at?: Date;
}

export interface AuditEntry extends Required<AuditEntryInput> {
  id: number;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** JSON with keys sorted at every depth, so the same value always hashes the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function auditHash(prevHash: string, e: Omit<AuditEntry, 'id' | 'prevHash' | 'hash'>): string {
  const body = canonicalJson({
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    details: e.details,
  });
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex');
}

const AUDIT_LOCK_KEY = 0x70617463; // 'patc'

/**
 * Appends one entry to the hash chain. Appends are serialised by a transaction-scoped advisory lock,
 * so two writers never chain onto the same predecessor.
 */
export async function appendAudit(db: Db, input: AuditEntryInput): Promise<AuditEntry> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const [last] = await tx.select({ hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.id)).limit(1);
    const prevHash = last?.hash ?? GENESIS_HASH;
    // Millisecond precision: the column stores milliseconds, so the hash is over what is stored.
    const at = new Date(Math.floor((input.at ?? new Date()).getTime()));
    const entry = {
      at,
      actor: input.actor,
      action: input.action,
      subjectType: input.subjectType,
      subjectId: input.subjectId,
      details: input.details ?? {},
    };
    const hash = auditHash(prevHash, entry);
    const [row] = await tx
      .insert(auditLog)
      .values({ ...entry, prevHash, hash })
      .returning({ id: auditLog.id });
    return { id: row!.id, ...entry, prevHash, hash };
  });
}

export type AuditVerification =
  | { ok: true; rows: number }
  | { ok: false; rows: number; brokenId: number; reason: string };

/** Walks the chain in id order and names the first row whose hash or link does not hold. */
export async function verifyAuditChain(db: Db, batchSize = 5000): Promise<AuditVerification> {
  let prevHash = GENESIS_HASH;
  let lastId = 0;
  let rows = 0;
  for (;;) {
    const batch = await db.select().from(auditLog).where(gt(auditLog.id, lastId)).orderBy(asc(auditLog.id)).limit(batchSize);
    if (batch.length === 0) return { ok: true, rows };
    for (const row of batch) {
      rows += 1;
      if (row.prevHash !== prevHash) {
        return { ok: false, rows, brokenId: row.id, reason: `row ${row.id} links to ${row.prevHash.slice(0, 12)}… but the previous row hashes to ${prevHash.slice(0, 12)}… (a row before it was removed or altered)` };
      }
      const expected = auditHash(prevHash, {
        at: row.at,
        actor: row.actor,
        action: row.action,
        subjectType: row.subjectType,
        subjectId: row.subjectId,
        details: row.details,
      });
      if (expected !== row.hash) {
        return { ok: false, rows, brokenId: row.id, reason: `row ${row.id}'s content does not match its hash (it was altered after it was written)` };
      }
      prevHash = row.hash;
      lastId = row.id;
    }
  }
}
