/**
 * A small, believable fleet for the README's screenshots: 36 endpoints in four groups across Windows, Linux
 * and macOS, missing patches with real CVEs (some on CISA's known-exploited list), a few failed installs,
 * and a month of compliance snapshots for the trend. Built with plain inserts; the aggregates are kept by
 * the database's own triggers, as for every other dashboard test.
 */
import type { Db } from '../../src/db/client';
import {
  complianceSnapshots,
  endpointGroups,
  endpointPatches,
  endpoints,
  groupMembers,
  patches,
} from '../../src/db/schema/index';

const DAY = 86_400_000;

const PATCHES = [
  {
    id: 'KB5036893',
    title: '2024-04 Cumulative Update for Windows 11',
    vendor: 'Microsoft',
    type: 'security',
    severity: 'critical',
    cvss: 7.8,
    cves: ['CVE-2024-26234', 'CVE-2024-29988'],
    knownExploited: true,
    osFamily: 'windows',
  },
  {
    id: 'KB5034441',
    title: 'Windows Recovery Environment update',
    vendor: 'Microsoft',
    type: 'security',
    severity: 'important',
    cvss: 6.8,
    cves: ['CVE-2024-20666'],
    knownExploited: false,
    osFamily: 'windows',
  },
  {
    id: 'DSA-5702-1',
    title: 'openssh security update',
    vendor: 'Debian',
    type: 'security',
    severity: 'critical',
    cvss: 8.1,
    cves: ['CVE-2024-6387'],
    knownExploited: false,
    osFamily: 'linux',
  },
  {
    id: 'DSA-5650-1',
    title: 'util-linux security update',
    vendor: 'Debian',
    type: 'security',
    severity: 'moderate',
    cvss: 5.5,
    cves: ['CVE-2024-28085'],
    knownExploited: false,
    osFamily: 'linux',
  },
  {
    id: 'DSA-5496-1',
    title: 'libwebp security update',
    vendor: 'Debian',
    type: 'security',
    severity: 'critical',
    cvss: 8.8,
    cves: ['CVE-2023-4863'],
    knownExploited: true,
    osFamily: 'linux',
  },
  {
    id: 'macOS-14.4.1',
    title: 'macOS Sonoma 14.4.1',
    vendor: 'Apple',
    type: 'security',
    severity: 'important',
    cvss: 8.8,
    cves: ['CVE-2024-1580'],
    knownExploited: false,
    osFamily: 'macos',
  },
  {
    id: 'DSA-5623-1',
    title: 'postgresql-15 bug fix update',
    vendor: 'Debian',
    type: 'bugfix',
    severity: 'low',
    cvss: null,
    cves: [],
    knownExploited: false,
    osFamily: 'linux',
  },
] as const;

export async function seedShowcaseFleet(db: Db, now = new Date()): Promise<{ endpoints: number }> {
  const ago = (days: number) => new Date(now.getTime() - days * DAY);
  const groups = await db
    .insert(endpointGroups)
    .values([{ name: 'pilot' }, { name: 'web-servers' }, { name: 'db-servers' }, { name: 'workstations' }])
    .returning({ id: endpointGroups.id, name: endpointGroups.name });
  const groupId = (name: string) => groups.find((g) => g.name === name)!.id;
  await db.insert(patches).values(PATCHES.map((p) => ({ ...p, cves: [...p.cves], cvss: p.cvss ?? undefined })));

  const fleet: Array<{ id: string; os: 'linux' | 'windows' | 'macos'; group: string }> = [];
  for (let i = 1; i <= 4; i++) fleet.push({ id: `pilot-${i}`, os: i % 2 ? 'linux' : 'windows', group: 'pilot' });
  for (let i = 1; i <= 12; i++) fleet.push({ id: `web-${i}`, os: 'linux', group: 'web-servers' });
  for (let i = 1; i <= 6; i++) fleet.push({ id: `db-${i}`, os: i <= 4 ? 'linux' : 'windows', group: 'db-servers' });
  for (let i = 1; i <= 14; i++) fleet.push({ id: `ws-${i}`, os: i <= 9 ? 'windows' : 'macos', group: 'workstations' });

  const osName = {
    linux: ['Debian', '12'],
    windows: ['Windows 11 Pro', '23H2'],
    macos: ['macOS Sonoma', '14.4'],
  } as const;
  await db.insert(endpoints).values(
    fleet.map((e, n) => ({
      id: e.id,
      machineId: `m-${e.id}`,
      hostname: `${e.id}.corp.example.net`,
      osFamily: e.os,
      osName: osName[e.os][0],
      osVersion: osName[e.os][1],
      lastSeenAt: ago((n % 5) * 0.01),
    })),
  );
  await db.insert(groupMembers).values(fleet.map((e) => ({ groupId: groupId(e.group), endpointId: e.id })));

  // Every third Linux server misses the OpenSSH fix; a few miss libwebp (known exploited, overdue); most
  // Windows machines have installed the April update, some not; one install failed.
  const rows: Array<typeof endpointPatches.$inferInsert> = [];
  fleet.forEach((e, n) => {
    if (e.os === 'linux') {
      rows.push({
        endpointId: e.id,
        patchId: 'DSA-5702-1',
        state: n % 3 === 0 ? 'missing' : 'installed',
        detectedAt: ago(12),
        installedAt: n % 3 === 0 ? undefined : ago(3),
      });
      if (n % 7 === 0) rows.push({ endpointId: e.id, patchId: 'DSA-5496-1', state: 'missing', detectedAt: ago(20) });
      if (n % 4 === 1) rows.push({ endpointId: e.id, patchId: 'DSA-5650-1', state: 'missing', detectedAt: ago(9) });
      if (e.group === 'db-servers')
        rows.push({
          endpointId: e.id,
          patchId: 'DSA-5623-1',
          state: n === 17 ? 'failed' : 'installed',
          detectedAt: ago(5),
          lastError: n === 17 ? 'dpkg: error processing package postgresql-15 (--configure)' : undefined,
          installedAt: n === 17 ? undefined : ago(2),
        });
    } else if (e.os === 'windows') {
      rows.push({
        endpointId: e.id,
        patchId: 'KB5036893',
        state: n % 4 === 0 ? 'missing' : 'installed',
        detectedAt: ago(9),
        installedAt: n % 4 === 0 ? undefined : ago(4),
      });
      rows.push({
        endpointId: e.id,
        patchId: 'KB5034441',
        state: n % 5 === 0 ? 'failed' : 'installed',
        detectedAt: ago(30),
        lastError: n % 5 === 0 ? '0x80070643: the recovery partition is too small' : undefined,
        installedAt: n % 5 === 0 ? undefined : ago(20),
      });
    } else {
      rows.push({
        endpointId: e.id,
        patchId: 'macOS-14.4.1',
        state: n % 2 === 0 ? 'missing' : 'installed',
        detectedAt: ago(15),
        installedAt: n % 2 === 0 ? undefined : ago(6),
      });
    }
  });
  await db.insert(endpointPatches).values(rows);

  // A month of trend points, rising as cycles ran, up to today's 50% (the overview visit adds today's point).
  const pcts = [28, 28, 30, 31, 31, 33, 36, 36, 37, 39, 39, 41, 42, 42, 44, 45, 45, 47, 47, 48];
  await db.insert(complianceSnapshots).values(
    pcts.map((pct, i) => ({
      takenAt: ago((pcts.length - i) * 1.5),
      endpoints: fleet.length,
      compliantEndpoints: Math.round((pct / 100) * fleet.length),
      compliancePct: pct,
    })),
  );
  return { endpoints: fleet.length };
}
