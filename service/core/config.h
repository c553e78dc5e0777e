/* config.h: policy files and domain metadata -> MtHostPolicy and
 * per-VM MtVmPolicy.  The file format is described in docs/policy.md.
 *
 * An MtConfig is immutable once loaded: a reload builds a new one and the
 * daemon swaps it in only when the load succeeded, so a bad edit never
 * leaves a half-applied policy behind.
 */
#pragma once

#include <stdio.h>
#include <glib.h>
#include "policy.h"
#include "domain.h" /* MtVmOverrides */

/* Namespace of the <policy> element in a domain's libvirt <metadata>;
 * the libvirt driver passes it to virDomainGetMetadata
 * (VIR_DOMAIN_METADATA_ELEMENT). */
#define MT_METADATA_NAMESPACE "https://memtide.org/xmlns/policy/1"
#define MT_METADATA_PREFIX    "memtide"

#define MT_CONFIG_ERROR (mt_config_error_quark ())
GQuark mt_config_error_quark (void);

/* INVALID_* means the text is not a value of that type at all;
 * OUT_OF_RANGE means it is, but not one this key allows. */
typedef enum {
  MT_CONFIG_ERROR_READ,   /* file or directory cannot be read */
  MT_CONFIG_ERROR_SYNTAX, /* not a valid key file */
  MT_CONFIG_ERROR_UNKNOWN_GROUP,
  MT_CONFIG_ERROR_DUPLICATE_GROUP, /* same group twice in one file */
  MT_CONFIG_ERROR_BAD_GLOB,
  MT_CONFIG_ERROR_UNKNOWN_KEY,
  MT_CONFIG_ERROR_DUPLICATE_KEY, /* same key twice in one group */
  MT_CONFIG_ERROR_INVALID_SIZE,
  MT_CONFIG_ERROR_INVALID_PERCENT,
  MT_CONFIG_ERROR_INVALID_DURATION,
  MT_CONFIG_ERROR_INVALID_BOOLEAN,
  MT_CONFIG_ERROR_INVALID_NUMBER,
  MT_CONFIG_ERROR_INVALID_MECHANISM,
  MT_CONFIG_ERROR_OUT_OF_RANGE,
  MT_CONFIG_ERROR_MIN_ABOVE_MAX,
  MT_CONFIG_ERROR_METADATA,       /* domain metadata is not a memtide <policy> */
  MT_CONFIG_ERROR_INVALID_CHOICE, /* not one of a key's words (page-reporting) */
  MT_CONFIG_ERROR_TOO_LARGE,      /* a file, or the policy, over a limit below */
} MtConfigError;

/* Limits of the policy files (docs/policy.md, "Limits"), so that what
 * memtided reads on its main loop ends soon and stays small.  A file
 * over MT_CONFIG_FILE_MAX_BYTES is not read (a policy of 10,000 named
 * VMs with a few keys each fits in half of it).  MT_CONFIG_MAX_GROUPS
 * ([host] and [vm] groups together, all files) allows one [vm NAME]
 * group per VM on a 10,000-VM host, twice over; such groups cost nothing
 * per VM (found by name).  A glob is matched against every VM's name at
 * every load, so there are fewer: MT_CONFIG_MAX_GLOB_GROUPS [vm] groups
 * whose glob has * or ?. */
#define MT_CONFIG_FILE_MAX_BYTES  (1024 * 1024)
#define MT_CONFIG_MAX_GROUPS      20000
#define MT_CONFIG_MAX_GLOB_GROUPS 1000

typedef struct _MtConfig MtConfig;

/* Load default_file (NULL: none), then every *.conf in policies_dir
 * (NULL or missing: none) in strcmp order of the file names; later
 * files override earlier ones key by key.  Fails on any error: the
 * error's code is that of the first problem, its message lists the
 * problems found, one per line, each naming file, line, group and key:
 * the first 50, then a line "… and N more problems, not listed". */
MtConfig *mt_config_load (const char *default_file, const char *policies_dir, GError **error);

MtConfig *mt_config_ref (MtConfig *config);
void mt_config_unref (MtConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtConfig, mt_config_unref)

const MtHostPolicy *mt_config_get_host (MtConfig *config);

/* Files that were read, in the order they were applied (NULL-terminated,
 * owned by config). */
const char *const *mt_config_get_files (MtConfig *config);

/* Number of [vm GLOB] groups across all files. */
guint mt_config_get_n_vm_groups (MtConfig *config);

/* Whether a [vm GLOB] group's glob is @domain_name itself, written out
 * ([vm Domain-0]), not a wildcard that happens to match it ([vm *],
 * [vm Domain-?]): how a policy opts a domain in that is managed only on
 * request (MtDomainInfo.opt_in: Xen's dom0). */
gboolean mt_config_names_vm (MtConfig *config, const char *domain_name);

/* A domain's own VM policy settings from its memtide <policy> metadata
 * element (config-metadata.h; a driver reads it from the hypervisor, the
 * libvirt driver with virDomainGetMetadata).  NULL or blank xml: no
 * settings.  NULL with an MT_CONFIG_ERROR naming domain_name and what
 * is wrong: the element is applied whole or not at all. */
MtVmOverrides *mt_vm_overrides_from_metadata (const char *domain_name, const char *xml,
                                              GError **error);
MtVmOverrides *mt_vm_overrides_ref (MtVmOverrides *overrides);
void mt_vm_overrides_unref (MtVmOverrides *overrides);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtVmOverrides, mt_vm_overrides_unref)
/* How many keys it sets (0 for NULL). */
guint mt_vm_overrides_get_n_settings (const MtVmOverrides *overrides);

/* Policy for one domain: built-in defaults, then every [vm GLOB] group
 * whose glob matches domain_name, in file order; then the domain's own
 * overrides (NULL: none).  *out is always filled.  Returns FALSE and
 * sets metadata_error when the overrides conflict with the files (a min
 * above the max); *out is then the file policy alone. */
gboolean mt_config_resolve_vm (MtConfig *config, const char *domain_name,
                               const MtVmOverrides *overrides, MtVmPolicy *out,
                               GError **metadata_error);

/* Where one setting came from, for Explain. */
typedef struct {
  const char *key; /* e.g. "min", static */
  char *value;     /* as written, or the built-in value */
  char *origin;    /* "built-in default", "FILE:LINE [vm web-*]",
                          "domain metadata" */
} MtPolicySource;

void mt_policy_source_free (MtPolicySource *source);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MtPolicySource, mt_policy_source_free)

/* One MtPolicySource per VM key, in the order of docs/policy.md.  Same
 * resolution and metadata_error as mt_config_resolve_vm; with bad
 * overrides the sources describe the file policy that applies instead. */
GPtrArray *mt_config_explain_vm (MtConfig *config, const char *domain_name,
                                 const MtVmOverrides *overrides, GError **metadata_error);

/* One MtPolicySource per [host] key. */
GPtrArray *mt_config_explain_host (MtConfig *config);

/* For `memtided --check-config`: load, print the problems as
 * mt_config_load lists them and how many there were in all (or a
 * one-line summary when there is none) to out, and return whether it
 * loaded. */
gboolean mt_config_check (const char *default_file, const char *policies_dir, FILE *out);
