#!/usr/bin/env node
// `npm run package:agent`: the installable agent, in dist/agent/.
//
//   patchops-agent.cjs         the agent bundled into one CommonJS file (esbuild): runs on any Node.js 20.19+
//   modules.json               every source module the bundle holds (the bundle test checks it carries no server code)
//   patchops-agent             one executable (Node's single executable application: the bundle injected into a copy
//                              of this Node binary with postject), so an endpoint needs no Node.js
//   patchops-agent_<v>_<arch>.deb   the executable, a systemd unit, /etc/patchops/agent.env (conffile)
//   patchops-agent-<v>-1.<arch>.rpm the same for RPM systems (when rpmbuild is installed; skipped with a message if not)
//   portable/                  the bundle with the launchd plist and the Windows scripts (macOS and Windows, with Node.js)
//
// Options: --out DIR (instead of dist/agent), --skip-deb, --skip-rpm (the bundle and the executable are always built).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { inject } from 'postject';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const args = new Set(argv);
const outArg = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : undefined;
const fail = (m) => {
  console.error(`package:agent: ${m}`);
  process.exit(2);
};
if (argv.includes('--out') && (!outArg || outArg.startsWith('--')))
  fail('--out needs a folder, e.g. --out /tmp/agent-build');
const out = outArg ? path.resolve(outArg) : path.join(root, 'dist', 'agent');
const log = (m) => console.log(`package:agent: ${m}`);
const has = (tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const run = (cmd, argv, opts = {}) =>
  execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }).toString();

// The output folder is emptied first: dist/agent, or an --out folder that is new, empty or made by this script
// (it carries a marker file).
const marker = path.join(out, '.patchops-agent-build');
if (outArg && fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(marker)) {
  fail(`${out} is not empty and was not made by package:agent: give --out a new or empty folder`);
}
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(marker, 'made by scripts/package-agent.mjs: emptied on every build\n');

