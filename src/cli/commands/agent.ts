/**
 * Agent-area verbs: `agent`, `agent-sim`, `distribution-point`, `enroll-secret add|list|revoke`,
 * `agents list|revoke|site`, `repo add|list|remove` (and `repo-add`, in ./repo-add.ts),
 * `distribution-point-register`, `distribution-points list|remove`.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { configureAgentCommand } from '../../agent/cli';
import { outputLine, serveCommands, type SimOutput } from '../../agent-sim/control';
import { parseSimPatches, SimFleet, simOptionsFrom, type SimCliOptions } from '../../agent-sim/fleet';
import { type EnrollSecretInfo } from '../../db/agent-enroll-secrets';
import { type AgentSummary } from '../../db/agent-keys';
import { type DistributionPointSummary } from '../../db/distribution-points';
import { callOrExit, readCredentials } from '../api-client';
import { DEFAULT_MAX_CACHE_MB, startDistributionPoint } from '../../distribution-point/server';
import { manifestBodySchema } from '../../shared/agent-protocol';
import { reportFatal } from '../context';
import { addRepoAddCommand } from './repo-add';

/**
 * How long after `distribution-points remove` a gateway may still accept the point's token (DP_TOKEN_TTL_MS) and
 * still offer the point to agents (distributionPointsRefreshMs's default) — both in src/server/agent-gateway.ts,
 * not imported to keep Fastify out of this module: keep them in step. A running point re-checks its own token every
 * 5 min (keyRefreshMs in src/distribution-point/server.ts).
 */
const DP_TOKEN_CACHE_SECONDS = 30;
const DP_LIST_RELOAD_SECONDS = 30;

function stopOnSignal(): AbortController {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac;
}

