/**
 * The audit log: append-only, hash-chained, keyed and anchored outside the database.
 *
 * - Each row carries the hash of the previous one. Rows written since migration 0013 are keyed: their hash is
 *   HMAC-SHA256 under a key derived from SECRETS_KEY (never stored in the database), over the row's id, the
 *   previous hash and the row's content, so someone who can write the table (the database owner) cannot recompute
 *   a chain that verifies. Rows from before keying (`keyId` null) keep their plain SHA-256 chain and are reported
 *   as unkeyed; no unkeyed row may follow a keyed one.
 * - The application's database role may only INSERT and SELECT on the table (0013); triggers refuse UPDATE,
 *   DELETE and TRUNCATE even to the owner unless the owner disables them.
 * - A signed checkpoint file (audit-checkpoint.ts) records the head at intervals, so a cut tail, which leaves a
 *   chain that verifies, is detected too.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { asc, desc, eq, gt, sql } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import { CodedError, ErrorCode } from '../domain/errors';
import type { Db } from './client';
import { auditLog } from './schema/index';
import type { SecretBox } from './secret-box';

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
  keyId: string | null;
}

export const GENESIS_HASH = '0'.repeat(64);

// ---------------------------------------------------------------- keys

/** The keys of the audit chain and of its checkpoints, both derived from the secrets key; `id` names them. */
export interface AuditKeys {
  id: string;
  chain: Buffer;
  checkpoint: Buffer;
}

export function auditKeysFrom(box: SecretBox): AuditKeys {
  const chain = box.deriveKey('audit-chain:v1');
  return {
    id: createHash('sha256').update(chain).digest('hex').slice(0, 16),
    chain,
    checkpoint: box.deriveKey('audit-checkpoint:v1'),
  };
}

let processKeys: AuditKeys | undefined;

/** Loads the audit keys of this process (the composition root does it once, from the secrets key). */
export function useAuditKeys(keys: AuditKeys): void {
  processKeys = keys;
}

export function auditKeysLoaded(): boolean {
  return processKeys !== undefined;
}

export function currentAuditKeys(): AuditKeys {
  if (!processKeys) {
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      'the audit key is not loaded: this process cannot write or verify the audit log (a composition root must call useAuditKeys)',
    );
  }
  return processKeys;
}

// ---------------------------------------------------------------- hashing

/** JSON with keys sorted at every depth, so the same value always hashes the same. */
export function canonicalJson(value: unknown): string {
  try {
    return canonical(value) ?? (undefined as unknown as string);
  } catch (e) {
    if (e === OWN_TO_JSON) return canonicalJsonByCopy(value);
    throw e;
  }
}

/** Thrown by `canonical` at an object with its own `toJSON` (the copy keeps it, and JSON.stringify calls it). */
const OWN_TO_JSON = Symbol('own toJSON');

/**
 * The definition: JSON.stringify of the value with every object's keys sorted (a Date as its ISO string). The
 * audit chain's hashes and the scan digests are over this text, so it must never change;
 * `canonical` below writes the same bytes without building the sorted copy (a 200-patch scan result is thousands of
 * objects: the copy was a tenth of the gateway's CPU in bench:scan-ingest), and a property test holds the two equal.
 */
export function canonicalJsonByCopy(value: unknown): string {
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

/** An array index as JSON.stringify orders keys: such keys come first, in numeric order, then the rest as given. */
const isIndex = (k: string) => {
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && /^(0|[1-9][0-9]*)$/.test(k) && Number(k) < 4294967295;
};

/** Keys as JSON strings, kept: the same few dozen field names recur in every object of a scan result. */
const quotedKeys = new Map<string, string>();
function quoted(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    if (quotedKeys.size >= 10_000) quotedKeys.clear();
    q = JSON.stringify(k);
    quotedKeys.set(k, q);
  }
  return q;
}

function canonical(value: unknown): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint': // throws, as JSON.stringify does
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      return undefined; // undefined, a function, a symbol: left out of an object, null in an array
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + (canonical(value[i]) ?? 'null');
    return out + ']';
  }
  if (value instanceof Date) return JSON.stringify(value);
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  if (typeof o.toJSON === 'function' && keys.includes('toJSON')) throw OWN_TO_JSON;
  // The sorted copy was a new object: its integer-like keys enumerate first, in numeric order.
  const indices = keys.filter(isIndex);
  const ordered =
    indices.length === 0
      ? keys
      : [...indices.sort((a, b) => Number(a) - Number(b)), ...keys.filter((k) => !isIndex(k))];
  let out = '{';
  let first = true;
  for (const k of ordered) {
    const v = canonical(o[k]);
    if (v === undefined) continue;
    out += (first ? '' : ',') + quoted(k) + ':' + v;
    first = false;
  }
  return out + '}';
}

