/**
 * A local signed rpm-md repository with update metadata, and throwaway dnf / zypper roots, built with the
 * real tools: rpmbuild and rpmsign (Debian package rpm), createrepo_c and modifyrepo_c (createrepo-c), gpg.
 * The updateinfo.xml is the format dnf reads as advisories and zypper as patches (one file for both).
 * Nothing touches the host's package state: dnf runs with --installroot, zypper and rpm with --root, and each
 * root has its own repository configuration (dnf and zypper read the root's configuration first).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface RpmTestPackage {
  name: string;
  /** '' for none. */
  epoch: string;
  versions: string[];
  /** false: built without a signature (what gpgcheck must refuse). Default true. */
  signed?: boolean;
  /** The update advisory of the last version: dnf reads it as an advisory, zypper as a patch. */
  advisory?: { id: string; type: string; severity?: string; title: string; cves?: string[]; reboot?: boolean };
}

export interface RpmTestRepo {
  dir: string;
  repo: string;
  /** ASCII-armoured public key the packages and repomd.xml are signed with. */
  keyFile: string;
  packages: RpmTestPackage[];
  cleanup(): Promise<void>;
}

/**
 * The standard set: a security advisory with severity and CVEs (on a package with an epoch), an advisory of a
 * type dnf calls unknown (SUSE's `recommended`, suggesting a reboot), an upgrade no advisory covers, and an unsigned package.
 */
export const RPM_TEST_PACKAGES: RpmTestPackage[] = [
  {
    name: 'patchops-demo',
    epoch: '1',
    versions: ['1.0', '2.0'],
    advisory: {
      id: 'PATCHOPS-2026:0001',
      type: 'security',
      severity: 'Important',
      title: 'Important: patchops-demo security update',
      cves: ['CVE-2026-990001', 'CVE-2026-990002'],
    },
  },
  {
    name: 'patchops-tools',
    epoch: '',
    versions: ['1.0', '2.0'],
    advisory: {
      id: 'PATCHOPS-2026:0002',
      type: 'recommended',
      title: 'Recommended update for patchops-tools',
      reboot: true,
    },
  },
  { name: 'patchops-extra', epoch: '', versions: ['1.0', '2.0'] },
  // never installed by the tests' setup: what a signature check must keep out
  { name: 'patchops-unsigned', epoch: '', versions: ['1.0'], signed: false },
];

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, {
      env: o.env ?? { ...process.env, LC_ALL: 'C' },
      cwd: o.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${err.status}: ${err.stderr?.toString() || err.stdout?.toString()}`,
    );
  }
}

const has = (t: string) => {
  try {
    run('sh', ['-c', `command -v ${t}`]);
    return true;
  } catch {
    return false;
  }
};

/** Tools missing for a round trip with `manager` (empty = all there). */
export function missingRpmTools(manager: 'dnf' | 'zypper'): string[] {
  return [manager, 'rpm', 'rpmbuild', 'rpmsign', 'createrepo_c', 'modifyrepo_c', 'gpg'].filter((t) => !has(t));
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function updateinfoXml(pkgs: RpmTestPackage[]): string {
  const updates = pkgs
    .filter((p) => p.advisory)
    .map((p) => {
      const a = p.advisory!;
      const v = p.versions[p.versions.length - 1]!;
      const refs = (a.cves ?? [])
        .map((c) => `      <reference href="https://www.cve.org/CVERecord?id=${c}" id="${c}" type="cve" title="${c}"/>`)
        .join('\n');
      return `  <update from="security@example.com" status="final" type="${esc(a.type)}" version="1">
    <id>${esc(a.id)}</id>
    <title>${esc(a.title)}</title>
${a.severity ? `    <severity>${esc(a.severity)}</severity>\n` : ''}    <release>patchops test</release>
    <issued date="2026-11-01 00:00:00"/>
    <updated date="2026-11-02 00:00:00"/>
    <references>
${refs}
    </references>
    <description>${esc(a.title)} (patchops round-trip test).</description>
    <pkglist>
      <collection short="patchops-test">
        <name>patchops test</name>
        <package name="${p.name}" version="${v}" release="1" epoch="${p.epoch || '0'}" arch="noarch" src="${p.name}-${v}-1.src.rpm">
          <filename>${p.name}-${v}-1.noarch.rpm</filename>
          <reboot_suggested>${a.reboot ? 'True' : 'False'}</reboot_suggested>
        </package>
      </collection>
    </pkglist>
  </update>`;
    });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<updates>\n${updates.join('\n')}\n</updates>\n`;
}

