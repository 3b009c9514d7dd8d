/**
 * `npm run bench -- [suite…]`: runs the named bench suites (default: `pg`) one after the other and rewrites
 * each one's section of bench/RESULTS.md. Not a test: the figures need a quiet machine.
 * `npm run bench -- --help` lists the suites and their settings.
 */
import { stat } from 'node:fs/promises';
import { pgSuite } from './backup-restore';
import { filesSuite } from './files-tree';
import { cli, type Suite, writeSection } from './lib';
import { manyTablesSuite } from './many-tables';
import { pitrSuite } from './pitr';

const suites: Suite[] = [pgSuite, manyTablesSuite, filesSuite, pitrSuite];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(
      `npm run bench -- [suite…|all]\n\n${suites.map((s) => `  ${s.name.padEnd(12)} ${s.summary}`).join('\n')}\n`,
    );
    return;
  }
  const names = args.length === 0 ? ['pg'] : args.includes('all') ? suites.map((s) => s.name) : args;
  const chosen = names.map((name) => {
    const suite = suites.find((s) => s.name === name);
    if (!suite)
      throw new Error(`unknown bench suite "${name}"; known: ${suites.map((s) => s.name).join(', ')}`);
    return suite;
  });
  await stat(cli).catch(() => {
    throw new Error('dist/strongbox.mjs is missing: npm run build');
  });
  for (const suite of chosen) {
    process.stdout.write(`== ${suite.name}: ${suite.summary}\n`);
    const result = await suite.run();
    process.stdout.write(`\n${result.markdown}\n`);
    for (const g of result.goals)
      process.stdout.write(`  ${g.met ? 'met   ' : 'MISSED'} ${g.goal}: ${g.measured}\n`);
    await writeSection(suite.name, result);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