type AuditContent = Omit<AuditEntry, 'id' | 'prevHash' | 'hash' | 'keyId'>;

function contentJson(e: AuditContent): string {
  return canonicalJson({
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    details: e.details,
  });
}

/** The unkeyed hash of rows written before keying (plain SHA-256). */
export function auditHash(prevHash: string, e: AuditContent): string {
  return createHash('sha256').update(prevHash).update('\n').update(contentJson(e)).digest('hex');
}

/** The keyed hash: HMAC-SHA256 over the row's id, the previous hash and the content. */
export function keyedAuditHash(key: Buffer, id: number, prevHash: string, e: AuditContent): string {
  return createHmac('sha256', key)
    .update(`patchops-audit:v1\n${id}\n${prevHash}\n`)
    .update(contentJson(e))
    .digest('hex');
}

// ---------------------------------------------------------------- appending

const AUDIT_LOCK_KEY = 0x70617463; // 'patc'

export interface AppendOptions {
  /** Attempts on a transient database failure (connection lost, deadlock, serialization), default 5. */
  attempts?: number;
  /** First backoff; doubles per attempt (200 ms → 200, 400, 800, 1600: about 3 s in all). */
  backoffMs?: number;
}

/**
 * Takes the audit chain's lock (transaction-scoped; `appendAudit` takes it again, harmlessly) at the start of a
 * transaction that will append to the chain *after* writing rows whose triggers lock shared counter rows
 * (endpoints, group membership, endpoint patches). A scan appends (catalog additions) before its endpoint's patch
 * rows, so it holds the chain lock while it waits for the counters: a writer taking the counters first and the
 * chain lock second waited for it in a cycle (an enrolment's new endpoint and a first scan: 40P01 in the 10k cycle
 * bench). Taking the chain lock first gives every such writer one order: chain, then counters.
 */
export async function lockAuditChain(db: Db): Promise<void> {
  await db.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
}

/**
 * Appends one entry to the keyed hash chain. Appends are serialised by a transaction-scoped advisory lock, so two
 * writers never chain onto the same predecessor. A transient failure is retried with bounded backoff; when every
 * attempt fails the error says the action was not recorded, so the caller fails visibly instead of dropping it.
 * Inside a caller's transaction there is one attempt: the caller's transaction decides.
 */
export async function appendAudit(db: Db, input: AuditEntryInput, options: AppendOptions = {}): Promise<AuditEntry> {
  const keys = currentAuditKeys();
  const once = () =>
    db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
      const [last] = await tx.select({ hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.id)).limit(1);
      const prevHash = last?.hash ?? GENESIS_HASH;
      // The id is part of the keyed hash, so it is taken first (under the lock ids rise in chain order).
      const next = await tx.execute<{ id: string }>(
        sql`select nextval(pg_get_serial_sequence('audit_log', 'id'))::text as id`,
      );
      const id = Number(next.rows[0]!.id);
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
      const hash = keyedAuditHash(keys.chain, id, prevHash, entry);
      await tx.insert(auditLog).values({ id, ...entry, prevHash, hash, keyId: keys.id });
      return { id, ...entry, prevHash, hash, keyId: keys.id };
    });
  if (db instanceof PgTransaction) return once();
  const attempts = Math.max(1, options.attempts ?? 5);
  const backoffMs = options.backoffMs ?? 200;
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await once();
    } catch (e) {
      if (!isTransient(e) || attempt >= attempts) {
        const why = rootMessage(e);
        throw new CodedError(
          ErrorCode.DependencyDown,
          `the audit log could not be written (${attempt} attempt${attempt === 1 ? '' : 's'} in ${((Date.now() - started) / 1000).toFixed(1)}s: ${why}), ` +
            `so "${input.action}" on ${input.subjectType} ${input.subjectId} was not recorded and must not count as done. ` +
            'Check that the database is up and the application role may INSERT into audit_log, then retry.',
          { cause: e, retryable: isTransient(e) },
        );
      }
      await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
    }
  }
}

