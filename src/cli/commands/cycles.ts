/**
 * The operational verbs on the command line: the same words as `/patch …` in chat, sent to the server
 * (POST /api/v1/commands) with the token `patchops login` stored, so they run as the person who logged in, with
 * that person's roles, through the one command core. The CLI opens neither the database nor Temporal here.
 */
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import { parseCommand, usage } from '../../commands/grammar';
import { ApiCallError, callOrExit, callWithLogin } from '../api-client';
import { VERBS_ON_CLI } from '../verbs';

function quote(word: string): string {
  return /\s/.test(word) && !/^["'].*["']$/.test(word) ? (word.includes('"') ? `'${word}'` : `"${word}"`) : word;
}

function fail(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

function failWith(e: unknown): never {
  if (e instanceof ApiCallError) fail(`error [${e.code}]: ${e.message}`);
  fail(`error: ${(e as Error).message}`);
}

/** Checks the words locally (usage at once, exit 2), then runs them on the server; exit 1 on a refusal. */
async function runVerb(words: string[], opts: { json?: boolean }): Promise<void> {
  const text = words.map(quote).join(' ');
  const parsed = parseCommand(text);
  if (!parsed.ok) fail(`${parsed.error}\n\nusage:\n${parsed.usage}`, 2);
  try {
    const reply = await callWithLogin<{ text: string; data: unknown }>('POST', '/commands', { words: text });
    console.log(opts.json ? JSON.stringify(reply.data, null, 2) : reply.text);
  } catch (e) {
    failWith(e);
  }
}

export function registerCycleCommands(program: Command): void {
  for (const verb of VERBS_ON_CLI) {
    program
      .command(verb)
      .description(usage(verb).split('\n')[0]!.replace(/:$/, ''))
      .argument('[words...]')
      .option('--emergency', 'start: run under the emergency overrides')
      .option('--json', 'print the result as JSON')
      .addHelpText('after', `\n${usage(verb)}\n\nRuns on the server you logged in to (patchops login), as you.`)
      .action(async (words: string[], opts: { emergency?: boolean; json?: boolean }) => {
        await runVerb([verb, ...words, ...(opts.emergency ? ['--emergency'] : [])], opts);
      });
  }

  const policies = program
    .command('policies')
    .description('deployment policies: list, show <name> [version], set <file.json>');
  policies
    .command('list')
    .description('the latest version of every policy')
    .action(async () => {
      const r = await callOrExit<{ policies: Array<{ name: string; version: number; description: string }> }>(
        'GET',
        '/policies',
      );
      for (const p of r.policies) console.log(`${p.name.padEnd(20)} v${p.version}  ${p.description}`);
    });
  policies
    .command('show')
    .argument('<name>')
    .argument('[version]')
    .description('print a policy (all fields, defaults filled in) as JSON')
    .action(async (name: string, version?: string) => {
      const p = await callOrExit<{ version: number; createdBy: string; createdAt: string; policy: unknown }>(
        'GET',
        `/policies/${encodeURIComponent(name)}${version === undefined ? '' : `?version=${encodeURIComponent(version)}`}`,
      );
      console.log(
        JSON.stringify(
          { version: p.version, createdBy: p.createdBy, createdAt: p.createdAt, policy: p.policy },
          null,
          2,
        ),
      );
    });
  policies
    .command('set')
    .argument('<file>', 'a JSON policy document ({ "name": "servers", … })')
    .description('validate a policy file and store it as the next version')
    .action(async (file: string) => {
      let doc: unknown;
      try {
        doc = JSON.parse(await fs.readFile(file, 'utf8'));
      } catch (e) {
        fail(`cannot read ${file} as JSON: ${(e as Error).message}`, 2);
      }
      const p = await callOrExit<{ name: string; version: number }>('POST', '/policies', doc);
      console.log(`policy ${p.name} saved as version ${p.version}`);
    });
}
