/**
 * SLA breaches as events. Breaches are computed by the read model (slaBreaches, the same figures the dashboard
 * shows); this records each one once, when a sweep first sees it, in sla_breaches plus an `sla.breached` audit
 * entry — the durable source webhooks announce from. Several servers sweeping at once record each breach once
 * (the primary key decides; only the rows a sweep inserted are audited, in the same transaction).
 */
import type { SlaPolicy } from '../domain/sla';
import { appendAudit } from './audit';
import type { Db } from './client';
import { slaBreaches, type SlaBreach } from './read-model/compliance';
import { slaBreachesRecorded } from './schema/index';

/** Breaches per audit entry (and so per `sla.breached` event). */
const PER_ENTRY = 100;

/** Records the breaches not recorded before; returns how many were new. */
export async function recordNewSlaBreaches(db: Db, options: { now?: Date; sla?: SlaPolicy } = {}): Promise<number> {
  const now = options.now ?? new Date();
  const breaches = await slaBreaches(db, { now, ...(options.sla ? { sla: options.sla } : {}) });
  let recorded = 0;
  for (let i = 0; i < breaches.length; i += PER_ENTRY) {
    recorded += await recordChunk(db, breaches.slice(i, i + PER_ENTRY), now);
  }
  return recorded;
}

async function recordChunk(db: Db, chunk: SlaBreach[], now: Date): Promise<number> {
  return db.transaction(async (tx) => {
    const inserted = await tx
      .insert(slaBreachesRecorded)
      .values(
        chunk.map((b) => ({
          endpointId: b.endpointId,
          patchId: b.patchId,
          detectedAt: new Date(b.detectedAt),
          dueAt: new Date(b.dueAt),
        })),
      )
      .onConflictDoNothing()
      .returning({
        endpointId: slaBreachesRecorded.endpointId,
        patchId: slaBreachesRecorded.patchId,
        detectedAt: slaBreachesRecorded.detectedAt,
      });
    if (inserted.length === 0) return 0;
    const isNew = new Set(inserted.map((r) => `${r.endpointId}\n${r.patchId}\n${r.detectedAt.toISOString()}`));
    const fresh = chunk.filter((b) =>
      isNew.has(`${b.endpointId}\n${b.patchId}\n${new Date(b.detectedAt).toISOString()}`),
    );
    await appendAudit(tx, {
      actor: 'system:sla',
      action: 'sla.breached',
      subjectType: 'sla',
      subjectId: now.toISOString().slice(0, 10),
      details: {
        breaches: fresh.map((b) => ({
          endpointId: b.endpointId,
          hostname: b.hostname,
          patchId: b.patchId,
          severity: b.severity,
          knownExploited: b.knownExploited,
          detectedAt: b.detectedAt,
          dueAt: b.dueAt,
          daysOverdue: b.daysOverdue,
        })),
      },
      at: now,
    });
    return inserted.length;
  });
}
