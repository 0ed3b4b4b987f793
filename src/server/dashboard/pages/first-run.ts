/**
 * What the overview shows while no endpoint has enrolled: the next steps (enrol an agent, with where its
 * secret comes from, or watch the demo) and what the user will then see, instead of a compliance figure
 * over nothing. The commands are the ones `patchops up` prints (src/cli/commands/up.ts).
 */
import { html, type Html } from '../html';

export interface FirstRunInput {
  /** The URL agents reach this server at. */
  serverUrl: string;
  /** The server was started with AGENT_ENROLL_SECRET (the value is never shown). */
  envEnrollSecret: boolean;
}

export function firstRunBody(i: FirstRunInput): Html {
  const secretStep = i.envEnrollSecret
    ? html`<li>Use the enrolment secret this server was started with (<code>AGENT_ENROLL_SECRET</code>), or add another one on the server:
<pre data-testid="enroll-secret-command">npx patchops enroll-secret add --name first-agents</pre></li>`
    : html`<li>Make an enrolment secret. On the server, in the patchops folder:
<pre data-testid="enroll-secret-command">npx patchops enroll-secret add --name first-agents</pre>
It prints the new secret once: copy it. (Or set <code>AGENT_ENROLL_SECRET</code> before <code>npm start</code>; the server adds it when it starts.)</li>`;
  return html`<section class="first-run" data-testid="first-run">
<p><strong>No endpoints yet.</strong> There is nothing to measure until an agent has enrolled and scanned: compliance, the charts and patch cycles start then.</p>
<h2>Enrol your first endpoint</h2>
<ol>
${secretStep}
<li>On the endpoint, as root (Administrator on Windows, since the agent installs patches), start the agent with that secret:
<pre data-testid="enroll-agent-command">npx patchops agent --server ${i.serverUrl} --enroll-secret &lt;the secret&gt;</pre>
<code>docs/agent.md</code> in the patchops folder has the packages and the service units (systemd, launchd, Windows service).</li>
</ol>
<h2>What you will see</h2>
<p>Within a minute the endpoint is listed under <a href="/endpoints">Endpoints</a> and its first scan reports the patches it is missing. This page then shows how many endpoints are compliant, the missing patches by severity, what is known exploited or overdue against the SLA, and the charts. An admin starts a patch cycle from <a href="/cycles">Cycles</a>; approvers approve it here, in Slack or in Teams.</p>
<h2>Or watch a whole cycle first</h2>
<pre data-testid="demo-command">npm run demo</pre>
<p>From the patchops folder: a separate stack with its own data and ports (this server is not touched) and a simulated fleet of 200 Windows, macOS and Linux endpoints walks one whole patch cycle, scan to report, with a line of progress per stage. You approve on a local page that shows the Slack and Teams approval cards, and it prints a dashboard link so you can watch the cycle live. <code>npm run demo -- --auto</code> runs it unattended.</p>
</section>`;
}
