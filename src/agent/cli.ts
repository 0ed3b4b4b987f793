/**
 * The agent's command line: the options and action of `patchops agent` and of the bundled agent (`patchops-agent`,
 * built by `npm run package:agent`). It imports only the agent and the shared wire contract, so the bundle carries
 * none of the server.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { pino } from 'pino';
import { siteSchema } from '../shared/agent-protocol';
import { Agent } from './agent';
import { RecordingRebooter } from './reboot';
import { StateStore } from './state';

export const AGENT_DESCRIPTION =
  'run the endpoint agent: enrol once, then poll the server for scan/install/verify/rollback/reboot jobs';

export function defaultStateDir(): string {
  if (process.platform === 'win32') return path.join(process.env.ProgramData ?? 'C:\\ProgramData', 'patchops-agent');
  if (process.platform === 'darwin') return '/Library/Application Support/patchops-agent';
  return process.getuid?.() === 0 ? '/var/lib/patchops-agent' : path.join(os.homedir(), '.patchops-agent');
}

/** A user's mistake or a refusal: the message alone, exit 1. */
function fatal(e: unknown): never {
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`error: ${message}${process.env.PATCHOPS_DEBUG && e instanceof Error ? `\n${e.stack}` : ''}\n`);
  process.exit(1);
}

interface AgentCliOptions {
  server?: string;
  enrollSecret?: string;
  stateDir: string;
  wait: string;
  reboot: boolean;
  insecureHttp?: boolean;
  aptRoot?: string;
  deferReboot?: boolean;
  machineId?: string;
  hostname?: string;
  site?: string;
}

/** Adds the agent's options and action to `cmd` (the `agent` subcommand, or the bundled agent's program itself). */
export function configureAgentCommand(cmd: Command): Command {
  return cmd
    .description(AGENT_DESCRIPTION)
    .option('--server <url>', 'the patchops server URL, https:// (PATCHOPS_SERVER)', process.env.PATCHOPS_SERVER)
    .option(
      '--enroll-secret <secret>',
      'enrol secret, needed the first time (PATCHOPS_ENROLL_SECRET)',
      process.env.PATCHOPS_ENROLL_SECRET,
    )
    .option('--state-dir <dir>', 'where the agent keeps its identity', defaultStateDir())
    .option(
      '--site <name>',
      "this endpoint's site, sent at enrolment: the agent fetches files from the site's distribution points (PATCHOPS_SITE)",
      process.env.PATCHOPS_SITE,
    )
    .option('--wait <seconds>', 'long-poll wait', '30')
    .option('--no-reboot', 'never restart the machine (reboots are reported as pending)')
    .option(
      '--insecure-http',
      "allow a plain http:// server URL (node key and jobs unencrypted on the network); a server on this machine's loopback needs no flag",
    )
    .addOption(new Option('--apt-root <dir>', 'run apt/dpkg against another root (chroots, tests)').hideHelp())
    .addOption(
      new Option(
        '--machine-id <id>',
        'use this machine id instead of the detected one (cloned images, tests)',
      ).hideHelp(),
    )
    .addOption(new Option('--hostname <name>', 'report this hostname').hideHelp())
    .option('--defer-reboot', 'ask the running agent to defer a pending restart, then exit')
    .action(async (o: AgentCliOptions) => {
      if (o.deferReboot) return deferReboot(o.stateDir);
      if (!o.server)
        fatal(new Error('--server is required (or set PATCHOPS_SERVER), e.g. --server https://patchops.example.com'));
      if (o.site !== undefined && !siteSchema.safeParse(o.site).success)
        fatal(
          new Error(
            `--site "${o.site}" is not a site name: 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
          ),
        );
      const log = pino({ name: 'patchops-agent', level: process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid } });
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      process.once('SIGTERM', () => ac.abort());
      try {
        const agent = new Agent({
          serverUrl: o.server,
          insecureHttp: o.insecureHttp,
          enrollSecret: o.enrollSecret,
          stateDir: o.stateDir,
          log,
          aptRoot: o.aptRoot,
          machineId: o.machineId,
          hostname: o.hostname,
          site: o.site,
          rebooter: o.reboot ? undefined : new RecordingRebooter((event, message) => log.info({ event }, message)),
          waitSeconds: Number(o.wait),
          signal: ac.signal,
        });
        await agent.run();
      } catch (e) {
        fatal(e);
      }
      process.exit(0);
    });
}

async function deferReboot(stateDir: string): Promise<void> {
  const store = new StateStore(stateDir);
  try {
    await fs.writeFile(store.deferFile, `${os.userInfo().username} ${new Date().toISOString()}\n`, { flag: 'w' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      fatal(new Error(`no agent has run with the state directory ${stateDir}: pass the agent's --state-dir`));
    if (code !== 'EACCES' && code !== 'EPERM') fatal(e);
    // The request file exists and is another user's (sticky directory): a deferral is already requested.
  }
  process.stdout.write(
    "restart deferral requested: the agent applies it before restarting (up to the policy's limit of deferrals) and confirms it in a notice\n",
  );
}
