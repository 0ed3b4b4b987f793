/**
 * Signed checkpoints of the audit chain, kept outside the database (default `<data dir>/audit-checkpoint.json`).
 * A checkpoint records the head row's id and hash, the row count and where keying began, under an HMAC with a key
 * derived from the secrets key. `audit verify` compares the database with it, so a cut tail (which leaves a chain
 * that verifies) and rows deleted before the head are named.
 *
 * A checkpoint only moves forward over a chain that verifies from the previous checkpoint's head: a writer never
 * blesses a log that was cut or rewritten since the last one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CodedError, ErrorCode } from '../domain/errors';
import { canonicalJson, verifyAuditLog, type AuditAnchor, type AuditKeys, type AuditLogReport } from './audit';
import type { Db } from './client';

export interface AuditCheckpoint extends AuditAnchor {
  version: 1;
  keyId: string;
}

function mac(keys: AuditKeys, cp: AuditCheckpoint): string {
  return createHmac('sha256', keys.checkpoint).update(canonicalJson(cp)).digest('hex');
}

/** The latest checkpoint, or null when none was written yet. Throws when the file was altered or is not ours. */
export async function readAuditCheckpoint(file: string, keys: AuditKeys): Promise<AuditCheckpoint | null> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let parsed: AuditCheckpoint & { mac?: unknown };
  try {
    parsed = JSON.parse(text) as AuditCheckpoint & { mac?: unknown };
  } catch {
    throw new CodedError(
      ErrorCode.VerificationFailed,
      `the audit checkpoint ${file} is not valid JSON: it was damaged or replaced`,
    );
  }
  const { mac: given, ...cp } = parsed;
  if (cp.version !== 1 || typeof given !== 'string') {
    throw new CodedError(
      ErrorCode.VerificationFailed,
      `the audit checkpoint ${file} is not a patchops checkpoint (version 1 with a mac)`,
    );
  }
  if (cp.keyId !== keys.id) {
    throw new CodedError(
      ErrorCode.VerificationFailed,
      `the audit checkpoint ${file} was signed with audit key ${cp.keyId}, the key loaded here is ${keys.id}: use the SECRETS_KEY (or secrets.key) it was written with`,
    );
  }
  const expected = Buffer.from(mac(keys, cp), 'hex');
  const got = Buffer.from(given, 'hex');
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
    throw new CodedError(
      ErrorCode.VerificationFailed,
      `the audit checkpoint ${file} fails its signature check: it was altered`,
    );
  }
  return cp;
}

async function writeFileAtomic(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, text, { mode: 0o600 });
  await fs.rename(tmp, file);
}

export type CheckpointResult =
  { written: AuditCheckpoint; report: AuditLogReport } | { written: null; report: AuditLogReport };

/**
 * Verifies the chain from the latest checkpoint's head (from row 1 when there is none) and, when it holds, writes a
 * new checkpoint at the current head. When it does not hold, the old checkpoint stays and the report names the row.
 */
export async function writeAuditCheckpoint(
  db: Db,
  file: string,
  keys: AuditKeys,
  now = new Date(),
): Promise<CheckpointResult> {
  const previous = await readAuditCheckpoint(file, keys);
  const report = await verifyAuditLog(db, { from: previous, keys });
  if (!report.ok || !report.head) return { written: null, report };
  if (previous && previous.headId === report.head.id) return { written: previous, report };
  const cp: AuditCheckpoint = {
    version: 1,
    keyId: keys.id,
    headId: report.head.id,
    headHash: report.head.hash,
    rows: report.rows,
    keyedFrom: report.keyedFrom,
    writtenAt: now.toISOString(),
  };
  await writeFileAtomic(file, `${JSON.stringify({ ...cp, mac: mac(keys, cp) }, null, 2)}\n`);
  return { written: cp, report };
}
