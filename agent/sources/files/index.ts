/**
 * The files source driver: a GNU tar stream of configured paths (configs, media, models, volumes),
 * restored into a new or empty directory; drills compare the number and bytes of regular files with the
 * manifest.
 */
import { RestoreError } from '#core/errors';
import type { SourceDriver } from '#core/ports';
import { filesSource } from '#core/sources/files';
import { directoryTargets } from '../kit';
import { backupFiles } from './backup';
import { checkFiles } from './check';
import { doctorFiles } from './doctor';
import { memberOf, restoreInPlace } from './in-place';
import { restoreFiles } from './restore';

export { backupFiles } from './backup';
export { checkFiles, countFiles } from './check';
export { type InPlaceOptions, type InPlaceResult, restoreInPlace } from './in-place';
export { type FilesRestoreOptions, INCOMPLETE_MARKER, restoreFiles } from './restore';

/** The `files` driver. */
export const filesDriver: SourceDriver<'files'> = {
  /** The paths the backup recorded, restored in place; each one that exists now is named. */
  originalTarget: async (_config, details) => {
    const occupied: string[] = [];
    for (const path of details.paths) {
      if (await directoryTargets.targetExists(undefined, path)) occupied.push(`${path} exists`);
    }
    return { target: details.paths.join(', '), via: 'in-place', occupied };
  },
  spec: filesSource,
  backup: backupFiles,
  restore: async (config, input, { target, paths, inPlace, details, ctx }) => {
    if (!inPlace) {
      await restoreFiles(await input.only(), {
        targetDir: target,
        signal: ctx.signal,
        members: paths?.length ? paths.map(memberOf) : undefined,
      });
      return;
    }
    if (!details) throw new RestoreError('an in-place restore needs the manifest details of the backup');
    const result = await restoreInPlace(await input.only(), {
      details,
      paths,
      delete: inPlace.delete,
      exclude: config.exclude,
      stamp: inPlace.stamp,
      signal: ctx.signal,
      log: ctx.log,
    });
    return {
      ...(result.keptAs ? { keptAs: result.keptAs } : {}),
      notes: [
        `${result.placed} entr${result.placed === 1 ? 'y' : 'ies'} moved into place, ${result.kept} kept${result.keptAs ? ` in ${result.keptAs}` : ''}`,
      ],
    };
  },
  check: async (_config, details, { target, paths, inPlace }) => {
    if (!paths?.length && !inPlace) return checkFiles(details, target);
    // Counts are the whole backup's: a full in-place restore compared them in staging before anything
    // moved (and refused a mismatch); chosen paths are a part, so they are not compared.
    const detail = paths?.length
      ? `chosen paths only (${paths.join(', ')}): the backup's counts (${details.fileCount} files) are for all of it, not compared`
      : `${details.fileCount} files, ${details.fileBytes} bytes, as the backup recorded (counted in staging before anything moved)`;
    return [{ check: 'file-count', passed: true, detail, findings: [] }];
  },
  doctor: doctorFiles,
  ...directoryTargets,
};
