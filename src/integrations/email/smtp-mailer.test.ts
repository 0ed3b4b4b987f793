import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmtpSink } from '../../../test/fakes/smtp-sink';
import type { CycleStatus } from '../../domain/cycle';
import type { ApprovalRequest, CycleReport } from '../../domain/ports';
import { SmtpMailer } from './smtp-mailer';

const sink = new SmtpSink({ username: 'mailer', password: 'pw' });
let mailer: SmtpMailer;

beforeAll(async () => {
  const url = await sink.start();
  mailer = new SmtpMailer({
    url,
    from: 'patchops <patchops@example.test>',
    publicUrl: 'https://patchops.example.test',
    changeUrl: (n) => `https://sn.example.test/${n}`,
  });
});
afterAll(async () => {
  mailer.close();
  await sink.stop();
});

function status(over: Partial<CycleStatus> = {}): CycleStatus {
  return {
    cycleId: 'cyc-7',
    policyName: 'servers-monthly',
    policyVersion: 3,
    stage: 'COMPLETED',
    paused: false,
    emergency: false,
    requestedBy: 'slack:U1',
    scope: { groups: ['web'] },
    endpoints: 12,
    patches: 4,
    bySeverity: { critical: 2, high: 2 },
    approvals: { records: [], received: 2, needed: 2 },
    test: { index: 0, name: 'Test ring', state: 'done', total: 2, succeeded: 2, failed: 0, unreachable: 0, pending: 0 },
    waves: [
      { index: 1, name: 'pilot', state: 'done', total: 4, succeeded: 4, failed: 0, unreachable: 0, pending: 0 },
      { index: 2, name: 'broad', state: 'done', total: 6, succeeded: 4, failed: 1, unreachable: 1, pending: 0 },
    ],
    reasons: ['KB5034441 superseded KB5030000'],
    startedAt: '2026-11-20T22:00:00.000Z',
    updatedAt: '2026-11-21T02:00:00.000Z',
    ...over,
  };
}

const report: CycleReport = {
  cycleId: 'cyc-7',
  policyName: 'servers-monthly',
  outcome: 'COMPLETED',
  status: status(),
  complianceBefore: 41.7,
  complianceAfter: 83.3,
  failures: [
    { endpointId: 'e-9', hostname: 'web-09', patchId: 'KB5034441', reason: 'installer exited with 1603 <fatal>' },
  ],
  changeNumber: 'CHG0010001',
  startedAt: '2026-11-20T22:00:00.000Z',
  finishedAt: '2026-11-21T02:00:00.000Z',
};

describe('SmtpMailer against a real SMTP server', () => {
  it('sends the cycle report in HTML and text with the chart inline', async () => {
    const before = sink.messages.length;
    await mailer.sendCycleReport(report, ['ops@example.test', 'cab@example.test', 'ops@example.test']);
    await sink.waitFor(before + 1);
    const m = sink.messages[before]!;
    expect(m.envelopeTo.sort()).toEqual(['cab@example.test', 'ops@example.test']);
    expect(m.envelopeFrom).toBe('patchops@example.test');
    expect(m.parsed.subject).toBe('[patchops] Cycle completed: servers-monthly (cyc-7) — compliance 41.7% → 83.3%');
    const text = m.parsed.text ?? '';
    expect(text).toContain('Succeeded / failed / unreachable / pending: 10 / 1 / 1 / 0');
    expect(text).toContain('broad (done): 4 ok, 1 failed, 1 unreachable, 0 pending of 6');
    expect(text).toContain('web-09 KB5034441: installer exited with 1603 <fatal>');
    expect(text).toContain('https://patchops.example.test/cycles/cyc-7');
    expect(text).toContain('Change request: https://sn.example.test/CHG0010001');
    const html = String(m.parsed.html);
    expect(html).toContain('installer exited with 1603 &lt;fatal&gt;');
    expect(html).toContain('41.7% → 83.3%');
    const img = m.parsed.attachments.find((a) => a.contentType === 'image/png');
    expect(img).toBeDefined();
    expect(img!.contentDisposition).toBe('inline');
    expect(html).toContain(`src="cid:${img!.cid}"`);
    expect(img!.content.subarray(1, 4).toString('latin1')).toBe('PNG');
  });

  it('sends an approval request with the cycle link and the change', async () => {
    const before = sink.messages.length;
    const req: ApprovalRequest = {
      cycleId: 'cyc-8',
      policyName: 'servers-monthly',
      emergency: true,
      requestedBy: 'slack:U1',
      scope: {},
      endpoints: 30,
      bySeverity: { critical: 3, high: 0 },
      byType: { security: 3 },
      topPatches: [
        {
          patchId: 'KB1',
          title: 'Cumulative update',
          severity: 'critical',
          type: 'security',
          cvss: 9.8,
          cves: ['CVE-2026-0001'],
          knownExploited: true,
          endpoints: 30,
        },
      ],
      test: {
        index: 0,
        name: 'Test ring',
        state: 'done',
        total: 3,
        succeeded: 3,
        failed: 0,
        unreachable: 0,
        pending: 0,
      },
      changeNumber: 'CHG0010002',
      changeUrl: 'https://sn.example.test/CHG0010002',
      approvalsNeeded: 2,
    };
    await mailer.sendApprovalRequest(req, ['approver@example.test']);
    await sink.waitFor(before + 1);
    const m = sink.messages[before]!;
    expect(m.envelopeTo).toEqual(['approver@example.test']);
    expect(m.parsed.subject).toBe('[patchops] EMERGENCY Approval needed: servers-monthly — 30 endpoints (3 critical)');
    expect(m.parsed.text).toContain('Approve or reject: https://patchops.example.test/cycles/cyc-8');
    expect(m.parsed.text).toContain(
      'KB1 Cumulative update [critical, CVSS 9.8] CVE-2026-0001 (known exploited) — 30 endpoints',
    );
    expect(m.parsed.text).toContain('Test ring: 3/3 succeeded');
    expect(String(m.parsed.html)).toContain('href="https://patchops.example.test/cycles/cyc-8"');
    expect(m.parsed.attachments).toEqual([]);
  });

  it('sends nothing when there are no recipients', async () => {
    const before = sink.messages.length;
    await mailer.sendCycleReport(report, []);
    expect(sink.messages.length).toBe(before);
  });

  it('fails with a coded, actionable error when the server refuses the credentials', async () => {
    const bad = new SmtpMailer({
      url: sink.url.replace('mailer:pw', 'mailer:wrong'),
      from: 'x@example.test',
      publicUrl: 'http://x',
    });
    await expect(
      bad.sendApprovalRequest(
        {
          ...({} as ApprovalRequest),
          cycleId: 'c',
          policyName: 'p',
          emergency: false,
          requestedBy: 'r',
          scope: {},
          endpoints: 1,
          bySeverity: {},
          byType: {},
          topPatches: [],
          approvalsNeeded: 1,
        },
        ['a@example.test'],
      ),
    ).rejects.toThrow(/Could not send .*smtp:\/\/mailer:\*\*\*@.*Check SMTP_URL/);
    await expect(bad.verify()).rejects.toThrow(/not usable/);
    bad.close();
    await mailer.verify();
  });
});