/** PostgreSQL SQLSTATE classes and socket errors after which the same statement can succeed. */
function isTransient(e: unknown): boolean {
  for (let c: unknown = e, depth = 0; c && depth < 6; c = (c as { cause?: unknown }).cause, depth++) {
    const code = String((c as { code?: unknown }).code ?? '');
    if (/^(08|53|57P0)/.test(code) || ['40001', '40P01', '55P03'].includes(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code)) return true;
    const message = (c as Error).message ?? '';
    if (
      /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
        message,
      )
    )
      return true;
  }
  return false;
}

function rootMessage(e: unknown): string {
  let m = (e as Error)?.message ?? String(e);
  for (let c = (e as { cause?: unknown }).cause, depth = 0; c instanceof Error && depth < 6; c = c.cause, depth++)
    m = c.message || m;
  return m;
}

// ---------------------------------------------------------------- verifying

/** What a signed checkpoint anchors: the head of the chain at the time it was written. */
export interface AuditAnchor {
  headId: number;
  headHash: string;
  /** Rows up to and including the head. */
  rows: number;
  /** First keyed row; every row from it on must be keyed. Null while every row is unkeyed. */
  keyedFrom: number | null;
  writtenAt: string;
}

export interface AuditLogReport {
  ok: boolean;
  /** Rows verified (up to, not including, the first bad row). */
  rows: number;
  /** Of them, rows chained without a key (written before keying). */
  unkeyedRows: number;
  keyedFrom: number | null;
  head: { id: number; hash: string } | null;
  /** The first bad row and what is wrong with it (a missing row is named by its id). */
  problem?: { id: number; reason: string };
}

export type AuditVerification =
  { ok: true; rows: number } | { ok: false; rows: number; brokenId: number; reason: string };

/** Walks the chain in id order and names the first row whose hash or link does not hold. */
export async function verifyAuditChain(db: Db, batchSize = 5000): Promise<AuditVerification> {
  const r = await verifyAuditLog(db, { batchSize });
  return r.problem
    ? { ok: false, rows: r.rows + 1, brokenId: r.problem.id, reason: r.problem.reason }
    : { ok: true, rows: r.rows };
}

/**
 * Verifies the whole chain and, given the latest checkpoint, that the log still reaches it: a cut tail or a
 * rewritten head is named. With `from` = that checkpoint the walk starts at its head instead of at row 1
 * (the checkpoint writer's incremental check).
 */
