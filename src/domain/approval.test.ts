import { describe, expect, it } from 'vitest';
import { type ApprovalRecord } from './cycle';
import {
  approvalsNeeded,
  approvalsReceived,
  checkVote,
  cycleRiskLevel,
  needsHumanApproval,
  tally,
  voterOf,
  type ApprovalState,
  type RiskLevel,
} from './approval';
import { DEFAULT_POLICY, parsePolicy } from './policy';
import { type Severity } from './patch';

describe('cycleRiskLevel', () => {
  const cases: Array<[Severity, boolean, number, RiskLevel]> = [
    ['low', false, 1, 'low'],
    ['moderate', false, 3, 'low'],
    ['unspecified', false, 2, 'low'],
    ['important', false, 2, 'moderate'],
    ['critical', false, 2, 'high'],
    ['important', true, 2, 'high'],
    ['low', true, 1, 'moderate'],
    ['critical', false, 4, 'critical'],
    ['critical', true, 1, 'critical'],
    ['critical', true, 4, 'critical'],
    ['moderate', false, 4, 'moderate'],
  ];
  it.each(cases)(
    '%s, known exploited %s, criticality %d → %s',
    (maxSeverity, knownExploited, maxCriticality, expected) => {
      expect(cycleRiskLevel({ maxSeverity, knownExploited, maxCriticality })).toBe(expected);
    },
  );
});

describe('approvalsNeeded', () => {
  it.each([
    ['low', 1],
    ['moderate', 1],
    ['high', 1],
    ['critical', 2],
  ] as Array<[RiskLevel, number]>)('default quorum for %s is %d', (risk, n) => {
    expect(approvalsNeeded(DEFAULT_POLICY.approval, risk)).toBe(n);
  });

  it('follows the policy', () => {
    const p = parsePolicy({ name: 'x', approval: { quorum: { high: 2, critical: 3 } } });
    expect(approvalsNeeded(p.approval, 'high')).toBe(2);
    expect(approvalsNeeded(p.approval, 'critical')).toBe(3);
  });
});

describe('needsHumanApproval', () => {
  const capped = parsePolicy({ name: 'x', autoApprove: { types: ['definition', 'tool'], maxSeverity: 'moderate' } });
  const cases: Array<{
    name: string;
    policy: typeof DEFAULT_POLICY;
    patches: Array<{ type: 'definition' | 'security' | 'tool'; severity: Severity }>;
    expected: boolean;
  }> = [
    {
      name: 'definition updates only',
      policy: DEFAULT_POLICY,
      patches: [
        { type: 'definition', severity: 'unspecified' },
        { type: 'definition', severity: 'critical' },
      ],
      expected: false,
    },
    {
      name: 'one security patch among definitions',
      policy: DEFAULT_POLICY,
      patches: [
        { type: 'definition', severity: 'low' },
        { type: 'security', severity: 'low' },
      ],
      expected: true,
    },
    { name: 'nothing to approve', policy: DEFAULT_POLICY, patches: [], expected: false },
    {
      name: 'under the severity cap',
      policy: capped,
      patches: [{ type: 'tool', severity: 'moderate' }],
      expected: false,
    },
    {
      name: 'above the severity cap',
      policy: capped,
      patches: [{ type: 'tool', severity: 'important' }],
      expected: true,
    },
  ];
  it.each(cases)('$name → $expected', ({ policy, patches, expected }) => {
    expect(needsHumanApproval(policy, patches)).toBe(expected);
  });
});

