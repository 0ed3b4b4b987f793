import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { grantRole } from '../../db/identities';
import { createLogger } from '../../logging';
import { DecisionDesk } from './decisions';

// A vote or control that took effect but could not be audited must not vanish into a log line: the person who
// clicked is told, with what to do (issue #11: "a control that cannot be audited is retried, not dropped").
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.close();
});

describe('DecisionDesk when the audit log cannot be written', () => {
  it('says so in the answer to an approval and to a resume, which still took effect', async () => {
    const service = new RecordingCycleService();
    service.addCycle('c-audit', { requestedBy: 'slack:UREQ', needed: 3 });
    await grantRole(db.db, { identity: 'slack:UADMIN', role: 'admin', by: 'test' });
    const desk = new DecisionDesk({ service, db: db.db, logger: createLogger('silent') });

    const fine = await desk.decide({
      cycleId: 'c-audit',
      identity: 'slack:UOK',
      channel: 'slack',
      decision: 'approve',
    });
    expect(fine.ok && fine.text).not.toMatch(/audit log could not record/);

    await db.db.execute(sql`ALTER TABLE audit_log RENAME TO audit_log_away`);
    try {
      const vote = await desk.decide({
        cycleId: 'c-audit',
        identity: 'slack:UAPPROVER',
        channel: 'slack',
        decision: 'approve',
      });
      expect(vote.ok).toBe(true);
      expect(vote.text).toMatch(/took effect, but the audit log could not record it .*tell an admin/);
      expect(service.callsOf('approve')).toHaveLength(2);

      const resumed = await desk.control({
        cycleId: 'c-audit',
        identity: 'slack:UADMIN',
        channel: 'slack',
        action: 'resume',
      });
      expect(resumed.ok).toBe(true);
      expect(resumed.text).toMatch(/audit log could not record it/);
    } finally {
      await db.db.execute(sql`ALTER TABLE audit_log_away RENAME TO audit_log`);
    }
  }, 60_000);
});
