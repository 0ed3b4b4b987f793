#!/usr/bin/env node
// The `patchops` command. TypeScript sources run through tsx's ESM loader (no build step).
import fs from 'node:fs';
import { register } from 'tsx/esm/api';

// A .env in the working directory fills in variables that are not already set.
if (fs.existsSync('.env')) process.loadEnvFile('.env');
register();
await import('../src/cli/main.ts');
