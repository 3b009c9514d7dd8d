/** What `strongbox doctor` checks for a files job: every configured path is there and readable. */
import { access, constants } from 'node:fs/promises';
import type { DoctorCheck } from '#core/ports';
import type { FilesSourceConfig } from '#core/sources/index';
import { probe } from '../kit';

/** One line per configured path. */
export function doctorFiles(config: FilesSourceConfig): Promise<DoctorCheck[]> {
  return Promise.all(
    config.paths.map((path) =>
      probe(path, async () => {
        await access(path, constants.R_OK);
        return 'readable';
      }),
    ),
  );
}
