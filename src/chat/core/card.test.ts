import { describe, expect, it } from 'vitest';
import type { ApprovalRequest, CycleReport } from '../../domain/ports';
import { approvalAdaptiveCard, pauseAdaptiveCard } from './adaptive';
import { approvalBlocks, pauseBlocks, rejectModal, summaryBlocks } from './blocks';
import { ACTION, approvalModelFromRequest, noticeLine, scopeText, stageKey, withDecision } from './card';

function req(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    cycleId: 'PC-1',
    policyName: 'monthly',
    emergency: false,
    requestedBy: 'cli:ops',
    scope: { groups: ['web', 'db'], osFamilies: ['linux'] },
    endpoints: 40,
    bySeverity: { low: 1, critical: 3, important: 2 },
    byType: { security: 5, bug_fix: 1 },
    topPatches: [
      {
        patchId: 'A',
        title: 'openssl',
        severity: 'important',
        type: 'security',
        cvss: 7.5,
        cves: ['CVE-2026-2', 'CVE-2026-3'],
        knownExploited: false,
        endpoints: 40,
      },
      {
        patchId: 'B',
        title: 'kernel',
        severity: 'critical',
        type: 'security',
        cvss: 9.1,
        cves: ['CVE-2026-1', 'CVE-2026-2'],
        knownExploited: true,
        endpoints: 12,
      },
    ],
    approvalsNeeded: 2,
    deadline: '2026-11-28T09:05:00.000Z',
    ...over,
  };
}

describe('approval card model', () => {
  it('orders severities by rank, puts known-exploited CVEs first and lists each CVE once', () => {
    const m = approvalModelFromRequest(req());
    expect(m.bySeverity.map((s) => s.name)).toEqual(['critical', 'important', 'low']);
    expect(m.topCves.map((c) => [c.id, c.knownExploited])).toEqual([
      ['CVE-2026-1', true],
      ['CVE-2026-2', true],
      ['CVE-2026-3', false],
    ]);
    expect(m.patches).toBe(6);
    expect(m.scopeText).toBe('groups web, db; OS linux');
    expect(scopeText({})).toBe('all endpoints');
  });

  it('counts a repeated decision once and keeps the first final outcome', () => {
    const m0 = approvalModelFromRequest(req());
    const n = {
      identity: 'slack:U1',
      channel: 'slack',
      decision: 'approve' as const,
      outcome: 'pending' as const,
      at: '2026-11-27T10:00:00.000Z',
    };
    const m1 = withDecision(withDecision(m0, n), n);
    expect(m1.decisions).toHaveLength(1);
    const m2 = withDecision(m1, { ...n, identity: 'teams:29:x', outcome: 'approved' });
    expect(m2.outcome).toBe('approved');
    expect(withDecision(m2, { ...n, identity: 'slack:U3', decision: 'reject', outcome: 'rejected' }).outcome).toBe(
      'approved',
    );
  });

  it('gives distinct stage keys to distinct updates and the same key to a retry', () => {
    const a = { cycleId: 'c', stage: 'DEPLOYING' as const, text: 'Wave 1 done' };
    expect(stageKey(a)).toBe(stageKey({ ...a }));
    expect(stageKey(a)).not.toBe(stageKey({ ...a, text: 'Wave 2 done' }));
  });

  it('names the approvers still to vote in a reminder', () => {
    const m = withDecision(approvalModelFromRequest(req({ approvers: ['slack:U1', 'slack:U2'] })), {
      identity: 'slack:U1',
      channel: 'slack',
      decision: 'approve',
      outcome: 'pending',
      at: '2026-11-27T10:00:00Z',
    });
    const line = noticeLine(m, 'reminder', 'slack');
    expect(line).toContain('1 of 2 received');
    expect(line).toContain('<@U2>');
    expect(line).not.toContain('<@U1>');
  });
});

