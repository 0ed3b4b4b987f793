import { describe, expect, it } from 'vitest';
import { isLoopbackAddress, serviceUrlPolicy } from './service-url';

describe('serviceUrlPolicy', () => {
  const teamsOnly = serviceUrlPolicy();
  const configured = serviceUrlPolicy({ configured: ['https://connector.example.com/bot/'] });
  const emulator = serviceUrlPolicy({ allowLoopback: true });

  it.each([
    ['https://smba.trafficmanager.net/amer/', true],
    ['https://smba.trafficmanager.net/teams/', true],
    ['https://SMBA.trafficmanager.net/emea/', true],
    ['https://smba.infra.gcc.teams.microsoft.com/teams', true],
    ['https://smba.infra.gov.teams.microsoft.us/teams', true],
    ['https://smba.infra.dod.teams.microsoft.us/teams', true],
    ['http://smba.trafficmanager.net/amer/', false],
    ['https://smba.trafficmanager.net:8443/amer/', false],
    ['https://smba.trafficmanager.net.evil.example/amer/', false],
    ['https://evil.example/smba.trafficmanager.net/', false],
    ['https://x:y@smba.trafficmanager.net/amer/', false],
    ['http://127.0.0.1:9000/', false],
    ['not a url', false],
    [42, false],
    [undefined, false],
  ])('Teams hosts only: %s → %s', (url, ok) => {
    expect(teamsOnly(url)).toBe(ok);
  });

  it.each([
    ['https://connector.example.com/bot/', true],
    ['https://connector.example.com/bot/v3/x', true],
    ['https://connector.example.com/bot', true],
    ['https://connector.example.com/other/', false],
    ['https://connector.example.com:444/bot/', false],
    ['http://connector.example.com/bot/', false],
  ])('configured https://connector.example.com/bot/: %s → %s', (url, ok) => {
    expect(configured(url)).toBe(ok);
  });

  it.each([
    ['http://127.0.0.1:9000/', true],
    ['http://localhost:3978/', true],
    ['http://[::1]:3978/', true],
    ['http://127.1.2.3/', true],
    ['http://10.0.0.1/', false],
    ['ftp://127.0.0.1/', false],
  ])('emulator mode adds loopback connectors: %s → %s', (url, ok) => {
    expect(emulator(url)).toBe(ok);
  });
});

describe('isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['127.9.9.9', true],
    ['203.0.113.7', false],
    ['::ffff:203.0.113.7', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (a, ok) => {
    expect(isLoopbackAddress(a)).toBe(ok);
  });
});
