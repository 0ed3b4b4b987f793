/** The App Home tab (views.publish): patch health for the viewer. */
import { SEVERITY_ORDER } from '../core/card';
import type { PatchHealth } from '../core/health';

export function homeView(h: PatchHealth, isApprover: boolean): Record<string, unknown> {
  const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });
  const overdue = Object.entries(h.overdueBySeverity).sort(
    ([a], [b]) => SEVERITY_ORDER.indexOf(a) - SEVERITY_ORDER.indexOf(b),
  );
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: 'Patch health' } },
    section(
      h.compliancePercent === null
        ? '*Compliance:* no endpoints enrolled yet.'
        : `*Compliance:* ${h.compliancePercent}% (${h.compliantEndpoints} of ${h.endpoints} endpoints fully patched; ${h.outstanding} patches outstanding)`,
    ),
    section(`*Overdue (past SLA):* ${overdue.length ? overdue.map(([s, n]) => `${s} ${n}`).join(' · ') : 'none'}`),
    { type: 'divider' },
    section(
      `*Active cycles (${h.activeCycles.length})*\n${
        h.activeCycles.length
          ? h.activeCycles
              .slice(0, 15)
              .map((c) => `• \`${c.cycleId}\` ${c.policyName}: ${c.stage}${c.emergency ? ' (emergency)' : ''}`)
              .join('\n')
          : 'none'
      }`,
    ),
  ];
  if (isApprover) {
    blocks.push(
      section(
        `*Waiting for your approval (${h.pendingForViewer.length})*\n${
          h.pendingForViewer.length
            ? h.pendingForViewer
                .map((c) => `• \`${c.cycleId}\` ${c.policyName}, requested by ${c.requestedBy}`)
                .join('\n')
            : 'nothing'
        }`,
      ),
    );
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: 'Type `/patch help` for commands.' }] });
  return { type: 'home', blocks };
}

/** The App Home of someone without a role: what to ask for, and nothing read. */
export function noRoleHomeView(identity: string): Record<string, unknown> {
  return {
    type: 'home',
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: 'Patch health' } },
      {
        type: 'section',
        text: {
          type: 'mrkdwn',
          text: `You need the viewer role to see patch health here; ask an admin: \`/patch roles grant ${identity} viewer\``,
        },
      },
    ],
  };
}