describe('checkVote and tally', () => {
  const at = '2026-11-27T10:00:00.000Z';
  const rec = (identity: string, decision: 'approve' | 'reject', reason?: string): ApprovalRecord => ({
    identity,
    channel: 'slack',
    decision,
    at,
    ...(reason ? { reason } : {}),
  });
  const state = (over: Partial<ApprovalState> = {}): ApprovalState => ({
    requestedBy: 'slack:U1',
    approvers: ['slack:U1', 'slack:U2', 'slack:U3', 'teams:aad-4'],
    escalationApprovers: ['slack:U8'],
    escalated: false,
    needed: 2,
    records: [],
    separationOfDuties: true,
    ...over,
  });

  const refusals: Array<{
    name: string;
    s: ApprovalState;
    identity: string;
    decision: 'approve' | 'reject';
    reason?: string;
    expected: string;
  }> = [
    {
      name: 'requester approving',
      s: state(),
      identity: 'slack:U1',
      decision: 'approve',
      expected: 'you requested this cycle; someone else must approve',
    },
    {
      name: 'not an approver',
      s: state(),
      identity: 'slack:U9',
      decision: 'approve',
      expected: 'slack:U9 is not an approver for this cycle',
    },
    {
      name: 'escalation approver before escalation',
      s: state(),
      identity: 'slack:U8',
      decision: 'approve',
      expected: 'slack:U8 is an escalation approver; escalation approvers can vote once the request is escalated',
    },
    {
      name: 'second vote',
      s: state({ records: [rec('slack:U2', 'approve')] }),
      identity: 'slack:U2',
      decision: 'approve',
      expected: `you already voted (approve at ${at})`,
    },
    {
      name: 'reject after own approval',
      s: state({ records: [rec('slack:U2', 'approve')] }),
      identity: 'slack:U2',
      decision: 'reject',
      reason: 'changed my mind',
      expected: `you already voted (approve at ${at})`,
    },
    {
      name: 'rejection without reason',
      s: state(),
      identity: 'slack:U2',
      decision: 'reject',
      expected: 'a rejection needs a reason',
    },
    {
      name: 'rejection with blank reason',
      s: state(),
      identity: 'slack:U2',
      decision: 'reject',
      reason: '   ',
      expected: 'a rejection needs a reason',
    },
    {
      name: 'vote after a veto',
      s: state({ records: [rec('slack:U3', 'reject', 'no')] }),
      identity: 'slack:U2',
      decision: 'approve',
      expected: 'this cycle is already rejected; votes are closed',
    },
    {
      name: 'vote after approval',
      s: state({ needed: 1, records: [rec('slack:U3', 'approve')] }),
      identity: 'slack:U2',
      decision: 'approve',
      expected: 'this cycle is already approved; votes are closed',
    },
  ];
  it.each(refusals)('refuses $name', ({ s, identity, decision, reason, expected }) => {
    expect(checkVote(s, { identity, channel: 'slack', ...(reason !== undefined ? { reason } : {}) }, decision)).toEqual(
      { ok: false, reason: expected },
    );
  });

  const accepted: Array<{
    name: string;
    s: ApprovalState;
    identity: string;
    decision: 'approve' | 'reject';
    reason?: string;
  }> = [
    { name: 'an approver approving', s: state(), identity: 'teams:aad-4', decision: 'approve' },
    {
      name: 'requester rejecting with a reason',
      s: state(),
      identity: 'slack:U1',
      decision: 'reject',
      reason: 'wrong scope',
    },
    {
      name: 'requester approving without separation of duties',
      s: state({ separationOfDuties: false }),
      identity: 'slack:U1',
      decision: 'approve',
    },
    {
      name: 'escalation approver once escalated',
      s: state({ escalated: true }),
      identity: 'slack:U8',
      decision: 'approve',
    },
    {
      name: 'second approver',
      s: state({ records: [rec('slack:U2', 'approve')] }),
      identity: 'slack:U3',
      decision: 'approve',
    },
  ];
  it.each(accepted)('accepts $name', ({ s, identity, decision, reason }) => {
    expect(checkVote(s, { identity, channel: 'slack', ...(reason !== undefined ? { reason } : {}) }, decision)).toEqual(
      { ok: true },
    );
  });

  const tallies: Array<{ name: string; s: ApprovalState; expected: 'pending' | 'approved' | 'rejected' }> = [
    { name: 'no votes', s: state(), expected: 'pending' },
    { name: 'one of two', s: state({ records: [rec('slack:U2', 'approve')] }), expected: 'pending' },
    {
      name: 'same identity twice counts once',
      s: state({ records: [rec('slack:U2', 'approve'), rec('slack:U2', 'approve')] }),
      expected: 'pending',
    },
    {
      name: 'two distinct',
      s: state({ records: [rec('slack:U2', 'approve'), rec('slack:U3', 'approve')] }),
      expected: 'approved',
    },
    {
      name: "requester's approval does not count",
      s: state({ records: [rec('slack:U1', 'approve'), rec('slack:U3', 'approve')] }),
      expected: 'pending',
    },
    {
      name: 'any rejection vetoes',
      s: state({
        records: [rec('slack:U2', 'approve'), rec('slack:U3', 'approve'), rec('teams:aad-4', 'reject', 'no')],
      }),
      expected: 'rejected',
    },
    { name: 'quorum of one', s: state({ needed: 1, records: [rec('slack:U2', 'approve')] }), expected: 'approved' },
  ];
  it.each(tallies)('tally: $name → $expected', ({ s, expected }) => {
    expect(tally(s)).toBe(expected);
  });
});

