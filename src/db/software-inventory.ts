/**
 * The software_inventory table: what an agent reports installed, with the endpoint facts that come with it.
 * (What a scan reports missing is applied by patch-reports.ts.)
 */
import { eq } from 'drizzle-orm';
import type { Inventory } from '../shared/agent-protocol';
import type { Db } from './client';
import { endpoints, softwareInventory } from './schema/index';

/** Replaces the endpoint's software inventory and updates its facts. */
export async function putInventory(
  db: Db,
  endpointId: string,
  inv: Inventory,
  now = new Date(),
): Promise<{ software: number }> {
  const software = inv.software ?? [];
  await db.transaction(async (tx) => {
    const t = tx as unknown as Db;
    const set: Partial<typeof endpoints.$inferInsert> = {
      lastSeenAt: now,
      pendingReboot: inv.pendingReboot ?? false,
      status: 'active',
    };
    if (inv.hostname) set.hostname = inv.hostname;
    if (inv.osName !== undefined) set.osName = inv.osName;
    if (inv.osVersion !== undefined) set.osVersion = inv.osVersion;
    if (inv.arch !== undefined) set.arch = inv.arch;
    if (inv.agentVersion !== undefined) set.agentVersion = inv.agentVersion;
    await t.update(endpoints).set(set).where(eq(endpoints.id, endpointId));
    await t.delete(softwareInventory).where(eq(softwareInventory.endpointId, endpointId));
    const unique = new Map(software.map((s) => [`${s.source}\u0000${s.name}`, s]));
    const rows = [...unique.values()];
    for (let i = 0; i < rows.length; i += 1000) {
      await t.insert(softwareInventory).values(
        rows.slice(i, i + 1000).map((s) => ({
          endpointId,
          source: s.source,
          name: s.name,
          version: s.version,
          vendor: s.vendor ?? null,
          updatedAt: now,
        })),
      );
    }
  });
  return { software: software.length };
}
