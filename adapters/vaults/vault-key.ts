/** The rules every vault applies to keys, so a key that works in one vault works in all. */
import { VaultError } from '#core/errors';

/** Names of in-progress file vault writes (`.<name>.partial-<16 hex>`); never valid as keys. */
export const PARTIAL_NAME = /^\..+\.partial-[0-9a-f]{16}$/;

/**
 * Checks a vault key: relative, `/`-separated, without empty, `.` or `..` segments, NUL or backslash,
 * and not shaped like a partial file.
 * @throws VaultError naming the key.
 * @example checkKey('backups/db/20241206T020000Z-3f9a1c/manifest.json') // ok
 */
export function checkKey(key: string): void {
  const segments = key.split('/');
  const bad =
    key === '' ||
    /[\0\\]/.test(key) ||
    segments.some((s) => s === '' || s === '.' || s === '..') ||
    PARTIAL_NAME.test(segments.at(-1) as string);
  if (bad) {
    throw new VaultError(
      `invalid vault key '${key}': must be a relative path of non-empty segments, without '.', '..' or '\\'`,
    );
  }
}
