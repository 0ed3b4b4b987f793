/**
 * The per-cycle plan (area: cycles). Per-endpoint data of a cycle lives here, never in workflow history:
 * cycle_endpoints says which wave (0 = test ring) each endpoint of a cycle is in; cycle_targets says
 * which patch goes to which endpoint, with the assessment's decision, priority and plain-words reason.
 */
import { index, integer, pgTable, primaryKey, real, text, timestamp } from 'drizzle-orm/pg-core';
import { patchCycles } from './core';

export const cycleEndpoints = pgTable(
  'cycle_endpoints',
  {
    cycleId: text()
      .notNull()
      .references(() => patchCycles.id, { onDelete: 'cascade' }),
    endpointId: text().notNull(),
    /** 0 = test ring; 1… = waves. */
    wave: integer().notNull(),
    /** 0-based batch within the wave. */
    batch: integer().notNull().default(0),
    createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.cycleId, t.endpointId] }), index('cycle_endpoints_wave_idx').on(t.cycleId, t.wave)],
);

export const cycleTargets = pgTable(
  'cycle_targets',
  {
    cycleId: text()
      .notNull()
      .references(() => patchCycles.id, { onDelete: 'cascade' }),
    endpointId: text().notNull(),
    patchId: text().notNull(),
    /** include | skipped | dropped */
    decision: text().notNull(),
    priority: integer().notNull().default(0),
    riskScore: real().notNull().default(0),
    slaDue: timestamp({ withTimezone: true }),
    reason: text().notNull().default(''),
  },
  (t) => [
    primaryKey({ columns: [t.cycleId, t.endpointId, t.patchId] }),
    index('cycle_targets_cycle_decision_idx').on(t.cycleId, t.decision),
  ],
);