// 1. The bundle. CommonJS because Node 20's single executable applications run a CommonJS main script only;
// import.meta.url (windows-update.ts finds its .ps1 beside it) becomes the bundle's own file URL, or the
// executable's inside a single executable application.
const bundle = path.join(out, 'patchops-agent.cjs');
const result = await esbuild.build({
  entryPoints: [path.join(root, 'src/agent/main.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  define: { 'import.meta.url': '__patchopsModuleUrl' },
  banner: {
    js: "#!/usr/bin/env node\nvar __patchopsModuleUrl = require('node:url').pathToFileURL(typeof __filename === 'string' && __filename ? __filename : process.execPath).href;",
  },
});
fs.chmodSync(bundle, 0o755);
const modules = Object.keys(result.metafile.inputs).sort();
fs.writeFileSync(path.join(out, 'modules.json'), `${JSON.stringify(modules, null, 2)}\n`);
fs.copyFileSync(path.join(root, 'src/agent/backends/windows-update.ps1'), path.join(out, 'windows-update.ps1'));
const version = run(process.execPath, [bundle, '--version']).trim();
log(
  `bundle ${path.relative(root, bundle)} (${(fs.statSync(bundle).size / 1024).toFixed(0)} KiB, ${modules.length} modules), agent ${version}`,
);

// 2. One executable: Node's single executable application (node --experimental-sea-config + postject).
const exe = path.join(out, process.platform === 'win32' ? 'patchops-agent.exe' : 'patchops-agent');
const seaConfig = path.join(out, 'sea-config.json');
const blob = path.join(out, 'sea-prep.blob');
fs.writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
run(process.execPath, ['--experimental-sea-config', seaConfig]);
fs.copyFileSync(process.execPath, exe);
fs.chmodSync(exe, 0o755);
if (process.platform === 'darwin') run('codesign', ['--remove-signature', exe]);
// postject (LIEF) may print "Can't find string offset for section name '.note…'" for Linux binaries: harmless, the
// executable is run right after to check it.
await inject(exe, 'NODE_SEA_BLOB', fs.readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  machoSegmentName: process.platform === 'darwin' ? 'NODE_SEA' : undefined,
});
if (process.platform === 'darwin') run('codesign', ['--sign', '-', exe]);
fs.rmSync(blob);
fs.rmSync(seaConfig);
const exeVersion = run(exe, ['--version']).trim();
if (exeVersion !== version)
  throw new Error(`the single executable says its version is "${exeVersion}", the bundle "${version}"`);
log(
  `executable ${path.relative(root, exe)} (${(fs.statSync(exe).size / 1048576).toFixed(0)} MiB, Node ${process.version} inside)`,
);

// 3. The portable bundle for macOS and Windows endpoints that run it with their own Node.js.
const portable = path.join(out, 'portable');
fs.mkdirSync(portable);
for (const [from, to] of [
  [bundle, 'patchops-agent.cjs'],
  [path.join(out, 'windows-update.ps1'), 'windows-update.ps1'],
  [path.join(root, 'packaging/launchd/com.patchops.agent.plist'), 'com.patchops.agent.plist'],
  [path.join(root, 'packaging/windows/install-service.ps1'), 'install-service.ps1'],
])
  fs.copyFileSync(from, path.join(portable, to));

// 4. Linux packages, from one staged tree.
const arch = { x64: { deb: 'amd64', rpm: 'x86_64' }, arm64: { deb: 'arm64', rpm: 'aarch64' } }[process.arch];
if (!arch) throw new Error(`no Linux package architecture known for ${process.arch}`);
const staged = path.join(out, 'staged');
const stage = (rel, from, mode) => {
  const dest = path.join(staged, rel);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(from, dest);
  fs.chmodSync(dest, mode);
};
const pk = (f) => path.join(root, 'packaging/linux', f);
if (process.platform === 'linux') {
  stage('usr/lib/patchops-agent/patchops-agent', exe, 0o755);
  fs.mkdirSync(path.join(staged, 'usr/bin'), { recursive: true });
  fs.symlinkSync('../lib/patchops-agent/patchops-agent', path.join(staged, 'usr/bin/patchops-agent'));
  stage(
    'lib/systemd/system/patchops-agent.service',
    path.join(root, 'packaging/systemd/patchops-agent.service'),
    0o644,
  );
  stage('etc/patchops/agent.env', pk('agent.env'), 0o600);
  stage('usr/share/doc/patchops-agent/copyright', pk('copyright'), 0o644);
}

const maintainer = 'patchops <patchops@example.com>';
const description =
  "patchops endpoint agent\n patch management agent: enrols with a patchops server, long-polls it for scan, install,\n verify, rollback and reboot jobs and runs them with the machine's package managers.";

if (process.platform === 'linux' && !args.has('--skip-deb')) {
  if (!has('dpkg-deb')) log('dpkg-deb not found: no .deb built (apt-get install dpkg)');
  else {
    const debRoot = path.join(out, 'deb-root');
    fs.cpSync(staged, debRoot, { recursive: true, verbatimSymlinks: true });
    fs.mkdirSync(path.join(debRoot, 'DEBIAN'));
    const installedKb = Math.ceil(Number(run('du', ['-sk', '--apparent-size', debRoot]).split('\t')[0]));
    fs.writeFileSync(
      path.join(debRoot, 'DEBIAN/control'),
      `Package: patchops-agent\nVersion: ${version}\nArchitecture: ${arch.deb}\nMaintainer: ${maintainer}\nInstalled-Size: ${installedKb}\n` +
        `Depends: libc6, libstdc++6, libgcc-s1\nSection: admin\nPriority: optional\nHomepage: https://github.com/patchops/patchops\nDescription: ${description}\n`,
    );
    fs.writeFileSync(path.join(debRoot, 'DEBIAN/conffiles'), '/etc/patchops/agent.env\n');
    for (const s of ['postinst', 'prerm', 'postrm']) {
      fs.copyFileSync(pk(`deb-${s}`), path.join(debRoot, 'DEBIAN', s));
      fs.chmodSync(path.join(debRoot, 'DEBIAN', s), 0o755);
    }
    const deb = path.join(out, `patchops-agent_${version}_${arch.deb}.deb`);
    run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', debRoot, deb]);
    fs.rmSync(debRoot, { recursive: true });
    log(`deb ${path.relative(root, deb)} (${(fs.statSync(deb).size / 1048576).toFixed(1)} MiB)`);
  }
}

if (process.platform === 'linux' && !args.has('--skip-rpm')) {
  if (!has('rpmbuild')) log('rpmbuild not found: no .rpm built (apt-get install rpm, or dnf install rpm-build)');
  else {
    const top = path.join(out, 'rpmbuild');
    for (const d of ['BUILD', 'RPMS', 'SOURCES', 'SPECS', 'SRPMS', 'BUILDROOT'])
      fs.mkdirSync(path.join(top, d), { recursive: true });
    const spec = fs
      .readFileSync(pk('patchops-agent.spec'), 'utf8')
      .replaceAll('@VERSION@', version)
      .replaceAll('@MAINTAINER@', maintainer)
      .replaceAll('@STAGED@', staged)
      .replace('@POSTINSTALL@', fs.readFileSync(pk('rpm-post'), 'utf8'))
      .replace('@PREUNINSTALL@', fs.readFileSync(pk('rpm-preun'), 'utf8'))
      .replace('@POSTUNINSTALL@', fs.readFileSync(pk('rpm-postun'), 'utf8'));
    const specFile = path.join(top, 'SPECS/patchops-agent.spec');
    fs.writeFileSync(specFile, spec);
    run(
      'rpmbuild',
      ['-bb', '--target', arch.rpm, '--define', `_topdir ${top}`, '--define', '_build_id_links none', specFile],
      { env: { ...process.env, LC_ALL: 'C' } },
    );
    const built = path.join(top, 'RPMS', arch.rpm, `patchops-agent-${version}-1.${arch.rpm}.rpm`);
    const rpm = path.join(out, path.basename(built));
    fs.renameSync(built, rpm);
    fs.rmSync(top, { recursive: true });
    log(`rpm ${path.relative(root, rpm)} (${(fs.statSync(rpm).size / 1048576).toFixed(1)} MiB)`);
  }
}
fs.rmSync(staged, { recursive: true, force: true });
log('done');