describe('people, not identities, vote', () => {
  const at = '2026-11-27T10:00:00.000Z';
  // alice holds slack:UA and teams:aad-a; bob holds slack:UB; carol's web:carol is linked to nobody (her own person).
  const vote = (identity: string, person?: string) => ({
    identity,
    channel: 'slack' as const,
    ...(person ? { person } : {}),
  });
  const rec = (
    identity: string,
    person: string | undefined,
    decision: 'approve' | 'reject' = 'approve',
  ): ApprovalRecord => ({
    identity,
    ...(person ? { person } : {}),
    channel: 'slack',
    decision,
    at,
  });
  const state = (over: Partial<ApprovalState> = {}): ApprovalState => ({
    requestedBy: 'slack:UA',
    requestedByPerson: 'person:alice',
    approvers: ['slack:UA', 'teams:aad-a', 'slack:UB', 'web:carol'],
    escalationApprovers: [],
    escalated: false,
    needed: 2,
    records: [],
    separationOfDuties: true,
    ...over,
  });

  it('refuses the requester approving from another of their identities', () => {
    expect(checkVote(state(), vote('teams:aad-a', 'person:alice'), 'approve')).toEqual({
      ok: false,
      reason: 'you requested this cycle; someone else must approve',
    });
  });

  it('refuses a second vote of the same person from another identity, and names the first', () => {
    const s = state({
      requestedBy: 'cli:ops',
      requestedByPerson: 'cli:ops',
      records: [rec('slack:UA', 'person:alice')],
    });
    expect(checkVote(s, vote('teams:aad-a', 'person:alice'), 'approve')).toEqual({
      ok: false,
      reason: `you already voted (approve at ${at} as slack:UA)`,
    });
  });

  it('counts a person once however many identities approved, and two people complete the quorum', () => {
    const base = { requestedBy: 'cli:ops', requestedByPerson: 'cli:ops' };
    expect(
      tally(state({ ...base, records: [rec('slack:UA', 'person:alice'), rec('teams:aad-a', 'person:alice')] })),
    ).toBe('pending');
    expect(
      approvalsReceived(
        state({ ...base, records: [rec('slack:UA', 'person:alice'), rec('teams:aad-a', 'person:alice')] }),
      ),
    ).toBe(1);
    expect(tally(state({ ...base, records: [rec('slack:UA', 'person:alice'), rec('slack:UB', 'person:bob')] }))).toBe(
      'approved',
    );
  });

  it("never counts an approval by the requester's other identity under separation of duties", () => {
    expect(
      approvalsReceived(state({ records: [rec('teams:aad-a', 'person:alice'), rec('slack:UB', 'person:bob')] })),
    ).toBe(1);
    expect(
      approvalsReceived(
        state({
          separationOfDuties: false,
          records: [rec('teams:aad-a', 'person:alice'), rec('slack:UB', 'person:bob')],
        }),
      ),
    ).toBe(2);
  });

  it('an identity linked to nobody is its own person; older votes and cycles without a person fall back to the identity', () => {
    expect(voterOf({ identity: 'web:carol' })).toBe('web:carol');
    expect(checkVote(state(), vote('web:carol', 'web:carol'), 'approve')).toEqual({ ok: true });
    // A cycle started before people existed: only the identity is known, as before.
    const old = state({ requestedByPerson: undefined, records: [rec('slack:UB', undefined)] });
    expect(checkVote(old, vote('slack:UA'), 'approve')).toEqual({
      ok: false,
      reason: 'you requested this cycle; someone else must approve',
    });
    expect(checkVote(old, vote('teams:aad-a'), 'approve')).toEqual({ ok: true });
    expect(checkVote(old, vote('slack:UB', 'person:bob'), 'approve')).toEqual({
      ok: false,
      reason: `you already voted (approve at ${at})`,
    });
  });
});

describe('people linked after the fact', () => {
  const at = '2026-11-27T10:00:00.000Z';
  const state = (over: Partial<ApprovalState> = {}): ApprovalState => ({
    requestedBy: 'slack:UA',
    requestedByPerson: 'slack:UA', // linked to nobody when the cycle started
    approvers: ['slack:UA', 'teams:aad-a', 'slack:UB'],
    escalationApprovers: [],
    escalated: false,
    needed: 2,
    records: [],
    separationOfDuties: true,
    ...over,
  });

  it('refuses the requester approving from an identity linked to them after the start', () => {
    const vote = {
      identity: 'teams:aad-a',
      channel: 'teams' as const,
      person: 'person:alice',
      personIdentities: ['slack:UA', 'teams:aad-a'],
    };
    expect(checkVote(state(), vote, 'approve')).toEqual({
      ok: false,
      reason: 'you requested this cycle; someone else must approve',
    });
  });

  it('refuses a second vote from an identity linked to the first voter after their vote', () => {
    const s = state({
      requestedBy: 'cli:ops',
      requestedByPerson: 'cli:ops',
      records: [{ identity: 'slack:UA', person: 'slack:UA', channel: 'slack', decision: 'approve', at }],
    });
    const vote = {
      identity: 'teams:aad-a',
      channel: 'teams' as const,
      person: 'person:alice',
      personIdentities: ['slack:UA', 'teams:aad-a'],
    };
    expect(checkVote(s, vote, 'approve')).toEqual({
      ok: false,
      reason: `you already voted (approve at ${at} as slack:UA)`,
    });
  });
});
