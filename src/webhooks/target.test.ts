import { describe, expect, it } from 'vitest';
import { isPublicAddress, resolveWebhookTarget, type Resolver } from './target';

describe('webhook targets', () => {
  it.each([
    ['127.0.0.1', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['::1', false],
    ['::', false],
    ['fe80::1', false],
    ['fd00::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['93.184.216.34', true],
    ['8.8.8.8', true],
    ['2606:4700:4700::1111', true],
    ['::ffff:8.8.8.8', true],
  ])('%s is public: %s', (address, pub) => {
    expect(isPublicAddress(address)).toBe(pub);
  });

  const resolver =
    (addresses: string[]): Resolver =>
    async () =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('refuses a host when any one of its addresses is not public, naming it and the setting', async () => {
    const url = new URL('https://hooks.example.com/x');
    await expect(
      resolveWebhookTarget(url, { allowPrivate: false, resolve: resolver(['93.184.216.34', '10.0.0.5']) }),
    ).rejects.toThrow(/10\.0\.0\.5.*WEBHOOK_ALLOW_PRIVATE/s);
    await expect(
      resolveWebhookTarget(url, { allowPrivate: false, resolve: resolver(['93.184.216.34']) }),
    ).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    await expect(
      resolveWebhookTarget(url, { allowPrivate: true, resolve: resolver(['10.0.0.5']) }),
    ).resolves.toHaveLength(1);
  });

  it('checks IP literals without resolving, brackets and all', async () => {
    await expect(resolveWebhookTarget(new URL('http://[::1]:8080/'), { allowPrivate: false })).rejects.toThrow(/::1/);
    await expect(resolveWebhookTarget(new URL('http://127.0.0.1/'), { allowPrivate: false })).rejects.toThrow(
      /127\.0\.0\.1/,
    );
  });
});