export async function verifyAuditLog(
  db: Db,
  options: { anchor?: AuditAnchor | null; from?: AuditAnchor | null; keys?: AuditKeys; batchSize?: number } = {},
): Promise<AuditLogReport> {
  const keys = options.keys ?? currentAuditKeys();
  const anchor = options.anchor ?? options.from ?? null;
  const batchSize = options.batchSize ?? 5000;
  const state = { rows: 0, unkeyedRows: 0, keyedFrom: null as number | null, prevHash: GENESIS_HASH, lastId: 0 };
  const report = (problem?: { id: number; reason: string }): AuditLogReport => ({
    ok: !problem,
    rows: state.rows,
    unkeyedRows: state.unkeyedRows,
    keyedFrom: state.keyedFrom,
    head: state.lastId ? { id: state.lastId, hash: state.prevHash } : null,
    ...(problem ? { problem } : {}),
  });

  if (options.from) {
    const start = options.from;
    const [row] = await db.select({ hash: auditLog.hash }).from(auditLog).where(eq(auditLog.id, start.headId));
    if (!row) return report(await missingHead(db, start));
    if (row.hash !== start.headHash)
      return report({
        id: start.headId,
        reason: `row ${start.headId}'s hash is not the one the checkpoint of ${start.writtenAt} recorded: the log was rewritten up to it`,
      });
    Object.assign(state, {
      rows: start.rows,
      keyedFrom: start.keyedFrom,
      prevHash: start.headHash,
      lastId: start.headId,
      unkeyedRows: start.keyedFrom === null ? start.rows : 0,
    });
  }

  let anchorSeen = !anchor || state.lastId >= anchor.headId;
  for (;;) {
    const batch = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.id, state.lastId))
      .orderBy(asc(auditLog.id))
      .limit(batchSize);
    for (const row of batch) {
      if (anchor && !anchorSeen && row.id > anchor.headId) {
        return report({
          id: anchor.headId,
          reason: `row ${anchor.headId}, the head recorded by the checkpoint of ${anchor.writtenAt}, is missing: it was deleted`,
        });
      }
      if (row.prevHash !== state.prevHash) {
        const gap = row.id > state.lastId + 1 ? ` Rows ${state.lastId + 1}–${row.id - 1} are not in the log.` : '';
        return report({
          id: row.id,
          reason: `row ${row.id} links to ${row.prevHash.slice(0, 12)}… but the row before it (${state.lastId || 'genesis'}) hashes to ${state.prevHash.slice(0, 12)}…: a row before it was removed or altered.${gap}`,
        });
      }
      const content = {
        at: row.at,
        actor: row.actor,
        action: row.action,
        subjectType: row.subjectType,
        subjectId: row.subjectId,
        details: row.details,
      };
      // Keyed from the first keyed row seen, or from where the checkpoint says keying began (a chain rewritten unkeyed
      // from row 1 has no keyed row to go by).
      const anchorKeyedFrom = anchor?.keyedFrom ?? null;
      const mustBeKeyed =
        state.keyedFrom ?? (anchorKeyedFrom !== null && row.id >= anchorKeyedFrom ? anchorKeyedFrom : null);
      if (row.keyId === null) {
        if (mustBeKeyed !== null) {
          return report({
            id: row.id,
            reason: `row ${row.id} is not keyed, but every row from ${mustBeKeyed} on is: it was written or rewritten by someone without the audit key`,
          });
        }
        if (auditHash(state.prevHash, content) !== row.hash) {
          return report({
            id: row.id,
            reason: `row ${row.id}'s content does not match its hash (it was altered after it was written)`,
          });
        }
        state.unkeyedRows += 1;
      } else {
        if (row.keyId !== keys.id) {
          return report({
            id: row.id,
            reason: `row ${row.id} was keyed with audit key ${row.keyId}, but the key loaded here is ${keys.id}: verify with the SECRETS_KEY (or secrets.key file) this database was set up with, or the row was forged`,
          });
        }
        if (!safeEqualHex(keyedAuditHash(keys.chain, row.id, state.prevHash, content), row.hash)) {
          return report({
            id: row.id,
            reason: `row ${row.id}'s content does not match its keyed hash: it was altered, inserted or re-chained by someone without the audit key`,
          });
        }
        state.keyedFrom ??= row.id;
      }
      state.rows += 1;
      state.prevHash = row.hash;
      state.lastId = row.id;
      if (anchor && row.id === anchor.headId) {
        anchorSeen = true;
        if (row.hash !== anchor.headHash) {
          return report({
            id: row.id,
            reason: `row ${row.id}'s hash is not the one the checkpoint of ${anchor.writtenAt} recorded: the log was rewritten up to it`,
          });
        }
        if (state.rows !== anchor.rows) {
          return report({
            id: row.id,
            reason: `the checkpoint of ${anchor.writtenAt} counted ${anchor.rows} rows up to row ${row.id}, the log now has ${state.rows}: rows were removed or added before it`,
          });
        }
      }
    }
    if (batch.length < batchSize) break;
  }
  if (anchor && !anchorSeen) {
    return report({
      id: anchor.headId,
      reason: `the checkpoint of ${anchor.writtenAt} recorded row ${anchor.headId} as the head, but the log ends at row ${state.lastId || 'none'}: rows ${state.lastId + 1}–${anchor.headId} were cut from the tail`,
    });
  }
  return report();
}

async function missingHead(db: Db, from: AuditAnchor): Promise<{ id: number; reason: string }> {
  const [last] = await db.select({ id: auditLog.id }).from(auditLog).orderBy(desc(auditLog.id)).limit(1);
  if (!last || last.id < from.headId) {
    return {
      id: from.headId,
      reason: `the checkpoint of ${from.writtenAt} recorded row ${from.headId} as the head, but the log ends at row ${last?.id ?? 'none'}: rows were cut from the tail`,
    };
  }
  return {
    id: from.headId,
    reason: `row ${from.headId}, the head recorded by the checkpoint of ${from.writtenAt}, is missing: it was deleted`,
  };
}

function safeEqualHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
