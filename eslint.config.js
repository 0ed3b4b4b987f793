// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

/**
 * Which folder of src/ may import which: the README's architecture table, enforced. A folder may import itself
 * and the folders listed; `runtime` (the composition root) and `cli` may import anything, except that `runtime`
 * never imports `cli`. Import cycles are checked separately by dependency-cruiser (.dependency-cruiser.cjs).
 */
const FOLDERS = [
  'activities',
  'agent',
  'api',
  'agent-sim',
  'chat',
  'cli',
  'commands',
  'config',
  'db',
  'distribution-point',
  'domain',
  'integrations',
  'reports',
  'runtime',
  'server',
  'services',
  'shared',
  'temporal',
  'webhooks',
  'worker',
  'workflows',
];
/** @type {Record<string, string[]>} */
const MAY_IMPORT = {
  shared: [],
  domain: ['shared'],
  config: ['domain', 'shared'],
  agent: ['shared'],
  'agent-sim': ['agent', 'shared'],
  'distribution-point': ['shared'],
  db: ['config', 'domain', 'shared'],
  reports: ['db', 'domain', 'shared'],
  integrations: ['config', 'domain', 'reports', 'shared'],
  temporal: ['config', 'domain', 'shared'],
  workflows: ['activities', 'domain', 'shared'],
  activities: ['config', 'db', 'domain', 'integrations', 'reports', 'shared', 'temporal'],
  services: ['config', 'db', 'domain', 'shared', 'temporal', 'workflows'],
  commands: ['config', 'db', 'domain', 'reports', 'services', 'shared'],
  chat: ['commands', 'config', 'db', 'domain', 'reports', 'services', 'shared'],
  api: ['commands', 'config', 'db', 'domain', 'reports', 'server', 'services', 'shared', 'webhooks'],
  server: ['commands', 'config', 'db', 'domain', 'integrations', 'reports', 'services', 'shared'],
  webhooks: ['db', 'domain', 'shared'],
  worker: ['activities', 'config', 'db', 'domain', 'integrations', 'shared', 'temporal', 'workflows'],
  runtime: FOLDERS.filter((f) => f !== 'cli' && f !== 'runtime'),
  cli: FOLDERS.filter((f) => f !== 'cli'),
};
/** no-restricted-imports patterns refusing every folder that `folder` may not import (relative imports climb with ../). @param {string} folder */
function folderPatterns(folder) {
  const allowed = MAY_IMPORT[folder] ?? [];
  const refused = FOLDERS.filter((f) => f !== folder && !allowed.includes(f));
  if (refused.length === 0) return [];
  return [
    {
      regex: `^(\\.\\./)+(${refused.join('|')})(/|$)`,
      message: `src/${folder}/ may import only ${allowed.length ? allowed.map((f) => `src/${f}/`).join(', ') : 'nothing else of ours'} (README, "Architecture").`,
    },
  ];
}
const folderRules = FOLDERS.filter((f) => f !== 'workflows').map((folder) => ({
  files: [`src/${folder}/**/*.ts`],
  ignores: ['src/**/*.test.ts'],
  rules: { 'no-restricted-imports': ['error', { patterns: folderPatterns(folder) }] },
}));

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'data/**',
      'dist/**',
      'coverage/**',
      'test-results/**',
      '**/*.mjs',
      '**/*.js',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-console': 'error',
    },
  },
  ...folderRules,
  {
    // Workflow code is replayed: it must stay deterministic and free of I/O.
    files: ['src/workflows/**/*.ts'],
    ignores: ['src/workflows/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code cannot use Node built-ins.' })),
          patterns: [
            {
              group: [
                '**/db',
                '**/db/**',
                '**/integrations/**',
                '**/server/**',
                '**/bot/**',
                '**/agent/**',
                '**/worker/**',
                '**/config',
                '**/config/**',
              ],
              message: 'Workflow code must not import I/O layers.',
            },
            {
              group: ['**/activities/**', '**/activities'],
              allowTypeImports: true,
              message: 'Import activities as types only (proxyActivities<typeof ...>).',
            },
            ...folderPatterns('workflows'),
            {
              group: [
                'pg',
                'drizzle-orm',
                'drizzle-orm/**',
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
                'pino',
                'fastify',
              ],
              message: 'Not available inside workflows.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'No process.env in workflows: pass values through the input.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use uuid4() or deterministic ids.' },
      ],
    },
  },
  {
    files: ['src/cli/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off', 'no-console': 'off' },
  },
);
