import { describe, expect, it } from 'vitest';
import { parseSimPatches } from './fleet';

describe('parseSimPatches (agent-sim --patches)', () => {
  const kb = {
    patchId: 'KB5041001',
    title: 'Security update',
    vendor: 'Microsoft',
    type: 'security',
    cves: ['CVE-2024-3400'],
    packages: [{ manager: 'windows-update', name: 'KB5041001' }],
  };

  it('reads an array of patches in the agent protocol shape, with its defaults', () => {
    expect(parseSimPatches(JSON.stringify([kb]))).toEqual([{ ...kb, product: '', rebootRequired: false }]);
  });

  it.each([
    ['not JSON', '[{', /the patches file is not JSON/],
    ['an empty array', '[]', /not a non-empty array of patches .*the top level/],
    ['an entry without a patch id', JSON.stringify([{ ...kb, patchId: undefined }]), /0\.patchId/],
    ['an object, not an array', JSON.stringify(kb), /the top level/],
  ])('refuses %s, naming what is wrong', (_what, text, message) => {
    expect(() => parseSimPatches(text)).toThrow(message);
  });
});
