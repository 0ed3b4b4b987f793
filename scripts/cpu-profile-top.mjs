#!/usr/bin/env node
/**
 * Summarises a V8 CPU profile (node --cpu-prof, Chrome DevTools' .cpuprofile): the functions with the most self
 * time, and the self time by package (node_modules/<name>, node: internals, this project's src/), as percentages
 * of the samples. For the benchmarks' BENCH_CPU_PROF.
 *
 *   node scripts/cpu-profile-top.mjs PROFILE.cpuprofile [N]
 */
import fs from 'node:fs';

const [file, n = '30'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/cpu-profile-top.mjs PROFILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const hits = new Map();
const deltas = profile.timeDeltas ?? [];
profile.samples.forEach((id, i) => hits.set(id, (hits.get(id) ?? 0) + (deltas[i] ?? 0)));
const total = [...hits.values()].reduce((a, b) => a + b, 0) || 1;

const packageOf = (url) => {
  if (!url) return '(native / idle / gc)';
  if (url.startsWith('node:')) return 'node:internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  const s = /\/(src|bench|test)\/(.*)$/.exec(url);
  return s ? `${s[1]}/${s[2].split('/')[0]}` : url;
};
const self = new Map();
const packages = new Map();
for (const [id, us] of hits) {
  const { callFrame: f } = byId.get(id);
  const key = `${f.functionName || '(anonymous)'}  ${f.url.replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + us);
  const p = packageOf(f.url);
  packages.set(p, (packages.get(p) ?? 0) + us);
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled`);
console.log('\nself time by package');
for (const [k, us] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${pct(us)}  ${k}`);
console.log(`\nself time by function (top ${n})`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`${pct(us)}  ${k}`);
