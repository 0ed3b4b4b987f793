import { describe, expect, it } from 'vitest';
import {
  isBrewCask,
  isBrewFormula,
  isBrewVersion,
  isDebianPackageName,
  isDebianVersion,
  isFwupdDeviceId,
  isFwupdGuid,
  isFwupdVersion,
  isRpmEvr,
  isRpmName,
  isSoftwareUpdateLabel,
  isWindowsKb,
  isWindowsUpdateId,
  isWingetId,
  isWingetVersion,
  isZypperPatchId,
  packageRefProblem,
  patchPayloadProblems,
} from './package-names';

// Names that reach a command line as options, or carry shell/argument tricks: refused by every grammar.
const HOSTILE = [
  '-oDPkg::Pre-Invoke::=touch /tmp/pwned',
  '--setopt=tsflags=noscripts',
  '-y',
  ' openssl',
  'openssl ',
  'open ssl',
  'openssl\n-oAPT::x=1',
  'openssl\t',
  'a\u0000b',
  '',
  'x'.repeat(300),
];

describe('package name and version grammars', () => {
  it('Debian package names (Policy §5.6.1) with an optional :arch', () => {
    for (const ok of [
      'openssl',
      'libssl3',
      'g++',
      'libc6:i386',
      'linux-image-6.1.0-18-amd64',
      'libstdc++6',
      'python3.11',
      'xz-utils',
      '0ad',
    ])
      expect(isDebianPackageName(ok), ok).toBe(true);
    for (const bad of [
      ...HOSTILE,
      'a',
      'OpenSSL',
      '+foo',
      '.foo',
      'foo_bar',
      'foo:',
      'foo:AMD64',
      'foo/bar',
      'foo=1.0',
    ])
      expect(isDebianPackageName(bad), bad).toBe(false);
  });

  it('Debian versions (Policy §5.6.12)', () => {
    for (const ok of [
      '3.0.11-1~deb12u2',
      '1:2.38.1-5+deb12u1',
      '2024a-0+deb12u1',
      '1.0',
      '2:9.0.1378-2',
      '6.1.76-1',
      '1.2.3+dfsg-1ubuntu0.1',
      '0.99~rc1',
    ])
      expect(isDebianVersion(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, 'a1.0', '1.0-', ':1.0', '1:', 'x:1.0', '1.0_1', '1.0 -1', '1.0-1:2', '1.0=1'])
      expect(isDebianVersion(bad), bad).toBe(false);
  });

  it('RPM names and EVRs (rpm-version(7))', () => {
    for (const ok of ['openssl-libs', 'kernel', 'python3.11', 'gcc-c++', '_private', 'NetworkManager'])
      expect(isRpmName(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, '.hidden', '%{name}', 'foo/bar', 'foo:bar']) expect(isRpmName(bad), bad).toBe(false);
    for (const ok of [
      '3.0.7-25.el9_3',
      '1:3.0.7-25.el9_3',
      '32:9.11.4-26.P2.el7_9.13',
      '2.0~rc1',
      '2.0^20250611',
      '5.14.0',
    ])
      expect(isRpmEvr(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, '1.0-1-1', '-1.0', '1.0-', 'a:1.0', '1.0 1']) expect(isRpmEvr(bad), bad).toBe(false);
  });

  it('zypper patch ids', () => {
    for (const ok of [
      'SUSE-SLE-Module-Basesystem-15-SP5-2024-1234',
      'openSUSE-SLE-15.5-2024-1234',
      'openSUSE-2024-123',
    ])
      expect(isZypperPatchId(ok), ok).toBe(true);
    for (const bad of HOSTILE) expect(isZypperPatchId(bad), bad).toBe(false);
  });

  it('Windows Update ids and KB numbers', () => {
    for (const ok of ['KB5034441', 'KB890830', 'WU-0f2e5a3c-1d2b-4c5d-8e9f-a0b1c2d3e4f5'])
      expect(isWindowsUpdateId(ok), ok).toBe(true);
    expect(isWindowsKb('KB5034441')).toBe(true);
    for (const bad of [...HOSTILE, 'KB', 'kb5034441', 'KB5034441;calc', '5034441', 'WU-notaguid', 'KB123456789'])
      expect(isWindowsUpdateId(bad), bad).toBe(false);
  });

  it('winget identifiers and versions (manifest schema)', () => {
    for (const ok of [
      'Microsoft.VisualStudioCode',
      'Mozilla.Firefox.ESR',
      '7zip.7zip',
      'Git.Git',
      'Microsoft.DotNet.DesktopRuntime.8',
    ])
      expect(isWingetId(ok), ok).toBe(true);
    for (const bad of [
      ...HOSTILE,
      'Firefox',
      '-Mozilla.Firefox',
      'Mozilla..Firefox',
      'Mozilla.Fire fox',
      'Mozilla/Firefox.x',
      'a.b.c.d.e.f.g.h.i',
    ])
      expect(isWingetId(bad), bad).toBe(false);
    for (const ok of ['120.0.1', '1.2.3-beta', '2024.01']) expect(isWingetVersion(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, '-1.0', '1.0 beta', '1.0|x']) expect(isWingetVersion(bad), bad).toBe(false);
  });

  it('Homebrew formulae, casks and versions', () => {
    for (const ok of ['openssl@3', 'git', 'python@3.12', 'homebrew/core/wget', 'node.js', 'c++utilities'])
      expect(isBrewFormula(ok), ok).toBe(true);
    for (const ok of ['cask:visual-studio-code', 'cask:1password', 'cask:font-fira-code'])
      expect(isBrewCask(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, 'OpenSSL', '-git', 'cask:-x', 'cask:'])
      expect(isBrewFormula(bad) || isBrewCask(bad), bad).toBe(false);
    for (const ok of ['3.2.0_1', '120.0.6099.129,abc', 'latest', '1.2.3']) expect(isBrewVersion(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, '-1']) expect(isBrewVersion(bad), bad).toBe(false);
  });

  it('softwareupdate labels allow single inner spaces only', () => {
    for (const ok of [
      'macOS Sonoma 14.2-23C64',
      'Command Line Tools for Xcode-15.1',
      'Safari17.2VenturaAuto-17.2',
      'BridgeOSUpdateCustomer',
    ])
      expect(isSoftwareUpdateLabel(ok), ok).toBe(true);
    for (const bad of [
      ...HOSTILE.filter((h) => h !== 'open ssl'),
      '--all',
      'macOS  Sonoma',
      'macOS;reboot',
      'macOS Sonoma -x',
    ])
      expect(isSoftwareUpdateLabel(bad), bad).toBe(false);
  });

  it('fwupd device ids, GUIDs and release versions', () => {
    expect(isFwupdDeviceId('362301da643102b9f38477387e2193e57abaa590')).toBe(true);
    expect(isFwupdDeviceId('362301DA643102B9F38477387E2193E57ABAA590')).toBe(false);
    expect(isFwupdDeviceId('362301da')).toBe(false);
    expect(isFwupdGuid('2082b5e0-7a64-478a-b1b2-e3404fab6dad')).toBe(true);
    for (const ok of ['1.2.3', '1.2.3.4', '0x0000000a', '184.33.0']) expect(isFwupdVersion(ok), ok).toBe(true);
    for (const bad of [...HOSTILE, '-1.2', '0x12 34'])
      expect(isFwupdVersion(bad) || isFwupdDeviceId(bad) || isFwupdGuid(bad), bad).toBe(false);
  });

  it('a refused ref and payload say which patch, which manager and what the name was (quoted)', () => {
    expect(packageRefProblem({ manager: 'apt', name: 'openssl', version: '3.0.13-1~deb12u1' })).toBeNull();
    expect(packageRefProblem({ manager: 'apt', name: '-oDPkg::Pre-Invoke::=id' })).toMatch(
      /^apt package name "-oDPkg::Pre-Invoke::=id" is not a Debian package name/,
    );
    expect(packageRefProblem({ manager: 'pacman', name: 'x' })).toMatch(/unknown package manager "pacman"/);
    expect(packageRefProblem({ manager: 'file', name: 'setup.msi' })).toMatch(/no sha256/);
    expect(packageRefProblem({ manager: 'file', name: '../etc/passwd', sha256: 'a'.repeat(64) })).toMatch(
      /plain file name/,
    );
    const problems = patchPayloadProblems([
      {
        patchId: 'P1',
        packages: [{ manager: 'apt', name: 'openssl', version: '3.0.13-1' }],
        previousVersions: { '-oAPT::Get::x=1': '1.0', openssl: '1.0 ; id' },
      },
      {
        patchId: 'P2',
        packages: [{ manager: 'zypper', name: 'SUSE-SLE-15-2024-1' }],
        previousVersions: { libopenssl3: '3.0.8-150500.5.20.1' },
      },
    ]);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^P1: previousVersions: apt package name "-oAPT::Get::x=1"/);
    expect(problems[1]).toMatch(/^P1: previousVersions: apt version "1.0 ; id" of "openssl"/);
  });
});
