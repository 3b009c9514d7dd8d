/**
 * Where the agent keeps its locks and run records, for the users hosts really run it as: root, a user
 * with a home, and a service user whose home does not exist (`nobody`, HOME=/nonexistent). The CLI runs
 * as `nobody` for real in files-live.test.ts; here the uid is passed in.
 */
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stateDirOf } from '#agent/state';

const me = process.getuid?.() ?? 1000;
/** A user that is not root: this test's own when it is not root, else a uid no one has. */
const user = me === 0 ? 424242 : me;
const made: string[] = [];
/**
 * A home no one can create anything under, root included (root may write anywhere, so /nonexistent
 * would not do as root): a file where the directory should be.
 */
let noHome: string;
beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strongbox-nohome-'));
  noHome = join(dir, 'nonexistent');
  await writeFile(noHome, '');
  return () => rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const path of made.splice(0)) await rm(path, { recursive: true, force: true });
});

/** `<tmp>/strongbox-<uid>` made as `uid` would make it (as root: made, then given to that uid). */
async function madeBy(uid: number, mode: number): Promise<string> {
  const path = join(tmpdir(), `strongbox-${uid}`);
  made.push(path);
  await rm(path, { recursive: true, force: true });
  await mkdir(path, { mode });
  await chmod(path, mode);
  if (me === 0) await chown(path, uid, uid);
  return path;
}

describe('stateDirOf', () => {
  it('takes STRONGBOX_STATE_DIR, then /var/lib/strongbox for root', () => {
    expect(stateDirOf({ STRONGBOX_STATE_DIR: '/srv/state' }, user)).toBe('/srv/state');
    expect(stateDirOf({ HOME: '/root' }, 0)).toBe('/var/lib/strongbox');
  });

  it("uses the user's state home when it can be created, even before it exists", async () => {
    const home = await mkdtemp(join(tmpdir(), 'strongbox-home-'));
    made.push(home);
    expect(stateDirOf({ HOME: home }, user)).toBe(join(home, '.local', 'state', 'strongbox'));
    expect(stateDirOf({ HOME: home, XDG_STATE_HOME: join(home, 'xdg') }, user)).toBe(
      join(home, 'xdg', 'strongbox'),
    );
  });

  it('falls back to a private temp directory for a user whose home cannot be written', async () => {
    const path = join(tmpdir(), `strongbox-${user}`);
    made.push(path);
    await rm(path, { recursive: true, force: true });
    if (me === 0) await madeBy(user, 0o700);
    expect(stateDirOf({ HOME: noHome }, user)).toBe(path);
    expect((await stat(path)).mode & 0o777).toBe(0o700);
  });

  it('refuses a temp directory someone else made first, or one others may read', async () => {
    const path = await madeBy(user, 0o700);
    // Another user's: uid 424243 finds uid `user`'s directory in its place.
    await rm(join(tmpdir(), 'strongbox-424243'), { recursive: true, force: true });
    await mkdir(join(tmpdir(), 'strongbox-424243'), { mode: 0o700 });
    made.push(join(tmpdir(), 'strongbox-424243'));
    if (me === 0) await chown(join(tmpdir(), 'strongbox-424243'), user, user);
    expect(() => stateDirOf({ HOME: noHome }, 424243)).toThrow(/not this user's private directory/);

    await chmod(path, 0o755);
    expect(() => stateDirOf({ HOME: noHome }, user)).toThrow(/mode 0700/);
  });
});
