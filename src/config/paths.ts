/** Where a file that the configuration names is. */
import { existsSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";

/**
 * `path` as an absolute path: relative paths are read from the configuration file's folder
 * (`base`); traefik reads them from its working directory, so a traefik file that counts on
 * that still works (the folder is tried first).
 */
export function configPath(path: string, base: string): string {
  if (isAbsolute(path)) return path;
  const beside = resolve(base, path);
  if (existsSync(beside)) return beside;
  const cwd = resolve(path);
  return existsSync(cwd) ? cwd : beside;
}