export function registerAgentCommands(program: Command): void {
  configureAgentCommand(program.command('agent'));

  program
    .command('agent-sim')
    .description(
      'a simulated fleet: N virtual endpoints in one process speaking the agent protocol (tests, demos, load)',
    )
    .requiredOption('--server <url>', 'the patchops server URL')
    .requiredOption('--enroll-secret <secret>', 'an active enrol secret')
    .option('--count <n>', 'how many endpoints', '100')
    .option('--prefix <p>', 'machine id prefix (same prefix = same endpoints)', 'sim')
    .option('--wait <seconds>', 'long-poll wait', '30')
    .option('--failure-rate <r>', 'share of installs that fail', '0.02')
    .option('--latency <ms>', 'install latency range per patch, min-max', '200-2000')
    .option('--seed <n>', 'random seed', '42')
    .option('--os-mix <w:l:m>', 'shares of Windows, Linux and macOS endpoints', '60:30:10')
    .option('--start-spread <seconds>', 'start the poll loops at random moments within this many seconds', '0')
    .option(
      '--patches <file.json>',
      'every endpoint reports exactly these patches missing (a JSON array in the agent protocol shape)',
    )
    .option('--fail-on <machine ids>', 'comma-separated machine ids whose installs always fail')
    .option(
      '--ndjson',
      'for programs: events (enrolled, install, result, ready) on stdout as JSON lines, logs on stderr; ' +
        'commands (fail-installs-on, stats, stop) read from stdin as JSON lines; the end of stdin stops the fleet',
    )
    .action(async (o: SimCliOptions & { patches?: string; ndjson?: boolean }) => {
      const log = pino(
        { name: 'patchops-agent-sim', level: process.env.LOG_LEVEL ?? 'info' },
        // With --ndjson, standard output carries the events only.
        pino.destination(o.ndjson ? 2 : 1),
      );
      const ac = stopOnSignal();
      let options;
      try {
        options = {
          ...simOptionsFrom(o),
          ...(o.patches ? { patches: parseSimPatches(await fs.readFile(o.patches, 'utf8')) } : {}),
        };
      } catch (e) {
        reportFatal(e);
      }
      const write = (line: SimOutput) => process.stdout.write(outputLine(line));
      const fleet = new SimFleet({
        ...options,
        ...(o.ndjson ? { onEvent: write } : {}),
        log,
        signal: ac.signal,
      });
      if (o.ndjson) serveCommands(fleet, process.stdin, write, () => ac.abort());
      try {
        await fleet.enroll();
        if (o.ndjson) write({ type: 'ready', enrolled: fleet.stats.enrolled });
        else console.log(`agent-sim: ${fleet.stats.enrolled} endpoints enrolled; polling (Ctrl-C to stop)`);
        const t = setInterval(() => log.info(fleet.stats, 'agent-sim'), 10_000);
        await fleet.run();
        clearInterval(t);
      } catch (e) {
        reportFatal(e);
      }
      process.exit(0);
    });

  program
    .command('distribution-point')
    .description("serve and cache the central repository's files for a site (filled on demand, hashes verified)")
    .requiredOption('--upstream <url>', 'the central patchops server (or another distribution point)')
    .option(
      '--token <token>',
      'the token `distribution-point-register` printed (PATCHOPS_DP_TOKEN)',
      process.env.PATCHOPS_DP_TOKEN,
    )
    .option('--cache-dir <dir>', 'where cached files live', path.join(os.tmpdir(), 'patchops-dp-cache'))
    .option(
      '--max-cache-mb <mb>',
      'cache limit: least recently used files are deleted beyond it',
      String(DEFAULT_MAX_CACHE_MB),
    )
    .option('--any-site', "serve enrolled agents of every site, not only this point's own")
    .option('--host <host>', 'listen address', '0.0.0.0')
    .option('--port <port>', 'listen port', '8081')
    .action(
      async (o: {
        upstream: string;
        token?: string;
        cacheDir: string;
        maxCacheMb: string;
        anySite?: boolean;
        host: string;
        port: string;
      }) => {
        if (!o.token)
          reportFatal(
            new Error(
              '--token is required (or set PATCHOPS_DP_TOKEN): register the point on the server with `patchops distribution-point-register --name N --url URL --site S`, which prints it',
            ),
          );
        const maxMb = Number(o.maxCacheMb);
        if (!Number.isFinite(maxMb) || maxMb <= 0)
          reportFatal(new Error(`--max-cache-mb "${o.maxCacheMb}" is not a positive number of megabytes`));
        const log = pino({ name: 'patchops-dp', level: process.env.LOG_LEVEL ?? 'info' });
        const dp = await startDistributionPoint({
          upstream: o.upstream,
          token: o.token,
          cacheDir: o.cacheDir,
          maxCacheBytes: Math.floor(maxMb * 1024 * 1024),
          anySite: o.anySite,
          host: o.host,
          port: Number(o.port),
          log,
        }).catch(reportFatal);
        console.log(
          `distribution point ready at ${dp.url} (upstream ${o.upstream}, cache ${dp.cache().files} files, ${(dp.cache().bytes / 1048576).toFixed(1)} MB of ${maxMb} MB)`,
        );
        const ac = stopOnSignal();
        await new Promise((r) => ac.signal.addEventListener('abort', r));
        await dp.close();
        process.exit(0);
      },
    );

  program
    .command('distribution-point-register')
    .description(
      'tell the server about a distribution point (agents of endpoints tagged site:<site> fetch from it first) and issue its token; again with the same name: a new token',
    )
    .requiredOption('--name <name>')
    .requiredOption('--url <url>', 'the URL agents reach it at')
    .requiredOption('--site <site>')
    .action(async (o: { name: string; url: string; site: string }) => {
      const r = await callOrExit<{ name: string; site: string; token: string }>('POST', '/distribution-points', o);
      const server = (await readCredentials())!.server;
      const port = /:(\d+)(\/|$)/.exec(o.url.replace(/^https?:\/\//, ''))?.[1] ?? '8081';
      console.log(
        `distribution point ${r.name} registered for site ${r.site}. Its token is shown only now (registering the name again replaces it):\n\n  ${r.token}\n\n` +
          `Start it on its host:\n\n  PATCHOPS_DP_TOKEN=${r.token} patchops distribution-point --upstream ${server} --port ${port} --cache-dir /var/cache/patchops-dp\n\n` +
          `Agents of endpoints of site ${r.site} (\`patchops agent --site ${r.site}\`, or \`patchops agents site <endpoint> ${r.site}\`) are offered it within a minute.`,
      );
    });

  const secrets = program
    .command('enroll-secret')
    .description('agent enrolment secrets (several may be active: rotate by adding a new one, then revoking the old)');
  secrets
    .command('add')
    .option('--name <name>', 'a name for it', `secret-${new Date().toISOString().slice(0, 10)}`)
    .option('--secret <secret>', 'use this value (≥16 chars) instead of a generated one')
    .action(async (o: { name: string; secret?: string }) => {
      const r = await callOrExit<{ name: string; secret: string }>('POST', '/enroll-secrets', {
        name: o.name,
        ...(o.secret ? { secret: o.secret } : {}),
      });
      console.log(
        `enrol secret "${r.name}" added. It is shown only now:\n\n  ${r.secret}\n\nEnrol an agent: patchops agent --server <url> --enroll-secret ${r.secret}`,
      );
    });
  secrets.command('list').action(async () => {
    const rows = (await callOrExit<{ secrets: EnrollSecretInfo[] }>('GET', '/enroll-secrets')).secrets;
    if (rows.length === 0)
      console.log('no enrol secrets (AGENT_ENROLL_SECRET, when set, is added when the server starts)');
    for (const r of rows)
      console.log(`${r.name.padEnd(24)} ${r.revokedAt ? `revoked ${r.revokedAt}` : 'active'}  (added ${r.createdAt})`);
  });
  secrets.command('revoke <name>').action(async (name: string) => {
    await callOrExit('DELETE', `/enroll-secrets/${encodeURIComponent(name)}`);
    console.log(`enrol secret "${name}" revoked; enrolled agents keep working`);
  });

  const agents = program.command('agents').description('enrolled agents');
  agents.command('list').action(async () => {
    const rows = (await callOrExit<{ agents: AgentSummary[] }>('GET', '/agents')).agents;
    if (rows.length === 0) console.log('no agents enrolled yet');
    for (const r of rows)
      console.log(
        `${r.endpointId.padEnd(24)} ${r.hostname.padEnd(28)} ${`${r.osFamily} ${r.osVersion}`.padEnd(22)} ${r.status.padEnd(12)} ${`site ${r.site ?? '-'}`.padEnd(20)} last seen ${r.lastSeenAt ?? 'never'}${r.activeKeys === 0 ? '  (revoked)' : ''}`,
      );
  });
  agents
    .command('site <endpoint> [site]')
    .description(
      "set an endpoint's site (by endpoint id or hostname): it gets exactly one site:<site> tag; the agent is offered the site's distribution points from its next poll",
    )
    .option('--remove', 'remove the site tag instead')
    .action(async (endpoint: string, site: string | undefined, o: { remove?: boolean }) => {
      if (!site && !o.remove)
        reportFatal(new Error('give a site, e.g. `patchops agents site host12 branch-1`, or --remove'));
      const r = await callOrExit<{
        endpointId: string;
        hostname: string;
        site: string | null;
        previous: string | null;
      }>('PUT', `/agents/${encodeURIComponent(endpoint)}/site`, { site: o.remove ? null : site! });
      console.log(`${r.endpointId} (${r.hostname}): site ${r.previous ?? '(none)'} → ${r.site ?? '(none)'}`);
    });
  agents
    .command('revoke <endpointId>')
    .description("revoke the agent's node key: it gets 401 from now on and must be enrolled again")
    .action(async (id: string) => {
      const n = (await callOrExit<{ revokedKeys: number }>('POST', `/agents/${encodeURIComponent(id)}/revoke`))
        .revokedKeys;
      console.log(`${n} key(s) of ${id} revoked`);
    });

  addRepoAddCommand(program.command('repo-add <files...>'));
  const repo = program.command('repo').description("the central repository's files and its signed manifest");
  addRepoAddCommand(repo.command('add <files...>'));
  repo
    .command('list')
    .description(
      'the latest manifest: version, expiry, signing key and its files (from the server: needs patchops login)',
    )
    .action(async () => {
      const m = (await callOrExit<{ manifest: { body: string; keyId: string } | null }>('GET', '/repository')).manifest;
      if (!m) {
        console.log('no manifest published yet: add files with `patchops repo add <files…>`');
        return;
      }
      const body = manifestBodySchema.parse(JSON.parse(m.body));
      const expired = new Date(body.expiresAt).getTime() <= Date.now();
      console.log(
        `manifest version ${body.version}, expires ${body.expiresAt}${expired ? ' EXPIRED (agents refuse it: publish a new one with `patchops repo add` or `repo remove`)' : ''}, signed with key ${m.keyId}, ${body.files.length} file(s)`,
      );
      for (const f of body.files) console.log(`${f.sha256}  ${String(f.size).padStart(12)}  ${f.name}`);
    });
  repo
    .command('remove <name-or-sha256...>')
    .description(
      'publish a new signed manifest without these files (by name or sha256); the server deletes their bytes unless still listed (needs patchops login, admin)',
    )
    .option('--ttl-hours <h>', 'how long the new manifest stays valid', String(24 * 7))
    .action(async (refs: string[], o: { ttlHours: string }) => {
      const ttlHours = ttlHoursOrExit(o.ttlHours);
      const r = await callOrExit<RepoRemoved>('DELETE', '/repository/files', { files: refs, ttlHours });
      for (const f of r.removed) {
        console.log(
          f.bytesDeleted
            ? `${f.sha256}  ${f.name}  removed`
            : `${f.sha256}  ${f.name}  removed from the manifest (its bytes stay: still listed under another name)`,
        );
      }
      console.log(
        `manifest version ${r.version} published and signed (was ${r.previousVersion}), ${r.files.length} file(s) left`,
      );
    });

  const points = program
    .command('distribution-points')
    .description('registered distribution points (register one with `distribution-point-register`)');
  points
    .command('list')
    .description('every registered point: name, site, URL, when and by whom it was registered')
    .action(async () => {
      const rows = (await callOrExit<{ distributionPoints: DistributionPointSummary[] }>('GET', '/distribution-points'))
        .distributionPoints;
      if (rows.length === 0)
        console.log(
          'no distribution points registered: add one with `patchops distribution-point-register --name N --url URL --site S`',
        );
      for (const r of rows) {
        const by = r.registeredBy ? ` by ${r.registeredBy}` : '';
        const reissued = r.tokenReissued ? `, token reissued ${r.tokenReissued.at} by ${r.tokenReissued.by}` : '';
        console.log(
          `${r.name.padEnd(24)} site ${r.site.padEnd(16)} ${r.url.padEnd(40)} registered ${r.registeredAt}${by}${reissued}${r.hasToken ? '' : '  (no token: register it again)'}`,
        );
      }
    });
  points
    .command('remove <name>')
    .description('remove a point: its token stops working and agents of its site stop being offered it')
    .action(async (name: string) => {
      const r = await callOrExit<{ name: string; site: string; url: string }>(
        'DELETE',
        `/distribution-points/${encodeURIComponent(name)}`,
      );
      console.log(
        `distribution point ${r.name} (site ${r.site}, ${r.url}) removed. Servers refuse its token within ${DP_TOKEN_CACHE_SECONDS} s (they trust a token they have checked for that long), ` +
          `and agents of site ${r.site} stop being offered it within ${DP_LIST_RELOAD_SECONDS} s (servers reload the list of points that often) and fetch from the server instead. ` +
          `A point still running can fetch nothing new from then on, and refuses agents once it next checks its own token (every 5 min): stop its process.`,
      );
    });
}

/** What DELETE /api/v1/repository/files answers. */
interface RepoRemoved {
  version: number;
  previousVersion: number;
  removed: Array<{ name: string; sha256: string; bytesDeleted: boolean }>;
  files: unknown[];
}

function ttlHoursOrExit(value: string): number {
  const h = Number(value);
  if (!Number.isFinite(h) || h <= 0) reportFatal(new Error(`--ttl-hours "${value}" is not a positive number of hours`));
  return h;
}
