/** What `strongbox doctor` checks for a files job: GNU tar is there, every configured path is readable. */
import { access, constants } from 'node:fs/promises';
import { toolVersion } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';
import type { DoctorCheck } from '#core/ports';
import type { FilesSourceConfig } from '#core/sources/index';
import { probe } from '../kit';
import { expandPath, isGlob } from './walk';

/** One line for GNU tar, one per configured path (a glob: how many paths it matches). */
export async function doctorFiles(config: FilesSourceConfig): Promise<DoctorCheck[]> {
  const tar = probe('tar', async () => {
    const version = await toolVersion('tar');
    if (!/GNU tar/.test(version))
      throw new SourceError(`GNU tar is needed (apt-get install tar), found: ${version}`);
    return version;
  });
  const paths = config.paths.map((path) =>
    probe(path, async () => {
      if (isGlob(path)) return `matches ${(await expandPath(path)).length} path(s)`;
      await access(path, constants.R_OK);
      return 'readable';
    }),
  );
  return Promise.all([tar, ...paths]);
}
