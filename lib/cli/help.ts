/** Help text shared by the root command and recipe leaves. */

/** The global options block appended to the root help. */
export const GLOBAL_OPTIONS_HELP = `
Global options (before the group, or anywhere after a recipe command):
  -c, --config NAME|PATH   config name in the recipe's config dir, or a YAML path
  -r, --run PROFILE        submit with an env.toml profile and wait (attached)
  -b, --batch PROFILE      submit with an env.toml profile and return (detached)
  -d, --dry-run            show what would run; write and submit nothing
  --stage                  stage files for interactive debugging (needs -r or -b)
  --force-squash           re-import the container .sqsh even if it exists

After a recipe command, key.path=value is a config override and any other token
is passed to the script; '--' passes everything after it to the script.
`;