describe('Block Kit rendering', () => {
  it('pending: Approve (primary) and Reject (danger) carry the cycle id; decided: no buttons, who and when', () => {
    const m = approvalModelFromRequest(req({ emergency: true, changeNumber: 'CHG1', changeUrl: 'https://sn/CHG1' }));
    const pending = approvalBlocks(m);
    const actions = pending.blocks.find((b) => b.type === 'actions') as {
      elements: Array<{ action_id: string; style: string; value: string }>;
    };
    expect(actions.elements.map((e) => [e.action_id, e.style, e.value])).toEqual([
      [ACTION.approve, 'primary', 'PC-1'],
      [ACTION.reject, 'danger', 'PC-1'],
    ]);
    expect(pending.text).toContain('EMERGENCY');
    expect(JSON.stringify(pending.blocks)).toContain('<https://sn/CHG1|CHG1>');
    expect(JSON.stringify(pending.blocks)).toContain('28 Nov 2026 09:05 UTC');
    const decided = approvalBlocks(
      withDecision(m, {
        identity: 'slack:U9',
        channel: 'slack',
        decision: 'reject',
        reason: 'a <b> & c',
        outcome: 'rejected',
        at: '2026-11-27T10:00:00Z',
      }),
    );
    const json = JSON.stringify(decided.blocks);
    expect(decided.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(json).toContain('Rejected by <@U9> (slack) at 27 Nov 2026 10:00 UTC: a &lt;b&gt; &amp; c');
  });

  it("keeps a context block within Slack's 10 elements however many decisions there are", () => {
    let m = approvalModelFromRequest(req({ approvalsNeeded: 50 }));
    for (let i = 0; i < 25; i++)
      m = withDecision(m, {
        identity: `slack:U${i}`,
        channel: 'slack',
        decision: 'approve',
        outcome: 'pending',
        at: '2026-11-27T10:00:00Z',
      });
    const context = approvalBlocks(m).blocks.find((b) => b.type === 'context') as { elements: Array<{ text: string }> };
    expect(context.elements).toHaveLength(10);
    expect(context.elements[0]!.text).toContain('16 earlier decisions');
    expect(context.elements.at(-1)!.text).toContain('<@U24>');
  });

  it('the reject modal requires a reason input; pause has Resume and Roll back until resolved', () => {
    const modal = rejectModal('PC-1', '{}') as {
      blocks: Array<{ type: string; optional?: boolean; block_id?: string }>;
    };
    const input = modal.blocks.find((b) => b.type === 'input')!;
    expect(input.block_id).toBe('reason');
    expect(input.optional).toBeUndefined();
    const q = { cycleId: 'PC-1', reason: 'failure threshold reached' };
    expect(JSON.stringify(pauseBlocks(q).blocks)).toContain(ACTION.rollback);
    expect(
      JSON.stringify(pauseBlocks(q, { by: 'slack:U1', action: 'rollback', at: '2026-11-27T10:00:00Z' }).blocks),
    ).not.toContain(ACTION.rollback);
  });

  it('summarises a finished cycle with counts, compliance and failures', () => {
    const report = {
      cycleId: 'PC-1',
      policyName: 'monthly',
      outcome: 'COMPLETED',
      status: {
        waves: [
          { succeeded: 30, failed: 2, unreachable: 1 },
          { succeeded: 7, failed: 0, unreachable: 0 },
        ],
      },
      complianceBefore: 71.25,
      complianceAfter: 97.5,
      failures: [{ endpointId: 'e1', hostname: 'web-1', patchId: 'KB1', reason: 'exit 1603' }],
      startedAt: '',
      finishedAt: '',
    } as unknown as CycleReport;
    const text = JSON.stringify(summaryBlocks(report));
    expect(text).toContain('37 patched, 2 failed, 1 unreachable, in 2 waves');
    expect(text).toContain('71.3% → 97.5%');
    expect(text).toContain('web-1 KB1: exit 1603');
  });
});

describe('Adaptive Card rendering', () => {
  it('is version 1.5 with Action.Execute Approve and Reject (reason input) while pending', () => {
    const card = approvalAdaptiveCard(approvalModelFromRequest(req()));
    expect(card.version).toBe('1.5');
    const actions = card.actions as Array<{ type: string; verb: string; data: { cycleId: string } }>;
    expect(actions.map((a) => [a.type, a.verb, a.data.cycleId])).toEqual([
      ['Action.Execute', ACTION.approve, 'PC-1'],
      ['Action.Execute', ACTION.reject, 'PC-1'],
    ]);
    expect(
      (card.body as Array<{ type: string; id?: string }>).some((b) => b.type === 'Input.Text' && b.id === 'reason'),
    ).toBe(true);
  });

  it('after the decision: no actions, and a personal notice when given', () => {
    const m = withDecision(approvalModelFromRequest(req({ approvalsNeeded: 1 })), {
      identity: 'teams:29:a',
      channel: 'teams',
      decision: 'approve',
      outcome: 'approved',
      at: '2026-11-27T10:00:00Z',
    });
    const card = approvalAdaptiveCard(m, { text: 'refused: you requested this cycle', isError: true });
    expect(card.actions).toBeUndefined();
    expect(JSON.stringify(card)).toContain('Approved by teams:29:a');
    expect(JSON.stringify(card)).toContain('"color":"Attention"');
    expect(JSON.stringify(pauseAdaptiveCard({ cycleId: 'c', reason: 'r' }))).toContain(ACTION.resume);
  });
});
