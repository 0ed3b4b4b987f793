import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { COMMAND_MODULES, MODULE_OF, registerFor, type CommandModule } from './registry';

describe('CLI command registry', () => {
  it('maps every top-level command to the module that registers it, and nothing else', async () => {
    const registered: Record<string, CommandModule> = {};
    for (const m of Object.keys(COMMAND_MODULES) as CommandModule[]) {
      const p = new Command();
      (await COMMAND_MODULES[m]())(p);
      for (const c of p.commands) {
        expect(registered[c.name()], `${c.name()} registered twice`).toBeUndefined();
        registered[c.name()] = m;
      }
    }
    expect(MODULE_OF).toEqual(registered);
  }, 60_000);

  it('loads only the owning module for a known command, all of them otherwise', async () => {
    const one = new Command();
    await registerFor(one, ['node', 'patchops', 'repo-add', 'x']);
    expect(one.commands.map((c) => c.name())).toContain('repo-add');
    expect(one.commands.map((c) => c.name())).not.toContain('up');
    const all = new Command();
    await registerFor(all, ['node', 'patchops', '--help']);
    expect(all.commands.map((c) => c.name())).toEqual(
      expect.arrayContaining(['up', 'repo-add', 'status', 'teams-package', 'audit']),
    );
  }, 60_000);
});
