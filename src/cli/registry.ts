/**
 * Which module registers which top-level command, so `patchops <command>` loads only that command's module
 * (and its dependencies: the Temporal SDK, Fastify, Bolt, botbuilder … cost seconds to load together).
 * A name not in the map (or `--help`) loads every module; `registry.test.ts` keeps the map true.
 */
import type { Command } from 'commander';
import { VERBS_ON_CLI } from './verbs';

type Register = (program: Command) => void;

export const COMMAND_MODULES = {
  up: () => import('./commands/up').then((m) => m.registerUpCommands),
  migrate: () => import('./commands/migrate').then((m) => m.registerMigrateCommand),
  // The enrolment verbs (agents approve|reject, pending enrolments after agents list) join the agents command.
  agent: () =>
    Promise.all([import('./commands/agent'), import('./commands/agent-enrolment')]).then(([a, e]) => (p: Command) => {
      a.registerAgentCommands(p);
      e.registerAgentEnrolmentCommands(p);
    }),
  doctor: () => import('./commands/doctor').then((m) => m.registerDoctorCommand),
  dashboard: () => import('./commands/dashboard').then((m) => m.registerDashboardCommands),
  cycles: () => import('./commands/cycles').then((m) => m.registerCycleCommands),
  chat: () => import('./commands/chat').then((m) => m.registerChatCommands),
  demo: () => import('./commands/demo').then((m) => m.registerDemoCommand),
  session: () => import('./commands/session').then((m) => m.registerSessionCommands),
} satisfies Record<string, () => Promise<Register>>;

export type CommandModule = keyof typeof COMMAND_MODULES;

/** Top-level command → the module that registers it. */
export const MODULE_OF: Record<string, CommandModule> = {
  up: 'up',
  worker: 'up',
  server: 'up',
  migrate: 'migrate',
  agent: 'agent',
  'agent-sim': 'agent',
  'distribution-point': 'agent',
  'distribution-point-register': 'agent',
  'enroll-secret': 'agent',
  agents: 'agent',
  'repo-add': 'agent',
  repo: 'agent',
  'distribution-points': 'agent',
  doctor: 'doctor',
  users: 'dashboard',
  report: 'dashboard',
  audit: 'dashboard',
  policies: 'cycles',
  ...Object.fromEntries(VERBS_ON_CLI.map((v) => [v, 'cycles' as const])),
  'teams-package': 'chat',
  demo: 'demo',
  login: 'session',
  logout: 'session',
};

/** Registers the modules `argv` needs: the one owning its command, or all of them. */
export async function registerFor(program: Command, argv: readonly string[]): Promise<void> {
  const name = argv[2];
  const only = name && !name.startsWith('-') ? MODULE_OF[name] : undefined;
  const modules = only ? [only] : (Object.keys(COMMAND_MODULES) as CommandModule[]);
  for (const m of modules) (await COMMAND_MODULES[m]())(program);
}
