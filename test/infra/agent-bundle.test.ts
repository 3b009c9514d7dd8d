/**
 * The CDK app builds the agent bundle itself when it is missing or older than its sources, so a synth
 * right after a clone or an edit never ships a missing or stale agent.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '#infra/paths';
import { tempDirSync } from '#test/support/temp';
import {
  agentBundleStaleness,
  asciiOnly,
  ensureAgentBundle,
  HELD_AGENT_MARKER,
} from '../../scripts/lib/agent-bundle';

describe('the agent bundle of a synth', () => {
  it('is stale when missing or older than a source, and current otherwise', () => {
    const root = tempDirSync('strongbox-bundle-');
    mkdirSync(join(root, 'agent', 'sources'), { recursive: true });
    writeFileSync(join(root, 'agent', 'sources', 'x.ts'), 'export {};');
    writeFileSync(join(root, 'agent', 'x.test.ts'), 'export {};');
    const outfile = join(root, 'strongbox.mjs');
    expect(agentBundleStaleness(root, outfile)).toBe(`${outfile} does not exist`);
    writeFileSync(outfile, '// bundle');
    const past = new Date(Date.now() - 3600_000);
    utimesSync(join(root, 'agent', 'sources', 'x.ts'), past, past);
    utimesSync(
      join(root, 'agent', 'x.test.ts'),
      new Date(Date.now() + 3600_000),
      new Date(Date.now() + 3600_000),
    );
    expect(agentBundleStaleness(root, outfile)).toBeUndefined();
    const later = new Date(Date.now() + 7200_000);
    utimesSync(join(root, 'agent', 'sources', 'x.ts'), later, later);
    expect(agentBundleStaleness(root, outfile)).toBe(
      `${join(root, 'agent', 'sources', 'x.ts')} changed after ${outfile} was built`,
    );
  });

  it('is built when missing, into a bundle that runs', async () => {
    const outfile = join(tempDirSync('strongbox-bundle-'), 'strongbox.mjs');
    expect(await ensureAgentBundle(REPO_ROOT, outfile)).toMatch(/does not exist/);
    expect(readFileSync(outfile, 'utf8').length).toBeGreaterThan(100_000);
    const run = spawnSync(process.execPath, [outfile, '--version'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toMatch(/\d+\.\d+\.\d+/);
    expect(await ensureAgentBundle(REPO_ROOT, outfile)).toBeUndefined();

    // What a wal-push answered by the fast path parses: the entry, with the CLI held as line comments
    // after it that are compiled only when the CLI runs (docs/adr/0012) — the run above went through it.
    const bundle = readFileSync(outfile, 'utf8');
    const at = bundle.indexOf(HELD_AGENT_MARKER);
    expect(at, 'the CLI is held after the marker').toBeGreaterThan(0);
    const held = bundle.slice(at + HELD_AGENT_MARKER.length).split('\n');
    expect(held.every((line) => line.startsWith('//'))).toBe(true);
    expect(held.join('\n')).toContain('commander');
    expect(at).toBeLessThan(200_000);
    // ASCII throughout, the held agent too: one non-ASCII character in a kept comment and V8 holds the
    // module's source, the held agent read back and its compiled copy as two-byte strings (docs/adr/0014).
    expect(bundle.match(/[\u0080-\uffff]/g) ?? []).toEqual([]);
  }, 120_000);

  it('escapes non-ASCII without changing what the code means', () => {
    const source =
      "// 3× the median — a comment\nmodule.exports = ['×', /é+/.test('éé'), `a—b`, '😀'.length];";
    const escaped = asciiOnly(source);
    expect(escaped).not.toMatch(/[\u0080-\uffff]/);
    const run = (code: string) => {
      const module = { exports: undefined as unknown };
      new Function('module', code)(module);
      return module.exports;
    };
    expect(run(escaped)).toEqual(run(source));
    expect(run(escaped)).toEqual(['×', true, 'a—b', 2]);
  });
});