/** Builds every version of `packages` (noarch, signed), the repository metadata with updateinfo, and signs repomd.xml. */
export async function buildRpmTestRepo(packages: RpmTestPackage[] = RPM_TEST_PACKAGES): Promise<RpmTestRepo> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-rpm-'));
  const repo = path.join(dir, 'repo');
  const gnupg = path.join(dir, 'gnupg');
  await fs.mkdir(repo, { recursive: true });
  await fs.mkdir(gnupg, { mode: 0o700 });
  const genv = { ...process.env, LC_ALL: 'C', GNUPGHOME: gnupg };
  run(
    'gpg',
    [
      '--batch',
      '--passphrase',
      '',
      '--quick-gen-key',
      'patchops test rpm repo <tests@example.com>',
      'rsa3072',
      'sign',
      'never',
    ],
    { env: genv },
  );
  const keyFile = path.join(dir, 'RPM-GPG-KEY-patchops-test');
  await fs.writeFile(keyFile, run('gpg', ['--armor', '--export'], { env: genv }));

  // rpmbuild and rpmsign open an rpm database (Debian's default is ~/.rpmdb): a throwaway one, not the host's
  const dbpath = ['--define', `_dbpath ${path.join(dir, 'rpmdb')}`];
  const rpmDefs = (top: string) => [
    ...dbpath,
    '--define',
    `_topdir ${top}`,
    '--define',
    `_rpmdir ${repo}`,
    '--define',
    '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm',
  ];
  for (const p of packages) {
    for (const v of p.versions) {
      const spec = path.join(dir, `${p.name}-${v}.spec`);
      await fs.writeFile(
        spec,
        [
          `Name: ${p.name}`,
          ...(p.epoch ? [`Epoch: ${p.epoch}`] : []),
          `Version: ${v}`,
          'Release: 1',
          'Summary: patchops rpm round-trip test package',
          'License: MIT',
          'BuildArch: noarch',
          '%description',
          'patchops rpm round-trip test package',
          '%install',
          `mkdir -p %{buildroot}/usr/share/${p.name}`,
          `echo ${v} > %{buildroot}/usr/share/${p.name}/version`,
          '%files',
          `/usr/share/${p.name}/version`,
          '',
        ].join('\n'),
      );
      run('rpmbuild', [...rpmDefs(path.join(dir, 'rpmbuild')), '-bb', spec]);
      // Debian's rpm names gpg2 as its signer (%__gpg); gpg is the same program there.
      if (p.signed !== false)
        run(
          'rpmsign',
          [
            ...dbpath,
            '--define',
            '_gpg_name patchops test rpm repo',
            '--define',
            '__gpg /usr/bin/gpg',
            '--addsign',
            path.join(repo, `${p.name}-${v}-1.noarch.rpm`),
          ],
          { env: genv },
        );
    }
  }
  run('createrepo_c', ['--quiet', repo]);
  const ui = path.join(dir, 'updateinfo.xml');
  await fs.writeFile(ui, updateinfoXml(packages));
  run('modifyrepo_c', ['--mdtype=updateinfo', ui, path.join(repo, 'repodata')]);
  const repomd = path.join(repo, 'repodata/repomd.xml');
  run('gpg', ['--batch', '--yes', '--armor', '--detach-sign', '-o', `${repomd}.asc`, repomd], { env: genv });
  await fs.copyFile(keyFile, `${repomd}.key`);
  try {
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: genv, stdio: 'ignore' });
  } catch {
    // no agent running, or no gpgconf: nothing to stop
  }
  return { dir, repo, keyFile, packages, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

const repoFile = (t: RpmTestRepo) =>
  [
    '[patchops-test]',
    'name=patchops test',
    'enabled=1',
    'autorefresh=1',
    `baseurl=file://${t.repo}`,
    'type=rpm-md',
    'gpgcheck=1',
    'repo_gpgcheck=1',
    `gpgkey=file://${t.keyFile}`,
    '',
  ].join('\n');

/** An empty root for dnf (`--installroot`) that trusts the repository's key and knows only that repository. */
export async function dnfRoot(t: RpmTestRepo, name = 'dnf-root'): Promise<string> {
  const root = path.join(t.dir, name);
  await fs.mkdir(path.join(root, 'etc/yum.repos.d'), { recursive: true });
  await fs.mkdir(path.join(root, 'etc/dnf/vars'), { recursive: true });
  // the root's own dnf.conf and reposdir: nothing of the host's configuration applies
  await fs.writeFile(
    path.join(root, 'etc/dnf/dnf.conf'),
    '[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\n',
  );
  await fs.writeFile(path.join(root, 'etc/yum.repos.d/patchops-test.repo'), repoFile(t));
  run('rpm', ['--root', root, '--import', t.keyFile]);
  return root;
}

/** An empty root for zypper (`--root`) that trusts the repository's key, with the repository refreshed. */
export async function zypperRoot(t: RpmTestRepo, name = 'zypper-root'): Promise<string> {
  const root = path.join(t.dir, name);
  await fs.mkdir(path.join(root, 'etc/zypp/repos.d'), { recursive: true });
  await fs.writeFile(path.join(root, 'etc/zypp/repos.d/patchops-test.repo'), repoFile(t));
  run('rpm', ['--root', root, '--import', t.keyFile]);
  run('zypper', ['--non-interactive', '--root', root, 'refresh']);
  return root;
}

/** Installs exact versions into a root with the tool itself (setup for a test, not the code under test). */
export function dnfInstallInto(root: string, specs: string[]): void {
  run('dnf', ['-y', '-q', `--installroot=${root}`, 'install', '--', ...specs]);
}

export function zypperInstallInto(root: string, specs: string[]): void {
  run('zypper', ['--non-interactive', '--root', root, 'install', '--', ...specs]);
}
