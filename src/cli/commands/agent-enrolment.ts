/**
 * Enrolment approval verbs, added to the `agents` command that src/cli/commands/agent.ts registers:
 * `agents approve <endpoint>`, `agents reject <endpoint>`, and, after `agents list`, the enrolments waiting for an
 * admin (re-enrolments of a known machine made without its current node key) with duplicate machine ids flagged.
 */
import { type Command } from 'commander';
import type { PendingEnrollment } from '../../db/agent-enrolment';
import { callOrExit } from '../api-client';
import { reportFatal } from '../context';

const requestIdOrExit = (v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v))
    reportFatal(
      new Error(
        `--request takes a request number as \`patchops agents list\` shows it (#12 → --request 12), not "${v}"`,
      ),
    );
  return Number(v);
};

/** The lines `agents list` prints after the agents: what waits for approval, duplicates flagged. */
export function pendingLines(pending: PendingEnrollment[]): string[] {
  if (pending.length === 0) return [];
  const lines = [
    `${pending.length} enrolment(s) wait for approval (approve: \`patchops agents approve <endpoint> [--request N]\`, reject: \`patchops agents reject <endpoint> [--request N]\`):`,
  ];
  for (const p of pending) {
    const flag = p.duplicateMachineId
      ? `  DUPLICATE MACHINE ID: the current agent was heard from at ${p.currentAgentSeenAt}; two machines claim this id (a cloned image?) or someone is trying to take the endpoint over`
      : '';
    lines.push(
      `  #${p.requestId} ${p.endpointId} (${p.currentHostname}) claimed as "${p.hostname}" ${p.osFamily} ${p.osVersion} from ${p.remoteAddress ?? 'unknown address'} at ${p.requestedAt}${p.site ? `, site ${p.site}` : ''}${flag}`,
    );
  }
  return lines;
}

export function registerAgentEnrolmentCommands(program: Command): void {
  const agents = program.commands.find((c) => c.name() === 'agents');
  if (!agents) throw new Error('register the agent commands (src/cli/commands/agent.ts) before the enrolment verbs');
  const list = agents.commands.find((c) => c.name() === 'list');
  list?.hook('postAction', async () => {
    const pending = (await callOrExit<{ enrolments: PendingEnrollment[] }>('GET', '/enrolments')).enrolments;
    for (const line of pendingLines(pending)) console.log(line);
  });
  agents
    .command('approve <endpoint>')
    .description(
      "approve a waiting re-enrolment (by endpoint id or hostname): its key becomes the endpoint's key, the previous agent's key is revoked, and a scan is queued",
    )
    .option('--request <n>', 'which request, when several wait for the endpoint (the #N of `patchops agents list`)')
    .action(async (endpoint: string, o: { request?: string }) => {
      const requestId = requestIdOrExit(o.request);
      const r = await callOrExit<{
        endpointId: string;
        requestId: number;
        hostname: string;
        revokedKeys: number;
        scanQueued: boolean;
      }>('POST', `/enrolments/${encodeURIComponent(endpoint)}/approve`, requestId ? { requestId } : {});
      console.log(
        `enrolment #${r.requestId} of ${r.endpointId} (${r.hostname}) approved: ${r.revokedKeys} earlier key(s) revoked${r.scanQueued ? ', scan queued' : ''}`,
      );
    });
  agents
    .command('reject <endpoint>')
    .description(
      'reject a waiting re-enrolment (by endpoint id or hostname): its key stays refused; the endpoint and its current agent are untouched',
    )
    .option('--request <n>', 'which request, when several wait for the endpoint (the #N of `patchops agents list`)')
    .action(async (endpoint: string, o: { request?: string }) => {
      const requestId = requestIdOrExit(o.request);
      const r = await callOrExit<{ endpointId: string; requestId: number; hostname: string }>(
        'POST',
        `/enrolments/${encodeURIComponent(endpoint)}/reject`,
        requestId ? { requestId } : {},
      );
      console.log(`enrolment #${r.requestId} of ${r.endpointId} (claimed as "${r.hostname}") rejected`);
    });
}
