/**
 * The files source driver: a GNU tar stream of configured paths (configs, media, models, volumes),
 * restored into a new or empty directory; drills compare the number and bytes of regular files with the
 * manifest.
 */
import type { SourceDriver } from '#core/ports';
import { filesSource } from '#core/sources/files';
import { directoryTargets } from '../kit';
import { backupFiles } from './backup';
import { checkFiles } from './check';
import { doctorFiles } from './doctor';
import { restoreFiles } from './restore';

export { backupFiles } from './backup';
export { checkFiles, countFiles } from './check';
export { type FilesRestoreOptions, INCOMPLETE_MARKER, restoreFiles } from './restore';

/** The `files` driver. */
export const filesDriver: SourceDriver<'files'> = {
  spec: filesSource,
  backup: backupFiles,
  restore: async (_config, input, { target, ctx }) => {
    await restoreFiles(await input.only(), { targetDir: target, signal: ctx.signal });
  },
  check: (_config, details, { target }) => checkFiles(details, target),
  doctor: doctorFiles,
  ...directoryTargets,
};
