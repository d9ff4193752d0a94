/** Interpolation of env.toml profile tables (`${oc.env:VAR,default}`, `${sibling_key}`). */
import { UsageError } from "../errors.ts";
import { InterpolationError, resolveTree } from "./interpolate.ts";
import { type ConfigMap, fromPlain, toPlain } from "./tree.ts";

/**
 * Resolve every interpolation of one (already `extends`-merged) profile table; the table itself is
 * the root, so `${remote_job_dir}/hf` refers to a sibling key. Signature matches env_toml's
 * `ProfileInterpolator`: install with `setProfileInterpolator(interpolateProfileTable)`.
 * Errors are `UsageError`s located at the env.toml file and naming the profile.
 */
export function interpolateProfileTable(
  table: Record<string, unknown>,
  where: { file: string; profile: string },
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Record<string, unknown> {
  try {
    const out = resolveTree(fromPlain(table) as ConfigMap, { env });
    return toPlain(out) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof InterpolationError) {
      throw new UsageError(`profile [${where.profile}]: ${e.message}`, {
        location: { file: where.file },
        hint: e.hint,
      });
    }
    throw e;
  }
}
